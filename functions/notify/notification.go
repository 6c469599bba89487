package notify

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
)

// notification is one message to send to some destinations, with the key
// that makes it one.
type notification struct {
	id, game, key, typ, ruleID string
	kind                       string // firing, resolved, renotify, player, test (metrics)
	event                      []byte // the structured CloudEvent
	dests                      []string
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID is prefix and 128 random bits: no dots, so it is a valid
// Standard Webhooks message id.
func newID(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + idEncoding.EncodeToString(b)
}

// windowFacts names a window in a notification.
type windowFacts struct {
	Label string    `json:"label"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

func factsOf(p metrics.Period, loc *time.Location) windowFacts {
	return windowFacts{Label: p.Label, Start: p.Begin(loc).UTC(), End: p.End(loc).UTC()}
}

// alertData is the data of an alert notification.
type alertData struct {
	Summary   string         `json:"summary"`
	Game      gameFacts      `json:"game"`
	Alert     alertFacts     `json:"alert"`
	State     string         `json:"state"`
	Renotify  bool           `json:"renotify,omitempty"`
	Window    windowFacts    `json:"window"`
	Value     float64        `json:"value"`
	Threshold *float64       `json:"threshold,omitempty"`
	Volume    *float64       `json:"volume,omitempty"`
	Reference *reference     `json:"reference,omitempty"`
	Baseline  *baselineFacts `json:"baseline,omitempty"`
	FiredAt   *time.Time     `json:"fired_at,omitempty"`
	Dashboard string         `json:"dashboard,omitempty"`
}

type gameFacts struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type alertFacts struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Metric    string    `json:"metric"`
	Currency  string    `json:"currency,omitempty"`
	Severity  string    `json:"severity,omitempty"`
	Window    string    `json:"window"`
	Condition Condition `json:"condition"`
}

// cloudEvent encodes data as a structured CloudEvent.
func cloudEvent(id, typ, source, subject, game string, at time.Time, data any) []byte {
	e := event.New()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource(source)
	if subject != "" {
		e.SetSubject(subject)
	}
	e.SetTime(at.UTC())
	e.SetExtension("gameid", game)
	if err := e.SetData(event.ApplicationJSON, data); err != nil {
		panic(fmt.Sprintf("notify: encode %s: %v", typ, err)) // our own types always encode
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(fmt.Sprintf("notify: encode %s: %v", typ, err))
	}
	return b
}

// alertNotification is the notification of a rule's transition at win.
func (n *Notify) alertNotification(p *plannedRule, win metrics.Period, tr transition, j judgement, prev, st ruleState, now time.Time) notification {
	end := win.End(p.loc)
	d := alertData{
		Game:      gameFacts{ID: p.game, Name: p.gameName},
		Alert:     alertFacts{ID: p.id, Name: p.spec.Name, Metric: p.spec.Metric, Currency: p.spec.Currency, Severity: p.spec.Severity, Window: p.spec.Window, Condition: p.spec.Condition},
		State:     stateFiring,
		Renotify:  tr == renotify,
		Window:    factsOf(win, p.loc),
		Value:     j.value,
		Volume:    j.volume,
		Reference: j.reference,
		Baseline:  j.baseline,
		Dashboard: n.dashboardLink(p.game),
	}
	if c := p.spec.Condition; c.Type == condAbove || c.Type == condBelow {
		d.Threshold = c.Value
	}
	typ := TypeAlertFiring
	if tr == toResolved {
		typ, d.State = TypeAlertResolved, stateResolved
		if !prev.FiredAt.IsZero() {
			f := prev.FiredAt.UTC()
			d.FiredAt = &f
		}
	}
	d.Summary = summary(d)
	id := newID("ntf_")
	return notification{
		id: id, game: p.game, typ: typ, ruleID: p.id, kind: string(tr), dests: p.dests,
		key:   fmt.Sprintf("alert:%s:%d:%s", p.id, end.Unix(), tr),
		event: cloudEvent(id, typ, "/gamemetrics/games/"+p.game+"/alerts/"+p.id, p.id, p.game, now, d),
	}
}

func (n *Notify) dashboardLink(game string) string {
	if n.cfg.DashboardURL == "" {
		return ""
	}
	return strings.TrimRight(n.cfg.DashboardURL, "/") + "/?game=" + game
}

// summary is one line a person reads first.
func summary(d alertData) string {
	a := d.Alert
	metric := a.Metric
	if a.Currency != "" {
		metric += " " + a.Currency
	}
	if a.Severity != "" {
		metric += " (" + a.Severity + ")"
	}
	what := fmt.Sprintf("%s over %s %s is %s", metric, a.Window, d.Window.Label, num(d.Value))
	var why string
	switch a.Condition.Type {
	case condAbove, condBelow:
		why = fmt.Sprintf("%s %s", a.Condition.Type, num(*a.Condition.Value))
	case condChange:
		if r := d.Reference; r != nil {
			pct := "from 0"
			if r.ChangePercent != nil {
				pct = fmt.Sprintf("%+.1f%%", *r.ChangePercent)
			}
			why = fmt.Sprintf("%s against %s (%s, %s)", pct, strings.ReplaceAll(a.Condition.Against, "_", " "), r.Window.Label, num(r.Value))
		}
	case condAnomaly:
		if b := d.Baseline; b != nil {
			why = fmt.Sprintf("score %+.1f against a baseline of %s ± %s (%s, %d windows)", b.Score, num(b.Median), num(b.Spread), b.Kind, b.Windows)
		}
	}
	switch {
	case d.State == stateResolved:
		return fmt.Sprintf("Resolved: %s on %s: %s; %s", a.Name, d.Game.Name, what, why)
	case d.Renotify:
		return fmt.Sprintf("Still firing: %s on %s: %s; %s", a.Name, d.Game.Name, what, why)
	}
	return fmt.Sprintf("Firing: %s on %s: %s; %s", a.Name, d.Game.Name, what, why)
}

func num(x float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", x), "0"), ".")
}

// insertNotifications records notes and the deliveries of those whose key
// is new, in tx, and returns the new ones. A key that exists already (a
// duplicated tick, a redelivered event) adds nothing.
func (n *Notify) insertNotifications(ctx context.Context, tx pgx.Tx, notes []notification, now time.Time) ([]notification, error) {
	if len(notes) == 0 {
		return nil, nil
	}
	ids, games, keys, types, rules, evs := make([]string, len(notes)), make([]string, len(notes)), make([]string, len(notes)),
		make([]string, len(notes)), make([]string, len(notes)), make([]string, len(notes))
	byID := make(map[string]notification, len(notes))
	for i, nt := range notes {
		ids[i], games[i], keys[i], types[i], rules[i], evs[i] = nt.id, nt.game, nt.key, nt.typ, nt.ruleID, string(nt.event)
		byID[nt.id] = nt
	}
	rows, err := tx.Query(ctx, `INSERT INTO notify_notifications (id, gameid, key, type, rule_id, event, created_at)
		SELECT x.id, x.g, x.k, x.t, x.r, x.e::jsonb, $7 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(id, g, k, t, r, e)
		ON CONFLICT (gameid, key) DO NOTHING RETURNING id`, ids, games, keys, types, rules, evs, now)
	if err != nil {
		return nil, fmt.Errorf("insert notifications: %w", err)
	}
	newIDs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("insert notifications: %w", err)
	}
	var (
		created             []notification
		dNote, dDest, dGame []string
	)
	for _, id := range newIDs {
		nt := byID[id]
		created = append(created, nt)
		for _, d := range nt.dests {
			dNote, dDest, dGame = append(dNote, id), append(dDest, d), append(dGame, nt.game)
		}
	}
	if len(dNote) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO notify_deliveries (notification_id, destination_id, gameid, due_at)
			SELECT x.n, d.id, d.gameid, $4 FROM unnest($1::text[], $2::text[], $3::text[]) AS x(n, d, g)
			JOIN notify_destinations d ON d.id = x.d AND d.gameid = x.g AND d.disabled_at IS NULL
			ON CONFLICT DO NOTHING`, dNote, dDest, dGame, now); err != nil {
			return nil, fmt.Errorf("insert deliveries: %w", err)
		}
	}
	return created, nil
}

// countNotifications counts created and duplicate notifications by kind.
func (n *Notify) countNotifications(notes, created []notification) {
	isNew := make(map[string]bool, len(created))
	for _, c := range created {
		isNew[c.id] = true
	}
	for _, nt := range notes {
		state := "duplicate"
		if isNew[nt.id] {
			state = "created"
		}
		n.m.notifications.WithLabelValues(nt.kind, state).Inc()
	}
}
