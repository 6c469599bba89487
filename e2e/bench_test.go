package e2e

import (
	"context"
	"encoding/json"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// eventsTotal is the report API's count of accepted events over the range.
func (p *platform) eventsTotal(ctx context.Context, from, to string) (float64, error) {
	pts, err := p.reader().Metric(ctx, "events", from, to)
	var sum float64
	for _, pt := range pts {
		sum += pt.Value
	}
	return sum, err
}

// newPipeline is the platform of the pipeline the end-to-end targets are
// about (ingest → Kafka → eventing → process → report). notify and
// recommend read the same topic through their own KafkaSources; in
// production they run in their own pods, here they would take a share of
// the same two cores (every event delivered three times over HTTP), so they
// are left out and measured by their own benchmarks.
func newPipeline(b *testing.B) *platform {
	b.Helper()
	return newPlatformOf(b, "UTC", []string{serving.Ingest, serving.Process, serving.Report})
}

// BenchmarkEndToEndSustained sends b.N simulated events through ingest as
// fast as it accepts them and reports events/s until every one is counted
// by the report API: ingest → Kafka → eventing → process → PostgreSQL.
func BenchmarkEndToEndSustained(b *testing.B) {
	p := newPipeline(b)
	now := time.Now().UTC()
	evs := simulation.Generate(simulation.Config{Players: max(1, b.N/45), Days: 3, End: now, Seed: 21, RunID: "bench-e2e-"})
	if len(evs) > b.N {
		evs = evs[:b.N]
	}
	cfg := simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 250, Concurrency: 8, Seed: 21}
	stream, _, _ := simulation.Plan(evs, cfg)
	from, to := now.AddDate(0, 0, -4).Format("2006-01-02"), now.AddDate(0, 0, 1).Format("2006-01-02")
	ctx := context.Background()
	cpu0, err := stack.PostgresCPU()
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	if _, err := simulation.Send(ctx, stream, cfg); err != nil {
		b.Fatal(err)
	}
	// How fast ingest acknowledged them, to tell whether the front or the
	// back of the pipeline sets the rate.
	b.ReportMetric(float64(len(evs))/time.Since(start).Seconds(), "acked-events/s")
	for {
		n, err := p.eventsTotal(ctx, from, to)
		if err != nil {
			b.Fatal(err)
		}
		if int(n) >= len(evs) {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("only %v of %d events counted after 5 minutes", n, len(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(len(evs))/time.Since(start).Seconds(), "events/s")
	if cpu1, err := stack.PostgresCPU(); err == nil {
		// PostgreSQL's CPU for everything the pipeline did: ingest's key
		// lookups, process's two stages, the report API's polling.
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(len(evs)), "pg-µs/event")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEndToEndFreshness sends at 10,000 events/s for 5 s and measures,
// for each event, the time from its batch leaving the simulated client to
// the report API counting it (the k-th event is visible once the count
// reaches k, which treats the pipeline as FIFO: an approximation that can
// only overstate the latency of events overtaken by later ones).
func BenchmarkEndToEndFreshness(b *testing.B) {
	p := newPipeline(b)
	now := time.Now().UTC()
	const rate, seconds = 10_000, 5
	evs := simulation.Generate(simulation.Config{Players: 1500, Days: 2, End: now, Seed: 22, RunID: "fresh-e2e-"})
	if len(evs) < rate*seconds {
		b.Fatalf("generated %d events, need %d", len(evs), rate*seconds)
	}
	evs = evs[:rate*seconds]
	from, to := now.AddDate(0, 0, -3).Format("2006-01-02"), now.AddDate(0, 0, 1).Format("2006-01-02")
	ctx := context.Background()
	const batch = 100
	sent := make([]time.Time, len(evs)/batch+1)
	var mu sync.Mutex
	seen := make([]time.Time, len(evs)+1) // seen[k]: first time the count was >= k
	var counted int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // poll the report API
		defer close(done)
		for {
			n, err := p.eventsTotal(ctx, from, to)
			at := time.Now()
			if err == nil {
				mu.Lock()
				for ; counted < int(n) && counted < len(evs); counted++ {
					seen[counted+1] = at
				}
				c := counted
				mu.Unlock()
				if c >= len(evs) {
					return
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	b.ResetTimer()
	start := time.Now()
	cfg := simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: batch, Concurrency: 1, Seed: 22}
	// Each batch leaves at its due time whether or not earlier ones have
	// been answered, as many independent game clients would send: a client
	// that waited for each 202 would send at 1/latency batches per second
	// and measure ingest's latency instead of the pipeline's freshness.
	sent = sent[:(len(evs)+batch-1)/batch]
	var sends sync.WaitGroup
	sendErr := make(chan error, 1)
	inFlight := make(chan struct{}, 64)
	for i := 0; i < len(evs); i += batch {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		var chunk []json.RawMessage
		for _, e := range evs[i:min(i+batch, len(evs))] {
			chunk = append(chunk, e.JSON())
		}
		inFlight <- struct{}{}
		sent[i/batch] = time.Now()
		sends.Add(1)
		go func() {
			defer sends.Done()
			defer func() { <-inFlight }()
			if _, err := simulation.Send(ctx, chunk, cfg); err != nil {
				select {
				case sendErr <- err:
				default:
				}
			}
		}()
	}
	sends.Wait()
	select {
	case err := <-sendErr:
		b.Fatal(err)
	default:
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		close(stop)
		<-done
		b.Fatalf("only %d of %d events counted", counted, len(evs))
	}
	b.StopTimer()
	var lat []time.Duration
	for k := 1; k <= len(evs); k++ {
		lat = append(lat, seen[k].Sub(sent[(k-1)/batch]))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
	// The rate the clients really sent at (at most 64 batches wait for
	// their 202 at once), so a slow ingest cannot flatter the figure.
	if last := sent[len(sent)-1].Sub(start); last > 0 {
		b.ReportMetric(float64(len(evs)-batch)/last.Seconds(), "sent-events/s")
	}
	b.ReportMetric(0, "ns/op")
}
