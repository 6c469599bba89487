package recommend

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"
)

// Model kinds: the scorer a model ranks with for players with history.
const (
	KindEASE    = "ease"
	KindALS     = "als"
	KindKNN     = "knn"
	KindPopular = "popular"
)

// Model is one trained, promotable model of a game: the scorer chosen on
// validation, plus the popularity baseline (cold start) and item-item
// neighbours ("similar items") every model carries. It holds no per-player
// data: players are folded in from their current items at request time.
type Model struct {
	Version   string
	Game      string
	Kind      string
	CreatedAt time.Time
	// TrainedAt is the time of the latest interaction the model saw.
	TrainedAt  time.Time
	Items      []string
	Repeat     []bool
	Popularity *Popularity
	Neighbors  *Neighbors
	EASE       *EASE
	ALS        *ALS
	// PopBlend is the weight of the popularity prior added to the
	// scorer's scores (see blend), chosen on validation.
	PopBlend float32

	index map[string]int32
	order map[string][]int32 // items by popularity, per segment key
}

// prepare builds the lookup structures serving needs.
func (m *Model) prepare() {
	m.Popularity.seal()
	m.index = make(map[string]int32, len(m.Items))
	for i, id := range m.Items {
		m.index[id] = int32(i)
	}
	m.order = make(map[string][]int32, len(m.Popularity.Segments))
	for key, v := range m.Popularity.Segments {
		o := make([]int32, len(v))
		for i := range o {
			o[i] = int32(i)
		}
		sort.SliceStable(o, func(a, b int) bool { return v[o[a]] > v[o[b]] })
		m.order[key] = o
	}
}

// Index returns the model's index of an item id.
func (m *Model) Index(id string) (int32, bool) {
	i, ok := m.index[id]
	return i, ok
}

// scorer is what ranks items for players with history.
func (m *Model) scorer() scorer {
	switch m.Kind {
	case KindEASE:
		return m.EASE
	case KindALS:
		return m.ALS
	case KindKNN:
		return knnScorer{m.Neighbors}
	}
	return popularScorer{m.Popularity}
}

// Reasons of a recommended item.
const (
	ReasonModel   = "model"
	ReasonPopular = "popular"
	ReasonSimilar = "similar"
)

// Recommendation is one recommended item.
type Recommendation struct {
	ItemID string  `json:"item_id"`
	Score  float64 `json:"score"`
	Reason string  `json:"reason"`
}

// History is what a player did with one item, as serving reads it.
type History struct {
	Item     string
	Weight   float64
	Acquired bool
}

// view is a model joined with the game's catalogue: which of its items may
// be recommended, and which are consumable.
type view struct {
	m *Model
	// skip marks unavailable items.
	skip []bool
	// consumable is the catalogue's answer, else the model's inference.
	consumable []bool
}

func newView(m *Model, cat map[string]catalogueEntry) *view {
	v := &view{m: m, skip: make([]bool, len(m.Items)), consumable: make([]bool, len(m.Items))}
	for i, id := range m.Items {
		e, ok := cat[id]
		v.skip[i] = ok && !e.available
		v.consumable[i] = m.Repeat[i]
		if ok && e.consumable != nil {
			v.consumable[i] = *e.consumable
		}
	}
	return v
}

// catalogueEntry is what serving needs of a catalogue item.
type catalogueEntry struct {
	consumable *bool
	available  bool
}

// scratch is one request's working memory.
type scratch struct {
	out  []float32
	top  []ranked
	idx  []int32
	vals []float32
}

// recommend ranks the catalogue for a player: personal recommendations
// from the model's scorer when the player has at least minHistory items,
// else (fallback) the segment's popular items. Owned non-consumables and
// unavailable items are never returned.
func (v *view) recommend(hist []History, seg Segment, limit, minHistory int, s *scratch) ([]Recommendation, bool) {
	m := v.m
	n := len(m.Items)
	if cap(s.out) < n {
		s.out = make([]float32, n)
	}
	out := s.out[:n]
	clear(out)
	// The player's items in the model, ascending, and what they own.
	s.idx, s.vals = s.idx[:0], s.vals[:0]
	slices.SortFunc(hist, func(a, b History) int { return compareIndex(m, a.Item, b.Item) })
	items := 0
	for _, h := range hist {
		if h.Weight > 0 {
			items++
		}
		i, ok := m.Index(h.Item)
		if !ok {
			continue
		}
		if x := Input(h.Weight); x > 0 {
			s.idx = append(s.idx, i)
			s.vals = append(s.vals, x)
		}
	}
	personal := m.Kind != KindPopular && items >= minHistory && len(s.idx) > 0
	if !personal {
		return v.popular(hist, seg, limit, out), true
	}
	m.scorer().scores(query{items: s.idx, vals: s.vals, seg: seg}, out)
	for _, h := range hist {
		if i, ok := m.Index(h.Item); ok && h.Acquired && !v.consumable[i] {
			out[i] = blocked
		}
	}
	f, pop := m.Popularity.blend(out, seg, m.PopBlend)
	s.top = topKBlend(out, pop, f, limit, v.skip, s.top[:0])
	recs := make([]Recommendation, len(s.top))
	reason := ReasonModel
	if m.Kind == KindKNN {
		reason = ReasonSimilar
	}
	for r, t := range s.top {
		recs[r] = Recommendation{ItemID: m.Items[t.item], Score: float64(t.score), Reason: reason}
		// The model's own score decides the reason.
		if out[t.item] <= 0 {
			recs[r].Reason = ReasonPopular
		}
	}
	return recs, false
}

