package recommend

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

// TrainConfig tunes training. Start from DefaultTrainConfig.
type TrainConfig struct {
	// K is the ranking cutoff candidates are compared at (NDCG@K).
	K int
	// EASEMaxItems is the largest catalogue EASE is trained for (its
	// weights are n² float32 and its inverse costs n³); above it the
	// learned model is implicit ALS.
	EASEMaxItems int
	// EASELambdas are the regularisations tried.
	EASELambdas []float64
	// ALS are the ALS settings tried.
	ALS []ALSParams
	// Neighbors is how many similar items are kept per item; Shrink damps
	// similarities backed by few players.
	Neighbors int
	Shrink    float32
	// HalfLife is the popularity decay; MinSegmentPlayers the fewest
	// players a segment needs for its own popularity.
	HalfLife          time.Duration
	MinSegmentPlayers int
	// ValidationPlayers caps the held-out players candidates are scored
	// on (an even sample of them), bounding the cost of validation.
	ValidationPlayers int
	// MinValidation is the fewest held-out players needed to train a
	// learned model at all; below it the model is popularity only.
	MinValidation int
	// MinFresh is the fewest held-out interactions newer than the current
	// model needed to compare the two on them; with fewer, the candidate
	// is compared with the current model's own validation NDCG.
	MinFresh int
	// Kinds are the learned kinds trained as candidates besides
	// popularity: KindKNN, KindEASE (only up to EASEMaxItems items) and
	// KindALS (above it, or whenever EASE is not listed).
	Kinds []string
	// CandidatePlayers caps the players candidates are trained and
	// validated on (an even sample of them), bounding the cost of choosing;
	// the chosen one is then refitted on every player.
	CandidatePlayers int
	// PopBlends are the weights of the popularity prior tried on the best
	// candidate of each kind (besides none).
	PopBlends []float32
	// Workers bounds the goroutines of training and validation.
	Workers int
}

// DefaultTrainConfig is what the daily training uses.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		K: 10, EASEMaxItems: 3000, EASELambdas: []float64{5, 20, 100, 500},
		// Measured on simulated catalogues of 1,000-10,000 items: 6
		// iterations of 2 CG steps are as good as 10 of 3; 128 factors
		// beat 64 on large catalogues, 64 with less regularisation wins on
		// small games.
		ALS: []ALSParams{
			{Factors: 64, Lambda: 30, Alpha: 10, Iterations: 6, CGSteps: 2, Seed: 1},
			{Factors: 128, Lambda: 100, Alpha: 30, Iterations: 6, CGSteps: 2, Seed: 1},
		},
		Kinds: []string{KindKNN, KindEASE, KindALS}, CandidatePlayers: 200_000,
		Neighbors: 50, Shrink: 10, HalfLife: 14 * 24 * time.Hour, MinSegmentPlayers: 100,
		ValidationPlayers: 10_000, MinValidation: 20, MinFresh: 50, PopBlends: []float32{0.1, 0.2, 0.4}, Workers: runtime.GOMAXPROCS(0),
	}
}

// Candidate is one model trained on the training split and scored on the
// held-out interactions.
type Candidate struct {
	Name       string         `json:"name"`
	Kind       string         `json:"kind"`
	Params     map[string]any `json:"params,omitempty"`
	Validation Metrics        `json:"validation"`
	Seconds    float64        `json:"train_seconds"`
	// PopBlend is the weight of the popularity prior added to its scores.
	PopBlend float32 `json:"popularity_blend,omitempty"`

	scorer scorer
	als    ALSParams
}

// FitResult is a training run: every candidate's validation, the best
// one, and the model refitted on all interactions with the best settings.
type FitResult struct {
	Players, Items, Interactions, HeldOut int
	// CandidatePlayers is how many players the candidates were trained on.
	CandidatePlayers int
	Candidates       []Candidate
	Best             int
	Model            *Model

	split   *Dataset
	held    []HeldOut
	pop     *Popularity // of the split
	workers int
	k       int
}

// Best returns the chosen candidate.
func (r *FitResult) BestCandidate() Candidate { return r.Candidates[r.Best] }

// Popular returns the popularity candidate.
func (r *FitResult) Popular() Candidate { return r.Candidates[0] }

