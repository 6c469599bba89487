#!/usr/bin/env bash
# generate command of the ArgoCD config management plugin "gamemetrics"
# (plugin.yaml): renders one application exactly as knative/deploy.sh would
# apply it, with the same placeholders filled in from the environment of the
# repo-server sidecar (the ConfigMap argocd/gamemetrics-environment that
# knative/argocd/bootstrap.sh writes from terraform outputs).
#
# In an application directory (ARGOCD_ENV_CHART unset): kubectl kustomize.
# With ARGOCD_ENV_CHART=NAME (run in knative/platform): helm template of that
# chart of knative/platform/charts.txt, with its values file.
set -euo pipefail

PLACEHOLDERS=(AWS_ACCOUNT_ID CLUSTER_NAME DOMAIN ACM_CERTIFICATE_ARN KARPENTER_NODE_ROLE KARPENTER_QUEUE RDS_MASTER_SECRET_ARN ENVIRONMENT)
args=()
for p in "${PLACEHOLDERS[@]}"; do
	: "${!p:?render.sh: $p is not set (ConfigMap argocd/gamemetrics-environment)}"
	args+=(-e "s|\${$p}|${!p}|g")
done

if [ -z "${ARGOCD_ENV_CHART:-}" ]; then
	kubectl kustomize . | sed "${args[@]}"
	exit 0
fi
# ArgoCD runs the plugin in the application's directory of the repository
# copy it sent the sidecar; ARGOCD_APP_SOURCE_PATH is that directory's path.
root=${PWD%/"${ARGOCD_APP_SOURCE_PATH:-}"}
while read -r name namespace repository chart version values; do
	[ "$name" = "$ARGOCD_ENV_CHART" ] || continue
	ref="$repository/$chart" repo=()
	case "$repository" in oci://*) ;; *) ref=$chart repo=(--repo "$repository") ;; esac
	helm template "$name" "$ref" "${repo[@]}" --version "$version" --namespace "$namespace" \
		--include-crds --values <(sed "${args[@]}" "$root/$values")
	exit 0
done <"$root/knative/platform/charts.txt"
echo "render.sh: chart $ARGOCD_ENV_CHART is not in knative/platform/charts.txt" >&2
exit 1
