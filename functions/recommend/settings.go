package recommend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// Settings are a game's recommendation settings (PUT
// /v1/games/{game}/recommend/settings with the admin key). Unset fields
// keep their defaults.
type Settings struct {
	// PurchaseWeight is what each purchase of an item counts.
	PurchaseWeight float64 `json:"purchase_weight"`
	// AmountWeight adds AmountWeight·ln(1 + amount_minor/100) for the
	// money spent on the item, so the weight grows with what was paid,
	// slower than linearly (amount_minor is summed over currencies).
	AmountWeight float64 `json:"amount_weight"`
	// SinkWeight is what each resource sink (virtual currency spent) naming
	// the item counts.
	SinkWeight float64 `json:"sink_weight"`
	// DesignWeight is what each design event mapped to the item counts.
	DesignWeight float64 `json:"design_weight"`
	// DesignPrefixes map design events to items: a design event
	// "<prefix><item_id>" (e.g. "shop:view:" + "sword_1") is an interaction
	// with item_id. Empty: design events are ignored.
	DesignPrefixes []string `json:"design_prefixes"`
	// MinHistory is the fewest items a player must have interacted with to
	// get personal recommendations; below it they get their segment's
	// popular items (fallback: true).
	MinHistory int `json:"min_history"`
	// HalfLifeDays is the popularity baseline's time decay: an interaction
	// that many days old counts half.
	HalfLifeDays float64 `json:"half_life_days"`
}

// DefaultSettings are what a game has until an admin changes them.
func DefaultSettings() Settings {
	return Settings{PurchaseWeight: 1, AmountWeight: 0.5, SinkWeight: 0.5, DesignWeight: 0.1, MinHistory: 1, HalfLifeDays: 14}
}

// Limits of the settings.
const (
	maxDesignPrefixes = 20
	maxWeight         = 1000
)

// ParseSettings reads a settings document over the defaults, refusing
// unknown fields and out-of-range values with a reason naming the field.
func ParseSettings(b []byte) (Settings, error) {
	s := DefaultSettings()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("settings: %v", err)
	}
	if dec.More() {
		return s, fmt.Errorf("settings: one JSON object expected")
	}
	return s, s.Valid()
}

// Valid checks every field, naming the first bad one.
func (s Settings) Valid() error {
	for _, w := range []struct {
		name string
		v    float64
	}{{"purchase_weight", s.PurchaseWeight}, {"amount_weight", s.AmountWeight}, {"sink_weight", s.SinkWeight}, {"design_weight", s.DesignWeight}} {
		if math.IsNaN(w.v) || w.v < 0 || w.v > maxWeight {
			return fmt.Errorf("%s: want a number from 0 to %d, got %v", w.name, maxWeight, w.v)
		}
	}
	if len(s.DesignPrefixes) > maxDesignPrefixes {
		return fmt.Errorf("design_prefixes: at most %d, got %d", maxDesignPrefixes, len(s.DesignPrefixes))
	}
	for _, p := range s.DesignPrefixes {
		if p == "" || len(p) > 256 {
			return fmt.Errorf("design_prefixes: each prefix must be 1–256 characters, got %q", p)
		}
	}
	if s.MinHistory < 1 || s.MinHistory > 100 {
		return fmt.Errorf("min_history: want 1–100, got %d", s.MinHistory)
	}
	if math.IsNaN(s.HalfLifeDays) || s.HalfLifeDays < 0.1 || s.HalfLifeDays > 3650 {
		return fmt.Errorf("half_life_days: want 0.1–3650, got %v", s.HalfLifeDays)
	}
	return nil
}

// Counters are one stored (player, item) interaction row.
type Counters struct {
	Purchases   int64
	AmountMinor float64
	Sinks       int64
	Views       int64
}

// Weight is how much the player's interactions with the item count.
func (s Settings) Weight(c Counters) float64 {
	return s.PurchaseWeight*float64(c.Purchases) + s.AmountWeight*math.Log1p(max(0, c.AmountMinor)/100) +
		s.SinkWeight*float64(c.Sinks) + s.DesignWeight*float64(c.Views)
}

// Acquired reports whether the player bought the item (with money or
// virtual currency), as opposed to only looking at it.
func (c Counters) Acquired() bool { return c.Purchases > 0 || c.Sinks > 0 }

// Input is the model input of a weight: logarithmic, so a whale's hundredth
// purchase of gems does not drown everything else they did.
func Input(w float64) float32 {
	if w <= 0 {
		return 0
	}
	return float32(math.Log1p(w))
}

// DesignItem maps a design event to the item it names, if a prefix matches.
func (s Settings) DesignItem(event string) (string, bool) {
	for _, p := range s.DesignPrefixes {
		if item, ok := strings.CutPrefix(event, p); ok && item != "" {
			return item, true
		}
	}
	return "", false
}
