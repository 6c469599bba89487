#!/usr/bin/env bash
# Deploy GameMetrics to the current kubectl context, on an empty cluster or
# over an earlier deploy, in the only order that works from nothing:
#
#   1  platform    Knative CRDs (Established), Knative Serving/Kourier/
#                  Eventing/eventing-kafka, the gamemetrics namespace
#                  (Strimzi watches it from install on), the Helm charts of
#                  knative/platform/charts.txt (Strimzi, External Secrets,
#                  ExternalDNS, Karpenter), then the cluster resources that
#                  need their CRDs (StorageClass, NodePool, ClusterSecretStore)
#   2  secrets     ConfigMaps, ServiceAccounts, NetworkPolicies,
#                  ExternalSecrets (synced), the RDS CA bundle
#   3  kafka       Kafka, node pool, users, topics (Ready)
#   4  migrations  the migration Job (Complete) before any Service rolls
#   5  services    the six Knative Services (Ready)
#   6  sources     KafkaSink, KafkaSource, PingSources (Ready)
#
#   knative/deploy.sh ENV IMAGE_DIGEST CLI_IMAGE_DIGEST
#
# ENV               dev | staging | production
# IMAGE_DIGEST      the function bundle pinned by digest, REPO@sha256:<hex>
# CLI_IMAGE_DIGEST  the operator CLI (migration Job) pinned by digest
#
# Values only Terraform knows, from the environment or else from
# `terraform -chdir=terraform/environments/ENV output -raw NAME`:
#   AWS_ACCOUNT_ID (aws_account_id), CLUSTER_NAME (cluster_name),
#   DOMAIN (domain), ACM_CERTIFICATE_ARN (certificate_arn),
#   KARPENTER_NODE_ROLE (karpenter_node_role),
#   KARPENTER_QUEUE (karpenter_interruption_queue),
#   RDS_MASTER_SECRET_ARN (rds_master_user_secret_arn), AWS_REGION (eu-west-1)
# Other settings:
#   DRY_RUN=1   print every command and the application manifests of each
#               step, in order, instead of running anything (needs no cluster)
#   KUBECTL, HELM  binaries (default kubectl, helm)
#
# Field managers: the platform layer is applied as gamemetrics-platform, the
# application as gamemetrics-app. Each applies whole objects (Knative's
# ConfigMaps are patched in knative/platform/knative, never applied partially),
# so a re-apply of one layer never removes a field the other set.
set -euo pipefail

usage() {
	sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -eq 3 ] || usage
ENV=$1
KUBECTL=${KUBECTL:-kubectl}
HELM=${HELM:-helm}
NAMESPACE=gamemetrics
DRY_RUN=${DRY_RUN:-}

case "$ENV" in
dev | staging | production) ;;
*)
	echo "deploy.sh: unknown environment '$ENV' (dev, staging, production)" >&2
	exit 2
	;;
esac

