#!/usr/bin/env bash
# Run the operator CLI inside the cluster, where RDS, Redis and Kafka are
# reachable, with the same configuration and secrets as the functions:
#
#   knative/ops/run.sh status
#   knative/ops/run.sh games create --name "My Game"
#   knative/ops/run.sh events replay --dry-run
#
# It starts a one-off Pod of the CLI image the last deploy pinned (the
# migration Job's), under Pod Security "restricted", as ServiceAccount
# gamemetrics-retain (its role may list the archive's raw/ prefix, which the
# S3 check of `status` reads) and Kafka user kafka-operator; prints its
# output; deletes it; and exits with its exit code.
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
KUBECTL=${KUBECTL:-kubectl}
NS=gamemetrics
IMAGE=$("$KUBECTL" -n "$NS" get job gamemetrics-migrate -o jsonpath='{.spec.template.spec.containers[0].image}')
[ -n "$IMAGE" ] || { echo "run.sh: no migration Job in $NS: deploy first (knative/deploy.sh)" >&2; exit 1; }
NAME=gamemetrics-cli-$(date +%s)
ARGS=$(printf '"%s",' "$@")
"$KUBECTL" -n "$NS" apply -f - <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: $NAME
  labels: {app.kubernetes.io/name: ops, app.kubernetes.io/part-of: gamemetrics}
spec:
  restartPolicy: Never
  serviceAccountName: gamemetrics-retain
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: cli
    image: $IMAGE
    args: [${ARGS%,}]
    envFrom:
    - configMapRef: {name: gamemetrics-config}
    env:
    - name: DATABASE_URL
      valueFrom: {secretKeyRef: {name: gamemetrics-postgres, key: DATABASE_URL}}
    - name: REDIS_URL
      valueFrom: {secretKeyRef: {name: gamemetrics-redis, key: REDIS_URL}}
    - name: KAFKA_SASL_USERNAME
      valueFrom: {secretKeyRef: {name: kafka-operator-credentials, key: user}}
    - name: KAFKA_SASL_PASSWORD
      valueFrom: {secretKeyRef: {name: kafka-operator-credentials, key: password}}
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: "1", memory: 256Mi}
    securityContext:
      runAsUser: 65532
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities: {drop: [ALL]}
    volumeMounts:
    - {name: rds-ca, mountPath: /etc/gamemetrics/rds-ca, readOnly: true}
  volumes:
  - name: rds-ca
    configMap: {name: rds-ca-bundle}
YAML
trap '"$KUBECTL" -n "$NS" delete pod "$NAME" --wait=false >/dev/null' EXIT
"$KUBECTL" -n "$NS" wait pod "$NAME" --for=jsonpath='{.status.phase}'=Running --timeout=120s >/dev/null 2>&1 || true
"$KUBECTL" -n "$NS" logs -f "$NAME" || true
"$KUBECTL" -n "$NS" wait pod "$NAME" --for=jsonpath='{.status.phase}'=Succeeded --timeout=60s >/dev/null 2>&1
