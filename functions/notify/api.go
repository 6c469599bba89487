package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// routes lists every route notify serves.
func (n *Notify) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /{$}", serving.CloudEventHandler(n.Handle, n.log))
	mux.Handle("GET /v1/game", n.api(func(_ context.Context, _ *http.Request, g store.Game) (int, any, error) {
		return http.StatusOK, gameFacts{ID: g.ID, Name: g.Name}, nil
	}))
	mux.Handle("POST /v1/games/{game}/destinations", n.api(n.createDestination))
	mux.Handle("GET /v1/games/{game}/destinations", n.api(listOf(n, "destinations", `SELECT `+destinationColumns+` FROM notify_destinations WHERE gameid = $1 ORDER BY created_at, id`, scanDestination)))
	mux.Handle("GET /v1/games/{game}/destinations/{id}", n.api(getOf(n.destination)))
	mux.Handle("DELETE /v1/games/{game}/destinations/{id}", n.api(n.deleteDestination))
	mux.Handle("POST /v1/games/{game}/destinations/{id}/test", n.api(n.testDestination))
	mux.Handle("POST /v1/games/{game}/alerts", n.api(n.createAlert))
	mux.Handle("GET /v1/games/{game}/alerts", n.api(listOf(n, "alerts", `SELECT `+alertColumns+` FROM notify_alerts WHERE gameid = $1 ORDER BY created_at, id`, scanAlert)))
	mux.Handle("GET /v1/games/{game}/alerts/{id}", n.api(getOf(n.alert)))
	mux.Handle("PATCH /v1/games/{game}/alerts/{id}", n.api(n.patchAlert))
	mux.Handle("DELETE /v1/games/{game}/alerts/{id}", n.api(n.deleteRule("notify_alerts", "alert")))
	mux.Handle("POST /v1/games/{game}/player-rules", n.api(n.createPlayerRule))
	mux.Handle("GET /v1/games/{game}/player-rules", n.api(listOf(n, "player_rules", `SELECT `+playerRuleColumns+` FROM notify_player_rules WHERE gameid = $1 ORDER BY created_at, id`, scanPlayerRule)))
	mux.Handle("GET /v1/games/{game}/player-rules/{id}", n.api(getOf(n.playerRule)))
	mux.Handle("DELETE /v1/games/{game}/player-rules/{id}", n.api(n.deleteRule("notify_player_rules", "player rule")))
	mux.Handle("GET /v1/games/{game}/notifications", n.api(n.listNotifications))
	mux.Handle("GET /v1/games/{game}/notifications/{id}", n.api(getOf(func(ctx context.Context, game, id string) (Notification, error) {
		return n.notification(ctx, game, id, true)
	})))
	mux.Handle("POST /v1/games/{game}/notifications/{id}/retry", n.api(n.retryNotification))
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		serving.WriteJSONError(w, http.StatusNotFound, "not found: notify serves /v1/games/{game}/destinations, alerts, player-rules and notifications")
	}))
	return mux
}

// apiError is a refusal: its status, the field it is about, and what is
// wrong; problems lists every bad field of a body.
type apiError struct {
	status   int
	field    string
	reason   string
	problems problems
}

func (e *apiError) Error() string { return e.reason }

func refuse(status int, field, format string, args ...any) *apiError {
	reason := fmt.Sprintf(format, args...)
	if field != "" {
		reason = field + ": " + reason
	}
	return &apiError{status: status, field: field, reason: reason}
}

func invalid(p problems) *apiError {
	f, r := p.first()
	e := refuse(http.StatusBadRequest, f, "%s", r)
	e.problems = p
	return e
}

var errNotFound = errors.New("not found")

