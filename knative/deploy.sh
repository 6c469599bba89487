#!/usr/bin/env bash
# Apply GameMetrics to the current kubectl context.
#
#   knative/deploy.sh ENV IMAGE_DIGEST
#
# ENV           dev | staging | production
# IMAGE_DIGEST  the pushed image pinned by digest, REPO@sha256:<hex>
#               (or just sha256:<hex> with IMAGE_REPO set)
#
# Environment:
#   AWS_ACCOUNT_ID         substituted for ${AWS_ACCOUNT_ID} (IRSA role ARNs,
#                          bucket name); default: terraform output aws_account_id
#   MSK_BOOTSTRAP_BROKERS  substituted for ${MSK_BOOTSTRAP_BROKERS}; default:
#                          terraform output msk_bootstrap_brokers_sasl_scram
#   IMAGE_REPO             repository when IMAGE_DIGEST is a bare digest
#   DRY_RUN=1              print the final manifests instead of applying them
#   KUBECTL                kubectl binary (default kubectl)
#
# The working tree is never modified: the overlays are copied to a temporary
# directory and pinned there with an `images:` entry, exactly what
# `kustomize edit set image gamemetrics=REPO@sha256:...` would write.
set -euo pipefail

usage() {
	sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -eq 2 ] || usage
ENV=$1
IMAGE_DIGEST=$2
KUBECTL=${KUBECTL:-kubectl}
NAMESPACE=gamemetrics

case "$ENV" in
dev | staging | production) ;;
*)
	echo "deploy.sh: unknown environment '$ENV' (dev, staging, production)" >&2
	exit 2
	;;
esac

case "$IMAGE_DIGEST" in
*@sha256:*)
	IMAGE_NAME=${IMAGE_DIGEST%@*}
	DIGEST=${IMAGE_DIGEST#*@}
	;;
sha256:*)
	: "${IMAGE_REPO:?deploy.sh: IMAGE_DIGEST is a bare digest; set IMAGE_REPO}"
	IMAGE_NAME=$IMAGE_REPO
	DIGEST=$IMAGE_DIGEST
	;;
*)
	echo "deploy.sh: IMAGE_DIGEST must be REPO@sha256:<hex> or sha256:<hex>, got '$IMAGE_DIGEST'" >&2
	exit 2
	;;
esac
if ! [[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]]; then
	echo "deploy.sh: malformed digest '$DIGEST'" >&2
	exit 2
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)

# Values only Terraform knows, unless given.
tf_output() {
	command -v terraform >/dev/null 2>&1 || return 1
	terraform -chdir="$ROOT/terraform/environments/$ENV" output -raw "$1" 2>/dev/null
}
AWS_ACCOUNT_ID=${AWS_ACCOUNT_ID:-$(tf_output aws_account_id || true)}
MSK_BOOTSTRAP_BROKERS=${MSK_BOOTSTRAP_BROKERS:-$(tf_output msk_bootstrap_brokers_sasl_scram || true)}
: "${AWS_ACCOUNT_ID:?deploy.sh: set AWS_ACCOUNT_ID (terraform output aws_account_id)}"
: "${MSK_BOOTSTRAP_BROKERS:?deploy.sh: set MSK_BOOTSTRAP_BROKERS (terraform output msk_bootstrap_brokers_sasl_scram)}"
if ! [[ $AWS_ACCOUNT_ID =~ ^[0-9]{12}$ ]]; then
	echo "deploy.sh: AWS_ACCOUNT_ID must be 12 digits, got '$AWS_ACCOUNT_ID'" >&2
	exit 2
fi
if ! [[ $MSK_BOOTSTRAP_BROKERS =~ ^[A-Za-z0-9.,:-]+$ ]]; then
	echo "deploy.sh: MSK_BOOTSTRAP_BROKERS must be host:port[,host:port...], got '$MSK_BOOTSTRAP_BROKERS'" >&2
	exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -R "$ROOT/knative" "$WORK/knative"
cp -R "$ROOT/eventing" "$WORK/eventing"
rm -rf "$WORK/knative/validate"

mkdir -p "$WORK/pin"
cat >"$WORK/pin/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../knative/overlays/$ENV
images:
- name: gamemetrics
  newName: $IMAGE_NAME
  digest: $DIGEST
YAML

render() {
	"$KUBECTL" kustomize "$1" |
		sed -e "s|\${AWS_ACCOUNT_ID}|$AWS_ACCOUNT_ID|g" \
			-e "s|\${MSK_BOOTSTRAP_BROKERS}|$MSK_BOOTSTRAP_BROKERS|g" >"$2"
	if grep -n '\${' "$2" >&2; then
		echo "deploy.sh: unsubstituted placeholders left in $1 (above)" >&2
		exit 1
	fi
}
render "$WORK/pin" "$WORK/knative.yaml"
render "$WORK/eventing/overlays/$ENV" "$WORK/eventing.yaml"

if grep -q 'image: gamemetrics$' "$WORK/knative.yaml"; then
	echo "deploy.sh: an image was not pinned to $IMAGE_NAME@$DIGEST" >&2
	exit 1
fi

if [ "${DRY_RUN:-}" = 1 ]; then
	cat "$WORK/knative.yaml"
	echo "---"
	cat "$WORK/eventing.yaml"
	exit 0
fi

# The Secrets come from AWS Secrets Manager (knative/README.md); without
# them no function can start.
if ! "$KUBECTL" -n "$NAMESPACE" get secret gamemetrics-postgres gamemetrics-redis gamemetrics-kafka >/dev/null; then
	echo "deploy.sh: create the Secrets gamemetrics-postgres, gamemetrics-redis and gamemetrics-kafka in namespace $NAMESPACE first (knative/README.md, 'Secrets')" >&2
	exit 1
fi

# Services first: the event sources need their sinks to exist.
"$KUBECTL" apply -f "$WORK/knative.yaml"
"$KUBECTL" -n "$NAMESPACE" wait ksvc --all --for=condition=Ready --timeout=600s
"$KUBECTL" apply -f "$WORK/eventing.yaml"
"$KUBECTL" -n "$NAMESPACE" wait kafkasource,kafkasink,pingsource --all --for=condition=Ready --timeout=300s

echo "deployed $IMAGE_NAME@$DIGEST to $ENV"