func compareIndex(m *Model, a, b string) int {
	ia, oka := m.Index(a)
	ib, okb := m.Index(b)
	switch {
	case oka && okb:
		return int(ia) - int(ib)
	case oka:
		return -1
	case okb:
		return 1
	}
	return 0
}

// popular returns the segment's most popular items the player may get.
func (v *view) popular(hist []History, seg Segment, limit int, mark []float32) []Recommendation {
	m := v.m
	for _, h := range hist {
		if i, ok := m.Index(h.Item); ok && h.Acquired && !v.consumable[i] {
			mark[i] = blocked
		}
	}
	var order []int32
	var pop []float32
	for _, k := range segmentKeys(seg) {
		if o, ok := m.order[k]; ok {
			order, pop = o, m.Popularity.Segments[k]
			break
		}
	}
	recs := make([]Recommendation, 0, limit)
	for _, i := range order {
		if len(recs) == limit {
			break
		}
		if v.skip[i] || mark[i] == blocked {
			continue
		}
		recs = append(recs, Recommendation{ItemID: m.Items[i], Score: float64(pop[i]), Reason: ReasonPopular})
	}
	return recs
}

// similar returns an item's nearest available items.
func (v *view) similar(item int32, limit int) []Recommendation {
	idx, sim := v.m.Neighbors.Of(item)
	recs := make([]Recommendation, 0, limit)
	for k, j := range idx {
		if len(recs) == limit {
			break
		}
		if !v.skip[j] {
			recs = append(recs, Recommendation{ItemID: v.m.Items[j], Score: float64(sim[k]), Reason: ReasonSimilar})
		}
	}
	return recs
}

// The stored form of a model (models/<game>/<version>/model.bin): a magic
// line, a uint32 length and a JSON header, then the arrays the header
// describes as little-endian numbers, in the order the header lists them.
const modelMagic = "GMRECOMMEND1\n"

type modelHeader struct {
	Version   string    `json:"version"`
	Game      string    `json:"game"`
	Kind      string    `json:"kind"`
	CreatedAt time.Time `json:"created_at"`
	TrainedAt time.Time `json:"trained_at"`
	Items     []string  `json:"items"`
	Repeat    []bool    `json:"repeat"`
	Segments  []string  `json:"segments"` // popularity vectors, n float32 each
	Neighbors int       `json:"neighbors"`
	// EASE: n × n float32. ALS: n × factors float32, then factors² float64.
	EASE       bool    `json:"ease,omitempty"`
	ALSFactors int     `json:"als_factors,omitempty"`
	ALSAlpha   float32 `json:"als_alpha,omitempty"`
	ALSLambda  float64 `json:"als_lambda,omitempty"`
	PopBlend   float32 `json:"pop_blend,omitempty"`
}

// Limits a stored model must respect, so a damaged object cannot make a
// replica allocate without bound.
const (
	maxModelItems   = 100_000
	maxModelFactors = 1024
	maxNeighbors    = 1000
	maxSegments     = 10_000
)

