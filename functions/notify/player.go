package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/singleflight"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
)

// FieldCondition tests one field of an event's data: {"field":
// "amount_minor", "op": "gte", "value": 1000}. Ops: eq, ne, gt, gte, lt,
// lte (numbers), in (a list). A dotted field reads into nested objects. A
// missing field fails every op but ne.
type FieldCondition struct {
	Field string          `json:"field"`
	Op    string          `json:"op"`
	Value json.RawMessage `json:"value"`
}

// PlayerRuleSpec is a player rule as an admin creates it: on an event type,
// when every condition holds, notify the destinations, once per player or
// every time.
type PlayerRuleSpec struct {
	Name          string           `json:"name"`
	Event         string           `json:"event"`
	Conditions    []FieldCondition `json:"conditions,omitempty"`
	OncePerPlayer bool             `json:"once_per_player"`
	Destinations  []string         `json:"destinations"`
}

var fieldOps = []string{"eq", "ne", "gt", "gte", "lt", "lte", "in"}

const maxConditions = 20

// normalize checks the rule without I/O; a short event type such as
// "purchase" becomes com.gamemetrics.purchase.
func (s *PlayerRuleSpec) normalize() problems {
	p := problems{}
	checkName(p, &s.Name)
	if !strings.Contains(s.Event, ".") {
		s.Event = "com.gamemetrics." + s.Event
	}
	if _, ok := events.Catalogue()[s.Event]; !ok {
		p.add("event", "want an event type of the catalogue (%s), got %q", strings.Join(events.Types(), ", "), s.Event)
	}
	if len(s.Conditions) > maxConditions {
		p.add("conditions", "at most %d", maxConditions)
	}
	for i, c := range s.Conditions {
		f := fmt.Sprintf("conditions[%d]", i)
		if strings.TrimSpace(c.Field) == "" {
			p.add(f+".field", "required: a field of the event's data, such as amount_minor")
		}
		if !slices.Contains(fieldOps, c.Op) {
			p.add(f+".op", "want one of %s, got %q", strings.Join(fieldOps, ", "), c.Op)
			continue
		}
		v, err := decodeValue(c.Value)
		switch {
		case err != nil || v == nil:
			p.add(f+".value", "required: a JSON value to compare with")
		case c.Op == "in":
			if _, ok := v.([]any); !ok {
				p.add(f+".value", "in wants a list, such as [\"w1/l10\", \"w1/l11\"]")
			}
		case slices.Contains([]string{"gt", "gte", "lt", "lte"}, c.Op):
			if _, ok := v.(json.Number); !ok {
				p.add(f+".value", "%s compares numbers, not %s", c.Op, c.Value)
			}
		default:
			if _, ok := v.([]any); ok {
				p.add(f+".value", "%s compares one value; use in for a list", c.Op)
			}
		}
	}
	checkDestinationIDs(p, s.Destinations)
	return p
}

func decodeValue(raw json.RawMessage) (any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// matches says whether data (decoded with json.Number) meets every
// condition.
func matches(conds []FieldCondition, data map[string]any) bool {
	for _, c := range conds {
		want, _ := decodeValue(c.Value)
		got, ok := lookup(data, c.Field)
		if !ok {
			if c.Op == "ne" {
				continue
			}
			return false
		}
		if !test(c.Op, got, want) {
			return false
		}
	}
	return true
}

func lookup(data map[string]any, field string) (any, bool) {
	var cur any = data
	for _, part := range strings.Split(field, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func test(op string, got, want any) bool {
	switch op {
	case "eq":
		return equal(got, want)
	case "ne":
		return !equal(got, want)
	case "in":
		list, _ := want.([]any)
		return slices.ContainsFunc(list, func(w any) bool { return equal(got, w) })
	}
	a, aok := rat(got)
	b, bok := rat(want)
	if !aok || !bok {
		return false
	}
	c := a.Cmp(b)
	switch op {
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	case "lte":
		return c <= 0
	}
	return false
}

// equal compares numbers by value (1 equals 1.0) and anything else exactly.
func equal(a, b any) bool {
	if x, ok := rat(a); ok {
		if y, ok := rat(b); ok {
			return x.Cmp(y) == 0
		}
		return false
	}
	switch av := a.(type) {
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case nil:
		return b == nil
	}
	return false
}

func rat(v any) (*big.Rat, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	return new(big.Rat).SetString(n.String())
}

// playerRule is a stored player rule.
type playerRule struct {
	id   string
	spec PlayerRuleSpec
}

// ruleCache keeps each game's player rules for a short time, so the
// KafkaSource's stream (every event of every game) costs a map lookup
// per event, not a query.
type ruleCache struct {
	ttl time.Duration
	now func() time.Time
	// loads makes concurrent misses of one game one query: the KafkaSource
	// delivers up to 100 events at once, often of one game.
	loads singleflight.Group

	mu      sync.Mutex
	entries map[string]ruleEntry
}

type ruleEntry struct {
	rules   []playerRule
	expires time.Time
}

func newRuleCache(ttl time.Duration, now func() time.Time) *ruleCache {
	return &ruleCache{ttl: ttl, now: now, entries: map[string]ruleEntry{}}
}

func (c *ruleCache) get(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, game string) ([]playerRule, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[game]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rules, nil
	}
	v, err, _ := c.loads.Do(game, func() (any, error) { return c.load(ctx, q, game, now) })
	if err != nil {
		return nil, err
	}
	return v.([]playerRule), nil
}

func (c *ruleCache) load(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, game string, now time.Time) ([]playerRule, error) {
	rows, err := q.Query(ctx, `SELECT id, spec, destinations FROM notify_player_rules WHERE gameid = $1 ORDER BY created_at, id`, game)
	if err != nil {
		return nil, err
	}
	rules, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (playerRule, error) {
		var (
			r     playerRule
			spec  []byte
			dests []string
		)
		if err := row.Scan(&r.id, &spec, &dests); err != nil {
			return r, err
		}
		if err := json.Unmarshal(spec, &r.spec); err != nil {
			return r, err
		}
		r.spec.Destinations = dests
		return r, nil
	})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.entries) > 10_000 {
		clear(c.entries)
	}
	c.entries[game] = ruleEntry{rules: rules, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return rules, nil
}

// forget drops a game's rules (this replica changed them).
func (c *ruleCache) forget(game string) {
	c.mu.Lock()
	delete(c.entries, game)
	c.mu.Unlock()
}

// playerData is the data of a player notification.
type playerData struct {
	Summary string          `json:"summary"`
	Game    string          `json:"game"`
	Rule    playerRuleFacts `json:"rule"`
	Player  string          `json:"player"`
	Event   json.RawMessage `json:"event"`
}

type playerRuleFacts struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	OncePerPlayer bool   `json:"once_per_player"`
}