// api wraps an admin endpoint: the admin key, the game check, errors.
func (n *Notify) api(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		game, err := n.authenticate(r.Context(), r.Header.Get("Authorization"))
		if id := r.PathValue("game"); err == nil && r.URL.Path != "/v1/game" && id != game.ID {
			err = refuse(http.StatusNotFound, "", "game not found") // never reveal whether another game exists
		}
		var status int
		var body any
		if err == nil {
			ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
			defer cancel()
			status, body, err = h(ctx, r, game)
		}
		var ae *apiError
		switch {
		case err == nil:
			if body == nil {
				w.WriteHeader(status)
				return
			}
			serving.WriteJSON(w, status, body)
		case errors.As(err, &ae):
			out := map[string]any{"error": ae.reason}
			if ae.field != "" {
				out["field"] = ae.field
			}
			if len(ae.problems) > 1 {
				out["problems"] = ae.problems
			}
			if ae.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gamemetrics notify"`)
			}
			serving.WriteJSON(w, ae.status, out)
		default:
			n.log.Error("notify API", "gameid", game.ID, "method", r.Method, "path", r.URL.Path, "err", err)
			serving.WriteJSONError(w, http.StatusServiceUnavailable, "cannot answer right now; retry later")
		}
	})
}

// authenticate maps "Bearer <admin key>" to its game; read and write
// keys are refused with 401 saying which key is needed.
func (n *Notify) authenticate(ctx context.Context, header string) (store.Game, error) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	key = strings.TrimSpace(key)
	switch {
	case !ok || key == "":
		return store.Game{}, refuse(http.StatusUnauthorized, "", "missing admin key: send Authorization: Bearer <admin key> (gma_…)")
	case strings.HasPrefix(key, store.ReadKeyPrefix):
		return store.Game{}, refuse(http.StatusUnauthorized, "", "a read key cannot manage notifications: use the game's admin key (gma_…)")
	case strings.HasPrefix(key, store.WriteKeyPrefix):
		return store.Game{}, refuse(http.StatusUnauthorized, "", "a write key cannot manage notifications: use the game's admin key (gma_…)")
	}
	game, err := n.keys.Game(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Game{}, refuse(http.StatusUnauthorized, "", "unknown admin key")
	}
	return game, err
}

// decode reads a JSON body strictly: an unknown field is named.
func decode(r *http.Request, v any) error {
	d := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute):
			return refuse(http.StatusBadRequest, ute.Field, "want a %s, got a JSON %s", ute.Type, ute.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return refuse(http.StatusBadRequest, f, "unknown field")
		}
		return refuse(http.StatusBadRequest, "", "the body is not the JSON object expected: %v", err)
	}
	return nil
}

// ---- destinations ----

// DestinationRequest creates a destination.
type DestinationRequest struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	URL      string `json:"url,omitempty"`
	TopicARN string `json:"topic_arn,omitempty"`
}

