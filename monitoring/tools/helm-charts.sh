#!/bin/sh
# Unpacks the charts of monitoring/helm/releases.yaml, at their versions, into
# DIR, with their subcharts, for `GAMEMETRICS_HELM_CHARTS=DIR make validate`
# (which then renders every release with helm template and compares
# monitoring/helm/chart-keys.yaml with the charts).
#
#   monitoring/tools/helm-charts.sh DIR            # helm pull from the chart repositories (network)
#   monitoring/tools/helm-charts.sh --git DIR      # from git clones of the chart sources, no network:
#       PROMETHEUS_COMMUNITY_GIT  github.com/prometheus-community/helm-charts
#       GRAFANA_COMMUNITY_GIT     github.com/grafana-community/helm-charts
#       GRAFANA_GIT               github.com/grafana/helm-charts (rollout-operator)
#       ALLOY_GIT                 github.com/grafana/alloy
#     each a clone (bare or not) whose HEAD holds the pinned versions; the
#     script checks every Chart.yaml version against releases.yaml.
#
# Loki's optional MinIO subchart (AGPL, disabled in loki.yaml) is never
# fetched: DIR gets an empty stand-in so helm finds the dependency it lists.
set -eu
mode=pull
if [ "${1:-}" = --git ]; then mode=git; shift; fi
[ $# -eq 1 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"

# name version repository, from releases.yaml
releases() {
  awk '/^- name:/{c=""; v=""; r=""} /^  chart:/{c=$2} /^  version:/{v=$2} /^  repository:/{r=$2} c!=""&&v!=""&&r!=""{print c, v, r; c=""}' "$here/helm/releases.yaml"
}

gitchart() { # repo-dir path-in-repo name
  [ -n "$1" ] || { echo "helm-charts.sh --git: set the clone for $3 (see the header)" >&2; exit 1; }
  rm -rf "${out:?}/$3"
  mkdir -p "$out/.tmp"
  git -C "$1" archive HEAD "$2" | tar -x -C "$out/.tmp"
  mv "$out/.tmp/$2" "$out/$3"
  rm -rf "$out/.tmp"
}

version_of() { awk '/^version:/{print $2; exit}' "$1/Chart.yaml"; }

if [ $mode = pull ]; then
  command -v helm >/dev/null || { echo "helm-charts.sh: helm is not on PATH" >&2; exit 1; }
  releases | while read -r chart version repo; do
    rm -rf "${out:?}/$chart"
    helm pull "$chart" --repo "$repo" --version "$version" --untar --untardir "$out"
  done
else
  pc=${PROMETHEUS_COMMUNITY_GIT:-}; gc=${GRAFANA_COMMUNITY_GIT:-}; gr=${GRAFANA_GIT:-}; al=${ALLOY_GIT:-}
  for c in kube-prometheus-stack kube-state-metrics prometheus-node-exporter prometheus-windows-exporter \
           prometheus-postgres-exporter prometheus-redis-exporter; do
    gitchart "$pc" "charts/$c" "$c"
  done
  for c in grafana loki tempo; do gitchart "$gc" "charts/$c" "$c"; done
  gitchart "$gr" charts/rollout-operator rollout-operator
  gitchart "$al" operations/helm/charts/alloy alloy
  # Subcharts where helm looks for them (a chart's charts/ directory).
  for c in kube-state-metrics prometheus-node-exporter prometheus-windows-exporter grafana; do
    rm -rf "$out/kube-prometheus-stack/charts/$c"; cp -R "$out/$c" "$out/kube-prometheus-stack/charts/$c"
  done
  mkdir -p "$out/loki/charts"
  rm -rf "$out/loki/charts/rollout-operator"; cp -R "$out/rollout-operator" "$out/loki/charts/rollout-operator"
fi

# Loki lists MinIO as an optional dependency; it stays disabled.
if [ -d "$out/loki" ]; then
  rm -rf "$out/loki/charts/minio" "$out"/loki/charts/minio-*.tgz
  mkdir -p "$out/loki/charts/minio"
  printf 'apiVersion: v2\nname: minio\nversion: 0.0.0\ndescription: "empty stand-in, MinIO (AGPL) is never deployed (minio.enabled false)"\n' > "$out/loki/charts/minio/Chart.yaml"
fi

# Every chart at the version releases.yaml pins.
bad=0
releases | while read -r chart version repo; do
  got=$(version_of "$out/$chart")
  if [ "$got" != "$version" ]; then echo "helm-charts.sh: $out/$chart is version $got, releases.yaml pins $version" >&2; exit 1; fi
done || bad=1
[ $bad = 0 ] || exit 1
echo "charts in $out; now: GAMEMETRICS_HELM_CHARTS=$out make validate"