// handlePlayerEvent runs the game's player rules on one accepted event. A
// match makes a notification keyed by rule and player (once_per_player)
// or rule, player and event id, so a redelivered event adds nothing.
func (n *Notify) handlePlayerEvent(ctx context.Context, e event.Event) error {
	game, _ := e.Extensions()["gameid"].(string)
	if game == "" {
		n.m.playerEvents.WithLabelValues("error").Inc()
		return serving.Reject(http.StatusBadRequest, "event %s has no gameid extension: notify reads the events ingest accepted", e.ID())
	}
	rules, err := n.rules.get(ctx, n.pool, game)
	if err != nil {
		n.m.playerEvents.WithLabelValues("error").Inc()
		return serving.Transient("read player rules", err)
	}
	var hits []playerRule
	for _, r := range rules {
		if r.spec.Event == e.Type() {
			hits = append(hits, r)
		}
	}
	if len(hits) == 0 {
		n.m.playerEvents.WithLabelValues(map[bool]string{true: "no_rules", false: "unmatched"}[len(rules) == 0]).Inc()
		return nil
	}
	data, err := decodeData(e.Data())
	if err != nil {
		n.m.playerEvents.WithLabelValues("error").Inc()
		return serving.Reject(http.StatusBadRequest, "event %s: data: %v", e.ID(), err)
	}
	player := e.Subject()
	raw, err := json.Marshal(e)
	if err != nil {
		return serving.Reject(http.StatusBadRequest, "event %s: %v", e.ID(), err)
	}
	now := n.now()
	var notes []notification
	for _, r := range hits {
		if !matches(r.spec.Conditions, data) {
			continue
		}
		key := "player:" + r.id + ":" + player
		if !r.spec.OncePerPlayer {
			key += ":" + e.ID()
		}
		id := newID("ntf_")
		d := playerData{Game: game, Rule: playerRuleFacts{ID: r.id, Name: r.spec.Name, OncePerPlayer: r.spec.OncePerPlayer}, Player: player, Event: raw,
			Summary: fmt.Sprintf("%s: player %s (%s at %s)", r.spec.Name, player, strings.TrimPrefix(e.Type(), "com.gamemetrics."), e.Time().UTC().Format(time.RFC3339))}
		notes = append(notes, notification{id: id, game: game, key: key, typ: TypePlayer, ruleID: r.id, kind: "player", dests: r.spec.Destinations,
			event: cloudEvent(id, TypePlayer, "/gamemetrics/games/"+game+"/player-rules/"+r.id, player, game, now, d)})
	}
	if len(notes) == 0 {
		n.m.playerEvents.WithLabelValues("unmatched").Inc()
		return nil
	}
	var created []notification
	err = pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		var err error
		created, err = n.insertNotifications(ctx, tx, notes, now)
		return err
	})
	if err != nil {
		n.m.playerEvents.WithLabelValues("error").Inc()
		return serving.Transient("record player notifications", err)
	}
	n.m.playerEvents.WithLabelValues("matched").Inc()
	n.countNotifications(notes, created)
	if len(created) > 0 {
		n.kick()
	}
	return nil
}

func decodeData(b []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}
