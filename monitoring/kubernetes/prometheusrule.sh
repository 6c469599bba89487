#!/bin/sh
# Prints monitoring/prometheus/gamemetrics.rules.yaml as a PrometheusRule for
# the Prometheus operator (kube-prometheus-stack), without a second copy of
# the rules: a rules file is `groups: [...]` and a PrometheusRule's spec is the
# same thing, so the file is indented under spec:.
#
#   monitoring/kubernetes/prometheusrule.sh | kubectl apply -f -
#
# NAMESPACE (default monitoring) and RELEASE (the kube-prometheus-stack Helm
# release its ruleSelector matches, default kube-prometheus-stack) adapt it.
set -eu
rules="$(dirname "$0")/../prometheus/gamemetrics.rules.yaml"
[ -r "$rules" ] || { echo "prometheusrule.sh: cannot read $rules" >&2; exit 1; }
cat <<YAML
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: gamemetrics
  namespace: ${NAMESPACE:-monitoring}
  labels:
    app.kubernetes.io/part-of: gamemetrics
    app.kubernetes.io/component: monitoring
    release: ${RELEASE:-kube-prometheus-stack}
spec:
YAML
sed 's/^./  &/' "$rules"
