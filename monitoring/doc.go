// Package monitoring holds GameMetrics' operator material and the tests
// that keep it true to the code:
//
//   - prometheus/gamemetrics.rules.yaml: recording rules and the SLO
//     (multiwindow, multi-burn-rate) and symptom alerts; absence.rules.yaml
//     (traffic stopped, retention stale), recommend.rules.yaml and
//     dependencies.rules.yaml (Kafka, PostgreSQL, Redis, the exporters);
//     each X.rules.yaml has its promtool
//     unit tests in X.rules.test.yaml;
//   - runbooks.md: one section per alert, which every alert's runbook_url
//     points to;
//   - grafana/: the overview dashboard, one per function and one per
//     dependency;
//   - exporters.yaml: the standard exporters' metrics the queries may read;
//   - kustomization.yaml and kubernetes/: the rules and dashboards as
//     ConfigMaps, PodMonitors for the function pods and the Kafka Exporter,
//     and kubernetes/prometheusrule.sh for the Prometheus operator;
//   - helm/: the Helm values that ship metrics, logs and traces
//     (kube-prometheus-stack, Loki, Tempo, Alloy, the PostgreSQL and Redis
//     exporters), checked against the keys their charts define and, with
//     the charts on disk, rendered (helm_test.go).
//
// The package has no Go code of its own. Its tests run promtool on the
// rules, check that every metric, label and label value the rules and the
// dashboard use is one the functions really register (read from the Go
// sources), that every alert has its severity, summary, description and
// runbook, and load the rules into a real Prometheus that scrapes a
// registry shaped like the functions' metrics.
package monitoring
