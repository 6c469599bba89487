#!/usr/bin/env bash
# GitOps bootstrap, once per cluster, after ArgoCD and its "gamemetrics"
# plugin sidecar are installed (knative/README.md, "GitOps"):
#
#   knative/argocd/bootstrap.sh ENV
#
# 1. writes the ConfigMap argocd/gamemetrics-environment: the values only
#    Terraform knows (the same deploy.sh reads), which the plugin fills into
#    the placeholders of every application;
# 2. creates the ConfigMap gamemetrics/rds-ca-bundle (the RDS CA bundle,
#    downloaded, not committed);
# 3. applies the root Application (root.yaml); ArgoCD does the rest in the
#    order of knative/deploy.sh.
# DRY_RUN=1 prints the commands instead.
set -euo pipefail
[ $# -eq 1 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
ENV=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KUBECTL=${KUBECTL:-kubectl}
AWS_REGION=${AWS_REGION:-eu-west-1}
run() { if [ -n "${DRY_RUN:-}" ]; then printf '+ %s\n' "$*"; else "$@"; fi; }
out() { terraform -chdir="$ROOT/terraform/environments/$ENV" output -raw "$1"; }

literals=(--from-literal=ENVIRONMENT="$ENV")
for pair in AWS_ACCOUNT_ID=aws_account_id CLUSTER_NAME=cluster_name DOMAIN=domain \
	ACM_CERTIFICATE_ARN=certificate_arn KARPENTER_NODE_ROLE=karpenter_node_role \
	KARPENTER_QUEUE=karpenter_interruption_queue RDS_MASTER_SECRET_ARN=rds_master_user_secret_arn; do
	name=${pair%%=*}
	v=${!name:-}
	[ -n "$v" ] || v=$(out "${pair#*=}")
	literals+=(--from-literal="$name=$v")
done
run "$KUBECTL" create namespace gamemetrics --dry-run=client -o yaml | run "$KUBECTL" apply -f -
run "$KUBECTL" -n argocd create configmap gamemetrics-environment "${literals[@]}" --dry-run=client -o yaml | run "$KUBECTL" apply -f -
run curl -fsSL -o /tmp/rds-ca.pem "https://truststore.pki.rds.amazonaws.com/$AWS_REGION/$AWS_REGION-bundle.pem"
run "$KUBECTL" -n gamemetrics create configmap rds-ca-bundle --from-file=ca.pem=/tmp/rds-ca.pem --dry-run=client -o yaml | run "$KUBECTL" apply -f -
run "$KUBECTL" apply -f "$ROOT/knative/argocd/root.yaml"
