package recommend

import (
	"bytes"
	"strings"
	"testing"
)

// Items files and bodies come from studios: any input must give items
// that pass Valid, or an error, never a panic.
func FuzzParseItems(f *testing.F) {
	f.Add([]byte("item_id,consumable,available,tags,price_minor,currency\ngems,true,true,a|b,99,USD\n"))
	f.Add([]byte("item_id\n\"unterminated\n"))
	f.Add([]byte(`[{"item_id":"x","consumable":null,"tags":["a"],"price_minor":5,"currency":"USD"}]`))
	f.Add([]byte(`[{"item_id":""}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, parse := range []func([]byte) ([]Item, error){
			func(b []byte) ([]Item, error) { return ParseItemsCSV(bytes.NewReader(b)) },
			ParseItemsJSON,
		} {
			items, err := parse(b)
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			for _, it := range items {
				if err := it.Valid(); err != nil {
					t.Fatalf("accepted an invalid item: %v", err)
				}
				if seen[it.ID] {
					t.Fatalf("accepted %s twice", it.ID)
				}
				seen[it.ID] = true
			}
		}
	})
}

// Settings documents come from admins; recommendation requests from any
// in-cluster caller.
func FuzzParseSettingsAndRequests(f *testing.F) {
	f.Add([]byte(`{"purchase_weight":2,"design_prefixes":["shop:view:"],"min_history":2}`))
	f.Add([]byte(`{"player":"p-1","limit":5}`))
	f.Add([]byte(`{"half_life_days":1e309}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := ParseSettings(b); err == nil {
			if err := s.Valid(); err != nil {
				t.Fatalf("accepted invalid settings: %v", err)
			}
			for _, p := range s.DesignPrefixes {
				if item, ok := s.DesignItem(p + "x"); !ok || !strings.HasSuffix(item, "x") {
					t.Fatalf("prefix %q does not map", p)
				}
			}
		}
		if req, err := parseRequested(b); err == nil && (req.Limit < 1 || req.Limit > maxLimit || validPlayer(req.Player) != nil) {
			t.Fatalf("accepted request %+v", req)
		}
	})
}

// Models are read from S3 by every replica: a damaged object must be an
// error, never a panic or an allocation beyond its own size.
func FuzzDecodeModel(f *testing.F) {
	for _, kind := range []string{KindEASE, KindALS, KindKNN} {
		var buf bytes.Buffer
		m := testModel(f, kind)
		m.Encode(&buf)
		f.Add(buf.Bytes())
	}
	f.Add([]byte(modelMagic + "\x02\x00\x00\x00{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeModel(b)
		if err != nil {
			return
		}
		v := newView(m, nil)
		hist := []History{}
		for i, id := range m.Items {
			if i < 3 {
				hist = append(hist, History{Item: id, Weight: 1, Acquired: true})
			}
		}
		v.recommend(hist, Segment{Platform: "ios"}, 5, 1, &scratch{})
		for i := range m.Items {
			v.similar(int32(i), 5)
		}
	})
}
