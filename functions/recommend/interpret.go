package recommend

import (
	"encoding/json"
	"fmt"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Effect is what one event means to recommend: an interaction with an
// item, a player's segment, or nothing.
type Effect struct {
	Item     string
	Counters Counters
	// AmountMinor is the purchase's amount (an integer, kept exact).
	AmountMinor int64
	Segment     *Segment
}

// Relevant reports whether the event changes anything recommend keeps.
func (e Effect) Relevant() bool { return e.Item != "" || e.Segment != nil }

// Interpret reads an event of the catalogue (already validated) for what
// recommend keeps: purchases (weight grows with amount_minor), resource
// sinks naming an item, design events the game's settings map to items,
// and the platform and country of session starts.
func Interpret(typ string, data []byte, s Settings) (Effect, error) {
	switch typ {
	case events.TypePurchase:
		var d struct {
			Item   string `json:"item_id"`
			Amount int64  `json:"amount_minor"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return Effect{}, fmt.Errorf("purchase data: %v", err)
		}
		return Effect{Item: d.Item, Counters: Counters{Purchases: 1, AmountMinor: float64(d.Amount)}, AmountMinor: d.Amount}, nil
	case events.TypeResource:
		var d struct {
			Flow string `json:"flow"`
			Item string `json:"item_id"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return Effect{}, fmt.Errorf("resource data: %v", err)
		}
		if d.Flow != "sink" || d.Item == "" {
			return Effect{}, nil
		}
		return Effect{Item: d.Item, Counters: Counters{Sinks: 1}}, nil
	case events.TypeDesign:
		if len(s.DesignPrefixes) == 0 {
			return Effect{}, nil
		}
		var d struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return Effect{}, fmt.Errorf("design data: %v", err)
		}
		if item, ok := s.DesignItem(d.Event); ok && len(item) <= maxIDLen {
			return Effect{Item: item, Counters: Counters{Views: 1}}, nil
		}
		return Effect{}, nil
	case events.TypeSessionStart:
		var d struct {
			Platform string `json:"platform"`
			Country  string `json:"country"`
		}
		if err := json.Unmarshal(data, &d); err != nil {
			return Effect{}, fmt.Errorf("session.start data: %v", err)
		}
		return Effect{Segment: &Segment{Platform: d.Platform, Country: d.Country}}, nil
	}
	return Effect{}, nil
}
