package recommend

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// shopperDataset draws players' acquisitions from the simulator's tastes
// (what e2e/bench/recommend seeds into PostgreSQL), without the database.
func shopperDataset(players, items int) *Dataset {
	cat := simulation.NewCatalogue(items, 2)
	b := NewDatasetBuilder(DefaultSettings())
	for _, it := range cat.Items {
		b.Item(it.ID)
	}
	r := rand.New(rand.NewPCG(3, 4))
	end := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for p := range players {
		s := cat.Shopper(p, r.IntN(8))
		n := 1
		for n < 200 && r.Float64() > 1.0/6 {
			n++
		}
		got := map[string]*Counters{}
		last := map[string]time.Time{}
		for range n {
			it := s.Pick(r.Float64() < 0.2)
			c := got[it.ID]
			if c == nil {
				c = &Counters{}
				got[it.ID] = c
			}
			if it.IAP {
				c.Purchases++
				c.AmountMinor += float64(it.Price)
			} else {
				c.Sinks++
			}
			at := end.Add(-time.Duration(r.Float64() * float64(28*24*time.Hour)))
			if at.After(last[it.ID]) {
				last[it.ID] = at
			}
		}
		for id, c := range got {
			b.Add(fmt.Sprintf("p%07d", p), id, *c, last[id])
		}
	}
	return b.Build()
}

func BenchmarkTrainALS(b *testing.B) {
	for _, size := range []struct{ players, items int }{{100_000, 10_000}} {
		d := shopperDataset(size.players, size.items)
		b.Run(fmt.Sprintf("%dx%d", size.players, size.items), func(b *testing.B) {
			for b.Loop() {
				TrainALS(d.X, DefaultALSParams(), DefaultTrainConfig().Workers)
			}
		})
	}
}

func BenchmarkFitALS(b *testing.B) {
	d := shopperDataset(100_000, 10_000)
	cfg := DefaultTrainConfig()
	cfg.EASEMaxItems = 0
	for b.Loop() {
		res, err := Fit(d, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range res.Candidates {
			b.Logf("%-40s NDCG@10 %.4f (%.2f×) %.1fs", c.Name, c.Validation.NDCG, c.Validation.NDCG/res.Popular().Validation.NDCG, c.Seconds)
		}
	}
}

// BenchmarkScore is the in-process cost of ranking a 10,000-item catalogue
// for one player (serving's CPU without HTTP and PostgreSQL), per kind.
func BenchmarkScore(b *testing.B) {
	d := shopperDataset(30_000, 10_000)
	for _, kind := range []string{KindKNN, KindALS} {
		cfg := DefaultTrainConfig()
		cfg.Kinds, cfg.PopBlends = []string{kind}, nil
		res, err := Fit(d, cfg)
		if err != nil {
			b.Fatal(err)
		}
		m := res.Model
		v := newView(m, nil)
		var hists [][]History
		for u := range 1000 {
			items, vals := d.X.Row(u * 7)
			var h []History
			for k, i := range items {
				h = append(h, History{Item: d.Items[i], Weight: float64(vals[k]), Acquired: true})
			}
			hists = append(hists, h)
		}
		b.Run(m.Kind, func(b *testing.B) {
			s := &scratch{}
			n := 0
			for b.Loop() {
				v.recommend(hists[n%len(hists)], Segment{}, 10, 1, s)
				n++
			}
		})
	}
}
