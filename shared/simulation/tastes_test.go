package simulation

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Giving a run items changes what players buy and nothing else: the same
// events at the same times, with only the item (and a purchase's price)
// chosen by taste, so every truth but the item mix is unchanged.
func TestItemsChangeOnlyWhatPlayersBuy(t *testing.T) {
	cfg := Config{Players: 300, Days: 5, End: time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC), Seed: 4, PayingShare: 0.3}
	plain := Generate(cfg)
	cfg.Items = 400
	tasted := Generate(cfg)
	if len(plain) != len(tasted) {
		t.Fatalf("%d events without items, %d with", len(plain), len(tasted))
	}
	changed := 0
	for i := range plain {
		a, b := plain[i], tasted[i]
		ad, bd := a.Data, b.Data
		a.Data, b.Data = nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("event %d differs beyond its data: %+v vs %+v", i, a, b)
		}
		for k := range ad {
			if reflect.DeepEqual(ad[k], bd[k]) {
				continue
			}
			switch {
			case k == "item_id" && (a.Type == events.TypePurchase || (a.Type == events.TypeResource && ad["flow"] == "sink")):
				changed++
			case k == "amount_minor" && a.Type == events.TypePurchase:
			default:
				t.Fatalf("event %d (%s): %s changed from %v to %v", i, a.Type, k, ad[k], bd[k])
			}
		}
	}
	if changed == 0 {
		t.Fatal("no item changed")
	}
	if again := Generate(cfg); !reflect.DeepEqual(again, tasted) {
		t.Error("the same seed gave other events")
	}
}

// A player's acquisitions concentrate in their taste clusters.
func TestPurchasesFollowTastes(t *testing.T) {
	c := NewCatalogue(1000, 8)
	inTaste, picks := 0, 0
	for p := range 200 {
		s := c.Shopper(p, p%8)
		for range 20 {
			it := s.Pick(p%2 == 0)
			if it.Blockbuster {
				continue
			}
			picks++
			if it.Cluster == s.primary || it.Cluster == s.secondary {
				inTaste++
			}
		}
	}
	if share := float64(inTaste) / float64(picks); share < 0.8 {
		t.Errorf("%.0f%% of picks in the player's two clusters, want ≥ 80%%", 100*share)
	}
	var csv strings.Builder
	if err := c.WriteCSV(&csv); err != nil || strings.Count(csv.String(), "\n") != 1001 {
		t.Errorf("catalogue CSV: %v, %d lines", err, strings.Count(csv.String(), "\n"))
	}
}
