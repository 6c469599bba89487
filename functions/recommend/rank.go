package recommend

import "math"

// query is what a scorer ranks the catalogue for: the player's items (model
// indices, ascending) with their model inputs, and the player's segment.
type query struct {
	items []int32
	vals  []float32
	seg   Segment
}

// scorer gives every item a score for a player; higher is better. out has
// one entry per item and arrives zeroed. Implementations are safe for
// concurrent use.
type scorer interface {
	scores(q query, out []float32)
}

// blocked marks items a ranking must not return.
var blocked = float32(math.Inf(-1))

// ranked is an item with its score.
type ranked struct {
	item  int32
	score float32
}

// better orders ranked items: higher score first, equal scores by
// ascending index, so every ranking is deterministic.
func (a ranked) better(b ranked) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	return a.item < b.item
}

// topK returns the k best items of scores (best first), leaving out items
// scored -Inf and those skip marks. dst is reused for the answer.
func topK(scores []float32, k int, skip []bool, dst []ranked) []ranked {
	return topKBlend(scores, nil, 0, k, skip, dst)
}

// topKBlend is topK of scores[i] + f·pop[i] (pop may be nil), the ranking
// with popularity blended in (see Popularity.blend); the scores it returns
// include the blend.
func topKBlend(scores, pop []float32, f float32, k int, skip []bool, dst []ranked) []ranked {
	h := minHeap(dst[:0])
	if pop != nil {
		pop = pop[:len(scores)]
	}
	for i, s := range scores {
		if s == blocked || (skip != nil && skip[i]) {
			continue
		}
		if pop != nil {
			s += f * pop[i]
		}
		h.offer(ranked{int32(i), s}, k)
	}
	return h.drain()
}

// selectTop returns the k best of cands (best first).
func selectTop(cands []ranked, k int) []ranked {
	h := minHeap(make([]ranked, 0, k))
	for _, c := range cands {
		h.offer(c, k)
	}
	return h.drain()
}

// minHeap keeps the worst kept item on top.
type minHeap []ranked

// offer keeps c if it is among the k best seen.
func (h *minHeap) offer(c ranked, k int) {
	if len(*h) < k {
		h.push(c)
	} else if c.better((*h)[0]) {
		(*h)[0] = c
		h.down(0)
	}
}

func (h *minHeap) push(r ranked) {
	*h = append(*h, r)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[p].better(s[i]) {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h minHeap) down(i int) {
	for {
		l, worst := 2*i+1, i
		if l < len(h) && h[worst].better(h[l]) {
			worst = l
		}
		if r := l + 1; r < len(h) && h[worst].better(h[r]) {
			worst = r
		}
		if worst == i {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}

// drain sorts the heap best first, in place.
func (h minHeap) drain() []ranked {
	for n := len(h) - 1; n > 0; n-- {
		h[0], h[n] = h[n], h[0]
		minHeap(h[:n]).down(0)
	}
	return h
}

// tieBreak is the least popularity a model's scores get, relative to the
// largest score: enough to order items the model scores equally (item-kNN
// gives most items exactly zero) by popularity, too little to reorder what
// the model tells apart.
const tieBreak = 1e-5