// Destination is a destination as the API shows it. Secret is shown once,
// in the answer to its creation.
type Destination struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Kind           string     `json:"kind"`
	URL            string     `json:"url,omitempty"`
	TopicARN       string     `json:"topic_arn,omitempty"`
	Secret         string     `json:"secret,omitempty"`
	DisabledAt     *time.Time `json:"disabled_at,omitempty"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
}

func (n *Notify) createDestination(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	var req DestinationRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	p := problems{}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		p.add("name", "required")
	}
	var target, secret string
	switch req.Kind {
	case kindWebhook, kindSlack:
		if err := checkURL(req.URL, n.cfg.AllowPrivate); err != nil {
			p.add("url", "%v", err)
		}
		if req.TopicARN != "" {
			p.add("topic_arn", "applies to sns destinations only")
		}
		target = req.URL
		if req.Kind == kindWebhook {
			secret = newSigningSecret()
		}
	case kindSNS:
		if err := checkARN(req.TopicARN); err != nil {
			p.add("topic_arn", "%v", err)
		}
		if req.URL != "" {
			p.add("url", "applies to webhook and slack destinations only")
		}
		target = req.TopicARN
	default:
		p.add("kind", "want webhook, slack or sns, got %q", req.Kind)
	}
	if len(p) > 0 {
		return 0, nil, invalid(p)
	}
	id := newID("dst_")
	var created time.Time
	err := n.pool.QueryRow(ctx, `INSERT INTO notify_destinations (id, gameid, name, kind, target, secret, created_at)
		VALUES ($1, $2, $3, $4, $5, nullif($6, ''), $7) RETURNING created_at`, id, game.ID, req.Name, req.Kind, target, secret, n.now()).Scan(&created)
	if err != nil {
		return 0, nil, err
	}
	d := Destination{ID: id, Name: req.Name, Kind: req.Kind, Secret: secret, CreatedAt: created}
	d.setTarget(target, false)
	return http.StatusCreated, d, nil
}

// setTarget shows the target: a Slack URL is itself a secret, so only its
// host and last characters are shown after creation.
func (d *Destination) setTarget(target string, mask bool) {
	switch d.Kind {
	case kindSNS:
		d.TopicARN = target
	case kindSlack:
		if mask && len(target) > 12 {
			if i := strings.Index(target[8:], "/"); i > 0 {
				target = target[:8+i] + "/…" + target[len(target)-4:]
			}
		}
		d.URL = target
	default:
		d.URL = target
	}
}

const destinationColumns = `id, name, kind, target, disabled_at, coalesce(disabled_reason, ''), created_at`

func scanDestination(row pgx.CollectableRow) (Destination, error) {
	var (
		d      Destination
		target string
	)
	err := row.Scan(&d.ID, &d.Name, &d.Kind, &target, &d.DisabledAt, &d.DisabledReason, &d.CreatedAt)
	d.setTarget(target, true)
	return d, err
}

func (n *Notify) destination(ctx context.Context, game, id string) (Destination, error) {
	return queryOne(ctx, n, "destination", id, `SELECT `+destinationColumns+` FROM notify_destinations WHERE gameid = $1 AND id = $2`, scanDestination, game, id)
}

// deleteDestination removes a destination, from every rule that names it
// too, and its pending deliveries, in one transaction.
func (n *Notify) deleteDestination(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	id := r.PathValue("id")
	var alerts, prules []string
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM notify_destinations WHERE gameid = $1 AND id = $2`, game.ID, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return refuse(http.StatusNotFound, "", "destination %s not found", id)
		}
		rows, err := tx.Query(ctx, `UPDATE notify_alerts SET destinations = array_remove(destinations, $2)
			WHERE gameid = $1 AND $2 = ANY(destinations) RETURNING id`, game.ID, id)
		if err != nil {
			return err
		}
		if alerts, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `UPDATE notify_player_rules SET destinations = array_remove(destinations, $2)
			WHERE gameid = $1 AND $2 = ANY(destinations) RETURNING id`, game.ID, id)
		if err != nil {
			return err
		}
		prules, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	n.rules.forget(game.ID)
	return http.StatusOK, map[string]any{"deleted": id, "removed_from": map[string][]string{"alerts": nonNil(alerts), "player_rules": nonNil(prules)}}, nil
}

