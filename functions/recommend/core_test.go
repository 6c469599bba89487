package recommend

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/mat"
)

func TestTopKOrdersByScoreThenIndexAndLeavesOutBlockedItems(t *testing.T) {
	scores := []float32{0.5, 2, blocked, 2, 1, 0.5, 3}
	skip := []bool{false, false, false, false, true, false, false}
	for _, tc := range []struct {
		k    int
		want []int32
	}{
		{1, []int32{6}},
		{3, []int32{6, 1, 3}},
		{5, []int32{6, 1, 3, 0, 5}},
		{10, []int32{6, 1, 3, 0, 5}},
	} {
		var got []int32
		for _, r := range topK(scores, tc.k, skip, nil) {
			got = append(got, r.item)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("top %d = %v, want %v", tc.k, got, tc.want)
		}
	}
}

func tinyDataset() *Dataset {
	// 4 players, 4 items; player 0 and 1 like items 0 and 1, 2 and 3 like 2 and 3.
	day := int64(86400)
	return BuildDataset([]string{"a", "b", "c", "d"}, []string{"i0", "i1", "i2", "i3"},
		[]Segment{{Platform: "ios"}, {}, {Country: "DE"}, {}},
		[]Triple{
			{0, 0, 1, 1 * day}, {0, 1, 1, 2 * day},
			{1, 0, 1, 3 * day}, {1, 1, 2, 1 * day},
			{2, 2, 1, 5 * day}, {2, 3, 1, 4 * day},
			{3, 3, 1, 6 * day},
		}, nil)
}

func TestLeaveLastOutHoldsOutEachPlayersLatestItem(t *testing.T) {
	d := tinyDataset()
	train, held := LeaveLastOut(d)
	want := []HeldOut{{0, 1, 2 * 86400}, {1, 0, 3 * 86400}, {2, 2, 5 * 86400}}
	if !slices.Equal(held, want) {
		t.Errorf("held out %v, want %v (player d has one item and is not held out)", held, want)
	}
	if train.X.NNZ() != d.X.NNZ()-3 {
		t.Errorf("training keeps %d entries, want %d", train.X.NNZ(), d.X.NNZ()-3)
	}
	if items, _ := train.X.Row(3); !slices.Equal(items, []int32{3}) {
		t.Errorf("player d's row = %v", items)
	}
}

// EASE's closed form checked against a dense inverse computed here.
func TestEASEIsTheClosedForm(t *testing.T) {
	d := tinyDataset()
	n := d.X.Cols
	const lambda = 0.5
	e, err := FitEASE(Gram(d.X, 2), n, lambda)
	if err != nil {
		t.Fatal(err)
	}
	x := mat.NewDense(d.X.Rows, n, nil)
	for u := range d.X.Rows {
		items, vals := d.X.Row(u)
		for k, i := range items {
			x.Set(u, int(i), float64(vals[k]))
		}
	}
	var g mat.Dense
	g.Mul(x.T(), x)
	for i := range n {
		g.Set(i, i, g.At(i, i)+lambda)
	}
	var p mat.Dense
	if err := p.Inverse(&g); err != nil {
		t.Fatal(err)
	}
	for j := range n {
		for i := range n {
			want := 0.0
			if i != j {
				want = -p.At(j, i) / p.At(i, i)
			}
			if got := float64(e.B[j*n+i]); math.Abs(got-want) > 1e-5 {
				t.Errorf("B[%d][%d] = %g, want %g", j, i, got, want)
			}
		}
	}
}

// A player's folded-in ALS factors solve the normal equations exactly.
func TestALSFoldInSolvesTheNormalEquations(t *testing.T) {
	d := tinyDataset()
	p := ALSParams{Factors: 3, Lambda: 0.1, Alpha: 5, Iterations: 5, CGSteps: 3, Seed: 1}
	a := TrainALS(d.X, p, 2)
	q := query{items: []int32{0, 2}, vals: []float32{1, 2}}
	k := a.K
	x := slices.Clone(a.foldIn(q, newALSScratch(k)))
	// The direct path agrees with the Woodbury one.
	s := newALSScratch(k)
	s.b = make([]float64, k)
	for n, i := range q.items {
		for r := range k {
			s.b[r] += (1 + float64(a.Alpha*q.vals[n])) * float64(a.Y[int(i)*k+r])
		}
	}
	direct := a.foldInDirect(q, s)
	for r := range k {
		if math.Abs(float64(direct[r]-x[r])) > 1e-4*(1+math.Abs(float64(x[r]))) {
			t.Errorf("factor %d: Woodbury %g, direct %g", r, x[r], direct[r])
		}
	}
	// Rebuild A and b and check A x = b.
	am := mat.NewDense(k, k, slices.Clone(a.YtY))
	b := make([]float64, k)
	for n, i := range q.items {
		y := a.Y[int(i)*k : (int(i)+1)*k]
		c := 1 + float64(a.Alpha*q.vals[n])
		for r := range k {
			b[r] += c * float64(y[r])
			for col := range k {
				am.Set(r, col, am.At(r, col)+(c-1)*float64(y[r])*float64(y[col]))
			}
		}
	}
	for r := range k {
		var v float64
		for col := range k {
			v += am.At(r, col) * float64(x[col])
		}
		if math.Abs(v-b[r]) > 1e-4*(1+math.Abs(b[r])) {
			t.Errorf("row %d: (A x) = %g, b = %g", r, v, b[r])
		}
	}
}

