package recommend

import (
	"math"
	"sync"
)

// Neighbors are each item's K most similar items by cosine similarity of
// their player columns (shrunk towards zero when few players share them),
// for "similar items" and the item-kNN scorer. Row i is Idx[i*K:(i+1)*K],
// best first, padded with -1.
type Neighbors struct {
	K   int
	Idx []int32
	Sim []float32
}

// Of returns item i's neighbours and similarities (without padding).
func (nb *Neighbors) Of(i int32) ([]int32, []float32) {
	idx := nb.Idx[int(i)*nb.K : (int(i)+1)*nb.K]
	sim := nb.Sim[int(i)*nb.K : (int(i)+1)*nb.K]
	n := 0
	for n < len(idx) && idx[n] >= 0 {
		n++
	}
	return idx[:n], sim[:n]
}

// TrainNeighbors computes every item's k nearest items in x (players ×
// items). shrink damps similarities backed by few common players:
// sim · common/(common+shrink). Items are split across workers, each with
// its own accumulator of one row; the cost is the sum over players of their
// item count squared.
func TrainNeighbors(x *Matrix, k int, shrink float32, workers int) *Neighbors {
	n := x.Cols
	xt := x.Transpose()
	norm := make([]float32, n)
	for i := range n {
		_, vals := xt.Row(i)
		var s float64
		for _, v := range vals {
			s += float64(v) * float64(v)
		}
		norm[i] = float32(math.Sqrt(s))
	}
	nb := &Neighbors{K: k, Idx: make([]int32, n*k), Sim: make([]float32, n*k)}
	for i := range nb.Idx {
		nb.Idx[i] = -1
	}
	var wg sync.WaitGroup
	next := make(chan int, 64)
	for range max(1, workers) {
		wg.Go(func() {
			acc := make([]float32, n)
			common := make([]int32, n)
			var touched []int32
			var best []ranked
			for i := range next {
				touched = touched[:0]
				users, uvals := xt.Row(i)
				for a, u := range users {
					items, ivals := x.Row(int(u))
					for b, j := range items {
						if int(j) == i {
							continue
						}
						if common[j] == 0 {
							touched = append(touched, j)
						}
						common[j]++
						acc[j] += uvals[a] * ivals[b]
					}
				}
				best = best[:0]
				for _, j := range touched {
					if norm[i] > 0 && norm[j] > 0 {
						s := acc[j] / (norm[i] * norm[j])
						c := float32(common[j])
						s *= c / (c + shrink)
						best = append(best, ranked{j, s})
					}
					acc[j], common[j] = 0, 0
				}
				top := selectTop(best, k)
				for r, t := range top {
					nb.Idx[i*k+r], nb.Sim[i*k+r] = t.item, t.score
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return nb
}

// knnScorer scores item i by the player's items' similarity to i, weighted
// by the player's inputs.
type knnScorer struct{ nb *Neighbors }

func (s knnScorer) scores(q query, out []float32) {
	for a, j := range q.items {
		idx, sim := s.nb.Of(j)
		for b, i := range idx {
			out[i] += q.vals[a] * sim[b]
		}
	}
}