// Fit trains and validates every candidate on d's leave-last-out split,
// picks the best by NDCG@K (ties go to the simpler: popularity, then
// item-kNN, then the learned model), and refits it on all of d.
func Fit(d *Dataset, cfg TrainConfig) (*FitResult, error) {
	def := DefaultTrainConfig()
	if cfg.K <= 0 {
		cfg.K = def.K
	}
	if cfg.Workers <= 0 {
		cfg.Workers = def.Workers
	}
	cd := d
	if cfg.CandidatePlayers > 0 && d.X.Rows > cfg.CandidatePlayers {
		cd = subsample(d, cfg.CandidatePlayers)
	}
	split, held := LeaveLastOut(cd)
	val := sample(held, cfg.ValidationPlayers)
	res := &FitResult{Players: d.X.Rows, Items: d.X.Cols, Interactions: d.X.NNZ(), HeldOut: len(held), CandidatePlayers: cd.X.Rows,
		split: split, held: held, workers: cfg.Workers, k: cfg.K}
	has := func(kind string) bool { return cfg.Kinds == nil || slices.Contains(cfg.Kinds, kind) }
	add := func(c Candidate, start time.Time) {
		c.Seconds = time.Since(start).Seconds()
		pop := res.pop
		if c.Kind == KindPopular {
			pop = nil
		}
		c.Validation = Evaluate(split, val, c.scorer, pop, 0, cfg.K, cfg.Workers)
		res.Candidates = append(res.Candidates, c)
	}
	t := time.Now()
	res.pop = TrainPopularity(split, cfg.HalfLife, cfg.MinSegmentPlayers)
	add(Candidate{Name: "popularity", Kind: KindPopular, Params: map[string]any{"half_life_days": cfg.HalfLife.Hours() / 24},
		scorer: popularScorer{res.pop}}, t)
	n := d.X.Cols
	if len(held) >= cfg.MinValidation && n > 1 {
		if has(KindKNN) {
			t = time.Now()
			nb := TrainNeighbors(split.X, cfg.Neighbors, cfg.Shrink, cfg.Workers)
			add(Candidate{Name: "item-kNN", Kind: KindKNN, Params: map[string]any{"neighbors": cfg.Neighbors, "shrink": cfg.Shrink},
				scorer: knnScorer{nb}}, t)
		}
		if has(KindEASE) && n <= cfg.EASEMaxItems {
			t = time.Now()
			g := Gram(split.X, cfg.Workers)
			gramTime := time.Since(t)
			for _, l := range cfg.EASELambdas {
				t = time.Now().Add(-gramTime)
				e, err := FitEASE(g, n, l)
				if err != nil {
					return nil, err
				}
				add(Candidate{Name: fmt.Sprintf("EASE λ=%g", l), Kind: KindEASE, Params: map[string]any{"lambda": l}, scorer: e}, t)
			}
		} else if has(KindALS) {
			for _, p := range cfg.ALS {
				t = time.Now()
				a := TrainALS(split.X, p, cfg.Workers)
				add(Candidate{Name: fmt.Sprintf("ALS k=%d λ=%g α=%g", p.Factors, p.Lambda, p.Alpha), Kind: KindALS,
					Params: map[string]any{"factors": p.Factors, "lambda": p.Lambda, "alpha": p.Alpha, "iterations": p.Iterations, "cg_steps": p.CGSteps},
					scorer: a, als: p}, t)
			}
		}
	}
	// The best candidate of each learned kind also tries a popularity
	// prior, which helps players with few items.
	bestOf := map[string]int{}
	for i, c := range res.Candidates {
		if j, ok := bestOf[c.Kind]; c.Kind != KindPopular && (!ok || c.Validation.NDCG > res.Candidates[j].Validation.NDCG) {
			bestOf[c.Kind] = i
		}
	}
	for _, i := range bestOf {
		c := &res.Candidates[i]
		for _, beta := range cfg.PopBlends {
			if m := Evaluate(split, val, c.scorer, res.pop, beta, cfg.K, cfg.Workers); m.NDCG > c.Validation.NDCG {
				c.Validation, c.PopBlend = m, beta
			}
		}
		if c.PopBlend > 0 {
			c.Name += fmt.Sprintf(" + %g·popularity", c.PopBlend)
		}
	}
	for i, c := range res.Candidates {
		if c.Validation.NDCG > res.Candidates[res.Best].Validation.NDCG {
			res.Best = i
		}
	}
	// Only the best learned weights are refitted; drop the others.
	for i := range res.Candidates {
		if i != res.Best && res.Candidates[i].Kind != KindPopular {
			res.Candidates[i].scorer = nil
		}
	}
	m, err := refit(d, cfg, res.Candidates[res.Best])
	if err != nil {
		return nil, err
	}
	res.Model = m
	return res, nil
}