func TestPopularityDecaysAndSegmentsNeedEnoughPlayers(t *testing.T) {
	d := tinyDataset()
	p := TrainPopularity(d, 24*time.Hour, 1)
	all, key := p.For(Segment{})
	if key != "" {
		t.Fatalf("key %q", key)
	}
	// Item 3: player c's interaction 2 days before the latest (6 days) and
	// player d's at the latest: 0.25 + 1.
	if got := all[3]; math.Abs(float64(got)-1.25) > 1e-6 {
		t.Errorf("popularity of i3 = %g, want 1.25", got)
	}
	if _, key := p.For(Segment{Platform: "ios", Country: "JP"}); key != "platform=ios" {
		t.Errorf("ios/JP used segment %q, want platform=ios", key)
	}
	if _, key := TrainPopularity(d, 24*time.Hour, 2).For(Segment{Platform: "ios"}); key != "" {
		t.Errorf("a segment of one player got its own popularity (%q) with minPlayers 2", key)
	}
}

func testModel(t testing.TB, kind string) *Model {
	t.Helper()
	d := tinyDataset()
	m := &Model{Version: "v1", Game: "g1", Kind: kind, CreatedAt: time.Unix(100, 0).UTC(), TrainedAt: d.Now, Items: d.Items,
		Repeat: []bool{true, false, false, true}, Popularity: TrainPopularity(d, time.Hour, 1), Neighbors: TrainNeighbors(d.X, 2, 1, 1)}
	switch kind {
	case KindEASE:
		e, err := FitEASE(Gram(d.X, 1), 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		m.EASE, m.PopBlend = e, 0.2
	case KindALS:
		m.ALS = TrainALS(d.X, ALSParams{Factors: 2, Lambda: 1, Alpha: 2, Iterations: 3, CGSteps: 2, Seed: 1}, 1)
	}
	m.prepare()
	return m
}

func TestAStoredModelDecodesToTheSameModel(t *testing.T) {
	for _, kind := range []string{KindEASE, KindALS, KindKNN, KindPopular} {
		t.Run(kind, func(t *testing.T) {
			m := testModel(t, kind)
			var buf bytes.Buffer
			if err := m.Encode(&buf); err != nil {
				t.Fatal(err)
			}
			got, err := DecodeModel(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != m.Version || got.Kind != m.Kind || got.PopBlend != m.PopBlend || !got.TrainedAt.Equal(m.TrainedAt) || !slices.Equal(got.Items, m.Items) ||
				!slices.Equal(got.Repeat, m.Repeat) || !slices.Equal(got.Neighbors.Idx, m.Neighbors.Idx) || !slices.Equal(got.Neighbors.Sim, m.Neighbors.Sim) {
				t.Errorf("decoded %+v, want %+v", got, m)
			}
			for k, v := range m.Popularity.Segments {
				if !slices.Equal(got.Popularity.Segments[k], v) {
					t.Errorf("popularity %q differs", k)
				}
			}
			// Same answers for the same player.
			hist := []History{{Item: "i0", Weight: 1, Acquired: true}}
			a, _ := newView(m, nil).recommend(slices.Clone(hist), Segment{}, 3, 1, &scratch{})
			b, _ := newView(got, nil).recommend(slices.Clone(hist), Segment{}, 3, 1, &scratch{})
			if !slices.Equal(a, b) {
				t.Errorf("answers differ: %v vs %v", a, b)
			}
			for _, cut := range []int{0, 5, len(modelMagic) + 2, buf.Len() / 2, buf.Len() - 1} {
				if _, err := DecodeModel(buf.Bytes()[:cut]); err == nil {
					t.Errorf("a model cut at %d of %d bytes decoded", cut, buf.Len())
				}
			}
		})
	}
}

func TestServingLeavesOutOwnedNonConsumablesAndUnavailableItems(t *testing.T) {
	m := testModel(t, KindEASE)
	yes, no := true, false
	cat := map[string]catalogueEntry{"i1": {consumable: &no, available: true}, "i2": {available: false}, "i0": {consumable: &yes, available: true}}
	v := newView(m, cat)
	hist := []History{{Item: "i0", Weight: 1, Acquired: true}, {Item: "i1", Weight: 1, Acquired: true}, {Item: "i3", Weight: 0.5}}
	recs, fallback := v.recommend(hist, Segment{}, 10, 1, &scratch{})
	if fallback {
		t.Error("a player with history fell back")
	}
	got := []string{}
	for _, r := range recs {
		got = append(got, r.ItemID)
	}
	// i1 is owned and not consumable, i2 unavailable; i0 is consumable and
	// i3 only looked at.
	if strings.Join(got, ",") != "i0,i3" && strings.Join(got, ",") != "i3,i0" {
		t.Errorf("recommended %v, want i0 and i3", got)
	}
	pop, fallback := v.recommend(nil, Segment{}, 10, 1, &scratch{})
	if !fallback || slices.ContainsFunc(pop, func(r Recommendation) bool { return r.ItemID == "i2" }) {
		t.Errorf("cold start: %v (fallback %v)", pop, fallback)
	}
}

func TestSettings(t *testing.T) {
	s := DefaultSettings()
	if w := s.Weight(Counters{Purchases: 2, AmountMinor: 9900, Sinks: 1}); math.Abs(w-(2+0.5*math.Log(100)+0.5)) > 1e-9 {
		t.Errorf("weight = %g", w)
	}
	s.DesignPrefixes = []string{"shop:view:"}
	if item, ok := s.DesignItem("shop:view:sword_1"); !ok || item != "sword_1" {
		t.Errorf("design item %q %v", item, ok)
	}
	if _, ok := s.DesignItem("shop:view:"); ok {
		t.Error("an empty item matched")
	}
	for _, tc := range []struct{ doc, field string }{
		{`{"purchase_weight": -1}`, "purchase_weight"},
		{`{"min_history": 0}`, "min_history"},
		{`{"half_life_days": 0}`, "half_life_days"},
		{`{"design_prefixes": [""]}`, "design_prefixes"},
		{`{"purchase_wieght": 1}`, "purchase_wieght"},
		{`{} {}`, "one JSON object"},
	} {
		if _, err := ParseSettings([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("ParseSettings(%s) = %v, want an error naming %s", tc.doc, err, tc.field)
		}
	}
	got, err := ParseSettings([]byte(`{"sink_weight": 2}`))
	if err != nil || got.SinkWeight != 2 || got.PurchaseWeight != 1 {
		t.Errorf("partial settings = %+v, %v (defaults kept?)", got, err)
	}
}

func TestParseItemsCSV(t *testing.T) {
	good := "\ufeffitem_id, consumable,available,tags,price_minor,currency\n" +
		"gems_100,yes,,gems|iap,499,USD\n" +
		"sword,false,false,,,\n" +
		"hat,,,,,\n"
	items, err := ParseItemsCSV(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Consumable == nil || !*items[0].Consumable || !items[0].Available ||
		!slices.Equal(items[0].Tags, []string{"gems", "iap"}) || *items[0].PriceMinor != 499 ||
		*items[1].Consumable || items[1].Available || items[2].Consumable != nil || !items[2].Available {
		t.Errorf("parsed %+v", items)
	}
	for _, tc := range []struct{ csv, want string }{
		{"", "no header"},
		{"id\nx\n", "unknown column"},
		{"consumable\ntrue\n", "no item_id column"},
		{"item_id,consumable\nx,maybe\n", "line 2: consumable"},
		{"item_id,price_minor\nx,1.5\n", "line 2: price_minor"},
		{"item_id,price_minor\nx,-1\n", "price_minor"},
		{"item_id\nx\nx\n", "listed twice"},
		{"item_id\n\"\"\n", "item_id"},
		{"item_id,currency\nx,USD\n", "currency without price_minor"},
	} {
		if _, err := ParseItemsCSV(strings.NewReader(tc.csv)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseItemsCSV(%q) = %v, want %q", tc.csv, err, tc.want)
		}
	}
}
