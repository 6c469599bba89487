package recommend

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

var simDays = 28

// simulated turns a simulated game's events into a Dataset the way intake
// and training do, counting each event id once.
func simulated(t testing.TB, players, items int, seed uint64) *Dataset {
	t.Helper()
	evs := simulation.Generate(simulation.Config{Players: players, Items: items, Days: simDays, Seed: seed,
		End: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)})
	type key struct{ player, item string }
	rows := map[key]*Counters{}
	last := map[key]time.Time{}
	segs := map[string]Segment{}
	s := DefaultSettings()
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		data, _ := json.Marshal(e.Data)
		eff, err := Interpret(e.Type, data, s)
		if err != nil {
			t.Fatal(err)
		}
		if eff.Segment != nil {
			segs[e.Subject] = *eff.Segment
		}
		if eff.Item == "" {
			continue
		}
		k := key{e.Subject, eff.Item}
		c := rows[k]
		if c == nil {
			c = &Counters{}
			rows[k] = c
		}
		c.Purchases += eff.Counters.Purchases
		c.AmountMinor += eff.Counters.AmountMinor
		c.Sinks += eff.Counters.Sinks
		c.Views += eff.Counters.Views
		if e.Time.After(last[k]) {
			last[k] = e.Time
		}
	}
	b := NewDatasetBuilder(s)
	for _, it := range simulation.NewCatalogue(items, seed).Items {
		b.Item(it.ID)
	}
	for k, c := range rows {
		b.Add(k.player, k.item, *c, last[k])
	}
	for p, sg := range segs {
		b.Segment(p, sg)
	}
	return b.Build()
}

// On a simulated game whose players have tastes, every learned candidate
// must find them: NDCG@10 well above popularity's (the README's eval table
// is the full-size version of this).
func TestLearnedModelsBeatPopularityOnSimulatedTastes(t *testing.T) {
	d := simulated(t, 2000, 400, 7)
	for _, tc := range []struct {
		name string
		cfg  func(*TrainConfig)
		kind string
	}{
		{"EASE (small catalogue)", func(*TrainConfig) {}, KindEASE},
		{"ALS (catalogue above EASEMaxItems)", func(c *TrainConfig) { c.EASEMaxItems = 100 }, KindALS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultTrainConfig()
			tc.cfg(&cfg)
			res, err := Fit(d, cfg)
			if err != nil {
				t.Fatal(err)
			}
			pop := res.Popular().Validation
			var learned Candidate
			for _, c := range res.Candidates {
				t.Logf("%-20s HR@10 %.4f NDCG@10 %.4f coverage %.3f", c.Name, c.Validation.HR, c.Validation.NDCG, c.Validation.Coverage)
				if c.Kind == tc.kind && c.Validation.NDCG > learned.Validation.NDCG {
					learned = c
				}
			}
			if learned.Name == "" {
				t.Fatalf("no %s candidate trained", tc.kind)
			}
			if learned.Validation.NDCG < 1.3*pop.NDCG {
				t.Errorf("%s NDCG@10 %.4f < 1.3 × popularity's %.4f", learned.Name, learned.Validation.NDCG, pop.NDCG)
			}
			if best := res.BestCandidate(); best.Kind == KindPopular || res.Model.Kind != best.Kind {
				t.Errorf("chose %s (model kind %s)", best.Name, res.Model.Kind)
			}
		})
	}
}