// testDestination sends a test notification to one destination now and
// answers with how it went. A disabled destination is enabled again for
// the test (a 410 disables it again).
func (n *Notify) testDestination(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	d, err := n.destination(ctx, game.ID, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	now := n.now()
	id := newID("ntf_")
	data := map[string]any{"summary": fmt.Sprintf("Test notification from GameMetrics for %s (%s) to %s", game.Name, game.ID, d.Name),
		"game": gameFacts{ID: game.ID, Name: game.Name}, "destination": d.ID, "dashboard": n.dashboardLink(game.ID)}
	nt := notification{id: id, game: game.ID, key: "test:" + id, typ: TypeTest, ruleID: d.ID, kind: "test", dests: []string{d.ID},
		event: cloudEvent(id, TypeTest, "/gamemetrics/games/"+game.ID+"/destinations/"+d.ID, d.ID, game.ID, now, data)}
	err = pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE notify_destinations SET disabled_at = NULL, disabled_reason = NULL WHERE id = $1`, d.ID); err != nil {
			return err
		}
		created, err := n.insertNotifications(ctx, tx, []notification{nt}, now)
		n.countNotifications([]notification{nt}, created)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	n.kick()
	deadline := time.Now().Add(n.cfg.SendTimeout + 5*time.Second)
	for {
		nv, err := n.notification(ctx, game.ID, id, false)
		if err != nil {
			return 0, nil, err
		}
		if dl := nv.Deliveries; len(dl) == 1 && (dl[0].State != "pending" || dl[0].Attempts > 0 && time.Now().After(deadline)) || time.Now().After(deadline) {
			status := http.StatusOK
			if len(dl) == 1 && dl[0].State == "failed" {
				status = http.StatusBadGateway
			}
			return status, nv, nil
		}
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkDestinations refuses ids that are not destinations of the game,
// with 404 naming the field; the rows stay locked until tx ends, so none
// is deleted under a rule being created.
func checkDestinations(ctx context.Context, tx pgx.Tx, game string, ids []string) error {
	rows, err := tx.Query(ctx, `SELECT id FROM notify_destinations WHERE gameid = $1 AND id = ANY($2) FOR SHARE`, game, ids)
	if err != nil {
		return err
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !slices.Contains(found, id) {
			return refuse(http.StatusNotFound, "destinations", "%s is not a destination of this game (list them with GET /v1/games/%s/destinations)", id, game)
		}
	}
	return nil
}

// ---- alert rules ----

// Alert is an alert rule as the API shows it: its spec and its state.
type Alert struct {
	ID string `json:"id"`
	AlertSpec
	SnoozedUntil   *time.Time `json:"snoozed_until"`
	State          string     `json:"state"`
	FiredAt        *time.Time `json:"fired_at,omitempty"`
	LastValue      *float64   `json:"last_value"`
	LastError      string     `json:"last_error,omitempty"`
	EvaluatedUntil time.Time  `json:"evaluated_until"`
	NextEvaluation time.Time  `json:"next_evaluation"`
	CreatedAt      time.Time  `json:"created_at"`
}

func (n *Notify) createAlert(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	var spec AlertSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	if p := spec.normalize(); len(p) > 0 {
		return 0, nil, invalid(p)
	}
	now := n.now()
	w := spec.window()
	// The first window evaluated is the one open now.
	cur := w.periodOf(now, game.Location())
	id := newID("alr_")
	body, _ := json.Marshal(spec)
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		if err := checkDestinations(ctx, tx, game.ID, spec.Destinations); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO notify_alerts (id, gameid, name, spec, destinations, evaluated_until, next_eval_at, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`, id, game.ID, spec.Name, body, spec.Destinations,
			cur.Begin(game.Location()), cur.End(game.Location()).Add(n.cfg.EvaluationDelay), now)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	a, err := n.alert(ctx, game.ID, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, a, nil
}

const alertColumns = `id, spec, destinations, snoozed_until, state, fired_at, last_value, coalesce(last_error, ''), evaluated_until, next_eval_at, created_at`

func scanAlert(row pgx.CollectableRow) (Alert, error) {
	var (
		a    Alert
		spec []byte
	)
	if err := row.Scan(&a.ID, &spec, &a.Destinations, &a.SnoozedUntil, &a.State, &a.FiredAt, &a.LastValue, &a.LastError,
		&a.EvaluatedUntil, &a.NextEvaluation, &a.CreatedAt); err != nil {
		return a, err
	}
	dests := a.Destinations
	if err := json.Unmarshal(spec, &a.AlertSpec); err != nil {
		return a, err
	}
	a.Destinations = dests
	return a, nil
}

func (n *Notify) alert(ctx context.Context, game, id string) (Alert, error) {
	return queryOne(ctx, n, "alert", id, `SELECT `+alertColumns+` FROM notify_alerts WHERE gameid = $1 AND id = $2`, scanAlert, game, id)
}

// patchAlert changes what can change without a new rule: name,
// condition, for, keep_firing_for, min_volume, renotify, destinations and
// the snooze ("snooze": "2h", or "snoozed_until": an RFC 3339 time or
// null). The metric, its filters and the window are what the rule's state
// is about: a different one is a new rule.
func (n *Notify) patchAlert(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	var patch map[string]json.RawMessage
	if err := decode(r, &patch); err != nil {
		return 0, nil, err
	}
	for _, f := range []string{"metric", "currency", "severity", "window"} {
		if _, ok := patch[f]; ok {
			return 0, nil, refuse(http.StatusBadRequest, f, "cannot be changed: the rule's state is about its metric and window; create a new rule")
		}
	}
	id := r.PathValue("id")
	now := n.now()
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		var raw []byte
		var snoozed *time.Time
		if err := tx.QueryRow(ctx, `SELECT spec, snoozed_until FROM notify_alerts WHERE gameid = $1 AND id = $2 FOR UPDATE`, game.ID, id).Scan(&raw, &snoozed); errors.Is(err, pgx.ErrNoRows) {
			return refuse(http.StatusNotFound, "", "alert %s not found", id)
		} else if err != nil {
			return err
		}
		var spec AlertSpec
		if err := json.Unmarshal(raw, &spec); err != nil {
			return err
		}
		for k, v := range patch {
			var err error
			switch k {
			case "snooze":
				var s string
				var d time.Duration
				if err = json.Unmarshal(v, &s); err == nil {
					d, err = time.ParseDuration(s)
				}
				if err != nil || d <= 0 || d > 90*24*time.Hour {
					return refuse(http.StatusBadRequest, "snooze", "want a duration up to 2160h, such as 2h, got %s", v)
				}
				t := now.Add(d).UTC()
				snoozed = &t
			case "snoozed_until":
				if string(v) == "null" {
					snoozed = nil
					continue
				}
				var t time.Time
				if err = json.Unmarshal(v, &t); err != nil {
					return refuse(http.StatusBadRequest, "snoozed_until", "want an RFC 3339 time or null, got %s", v)
				}
				snoozed = &t
			case "name", "condition", "for", "keep_firing_for", "min_volume", "renotify", "destinations":
				one, _ := json.Marshal(map[string]json.RawMessage{k: v})
				d := json.NewDecoder(strings.NewReader(string(one)))
				d.DisallowUnknownFields()
				if k == "condition" {
					spec.Condition = Condition{}
				}
				if err = d.Decode(&spec); err != nil {
					return refuse(http.StatusBadRequest, k, "%v", err)
				}
			default:
				return refuse(http.StatusBadRequest, k, "unknown field")
			}
		}
		if p := spec.normalize(); len(p) > 0 {
			return invalid(p)
		}
		if err := checkDestinations(ctx, tx, game.ID, spec.Destinations); err != nil {
			return err
		}
		body, _ := json.Marshal(spec)
		_, err := tx.Exec(ctx, `UPDATE notify_alerts SET name = $3, spec = $4, destinations = $5, snoozed_until = $6, updated_at = $7
			WHERE gameid = $1 AND id = $2`, game.ID, id, spec.Name, body, spec.Destinations, snoozed, now)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	a, err := n.alert(ctx, game.ID, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a, nil
}

// ---- player rules ----

// PlayerRule is a player rule as the API shows it.
type PlayerRule struct {
	ID string `json:"id"`
	PlayerRuleSpec
	CreatedAt time.Time `json:"created_at"`
}

func (n *Notify) createPlayerRule(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	var spec PlayerRuleSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	if p := spec.normalize(); len(p) > 0 {
		return 0, nil, invalid(p)
	}
	id := newID("plr_")
	body, _ := json.Marshal(spec)
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		if err := checkDestinations(ctx, tx, game.ID, spec.Destinations); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO notify_player_rules (id, gameid, name, spec, destinations, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			id, game.ID, spec.Name, body, spec.Destinations, n.now())
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	n.rules.forget(game.ID)
	pr, err := n.playerRule(ctx, game.ID, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, pr, nil
}

func scanPlayerRule(row pgx.CollectableRow) (PlayerRule, error) {
	var (
		pr    PlayerRule
		spec  []byte
		dests []string
	)
	if err := row.Scan(&pr.ID, &spec, &dests, &pr.CreatedAt); err != nil {
		return pr, err
	}
	err := json.Unmarshal(spec, &pr.PlayerRuleSpec)
	pr.Destinations = dests
	return pr, err
}

const playerRuleColumns = `id, spec, destinations, created_at`

func (n *Notify) playerRule(ctx context.Context, game, id string) (PlayerRule, error) {
	return queryOne(ctx, n, "player rule", id, `SELECT `+playerRuleColumns+` FROM notify_player_rules WHERE gameid = $1 AND id = $2`, scanPlayerRule, game, id)
}

// ---- notifications ----

// Notification is a notification with its deliveries.
type Notification struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Key        string          `json:"key"`
	RuleID     string          `json:"rule_id,omitempty"`
	Summary    string          `json:"summary"`
	CreatedAt  time.Time       `json:"created_at"`
	Event      json.RawMessage `json:"event,omitempty"`
	Deliveries []DeliveryView  `json:"deliveries"`
}

// DeliveryView is one destination's delivery of a notification.
type DeliveryView struct {
	Destination string        `json:"destination"`
	Kind        string        `json:"kind"`
	State       string        `json:"state"`
	Attempts    int           `json:"attempts"`
	LastStatus  *int          `json:"last_status,omitempty"`
	LastError   string        `json:"last_error,omitempty"`
	DueAt       *time.Time    `json:"next_attempt_at,omitempty"`
	DeliveredAt *time.Time    `json:"delivered_at,omitempty"`
	History     []AttemptView `json:"history,omitempty"`
}

// AttemptView is one attempt.
type AttemptView struct {
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	Status     *int      `json:"status,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int       `json:"duration_ms"`
}

var stateParam = regexp.MustCompile(`^(pending|delivered|failed|)$`)

func (n *Notify) listNotifications(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	q := r.URL.Query()
	state := q.Get("state")
	if !stateParam.MatchString(state) {
		return 0, nil, refuse(http.StatusBadRequest, "state", "want pending, delivered or failed, got %q", state)
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > 1000 {
			return 0, nil, refuse(http.StatusBadRequest, "limit", "want 1 to 1000, got %q", v)
		}
		limit = l
	}
	rows, err := n.pool.Query(ctx, `SELECT n.id FROM notify_notifications n
		WHERE n.gameid = $1 AND ($2 = '' OR EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.notification_id = n.id AND d.state = $2))
		ORDER BY n.created_at DESC, n.id LIMIT $3`, game.ID, state, limit)
	if err != nil {
		return 0, nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, nil, err
	}
	out := make([]Notification, 0, len(ids))
	for _, id := range ids {
		nv, err := n.notification(ctx, game.ID, id, false)
		if err != nil {
			return 0, nil, err
		}
		out = append(out, nv)
	}
	return http.StatusOK, map[string]any{"notifications": out}, nil
}

// notification reads one notification, its deliveries and, with full, the
// event and every attempt.
func (n *Notify) notification(ctx context.Context, game, id string, full bool) (Notification, error) {
	var nv Notification
	var ev []byte
	err := n.pool.QueryRow(ctx, `SELECT id, type, key, coalesce(rule_id, ''), coalesce(event->'data'->>'summary', ''), created_at, event
		FROM notify_notifications WHERE gameid = $1 AND id = $2`, game, id).Scan(&nv.ID, &nv.Type, &nv.Key, &nv.RuleID, &nv.Summary, &nv.CreatedAt, &ev)
	if errors.Is(err, pgx.ErrNoRows) {
		return nv, refuse(http.StatusNotFound, "", "notification %s not found", id)
	}
	if err != nil {
		return nv, err
	}
	if full {
		nv.Event = ev
	}
	rows, err := n.pool.Query(ctx, `SELECT d.destination_id, t.kind, d.state, d.attempts, d.last_status, coalesce(d.last_error, ''),
		CASE WHEN d.state = 'pending' THEN d.due_at END, d.delivered_at
		FROM notify_deliveries d JOIN notify_destinations t ON t.id = d.destination_id
		WHERE d.notification_id = $1 ORDER BY d.destination_id`, id)
	if err != nil {
		return nv, err
	}
	nv.Deliveries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (DeliveryView, error) {
		var d DeliveryView
		var att int32
		err := row.Scan(&d.Destination, &d.Kind, &d.State, &att, &d.LastStatus, &d.LastError, &d.DueAt, &d.DeliveredAt)
		d.Attempts = int(att)
		return d, err
	})
	if err != nil || !full {
		return nv, err
	}
	for i := range nv.Deliveries {
		rows, err := n.pool.Query(ctx, `SELECT attempt, at, status, coalesce(error, ''), duration_ms FROM notify_attempts
			WHERE notification_id = $1 AND destination_id = $2 ORDER BY id`, id, nv.Deliveries[i].Destination)
		if err != nil {
			return nv, err
		}
		nv.Deliveries[i].History, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (AttemptView, error) {
			var a AttemptView
			var att, ms int32
			err := row.Scan(&att, &a.At, &a.Status, &a.Error, &ms)
			a.Attempt, a.DurationMS = int(att), int(ms)
			return a, err
		})
		if err != nil {
			return nv, err
		}
	}
	return nv, nil
}

// retryNotification makes a notification's failed deliveries due again,
// with a fresh set of attempts (to a destination that is not disabled).
func (n *Notify) retryNotification(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
	id := r.PathValue("id")
	if _, err := n.notification(ctx, game.ID, id, false); err != nil {
		return 0, nil, err
	}
	tag, err := n.pool.Exec(ctx, `UPDATE notify_deliveries d SET state = 'pending', attempts = 0, due_at = $3, last_error = NULL
		FROM notify_destinations t
		WHERE d.gameid = $1 AND d.notification_id = $2 AND d.state = 'failed' AND t.id = d.destination_id AND t.disabled_at IS NULL`,
		game.ID, id, n.now())
	if err != nil {
		return 0, nil, err
	}
	if tag.RowsAffected() == 0 {
		return 0, nil, refuse(http.StatusConflict, "", "notification %s has no failed delivery to a working destination (a disabled one is enabled again by `destinations test`)", id)
	}
	n.kick()
	nv, err := n.notification(ctx, game.ID, id, false)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"retried": tag.RowsAffected(), "notification": nv}, nil
}

// handler is an admin endpoint inside api.
type handler func(ctx context.Context, r *http.Request, game store.Game) (int, any, error)

// queryOne reads the one row sql finds, or a 404 naming what and id.
func queryOne[T any](ctx context.Context, n *Notify, what, id, sql string, scan pgx.RowToFunc[T], args ...any) (T, error) {
	rows, err := n.pool.Query(ctx, sql, args...)
	if err != nil {
		var zero T
		return zero, err
	}
	v, err := pgx.CollectExactlyOneRow(rows, scan)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, refuse(http.StatusNotFound, "", "%s %s not found", what, id)
	}
	return v, err
}

// listOf answers {key: [every row sql finds for the game]}.
func listOf[T any](n *Notify, key, sql string, scan pgx.RowToFunc[T]) handler {
	return func(ctx context.Context, _ *http.Request, game store.Game) (int, any, error) {
		rows, err := n.pool.Query(ctx, sql, game.ID)
		if err != nil {
			return 0, nil, err
		}
		vs, err := pgx.CollectRows(rows, scan)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, map[string]any{key: nonNil(vs)}, nil
	}
}

// getOf answers what get reads for the path's id.
func getOf[T any](get func(ctx context.Context, game, id string) (T, error)) handler {
	return func(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
		v, err := get(ctx, game.ID, r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, v, nil
	}
}

// deleteRule deletes the path's rule from table (its notifications stay).
func (n *Notify) deleteRule(table, what string) handler {
	return func(ctx context.Context, r *http.Request, game store.Game) (int, any, error) {
		tag, err := n.pool.Exec(ctx, `DELETE FROM `+table+` WHERE gameid = $1 AND id = $2`, game.ID, r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		if tag.RowsAffected() == 0 {
			return 0, nil, refuse(http.StatusNotFound, "", "%s %s not found", what, r.PathValue("id"))
		}
		n.rules.forget(game.ID)
		return http.StatusNoContent, nil, nil
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
