package eventing

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's Prometheus series. Every series carries the
// source as kind ("KafkaSource", "PingSource") and name.
type metrics struct {
	// deliveries counts finished deliveries by outcome: "delivered",
	// "dead_lettered" (the DLS took it), "dead_letter_failed" (the DLS
	// refused it too; the event is lost) or "dropped" (no DLS; lost).
	deliveries *prometheus.CounterVec
	// retries counts the attempts after the first.
	retries *prometheus.CounterVec
	// deadLetters counts sends to a dead-letter sink by result: ok, failed.
	deadLetters *prometheus.CounterVec
	// duration is the time from the first attempt to the final outcome.
	duration *prometheus.HistogramVec
	// inFlight is the number of records being delivered right now.
	inFlight *prometheus.GaugeVec
	// lag is the records between a partition's high watermark and the
	// next offset the source will fetch, as of the last fetch.
	lag *prometheus.GaugeVec
	// commits counts offset commits by result: ok, failed.
	commits *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	src := []string{"kind", "name"}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_eventing_deliveries_total",
			Help: "Events the local eventing runtime finished delivering, by outcome (delivered, dead_lettered, dead_letter_failed, dropped).",
		}, append(src, "outcome")),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_eventing_retries_total",
			Help: "Delivery attempts after the first one.",
		}, src),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_eventing_dead_letters_total",
			Help: "Events sent to a dead-letter sink, by result (ok, failed).",
		}, append(src, "result")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gamemetrics_eventing_delivery_duration_seconds",
			Help:    "Time from the first delivery attempt to the final outcome, retries and dead-lettering included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, src),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gamemetrics_eventing_in_flight_events",
			Help: "Events being delivered right now.",
		}, src),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gamemetrics_eventing_lag_records",
			Help: "Records between a partition's high watermark and the KafkaSource's fetch position, as of the last fetch.",
		}, append(src, "topic", "partition")),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_eventing_commits_total",
			Help: "Offset commits of KafkaSource consumer groups, by result (ok, failed).",
		}, append(src, "result")),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.deliveries, err = register(reg, m.deliveries); err != nil {
		return nil, err
	}
	if m.retries, err = register(reg, m.retries); err != nil {
		return nil, err
	}
	if m.deadLetters, err = register(reg, m.deadLetters); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.inFlight, err = register(reg, m.inFlight); err != nil {
		return nil, err
	}
	if m.lag, err = register(reg, m.lag); err != nil {
		return nil, err
	}
	if m.commits, err = register(reg, m.commits); err != nil {
		return nil, err
	}
	return m, nil
}

// register adds c to reg. A registry that already holds the same series (a
// runtime restarted in the same process) keeps them, and the new runtime
// adds to the existing ones.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
