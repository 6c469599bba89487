// Package monitoring holds GameMetrics' operator material and the tests
// that keep it true to the code:
//
//   - prometheus/gamemetrics.rules.yaml: recording rules and the SLO
//     (multiwindow, multi-burn-rate) and symptom alerts, with their promtool
//     unit tests in prometheus/gamemetrics.rules.test.yaml;
//   - runbooks.md: one section per alert, which every alert's runbook_url
//     points to;
//   - grafana/gamemetrics-overview.json: the overview dashboard;
//   - kustomization.yaml and kubernetes/: the rules and dashboard as
//     ConfigMaps, a PodMonitor for the function pods, and
//     kubernetes/prometheusrule.sh for the Prometheus operator.
//
// The package has no Go code of its own. Its tests run promtool on the
// rules, check that every metric, label and label value the rules and the
// dashboard use is one the functions really register (read from the Go
// sources), that every alert has its severity, summary, description and
// runbook, and load the rules into a real Prometheus that scrapes a
// registry shaped like the functions' metrics.
package monitoring
