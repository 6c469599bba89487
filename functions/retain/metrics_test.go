package retain_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

func TestMetricsCountWhatARunDid(t *testing.T) {
	g := newGame(t, 3, 400)
	gn := &simtest.Generator{Game: g.ID}
	feed(t, gn.Days([]string{"a", "b"}, []int{5}, time.Now()))
	reg := prometheus.NewRegistry()
	r := retain.New(retain.DefaultConfig(), pool, rdb, arc, testLogger(), reg, time.Now)
	if _, err := r.RetainGame(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Erase(context.Background(), retain.ErasureRequest{ID: "m1", Game: g.ID, Player: "a", RequestedBy: "t", RequestedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() != nil {
				got[mf.GetName()] += m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"gamemetrics_retain_archived_events_total":    12,
		"gamemetrics_retain_dropped_partitions_total": 1,
		"gamemetrics_retain_erasures_total":           1,
	}
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["gamemetrics_retain_archived_bytes_total"] <= 0 || got["gamemetrics_retain_erased_items_total"] <= 0 {
		t.Errorf("byte and erased counters not moved: %v", got)
	}
	for _, mf := range mfs {
		if mf.GetName() == "gamemetrics_retain_run_duration_seconds" && len(mf.GetMetric()) != 2 {
			t.Errorf("run duration has %d series, want retention and erasure", len(mf.GetMetric()))
		}
	}
}