# pinned REF: splits REPO@sha256:<hex> into NAME and DIGEST or exits.
pinned() {
	case "$1" in
	*@sha256:*) ;;
	*)
		echo "deploy.sh: images must be REPO@sha256:<hex> (tags are mutable), got '$1'" >&2
		exit 2
		;;
	esac
	if ! [[ ${1#*@} =~ ^sha256:[0-9a-f]{64}$ ]]; then
		echo "deploy.sh: malformed digest in '$1'" >&2
		exit 2
	fi
}
pinned "$2"
pinned "$3"
IMAGE_NAME=${2%@*} IMAGE_SHA=${2#*@}
CLI_NAME=${3%@*} CLI_SHA=${3#*@}

ROOT=$(cd "$(dirname "$0")/.." && pwd)

tf_output() {
	command -v terraform >/dev/null 2>&1 || return 1
	terraform -chdir="$ROOT/terraform/environments/$ENV" output -raw "$1" 2>/dev/null
}
# value VAR OUTPUT: $VAR, else the terraform output, else fail.
value() {
	local v=${!1:-}
	[ -n "$v" ] || v=$(tf_output "$2" || true)
	if [ -z "$v" ]; then
		echo "deploy.sh: set $1 (terraform -chdir=terraform/environments/$ENV output -raw $2)" >&2
		exit 2
	fi
	printf -v "$1" '%s' "$v"
	export "${1?}"
}
value AWS_ACCOUNT_ID aws_account_id
value CLUSTER_NAME cluster_name
value DOMAIN domain
value ACM_CERTIFICATE_ARN certificate_arn
value KARPENTER_NODE_ROLE karpenter_node_role
value KARPENTER_QUEUE karpenter_interruption_queue
value RDS_MASTER_SECRET_ARN rds_master_user_secret_arn
AWS_REGION=${AWS_REGION:-eu-west-1}
[[ $AWS_ACCOUNT_ID =~ ^[0-9]{12}$ ]] || { echo "deploy.sh: AWS_ACCOUNT_ID must be 12 digits, got '$AWS_ACCOUNT_ID'" >&2; exit 2; }
[[ $CLUSTER_NAME == "gamemetrics-$ENV" ]] || { echo "deploy.sh: CLUSTER_NAME '$CLUSTER_NAME' is not gamemetrics-$ENV: wrong terraform outputs?" >&2; exit 2; }
[[ $DOMAIN =~ ^[a-z0-9.-]+$ ]] || { echo "deploy.sh: DOMAIN must be a DNS name, got '$DOMAIN'" >&2; exit 2; }
[[ $ACM_CERTIFICATE_ARN =~ ^arn:aws:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$ ]] || { echo "deploy.sh: ACM_CERTIFICATE_ARN is not a certificate ARN: '$ACM_CERTIFICATE_ARN'" >&2; exit 2; }
[[ $RDS_MASTER_SECRET_ARN =~ ^arn:aws:secretsmanager: ]] || { echo "deploy.sh: RDS_MASTER_SECRET_ARN is not a secret ARN: '$RDS_MASTER_SECRET_ARN'" >&2; exit 2; }

# The placeholders a manifest may contain; knative/validate refuses others.
PLACEHOLDERS=(AWS_ACCOUNT_ID CLUSTER_NAME DOMAIN ACM_CERTIFICATE_ARN KARPENTER_NODE_ROLE KARPENTER_QUEUE RDS_MASTER_SECRET_ARN)
subst() {
	local args=() p
	for p in "${PLACEHOLDERS[@]}"; do
		args+=(-e "s|\${$p}|${!p}|g")
	done
	sed "${args[@]}"
}

# run CMD...: runs it, or under DRY_RUN prints it.
run() {
	if [ -n "$DRY_RUN" ]; then
		printf '# + %s\n' "$*"
	else
		"$@"
	fi
}
step() {
	if [ -n "$DRY_RUN" ]; then printf '# deploy.sh step %s\n' "$*"; else echo "deploy.sh: step $*" >&2; fi
}

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# apply_platform DIR: renders a kustomization with remote release files
# (network needed) and applies it server-side as the platform layer.
apply_platform() {
	if [ -n "$DRY_RUN" ]; then
		printf '# + %s kustomize %s | subst | %s apply --server-side --field-manager=gamemetrics-platform -f -\n' "$KUBECTL" "${1#"$ROOT"/}" "$KUBECTL"
		return
	fi
	"$KUBECTL" kustomize "$1" | subst >"$WORK/platform.yaml"
	if grep -n '\${' "$WORK/platform.yaml" >&2; then
		echo "deploy.sh: unsubstituted placeholders in $1 (above)" >&2
		exit 1
	fi
	"$KUBECTL" apply --server-side --field-manager=gamemetrics-platform -f "$WORK/platform.yaml"
}

# ---- the application, rendered once and split by step ----------------------
cp -R "$ROOT/knative" "$WORK/knative"
cp -R "$ROOT/eventing" "$WORK/eventing"
rm -rf "$WORK/knative/validate"
mkdir -p "$WORK/pin"
cat >"$WORK/pin/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../knative/overlays/$ENV
- ../eventing/overlays/$ENV
images:
- name: gamemetrics
  newName: $IMAGE_NAME
  digest: $IMAGE_SHA
- name: gamemetrics-cli
  newName: $CLI_NAME
  digest: $CLI_SHA
YAML
"$KUBECTL" kustomize "$WORK/pin" | subst >"$WORK/app.yaml"
if grep -n '\${' "$WORK/app.yaml" >&2; then
	echo "deploy.sh: unsubstituted placeholders left in the application (above)" >&2
	exit 1
fi
if grep -nE 'image: (gamemetrics|gamemetrics-cli)$' "$WORK/app.yaml" >&2; then
	echo "deploy.sh: an image was not pinned (above)" >&2
	exit 1
fi
# Every kind belongs to exactly one step; anything else stops the deploy
# (knative/validate checks the same table before it gets here).
awk -v dir="$WORK" '
function flush() {
	if (doc == "") return
	if (kind == "Namespace") f = "1-namespace"
	else if (kind ~ /^(ConfigMap|ServiceAccount|NetworkPolicy|ExternalSecret)$/) f = "2-secrets"
	else if (kind ~ /^(Kafka|KafkaNodePool|KafkaUser|KafkaTopic)$/) f = "3-kafka"
	else if (kind == "Job") f = "4-migrations"
	else if (kind == "Service") f = "5-services"
	else if (kind ~ /^(KafkaSink|KafkaSource|PingSource)$/) f = "6-sources"
	else { print "deploy.sh: no step applies kind " kind > "/dev/stderr"; bad = 1; doc = ""; return }
	printf "---\n%s", doc >> (dir "/" f ".yaml")
	doc = ""; kind = ""
}
/^---$/ { flush(); next }
/^kind: / { kind = $2 }
{ doc = doc $0 "\n" }
END { flush(); exit bad }
' "$WORK/app.yaml"

# apply_step FILE: applies one step's manifests as the application layer.
apply_step() {
	local f="$WORK/$1.yaml"
	[ -s "$f" ] || { echo "deploy.sh: step $1 has no manifests" >&2; exit 1; }
	if [ -n "$DRY_RUN" ]; then
		printf '# + %s apply --server-side --field-manager=gamemetrics-app -f %s.yaml\n' "$KUBECTL" "$1"
		cat "$f"
	else
		"$KUBECTL" apply --server-side --field-manager=gamemetrics-app -f "$f"
	fi
}

# ---- 1 platform ------------------------------------------------------------
step "1 platform"
apply_platform "$ROOT/knative/platform/crds"
run "$KUBECTL" wait --for=condition=Established crd --all --timeout=120s
apply_platform "$ROOT/knative/platform/knative"
for ns in knative-serving kourier-system knative-eventing; do
	run "$KUBECTL" -n "$ns" wait deployment --all --for=condition=Available --timeout=600s
done
# The namespace before the charts: Strimzi's operator gets its RoleBindings
# in the namespace it watches when it is installed.
apply_step 1-namespace
while read -r name namespace repository chart version values; do
	case "$name" in '' | '#'*) continue ;; esac
	subst <"$ROOT/$values" >"$WORK/$name-values.yaml"
	ref="$repository/$chart"
	repo=()
	case "$repository" in
	oci://*) ;;
	*) ref=$chart repo=(--repo "$repository") ;;
	esac
	run "$HELM" upgrade --install "$name" "$ref" "${repo[@]}" --version "$version" \
		--namespace "$namespace" --create-namespace --values "$WORK/$name-values.yaml" --wait --timeout 10m
done <"$ROOT/knative/platform/charts.txt"
apply_platform "$ROOT/knative/platform/cluster"

# ---- 2 secrets --------------------------------------------------------------
step "2 secrets"
apply_step 2-secrets
# The CA bundle RDS server certificates chain to; DATABASE_URL's sslrootcert.
if [ -n "$DRY_RUN" ]; then
	printf '# + curl -fsSL https://truststore.pki.rds.amazonaws.com/%s/%s-bundle.pem | %s -n %s create configmap rds-ca-bundle --from-file=ca.pem=/dev/stdin --dry-run=client -o yaml | %s apply --server-side --field-manager=gamemetrics-app -f -\n' "$AWS_REGION" "$AWS_REGION" "$KUBECTL" "$NAMESPACE" "$KUBECTL"
else
	curl -fsSL "https://truststore.pki.rds.amazonaws.com/$AWS_REGION/$AWS_REGION-bundle.pem" >"$WORK/rds-ca.pem"
	grep -q 'BEGIN CERTIFICATE' "$WORK/rds-ca.pem" || { echo "deploy.sh: the RDS CA bundle download is not PEM" >&2; exit 1; }
	"$KUBECTL" -n "$NAMESPACE" create configmap rds-ca-bundle --from-file=ca.pem="$WORK/rds-ca.pem" --dry-run=client -o yaml |
		"$KUBECTL" apply --server-side --field-manager=gamemetrics-app -f -
fi
run "$KUBECTL" -n "$NAMESPACE" wait externalsecret --all --for=condition=Ready --timeout=300s

# ---- 3 kafka ----------------------------------------------------------------
step "3 kafka"
apply_step 3-kafka
run "$KUBECTL" -n "$NAMESPACE" wait kafka/gamemetrics --for=condition=Ready --timeout=900s
run "$KUBECTL" -n "$NAMESPACE" wait kafkatopic,kafkauser --all --for=condition=Ready --timeout=300s

# ---- 4 migrations -----------------------------------------------------------
step "4 migrations"
run "$KUBECTL" -n "$NAMESPACE" delete job gamemetrics-migrate --ignore-not-found --wait=true
apply_step 4-migrations
run "$KUBECTL" -n "$NAMESPACE" wait job/gamemetrics-migrate --for=condition=Complete --timeout=900s

# ---- 5 services -------------------------------------------------------------
step "5 services"
apply_step 5-services
run "$KUBECTL" -n "$NAMESPACE" wait ksvc --all --for=condition=Ready --timeout=600s

# ---- 6 sources --------------------------------------------------------------
step "6 sources"
apply_step 6-sources
run "$KUBECTL" -n "$NAMESPACE" wait kafkasink,kafkasource,pingsource --all --for=condition=Ready --timeout=300s

if [ -z "$DRY_RUN" ]; then
	echo "deployed $IMAGE_NAME@$IMAGE_SHA ($CLI_NAME@$CLI_SHA) to $ENV: https://ingest.$DOMAIN, https://report.$DOMAIN"
fi
