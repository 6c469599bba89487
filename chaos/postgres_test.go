package chaos

import (
	"context"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// delivered counts the KafkaSource's deliveries of gamemetrics.events by
// outcome (delivered, dead_lettered, ...).
func (p *platform) delivered(outcome string) int {
	return int(metric(p.eventing, "gamemetrics_eventing_deliveries_total", "name", "gamemetrics-events", "outcome", outcome))
}

// assertNothingLost checks what the eventing runtime did with the records
// ingest accepted: every one delivered (answered 2xx by process) exactly
// once, none dead-lettered.
func (p *platform) assertNothingLost(accepted int) {
	p.t.Helper()
	written := p.inKafka()
	if written < accepted {
		p.t.Errorf("the events topic holds %d records of this experiment, fewer than the %d events ingest accepted", written, accepted)
	}
	p.waitFor("every accepted record to be delivered", 60*time.Second, func() bool {
		return p.delivered("delivered")+p.delivered("dead_lettered")+p.delivered("dead_letter_failed")+p.delivered("dropped") >= written
	})
	if got := p.delivered("delivered"); got != written {
		p.t.Errorf("the eventing runtime delivered %d records, want exactly the %d in Kafka (ingest accepted %d)", got, written, accepted)
	}
	for _, outcome := range []string{"dead_lettered", "dead_letter_failed", "dropped"} {
		if n := p.delivered(outcome); n != 0 {
			p.t.Errorf("%d records ended %s: events lost to the aggregates", n, outcome)
		}
	}
}

// Hypothesis: 50–100 ms of latency on every round trip between the
// functions and PostgreSQL (a slow or distant RDS) slows process down but
// changes no number: every accepted event is stored once, nothing is
// retried into the dead-letter topic, and the report API equals the truth.
func TestPostgresLatencyChangesNoNumber(t *testing.T) {
	p := newPlatform(t, "Europe/Berlin")
	p.postgres.add("latency", "latency", "downstream", map[string]any{"latency": 75, "jitter": 25})
	loc := p.game.Location()
	evs := simulation.Generate(simulation.Config{Players: 80, Days: 2, End: time.Now().UTC(), Location: loc, Seed: 21, RunID: "chaos-latency-"})
	cfg := p.sendConfig(21)
	cfg.Duplicates, cfg.Shuffle = 0.03, true
	stream, _, duplicates := simulation.Plan(evs, cfg)

	start := time.Now()
	st, err := simulation.Send(context.Background(), stream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Accepted != int64(len(stream)) {
		t.Fatalf("ingest accepted %d of %d events sent", st.Accepted, len(stream))
	}
	p.waitForTruth(simulation.ComputeTruth(evs, loc, time.Now(), []int{1, 2}), 90*time.Second)
	took := time.Since(start)
	p.assertNothingLost(len(stream))
	p.assertStoredOnce(evs)
	if got := p.processed("new"); got != len(evs) {
		t.Errorf("process counted %d new events, want exactly %d", got, len(evs))
	}
	if n := p.processed("failed"); n != 0 {
		t.Errorf("process answered 5xx for %d deliveries under latency alone", n)
	}
	proc := p.servers.Get(serving.Process).Metrics
	t.Logf("latency 75±25 ms: %d events (%d unique, %d duplicate sends) accepted in %d requests; truth reached %s after the first send; "+
		"process: %d new, %d duplicate, %d failed, %d batches of %.0f events on average taking %.0f ms; eventing retries %d",
		st.Accepted, len(evs), duplicates, st.Requests, took.Round(100*time.Millisecond),
		p.processed("new"), p.processed("duplicate"), p.processed("failed"),
		int(metric(proc, "gamemetrics_process_batch_duration_seconds")), histogramMean(proc, "gamemetrics_process_batch_size_events"),
		1000*histogramMean(proc, "gamemetrics_process_batch_duration_seconds"),
		int(metric(p.eventing, "gamemetrics_eventing_retries_total", "name", "gamemetrics-events")))
}

// Hypothesis: PostgreSQL connections failing mid-stream in three ways —
// reset as soon as the server answers, dropped right after the server
// committed (the client never learns its transaction committed), and the
// server unreachable for a few seconds — make process answer 5xx; the
// eventing runtime retries with the manifest's backoff; nothing is lost to
// the dead-letter topic and nothing is counted twice, so PostgreSQL holds
// each event once and the report API equals the truth.
func TestPostgresResetsLostCommitsAndAnOutageLoseAndDoubleCountNothing(t *testing.T) {
	p := newPlatform(t, "America/New_York")
	loc := p.game.Location()
	evs := simulation.Generate(simulation.Config{Players: 80, Days: 2, End: time.Now().UTC(), Location: loc, Seed: 22, RunID: "chaos-reset-"})
	cfg := p.sendConfig(22)
	cfg.Duplicates, cfg.Shuffle = 0.03, true
	stream, _, duplicates := simulation.Plan(evs, cfg)
	fifth := len(stream) / 5
	ctx := context.Background()
	var accepted, retries int64
	sendPart := func(part int) {
		t.Helper()
		to := (part + 1) * fifth
		if part == 4 {
			to = len(stream)
		}
		st, err := simulation.Send(ctx, stream[part*fifth:to], cfg)
		if err != nil {
			t.Fatal(err)
		}
		accepted += st.Accepted
		retries += st.Retries
	}
	// A fault holds until process has failed a delivery because of it, and
	// then for hold more: long enough for retries of the same events to
	// fail again, well inside the manifest's retry budget (retry 5,
	// backoffDelay 0.5 s, exponential as Knative computes it: 1, 2, 4, 8
	// and 16 s, 31 s in all).
	const hold = 3 * time.Second
	failed := []int{0}
	fault := func(what string, inject, heal func()) {
		t.Helper()
		inject()
		sendPart(len(failed))
		before := failed[len(failed)-1]
		p.waitFor(what+" to make process answer 5xx", 30*time.Second, func() bool { return p.processed("failed") > before })
		time.Sleep(hold)
		heal()
		// Let every record sent so far be delivered before the next fault,
		// so no record meets two faults and exhausts its retries.
		p.waitFor("the backlog of "+what+" to drain", 60*time.Second, func() bool { return p.delivered("delivered") == p.inKafka() })
		failed = append(failed, p.processed("failed"))
	}

	sendPart(0)
	// Every connection reset as soon as the server answers.
	fault("connection resets",
		func() { p.postgres.add("reset", "reset_peer", "downstream", map[string]any{"timeout": 0}) },
		func() { p.postgres.remove("reset") })
	// Every COMMIT carried out and its answer lost with the connection.
	fault("lost commit acknowledgements",
		func() { p.postgres.add("lose-commit-ack", "lose_commit_ack", "downstream", nil) },
		func() { p.postgres.remove("lose-commit-ack") })
	// PostgreSQL unreachable: connections closed, new ones refused.
	fault("the outage", p.postgres.disable, p.postgres.enable)
	sendPart(4)

	if accepted != int64(len(stream)) {
		t.Fatalf("ingest accepted %d of %d events sent", accepted, len(stream))
	}
	p.waitForTruth(simulation.ComputeTruth(evs, loc, time.Now(), []int{1, 2}), 90*time.Second)
	p.assertNothingLost(len(stream))
	p.assertStoredOnce(evs)
	newEvents, dup := p.processed("new"), p.processed("duplicate")
	if written := p.inKafka(); newEvents+dup != written {
		t.Errorf("process answered %d new + %d duplicate = %d deliveries with 2xx, want the %d records in Kafka (ingest accepted %d)", newEvents, dup, newEvents+dup, written, len(stream))
	}
	// Events whose commit's acknowledgement was lost come back as
	// duplicates of themselves: committed once, answered 2xx on redelivery.
	lostCommits := len(evs) - newEvents
	if lostCommits <= 0 {
		t.Errorf("process counted %d new events of %d: no commit lost its acknowledgement, so the lost-commit fault tested nothing", newEvents, len(evs))
	}
	eventingRetries := int(metric(p.eventing, "gamemetrics_eventing_retries_total", "name", "gamemetrics-events"))
	if eventingRetries == 0 {
		t.Errorf("process answered 5xx %d times but the eventing runtime retried nothing", p.processed("failed"))
	}
	proc := p.servers.Get(serving.Process).Metrics
	t.Logf("%d events (%d unique, %d duplicate sends) accepted, %d client retries at ingest; %d deliveries answered 5xx (%d during the resets, %d while commits lost their answer, %d during the outage), %d transient batch errors; "+
		"eventing: %d retries, %d delivered, %d dead-lettered; process: %d new, %d duplicate, so %d events committed by a transaction whose answer was lost were recognised on redelivery; PostgreSQL holds each event once",
		accepted, len(evs), duplicates, retries, p.processed("failed"), failed[1]-failed[0], failed[2]-failed[1], failed[3]-failed[2],
		int(metric(proc, "gamemetrics_process_batch_errors_total", "kind", "transient")),
		eventingRetries, p.delivered("delivered"), p.delivered("dead_lettered"), newEvents, dup, lostCommits)
}
