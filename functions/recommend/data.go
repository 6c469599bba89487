package recommend

import (
	"cmp"
	"slices"
	"time"
)

// Matrix is a sparse players × items matrix in compressed rows: row u holds
// the items Col[Ptr[u]:Ptr[u+1]] (ascending) with values Val[...].
type Matrix struct {
	Rows, Cols int
	Ptr        []int
	Col        []int32
	Val        []float32
}

// Row returns the items and values of row u.
func (m *Matrix) Row(u int) ([]int32, []float32) {
	return m.Col[m.Ptr[u]:m.Ptr[u+1]], m.Val[m.Ptr[u]:m.Ptr[u+1]]
}

// NNZ is the number of stored entries.
func (m *Matrix) NNZ() int { return len(m.Col) }

// Transpose returns the items × players matrix of m.
func (m *Matrix) Transpose() *Matrix {
	t := &Matrix{Rows: m.Cols, Cols: m.Rows, Ptr: make([]int, m.Cols+1), Col: make([]int32, len(m.Col)), Val: make([]float32, len(m.Val))}
	for _, c := range m.Col {
		t.Ptr[c+1]++
	}
	for i := range m.Cols {
		t.Ptr[i+1] += t.Ptr[i]
	}
	next := slices.Clone(t.Ptr[:m.Cols])
	for u := range m.Rows {
		for k := m.Ptr[u]; k < m.Ptr[u+1]; k++ {
			c := m.Col[k]
			t.Col[next[c]] = int32(u)
			t.Val[next[c]] = m.Val[k]
			next[c]++
		}
	}
	return t
}

// Segment is what popularity is broken down by.
type Segment struct {
	Platform string `json:"platform,omitempty"`
	Country  string `json:"country,omitempty"`
}

// Dataset is one game's interactions as training reads them: every player
// with at least one interaction, every known item, and per entry the
// model input and the time of the latest interaction.
type Dataset struct {
	Players  []string
	Items    []string
	Segments []Segment // per player
	X        *Matrix   // model inputs (see Settings.Input)
	Last     []int64   // per entry of X: unix seconds of the latest interaction
	// Repeat marks items some player acquired (bought or sank) more than
	// once: consumable, if the catalogue does not say otherwise.
	Repeat []bool
	// Now is the time decay is measured from: the latest interaction.
	Now time.Time
}

// Triple is one stored interaction on its way into a Dataset.
type Triple struct {
	Player, Item int32
	Value        float32
	Last         int64
}

// BuildDataset assembles a Dataset from triples; each (player, item) must
// appear once.
func BuildDataset(players, items []string, segments []Segment, triples []Triple, repeat []bool) *Dataset {
	slices.SortFunc(triples, func(a, b Triple) int {
		if c := cmp.Compare(a.Player, b.Player); c != 0 {
			return c
		}
		return cmp.Compare(a.Item, b.Item)
	})
	x := &Matrix{Rows: len(players), Cols: len(items), Ptr: make([]int, len(players)+1),
		Col: make([]int32, len(triples)), Val: make([]float32, len(triples))}
	last := make([]int64, len(triples))
	var now int64
	for k, t := range triples {
		x.Ptr[t.Player+1]++
		x.Col[k], x.Val[k], last[k] = t.Item, t.Value, t.Last
		now = max(now, t.Last)
	}
	for u := range players {
		x.Ptr[u+1] += x.Ptr[u]
	}
	if repeat == nil {
		repeat = make([]bool, len(items))
	}
	if segments == nil {
		segments = make([]Segment, len(players))
	}
	return &Dataset{Players: players, Items: items, Segments: segments, X: x, Last: last, Repeat: repeat, Now: time.Unix(now, 0).UTC()}
}

// HeldOut is a player's chronologically last interaction, left out of
// training to validate on.
type HeldOut struct {
	Player, Item int32
	At           int64 // unix seconds of the interaction
}

// LeaveLastOut splits d: each player with at least two items loses the
// item of their latest interaction (ties: the larger item index) to the
// held-out set; everything else is the training set (same players and
// items, so indices agree).
func LeaveLastOut(d *Dataset) (*Dataset, []HeldOut) {
	x := d.X
	train := &Matrix{Rows: x.Rows, Cols: x.Cols, Ptr: make([]int, x.Rows+1), Col: make([]int32, 0, x.NNZ()), Val: make([]float32, 0, x.NNZ())}
	last := make([]int64, 0, x.NNZ())
	var held []HeldOut
	for u := range x.Rows {
		lo, hi := x.Ptr[u], x.Ptr[u+1]
		skip := -1
		if hi-lo >= 2 {
			skip = lo
			for k := lo + 1; k < hi; k++ {
				if d.Last[k] >= d.Last[skip] {
					skip = k
				}
			}
			held = append(held, HeldOut{Player: int32(u), Item: x.Col[skip], At: d.Last[skip]})
		}
		for k := lo; k < hi; k++ {
			if k != skip {
				train.Col = append(train.Col, x.Col[k])
				train.Val = append(train.Val, x.Val[k])
				last = append(last, d.Last[k])
			}
		}
		train.Ptr[u+1] = len(train.Col)
	}
	out := *d
	out.X, out.Last = train, last
	return &out, held
}

// DatasetBuilder collects a game's stored interactions into a Dataset.
type DatasetBuilder struct {
	settings Settings
	players  map[string]int32
	items    map[string]int32
	pnames   []string
	inames   []string
	segments []Segment
	triples  []Triple
	repeat   []bool
}

// NewDatasetBuilder starts a Dataset whose weights follow s.
func NewDatasetBuilder(s Settings) *DatasetBuilder {
	return &DatasetBuilder{settings: s, players: map[string]int32{}, items: map[string]int32{}}
}

func (b *DatasetBuilder) player(id string) int32 {
	p, ok := b.players[id]
	if !ok {
		p = int32(len(b.pnames))
		b.players[id] = p
		b.pnames = append(b.pnames, id)
		b.segments = append(b.segments, Segment{})
	}
	return p
}

// Item makes sure an item is in the catalogue, interacted with or not.
func (b *DatasetBuilder) Item(id string) int32 {
	i, ok := b.items[id]
	if !ok {
		i = int32(len(b.inames))
		b.items[id] = i
		b.inames = append(b.inames, id)
		b.repeat = append(b.repeat, false)
	}
	return i
}

// Add records one (player, item) row. Rows whose weight is zero (only
// design events while design events weigh nothing) are left out.
func (b *DatasetBuilder) Add(player, item string, c Counters, last time.Time) {
	i := b.Item(item)
	if c.Purchases+c.Sinks >= 2 {
		b.repeat[i] = true
	}
	x := Input(b.settings.Weight(c))
	if x <= 0 {
		return
	}
	b.triples = append(b.triples, Triple{Player: b.player(player), Item: i, Value: x, Last: last.Unix()})
}

// Segment sets a player's segment (players without interactions are not
// added).
func (b *DatasetBuilder) Segment(player string, s Segment) {
	if p, ok := b.players[player]; ok {
		b.segments[p] = s
	}
}

// Build returns the Dataset; the builder must not be used after.
func (b *DatasetBuilder) Build() *Dataset {
	return BuildDataset(b.pnames, b.inames, b.segments, b.triples, b.repeat)
}
