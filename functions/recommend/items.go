package recommend

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Item is one entry of a game's catalogue. recommend only reads prices:
// it never changes one.
type Item struct {
	ID string `json:"item_id"`
	// Consumable items can be bought again (gems, energy); a non-consumable
	// the player owns (a skin, a level pack) is never recommended to them.
	// nil means unknown (an item only seen in events): recommend then treats
	// it as consumable only if some player acquired it more than once.
	Consumable *bool `json:"consumable"`
	// Available is false for items that cannot be bought now; they are
	// never recommended.
	Available  bool     `json:"available"`
	Tags       []string `json:"tags"`
	PriceMinor *int64   `json:"price_minor,omitempty"`
	Currency   string   `json:"currency,omitempty"`
	// FromCatalogue says an admin set the item (false: only seen in events).
	FromCatalogue bool `json:"from_catalogue"`
}

// Catalogue limits, part of the API.
const (
	MaxItemsPerRequest = 10_000
	maxTags            = 20
	maxTagLen          = 64
	maxIDLen           = 256
)

// Valid checks an item, naming the bad field.
func (it Item) Valid() error {
	if it.ID == "" || len(it.ID) > maxIDLen || !utf8.ValidString(it.ID) {
		return fmt.Errorf("item_id: want 1–%d characters, got %q", maxIDLen, clip(it.ID))
	}
	if len(it.Tags) > maxTags {
		return fmt.Errorf("item %s: tags: at most %d, got %d", it.ID, maxTags, len(it.Tags))
	}
	for _, t := range it.Tags {
		if t == "" || len(t) > maxTagLen || !utf8.ValidString(t) {
			return fmt.Errorf("item %s: tags: each tag must be 1–%d characters, got %q", it.ID, maxTagLen, clip(t))
		}
	}
	if it.PriceMinor != nil && *it.PriceMinor < 0 {
		return fmt.Errorf("item %s: price_minor: want 0 or more, got %d", it.ID, *it.PriceMinor)
	}
	if len(it.Currency) > 64 || !utf8.ValidString(it.Currency) {
		return fmt.Errorf("item %s: currency: want at most 64 characters", it.ID)
	}
	if it.Currency != "" && it.PriceMinor == nil {
		return fmt.Errorf("item %s: currency without price_minor", it.ID)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ParseItemsJSON reads a JSON array of items ("available" defaults to
// true), checking each and refusing duplicate ids.
func ParseItemsJSON(b []byte) ([]Item, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("items: want a JSON array of items: %v", err)
	}
	items := make([]Item, 0, len(raw))
	for i, r := range raw {
		it := Item{Available: true}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&it); err != nil {
			return nil, fmt.Errorf("items[%d]: %v", i, err)
		}
		it.FromCatalogue = true
		items = append(items, it)
	}
	return checkItems(items)
}

// CSV columns of an items file; item_id is required, the others optional.
var csvColumns = []string{"item_id", "consumable", "available", "tags", "price_minor", "currency"}

// ParseItemsCSV reads an items file: a header row naming the columns
// (item_id, consumable, available, tags, price_minor, currency; any order,
// only item_id required), then one item per row. Booleans are
// true/false/yes/no/1/0, tags are separated by "|", an empty cell keeps the
// default (consumable unknown, available true, no price).
func ParseItemsCSV(r io.Reader) ([]Item, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("items CSV: no header row: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		known := false
		for _, c := range csvColumns {
			known = known || c == h
		}
		if !known {
			return nil, fmt.Errorf("items CSV: unknown column %q (want %s)", h, strings.Join(csvColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("items CSV: column %q twice", h)
		}
		col[h] = i
	}
	if _, ok := col["item_id"]; !ok {
		return nil, errors.New("items CSV: the header has no item_id column")
	}
	var items []Item
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("items CSV: %v", err)
		}
		cell := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		it := Item{ID: cell("item_id"), Available: true, FromCatalogue: true}
		if v := cell("consumable"); v != "" {
			b, err := parseBool(v)
			if err != nil {
				return nil, fmt.Errorf("items CSV line %d: consumable: %v", line, err)
			}
			it.Consumable = &b
		}
		if v := cell("available"); v != "" {
			if it.Available, err = parseBool(v); err != nil {
				return nil, fmt.Errorf("items CSV line %d: available: %v", line, err)
			}
		}
		if v := cell("tags"); v != "" {
			for _, t := range strings.Split(v, "|") {
				if t = strings.TrimSpace(t); t != "" {
					it.Tags = append(it.Tags, t)
				}
			}
		}
		if v := cell("price_minor"); v != "" {
			p, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("items CSV line %d: price_minor: want an integer, got %q", line, clip(v))
			}
			it.PriceMinor = &p
		}
		it.Currency = cell("currency")
		if err := it.Valid(); err != nil {
			return nil, fmt.Errorf("items CSV line %d: %v", line, err)
		}
		items = append(items, it)
	}
	return checkItems(items)
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "yes", "1", "y":
		return true, nil
	case "false", "no", "0", "n":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", clip(v))
}

func checkItems(items []Item) ([]Item, error) {
	if len(items) > MaxItemsPerRequest {
		return nil, fmt.Errorf("items: at most %d per request, got %d", MaxItemsPerRequest, len(items))
	}
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		if err := it.Valid(); err != nil {
			return nil, err
		}
		if seen[it.ID] {
			return nil, fmt.Errorf("item %s: listed twice", it.ID)
		}
		seen[it.ID] = true
		if it.Tags == nil {
			items[i].Tags = []string{}
		}
	}
	return items, nil
}
