package recommend

import (
	"math"
	"sync"
)

// Metrics is how well a scorer found held-out interactions.
type Metrics struct {
	// Players is how many held-out interactions were ranked.
	Players int `json:"players"`
	// HR is the share whose held-out item was in the top K.
	HR float64 `json:"hr"`
	// NDCG is the mean of 1/log2(rank+1) of the held-out item (rank from
	// 1), 0 beyond K.
	NDCG float64 `json:"ndcg"`
	// Coverage is the share of the catalogue that appeared in any top K.
	Coverage float64 `json:"coverage"`
	K        int     `json:"k"`
}

// Evaluate ranks the whole catalogue for every held-out player with sc,
// given their training items (which are left out of the ranking, as
// serving leaves out what a player has), and measures where the held-out
// item landed. Popularity is blended in with weight beta (at least
// breaking ties), as it is when serving (pop may be nil for the popularity
// scorer itself).
func Evaluate(train *Dataset, held []HeldOut, sc scorer, pop *Popularity, beta float32, k, workers int) Metrics {
	return evaluate(train.X.Cols, held, k, workers, func(h HeldOut, out []float32, top []ranked) ([]ranked, int32) {
		u := h.Player
		items, vals := train.X.Row(int(u))
		q := query{items: items, vals: vals, seg: train.Segments[u]}
		sc.scores(q, out)
		for _, i := range items {
			out[i] = blocked
		}
		var f float32
		var pv []float32
		if pop != nil {
			f, pv = pop.blend(out, q.seg, beta)
		}
		return topKBlend(out, pv, f, k, nil, top), h.Item
	})
}

// evaluate measures rankings: rank fills the top k for a held-out player
// (out is a zeroed scratch vector of n scores) and says which index the
// held-out item has in that ranking's catalogue (-1: not in it).
func evaluate(n int, held []HeldOut, k, workers int, rank func(h HeldOut, out []float32, top []ranked) ([]ranked, int32)) Metrics {
	workers = max(1, workers)
	type part struct {
		hits    int
		ndcg    float64
		covered []bool
	}
	parts := make([]part, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			p := part{covered: make([]bool, n)}
			out := make([]float32, n)
			var top []ranked
			for h := w; h < len(held); h += workers {
				clear(out)
				var want int32
				top, want = rank(held[h], out, top[:0])
				for r, t := range top {
					p.covered[t.item] = true
					if t.item == want {
						p.hits++
						p.ndcg += 1 / math.Log2(float64(r)+2)
					}
				}
			}
			parts[w] = p
		})
	}
	wg.Wait()
	m := Metrics{Players: len(held), K: k}
	if len(held) == 0 || n == 0 {
		return m
	}
	covered := 0
	for i := range n {
		for _, p := range parts {
			if p.covered[i] {
				covered++
				break
			}
		}
	}
	hits, ndcg := 0, 0.0
	for _, p := range parts {
		hits += p.hits
		ndcg += p.ndcg
	}
	m.HR = float64(hits) / float64(len(held))
	m.NDCG = ndcg / float64(len(held))
	m.Coverage = float64(covered) / float64(n)
	return m
}
