package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

func us(v int64) string {
	d := time.Duration(v) * time.Microsecond
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.String()
	}
}

func ratesOf(rounds []round, mode, server string) []float64 {
	var out []float64
	for _, r := range rounds {
		if r.mode == mode && r.server == server {
			out = append(out, r.res.rate())
		}
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// span prints the median of xs and, with more than one, their range.
func span(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	m := fmt.Sprintf(format, median(xs))
	if len(xs) == 1 {
		return m
	}
	return fmt.Sprintf("%s ("+format+"–"+format+")", m, slices.Min(xs), slices.Max(xs))
}

// cpuPerRequest is the server's CPU time per answered request, in µs.
func (r round) cpuPerRequest() float64 {
	if r.res.Requests == 0 {
		return 0
	}
	return float64(r.cpu.Microseconds()) / float64(r.res.Requests)
}

func report(w io.Writer, o options, modes []mode, rounds, paced []round, target float64, ingest, baseline string) {
	fmt.Fprintln(w, "\n| mode | round | server | requests/s | events/s | p50 | p99 | 2xx/requests | socket errors | server CPU µs/request | CPU cores: server / wrk / kfake+stack |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	per := map[string]int{}
	for _, m := range modes {
		per[m.name] = m.perRequest
	}
	for _, r := range append(slices.Clone(rounds), paced...) {
		n := max(1, per[r.mode])
		wall := float64(r.res.DurationUS) / 1e6
		fmt.Fprintf(w, "| %s | %d | %s | %.0f | %.0f | %s | %s | %d/%d | %d | %.1f | %.2f / %.2f / %.2f |\n", r.mode, r.n, r.server, r.res.rate(),
			r.res.rate()*float64(n), us(r.res.P50US), us(r.res.P99US), r.res.ok(), r.res.Requests, r.res.socketErrors(), r.cpuPerRequest(),
			r.cpu.Seconds()/wall, r.res.cpu.Seconds()/wall, r.self.Seconds()/wall)
	}

	fmt.Fprintln(w, "\nMedians (ranges) over the rounds; the ratio is ingest over the net/http round next to it.")
	fmt.Fprintln(w, "\n| mode | ingest requests/s | ingest events/s | net/http requests/s | ratio | ingest p50 | ingest p99 | CPU µs/request ingest / net/http |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	summary := map[string][]float64{}
	for _, m := range modes {
		var in, base, ratios, evs, p50, p99, cpuIn, cpuBase []float64
		for i, r := range rounds {
			if r.mode != m.name {
				continue
			}
			switch r.server {
			case ingest:
				in = append(in, r.res.rate())
				evs = append(evs, r.res.rate()*float64(m.perRequest))
				p50 = append(p50, float64(r.res.P50US)/1000)
				p99 = append(p99, float64(r.res.P99US)/1000)
				cpuIn = append(cpuIn, r.cpuPerRequest())
				// Its pair is the baseline round of the same number.
				for _, b := range rounds[max(0, i-1):min(len(rounds), i+2)] {
					if b.mode == m.name && b.server == baseline && b.n == r.n && b.res.rate() > 0 {
						ratios = append(ratios, r.res.rate()/b.res.rate())
					}
				}
			case baseline:
				base = append(base, r.res.rate())
				cpuBase = append(cpuBase, r.cpuPerRequest())
			}
		}
		summary[m.name+" ratio"], summary[m.name+" events"] = ratios, evs
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s ms | %s ms | %s / %s |\n", m.name, span(in, "%.0f"), span(evs, "%.0f"), span(base, "%.0f"),
			span(ratios, "%.2f"), span(p50, "%.2f"), span(p99, "%.2f"), span(cpuIn, "%.1f"), span(cpuBase, "%.1f"))
	}

	var p99in []float64
	if len(paced) > 0 {
		fmt.Fprintf(w, "\nFixed rate: %.0f requests/s (half of ingest's median maximum single-event rate), %d connections.\n", target, o.rateConnections)
		fmt.Fprintln(w, "\n| server | achieved requests/s | p50 | p90 | p99 | max |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, s := range []string{ingest, baseline} {
			var rate, p50, p90, p99, mx []float64
			for _, r := range paced {
				if r.server == s {
					rate = append(rate, r.res.rate())
					p50 = append(p50, float64(r.res.P50US)/1000)
					p90 = append(p90, float64(r.res.P90US)/1000)
					p99 = append(p99, float64(r.res.P99US)/1000)
					mx = append(mx, float64(r.res.MaxUS)/1000)
				}
			}
			if s == ingest {
				p99in = p99
			}
			fmt.Fprintf(w, "| %s | %s | %s ms | %s ms | %s ms | %s ms |\n", s, span(rate, "%.0f"), span(p50, "%.2f"), span(p90, "%.2f"), span(p99, "%.2f"), span(mx, "%.1f"))
		}
	}

	fmt.Fprintln(w, "\nTargets (medians):")
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	if r := summary["single ratio"]; len(r) > 0 {
		fmt.Fprintf(w, "- single-event requests ≥ 0.5 × net/http: %.3f×, %s\n", median(r), verdict(median(r) >= 0.5))
	}
	if e := summary["batch events"]; len(e) > 0 {
		fmt.Fprintf(w, "- batches of 100 ≥ 250,000 events/s: %.0f, %s\n", median(e), verdict(median(e) >= 250_000))
	}
	if len(p99in) > 0 {
		fmt.Fprintf(w, "- p99 at half the maximum single-event rate < 5 ms: %.2f ms, %s\n", median(p99in), verdict(median(p99in) < 5))
	}
}

// durable checks that every event answered 202 reached Kafka: each ingest
// round's 202s times the events per request against the records added to
// gamemetrics.events during the round.
func durable(w io.Writer, rounds []round, perRequest map[string]int, ingest string) error {
	var answered, stored int64
	var problems []error
	for _, r := range rounds {
		if r.server != ingest {
			continue
		}
		want := r.res.ok() * int64(perRequest[r.mode])
		answered += want
		stored += r.kafka
		if r.kafka < want {
			problems = append(problems, fmt.Errorf("%s round %d: %d events answered 202 but only %d records reached Kafka", r.mode, r.n, want, r.kafka))
		}
		if r.res.StatusErrors > 0 {
			problems = append(problems, fmt.Errorf("%s round %d: %d answers were not 2xx", r.mode, r.n, r.res.StatusErrors))
		}
	}
	fmt.Fprintf(w, "- every 202 durable: %d events answered 202, %d records in Kafka (acks=all, idempotent producer), %s\n",
		answered, stored, map[bool]string{true: "met", false: "NOT met"}[len(problems) == 0])
	return errors.Join(problems...)
}