// Encode writes the model's stored form.
func (m *Model) Encode(w io.Writer) error {
	h := modelHeader{Version: m.Version, Game: m.Game, Kind: m.Kind, CreatedAt: m.CreatedAt, TrainedAt: m.TrainedAt,
		Items: m.Items, Repeat: m.Repeat, PopBlend: m.PopBlend}
	for k := range m.Popularity.Segments {
		h.Segments = append(h.Segments, k)
	}
	sort.Strings(h.Segments)
	if m.Neighbors != nil {
		h.Neighbors = m.Neighbors.K
	}
	if m.EASE != nil {
		h.EASE = true
	}
	if m.ALS != nil {
		h.ALSFactors, h.ALSAlpha, h.ALSLambda = m.ALS.K, m.ALS.Alpha, m.ALS.Lambda
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString(modelMagic)
	binary.Write(bw, binary.LittleEndian, uint32(len(hb)))
	bw.Write(hb)
	put := func(v any) {
		if err == nil {
			err = binary.Write(bw, binary.LittleEndian, v)
		}
	}
	for _, k := range h.Segments {
		put(m.Popularity.Segments[k])
	}
	if m.Neighbors != nil {
		put(m.Neighbors.Idx)
		put(m.Neighbors.Sim)
	}
	if m.EASE != nil {
		put(m.EASE.B)
	}
	if m.ALS != nil {
		put(m.ALS.Y)
		put(m.ALS.YtY)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// DecodeModel reads a model's stored form, checking that its sizes agree
// with each other and with the data, and prepares it for serving.
func DecodeModel(b []byte) (*Model, error) {
	rest, ok := bytes.CutPrefix(b, []byte(modelMagic))
	if !ok {
		return nil, errors.New("model: not a GameMetrics model (bad magic)")
	}
	if len(rest) < 4 {
		return nil, errors.New("model: truncated header")
	}
	hl := int(binary.LittleEndian.Uint32(rest))
	rest = rest[4:]
	if hl > len(rest) {
		return nil, errors.New("model: truncated header")
	}
	var h modelHeader
	if err := json.Unmarshal(rest[:hl], &h); err != nil {
		return nil, fmt.Errorf("model header: %w", err)
	}
	rest = rest[hl:]
	n := len(h.Items)
	switch {
	case n > maxModelItems:
		return nil, fmt.Errorf("model: %d items, at most %d", n, maxModelItems)
	case len(h.Repeat) != n:
		return nil, errors.New("model: repeat flags do not match the items")
	case len(h.Segments) > maxSegments || h.Neighbors < 0 || h.Neighbors > maxNeighbors || h.ALSFactors < 0 || h.ALSFactors > maxModelFactors:
		return nil, errors.New("model: header sizes out of range")
	case h.EASE && h.ALSFactors > 0:
		return nil, errors.New("model: both EASE and ALS weights")
	case !(h.PopBlend >= 0 && h.PopBlend <= 10):
		return nil, errors.New("model: popularity blend out of range")
	}
	want := int64(len(h.Segments))*int64(n)*4 + int64(n)*int64(h.Neighbors)*8
	if h.EASE {
		want += int64(n) * int64(n) * 4
	}
	if h.ALSFactors > 0 {
		want += int64(n)*int64(h.ALSFactors)*4 + int64(h.ALSFactors)*int64(h.ALSFactors)*8
	}
	if int64(len(rest)) != want {
		return nil, fmt.Errorf("model: %d bytes of weights, the header describes %d", len(rest), want)
	}
	r := bytes.NewReader(rest)
	get := func(v any) { binary.Read(r, binary.LittleEndian, v) } // sizes checked above
	m := &Model{Version: h.Version, Game: h.Game, Kind: h.Kind, CreatedAt: h.CreatedAt, TrainedAt: h.TrainedAt,
		Items: h.Items, Repeat: h.Repeat, PopBlend: h.PopBlend, Popularity: &Popularity{Segments: map[string][]float32{}}}
	for _, k := range h.Segments {
		v := make([]float32, n)
		get(v)
		m.Popularity.Segments[k] = v
	}
	if m.Popularity.Segments[""] == nil {
		m.Popularity.Segments[""] = make([]float32, n)
	}
	nb := &Neighbors{K: h.Neighbors, Idx: make([]int32, n*h.Neighbors), Sim: make([]float32, n*h.Neighbors)}
	get(nb.Idx)
	get(nb.Sim)
	for _, j := range nb.Idx {
		if j < -1 || int(j) >= n {
			return nil, errors.New("model: neighbour index out of range")
		}
	}
	m.Neighbors = nb
	if h.EASE {
		m.EASE = &EASE{N: n, B: make([]float32, n*n)}
		get(m.EASE.B)
	}
	if k := h.ALSFactors; k > 0 {
		m.ALS = &ALS{N: n, K: k, Y: make([]float32, n*k), YtY: make([]float64, k*k), Alpha: h.ALSAlpha, Lambda: h.ALSLambda}
		get(m.ALS.Y)
		get(m.ALS.YtY)
	}
	switch m.Kind {
	case KindEASE:
		if m.EASE == nil {
			return nil, errors.New("model: kind ease without EASE weights")
		}
	case KindALS:
		if m.ALS == nil {
			return nil, errors.New("model: kind als without ALS factors")
		}
	case KindKNN, KindPopular:
	default:
		return nil, fmt.Errorf("model: unknown kind %q", m.Kind)
	}
	m.prepare()
	return m, nil
}