// refit trains the chosen kind on every interaction.
func refit(d *Dataset, cfg TrainConfig, best Candidate) (*Model, error) {
	m := &Model{Kind: best.Kind, TrainedAt: d.Now, Items: d.Items, Repeat: d.Repeat, PopBlend: best.PopBlend,
		Popularity: TrainPopularity(d, cfg.HalfLife, cfg.MinSegmentPlayers)}
	if d.X.Cols > 1 {
		m.Neighbors = TrainNeighbors(d.X, cfg.Neighbors, cfg.Shrink, cfg.Workers)
	} else {
		m.Neighbors = &Neighbors{}
	}
	switch best.Kind {
	case KindEASE:
		e, err := FitEASE(Gram(d.X, cfg.Workers), d.X.Cols, best.Params["lambda"].(float64))
		if err != nil {
			return nil, err
		}
		m.EASE = e
	case KindALS:
		m.ALS = TrainALS(d.X, best.als, cfg.Workers)
	}
	m.prepare()
	return m, nil
}

// subsample returns an even sample of n of d's players (with all items).
func subsample(d *Dataset, n int) *Dataset {
	x := d.X
	out := &Dataset{Items: d.Items, Repeat: d.Repeat, Now: d.Now}
	m := &Matrix{Rows: n, Cols: x.Cols, Ptr: make([]int, n+1)}
	for i := range n {
		u := i * x.Rows / n
		out.Players = append(out.Players, d.Players[u])
		out.Segments = append(out.Segments, d.Segments[u])
		items, vals := x.Row(u)
		m.Col = append(m.Col, items...)
		m.Val = append(m.Val, vals...)
		out.Last = append(out.Last, d.Last[x.Ptr[u]:x.Ptr[u+1]]...)
		m.Ptr[i+1] = len(m.Col)
	}
	out.X = m
	return out
}

// sample returns at most n of held, evenly spread.
func sample(held []HeldOut, n int) []HeldOut {
	if n <= 0 || len(held) <= n {
		return held
	}
	out := make([]HeldOut, n)
	for i := range out {
		out[i] = held[i*len(held)/n]
	}
	return out
}

// Comparison is the candidate against the promoted model.
type Comparison struct {
	// Fresh is how many held-out interactions were newer than the current
	// model's data, on which both were scored; 0 when there were too few
	// and the current model's recorded validation was used instead.
	Fresh     int     `json:"fresh"`
	Candidate Metrics `json:"candidate"`
	Current   Metrics `json:"current"`
}

// CompareWithCurrent scores the chosen candidate (trained on the split)
// and the current model on the held-out interactions that happened after
// the current model's data, so the current model has not seen them. It
// returns ok=false when there are fewer than minFresh of them.
func (r *FitResult) CompareWithCurrent(cur *Model, minFresh, limit int) (Comparison, bool) {
	cutoff := cur.TrainedAt.Unix()
	var fresh []HeldOut
	for _, h := range r.held {
		if h.At > cutoff {
			fresh = append(fresh, h)
		}
	}
	if len(fresh) < max(1, minFresh) {
		return Comparison{}, false
	}
	fresh = sample(fresh, limit)
	best := r.BestCandidate()
	pop := r.pop
	if best.Kind == KindPopular {
		pop = nil
	}
	c := Comparison{Fresh: len(fresh), Candidate: Evaluate(r.split, fresh, best.scorer, pop, best.PopBlend, r.k, r.workers)}
	split := r.split
	sc := cur.scorer()
	c.Current = evaluate(len(cur.Items), fresh, r.k, r.workers, func(h HeldOut, out []float32, top []ranked) ([]ranked, int32) {
		items, xs := split.X.Row(int(h.Player))
		idx, vals := make([]int32, 0, len(items)), make([]float32, 0, len(items))
		for a, i := range items {
			if j, ok := cur.Index(split.Items[i]); ok {
				idx = append(idx, j)
				vals = append(vals, xs[a])
			}
		}
		sortQuery(idx, vals)
		q := query{items: idx, vals: vals, seg: split.Segments[h.Player]}
		sc.scores(q, out)
		for _, j := range idx {
			out[j] = blocked
		}
		var f float32
		var pv []float32
		if cur.Kind != KindPopular {
			f, pv = cur.Popularity.blend(out, q.seg, cur.PopBlend)
		}
		want, ok := cur.Index(split.Items[h.Item])
		if !ok {
			want = -1
		}
		return topKBlend(out, pv, f, r.k, nil, top), want
	})
	return c, true
}

// sortQuery orders a query's items ascending, keeping values aligned.
func sortQuery(idx []int32, vals []float32) {
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && idx[j] < idx[j-1]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
			vals[j], vals[j-1] = vals[j-1], vals[j]
		}
	}
}
