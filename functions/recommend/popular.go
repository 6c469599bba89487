package recommend

import (
	"math"
	"time"
)

// Popularity is the time-decayed popularity baseline: per item, the number
// of players who interacted with it, each counted 2^(-age/half-life) by the
// age of their latest interaction. Besides the whole game ("" key) it holds
// one vector per platform, country and platform+country segment that had
// enough players.
type Popularity struct {
	Segments map[string][]float32

	tops map[string]float32 // each vector's largest value (seal)
}

// seal records each vector's largest value, which blending divides by.
// Call it once the vectors are final.
func (p *Popularity) seal() {
	p.tops = make(map[string]float32, len(p.Segments))
	for k, v := range p.Segments {
		var top float32
		for _, x := range v {
			if x > top {
				top = x
			}
		}
		p.tops[k] = top
	}
}

// blend is how much popularity to add to a model's scores out for a player
// of seg: the ranking key of item i is out[i] + f·pop[i], so the most
// popular item gains weight·(largest |score|). A weight chosen on
// validation (Candidate.PopBlend) is a popularity prior that helps players
// with few items; below tieBreak it only breaks ties. out is not changed:
// topK adds it while ranking, so the model's own scores stay in out.
func (p *Popularity) blend(out []float32, seg Segment, weight float32) (f float32, pop []float32) {
	pop, key := p.For(seg)
	top := p.tops[key]
	if top <= 0 || len(pop) != len(out) {
		return 0, nil
	}
	// Plain comparisons: the builtin max of floats handles NaN and costs
	// several times more in this loop, which runs over the whole catalogue.
	var hi, lo float32
	for _, o := range out {
		if o > hi {
			hi = o
		}
		if o < lo && o != blocked {
			lo = o
		}
	}
	scale := max(hi, -lo)
	if scale == 0 {
		scale = 1
	}
	return max(weight, tieBreak) * scale / top, pop
}

// segmentKeys lists the keys to try for s, most specific first.
func segmentKeys(s Segment) []string {
	keys := make([]string, 0, 4)
	if s.Platform != "" && s.Country != "" {
		keys = append(keys, "platform="+s.Platform+",country="+s.Country)
	}
	if s.Country != "" {
		keys = append(keys, "country="+s.Country)
	}
	if s.Platform != "" {
		keys = append(keys, "platform="+s.Platform)
	}
	return append(keys, "")
}

// For returns the popularity vector of the most specific segment of s that
// has one, and its key.
func (p *Popularity) For(s Segment) ([]float32, string) {
	for _, k := range segmentKeys(s) {
		if v, ok := p.Segments[k]; ok {
			return v, k
		}
	}
	return nil, ""
}

// TrainPopularity counts d's players per item with time decay, for the
// whole game and for every segment with at least minPlayers players.
func TrainPopularity(d *Dataset, halfLife time.Duration, minPlayers int) *Popularity {
	now := d.Now.Unix()
	hl := halfLife.Seconds()
	players := map[string]int{}
	for u := range d.X.Rows {
		if d.X.Ptr[u+1] > d.X.Ptr[u] {
			for _, k := range segmentKeys(d.Segments[u]) {
				players[k]++
			}
		}
	}
	p := &Popularity{Segments: map[string][]float32{}}
	for k, n := range players {
		if k == "" || n >= minPlayers {
			p.Segments[k] = make([]float32, d.X.Cols)
		}
	}
	if p.Segments[""] == nil {
		p.Segments[""] = make([]float32, d.X.Cols)
	}
	defer p.seal()
	for u := range d.X.Rows {
		keys := segmentKeys(d.Segments[u])
		for k := d.X.Ptr[u]; k < d.X.Ptr[u+1]; k++ {
			w := float32(1)
			if hl > 0 {
				w = float32(math.Exp2(-float64(now-d.Last[k]) / hl))
			}
			i := d.X.Col[k]
			for _, key := range keys {
				if v := p.Segments[key]; v != nil {
					v[i] += w
				}
			}
		}
	}
	return p
}

// popularScorer ranks by the player's segment's popularity.
type popularScorer struct{ p *Popularity }

func (s popularScorer) scores(q query, out []float32) {
	v, _ := s.p.For(q.seg)
	copy(out, v)
}
