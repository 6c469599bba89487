#!/bin/sh
# Prints each rules file of monitoring/prometheus as a PrometheusRule for the
# Prometheus operator (kube-prometheus-stack), without a second copy of the
# rules: a rules file is `groups: [...]` and a PrometheusRule's spec is the
# same thing, so the file is indented under spec:. gamemetrics.rules.yaml
# becomes PrometheusRule gamemetrics, X.rules.yaml gamemetrics-X.
#
#   monitoring/kubernetes/prometheusrule.sh | kubectl apply -f -
#
# NAMESPACE (default monitoring) and RELEASE (the kube-prometheus-stack Helm
# release its ruleSelector matches, default kube-prometheus-stack) adapt it.
set -eu
dir="$(dirname "$0")/../prometheus"
found=
for rules in "$dir"/*.rules.yaml; do
  [ -r "$rules" ] || { echo "prometheusrule.sh: cannot read $rules" >&2; exit 1; }
  base=$(basename "$rules" .rules.yaml)
  name=gamemetrics
  [ "$base" = gamemetrics ] || name="gamemetrics-$base"
  [ -z "$found" ] || echo ---
  found=1
  cat <<YAML
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: $name
  namespace: ${NAMESPACE:-monitoring}
  labels:
    app.kubernetes.io/part-of: gamemetrics
    app.kubernetes.io/component: monitoring
    release: ${RELEASE:-kube-prometheus-stack}
spec:
YAML
  sed 's/^./  &/' "$rules"
done
[ -n "$found" ] || { echo "prometheusrule.sh: no rules files in $dir" >&2; exit 1; }
