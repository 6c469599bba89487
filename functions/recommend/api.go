package recommend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// refusal is a request the API answers with a 4xx: the status and reason
// of a serving.Error, and the query parameter it names, if one.
type refusal struct {
	e     serving.Error
	param string
}

func (r *refusal) Error() string { return r.e.Error() }
func (r *refusal) Unwrap() error { return &r.e }

func refuse(status int, reason string) *refusal {
	return &refusal{e: serving.Error{Status: status, Reason: reason}}
}

func badParam(param, format string, args ...any) *refusal {
	r := refuse(http.StatusBadRequest, param+": "+fmt.Sprintf(format, args...))
	r.param = param
	return r
}

// keyKind is which key an endpoint needs.
type keyKind struct {
	name  string // "read" or "admin"
	cache func(r *Recommend) *store.KeyCache
}

var (
	readKey  = keyKind{store.ReadKey, func(r *Recommend) *store.KeyCache { return r.readKeys }}
	adminKey = keyKind{store.AdminKey, func(r *Recommend) *store.KeyCache { return r.adminKeys }}
)

// api wraps an endpoint: authentication by the key kind it needs, the game
// check, the query timeout, errors and metrics.
func (r *Recommend) api(endpoint string, kind keyKind, h func(ctx context.Context, req *http.Request, game store.Game) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		status := http.StatusOK
		defer func() {
			r.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
			r.metrics.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		}()
		fail := func(err error) {
			var rf *refusal
			if req.Context().Err() != nil && !errors.As(err, &rf) {
				status = 499 // the client went away; nobody reads the answer
				return
			}
			if !errors.As(err, &rf) {
				r.log.Error("recommend request failed", "endpoint", endpoint, "url", req.URL.String(), "err", err)
				rf = refuse(http.StatusServiceUnavailable, "cannot answer right now; retry later")
			}
			status = rf.e.Status
			body := map[string]string{"error": rf.e.Reason}
			if rf.param != "" {
				body["parameter"] = rf.param
			}
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gamemetrics recommend"`)
			}
			serving.WriteJSON(w, status, body)
		}
		game, err := r.authenticate(req.Context(), req.Header.Get("Authorization"), kind)
		if err != nil {
			fail(err)
			return
		}
		if req.PathValue("game") != game.ID {
			// Never reveal whether another game exists.
			fail(refuse(http.StatusNotFound, "game not found"))
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.QueryTimeout)
		defer cancel()
		ans, err := h(ctx, req, game)
		if err != nil {
			fail(err)
			return
		}
		serving.WriteJSON(w, status, ans)
	})
}

// authenticate maps "Bearer <key>" to its game, if the key is of kind.
// A key of another kind is refused with 401 and told which one to use.
func (r *Recommend) authenticate(ctx context.Context, header string, kind keyKind) (store.Game, error) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return store.Game{}, refuse(http.StatusUnauthorized, "missing key: send Authorization: Bearer <"+kind.name+" key>")
	}
	for _, other := range []struct{ prefix, name string }{
		{store.WriteKeyPrefix, store.WriteKey}, {store.ReadKeyPrefix, store.ReadKey}, {store.AdminKeyPrefix, store.AdminKey},
	} {
		if strings.HasPrefix(key, other.prefix) && other.name != kind.name {
			return store.Game{}, refuse(http.StatusUnauthorized,
				fmt.Sprintf("a %s key cannot do this: use the game's %s key", other.name, kind.name))
		}
	}
	game, err := kind.cache(r).Game(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Game{}, refuse(http.StatusUnauthorized, "unknown "+kind.name+" key")
	}
	return game, err
}

// parseLimit reads ?limit= (default 10, 1–100).
func parseLimit(v string) (int, error) {
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badParam("limit", "want an integer from 1 to %d, got %q", maxLimit, clip(v))
	}
	return n, nil
}

func validPlayer(p string) error {
	if p == "" || len(p) > maxPlayerLen || !utf8.ValidString(p) {
		return badParam("player", "want 1–%d characters", maxPlayerLen)
	}
	return nil
}

// Answer is a recommendation as the API, the reply event and the
// gamemetrics.recommendations topic carry it.
type Answer struct {
	Items            []Recommendation `json:"items"`
	ModelVersion     string           `json:"model_version"`
	RecommendationID string           `json:"recommendation_id"`
	Fallback         bool             `json:"fallback"`
}

// generated is the data of com.gamemetrics.recommendation.generated.
type generated struct {
	Game   string `json:"game"`
	Player string `json:"player"`
	Answer
	Limit    int       `json:"limit"`
	ServedAt time.Time `json:"served_at"`
}

const playerRows = `SELECT v.version, p.platform, p.country, i.item_id, i.purchases, i.amount_minor::float8, i.sinks, i.views
FROM (SELECT coalesce((SELECT version FROM recommend_games WHERE gameid = $1), 0) AS version) v
LEFT JOIN recommend_players p ON p.gameid = $1 AND p.subject = $2
LEFT JOIN recommend_interactions i ON i.gameid = $1 AND i.subject = $2`

// playerCounters are a player's stored rows, read at request time.
type playerCounters struct {
	version int64
	seg     Segment
	rows    []counterRow
}

type counterRow struct {
	item string
	c    Counters
}

func (r *Recommend) readPlayer(ctx context.Context, game, player string) (playerCounters, error) {
	rows, err := r.pool.Query(ctx, playerRows, game, player)
	if err != nil {
		return playerCounters{}, err
	}
	var pc playerCounters
	var platform, country, item *string
	var purchases, sinks, views *int64
	var amount *float64
	_, err = pgx.ForEachRow(rows, []any{&pc.version, &platform, &country, &item, &purchases, &amount, &sinks, &views}, func() error {
		if platform != nil {
			pc.seg.Platform = *platform
		}
		if country != nil {
			pc.seg.Country = *country
		}
		if item != nil {
			pc.rows = append(pc.rows, counterRow{*item, Counters{Purchases: *purchases, AmountMinor: *amount, Sinks: *sinks, Views: *views}})
		}
		return nil
	})
	return pc, err
}

// Recommend answers for one player of game: the items, and whether they
// are the popular fallback. It is what every way of asking goes through.
func (r *Recommend) Recommend(ctx context.Context, game, player string, limit int) (Answer, error) {
	pc, err := r.readPlayer(ctx, game, player)
	if err != nil {
		return Answer{}, fmt.Errorf("read the player's interactions: %w", err)
	}
	st, err := r.models.state(ctx, game, pc.version)
	if err != nil {
		return Answer{}, fmt.Errorf("load the game's catalogue: %w", err)
	}
	hist := make([]History, len(pc.rows))
	for i, row := range pc.rows {
		hist[i] = History{Item: row.item, Weight: st.settings.Weight(row.c), Acquired: row.c.Acquired()}
	}
	s, _ := r.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	items, fallback := st.view.recommend(hist, pc.seg, limit, st.settings.MinHistory, s)
	r.scratch.Put(s)
	if items == nil {
		items = []Recommendation{}
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Answer{}, err
	}
	ans := Answer{Items: items, ModelVersion: st.knownVersion, RecommendationID: id.String(), Fallback: fallback}
	r.metrics.recommendations.WithLabelValues(strconv.FormatBool(fallback)).Inc()
	r.publish(game, player, limit, ans)
	return ans, nil
}

// publish writes a served recommendation to gamemetrics.recommendations,
// without holding up the answer: the topic is the impression log studios
// join with purchases, and an outage of Kafka must not stop
// recommendations (failures are counted and logged).
func (r *Recommend) publish(game, player string, limit int, ans Answer) {
	if r.producer == nil {
		return
	}
	rec, err := r.impressionRecord(game, player, limit, ans)
	if err != nil {
		r.metrics.impressions.WithLabelValues("failed").Inc()
		r.log.Error("encode served recommendation", "gameid", game, "err", err)
		return
	}
	r.impressions.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), impressionProduceTimeout)
	r.producer.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		defer r.impressions.Done()
		cancel()
		if err != nil {
			r.metrics.impressions.WithLabelValues("failed").Inc()
			r.log.Warn("served recommendation not written to Kafka", "gameid", game, "recommendation_id", ans.RecommendationID, "err", err)
			return
		}
		r.metrics.impressions.WithLabelValues("written").Inc()
	})
}

func (r *Recommend) impressionRecord(game, player string, limit int, ans Answer) (*kgo.Record, error) {
	e, err := r.generatedEvent(game, player, limit, ans)
	if err != nil {
		return nil, err
	}
	return kafka.Record(context.Background(), e, kafka.TopicRecommendations, game+"/"+player)
}

func (r *Recommend) generatedEvent(game, player string, limit int, ans Answer) (*event.Event, error) {
	e := event.New()
	e.SetID(ans.RecommendationID)
	e.SetSource(Source)
	e.SetType(TypeGenerated)
	e.SetSubject(player)
	now := r.now().UTC()
	e.SetTime(now)
	e.SetExtension(extGameID, game)
	if err := e.SetData(event.ApplicationJSON, generated{Game: game, Player: player, Answer: ans, Limit: limit, ServedAt: now}); err != nil {
		return nil, err
	}
	return &e, nil
}

// handleRequested answers com.gamemetrics.recommendation.requested
// ({"player","limit"}, extension gameid) with the generated event.
func (r *Recommend) handleRequested(ctx context.Context, e event.Event) (*event.Event, error) {
	game, _ := e.Extensions()[extGameID].(string)
	if game == "" {
		return nil, serving.Reject(http.StatusBadRequest, "recommendation request %q has no gameid extension", e.ID())
	}
	req, err := parseRequested(e.Data())
	if err != nil {
		return nil, serving.Reject(http.StatusBadRequest, "recommendation request %q: %v", e.ID(), err)
	}
	if _, err := r.games.Get(ctx, game); errors.Is(err, store.ErrNotFound) {
		return nil, serving.Reject(http.StatusUnprocessableEntity, "recommendation request %q: unknown game %q", e.ID(), game)
	} else if err != nil {
		return nil, serving.Transient("look up game", err)
	}
	qctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	defer cancel()
	ans, err := r.Recommend(qctx, game, req.Player, req.Limit)
	if err != nil {
		return nil, serving.Transient("recommendation not computed", err)
	}
	out, err := r.generatedEvent(game, req.Player, req.Limit, ans)
	if err != nil {
		return nil, err
	}
	return out, nil
}

type requested struct {
	Player string `json:"player"`
	Limit  int    `json:"limit"`
}

// parseRequested reads a recommendation request's data.
func parseRequested(data []byte) (requested, error) {
	req := requested{Limit: defaultLimit}
	if err := json.Unmarshal(data, &req); err != nil {
		return req, fmt.Errorf("data: want {\"player\": \"...\", \"limit\": 10}: %v", err)
	}
	if err := validPlayer(req.Player); err != nil {
		return req, err
	}
	if req.Limit < 1 || req.Limit > maxLimit {
		return req, badParam("limit", "want 1 to %d, got %d", maxLimit, req.Limit)
	}
	return req, nil
}

func (r *Recommend) handleRecommendations() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		player := req.PathValue("player")
		if err := validPlayer(player); err != nil {
			return nil, err
		}
		limit, err := parseLimit(req.URL.Query().Get("limit"))
		if err != nil {
			return nil, err
		}
		return r.Recommend(ctx, game.ID, player, limit)
	}
}

// similarAnswer is the answer of GET .../items/{item}/similar.
type similarAnswer struct {
	ItemID       string           `json:"item_id"`
	Items        []Recommendation `json:"items"`
	ModelVersion string           `json:"model_version"`
}

func (r *Recommend) handleSimilar() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		item := req.PathValue("item")
		limit, err := parseLimit(req.URL.Query().Get("limit"))
		if err != nil {
			return nil, err
		}
		var version int64
		if err := r.pool.QueryRow(ctx, `SELECT coalesce((SELECT version FROM recommend_games WHERE gameid = $1), 0)`, game.ID).Scan(&version); err != nil {
			return nil, err
		}
		st, err := r.models.state(ctx, game.ID, version)
		if err != nil {
			return nil, err
		}
		ans := similarAnswer{ItemID: item, Items: []Recommendation{}, ModelVersion: st.knownVersion}
		if i, ok := st.model.Index(item); ok {
			ans.Items = st.view.similar(i, limit)
			return ans, nil
		}
		if _, ok := st.catalogue[item]; ok {
			return ans, nil // known, but no model has seen it yet
		}
		return nil, refuse(http.StatusNotFound, fmt.Sprintf("unknown item %q", clip(item)))
	}
}

// maxBody bounds an items upload (10,000 items with tags fit easily).
const maxBody = 8 << 20

func readBody(req *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "reading the body: "+err.Error())
	}
	if len(b) > maxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
	}
	return b, nil
}

func (r *Recommend) handlePutItems() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		b, err := readBody(req)
		if err != nil {
			return nil, err
		}
		var items []Item
		ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
		switch ct {
		case "text/csv":
			items, err = ParseItemsCSV(strings.NewReader(string(b)))
		case "application/json", "":
			items, err = ParseItemsJSON(b)
		default:
			return nil, refuse(http.StatusUnsupportedMediaType, "send application/json (an array of items) or text/csv")
		}
		if err != nil {
			return nil, refuse(http.StatusBadRequest, err.Error())
		}
		created, err := r.putItems(ctx, game.ID, items)
		if err != nil {
			return nil, err
		}
		return map[string]int{"items": len(items), "created": created, "updated": len(items) - created}, nil
	}
}

func (r *Recommend) handleGetItems() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		items, err := r.listItems(ctx, game.ID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"items": items}, nil
	}
}

func (r *Recommend) handleGetSettings() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		s, _, err := r.gameSettings(ctx, game.ID)
		return s, err
	}
}

func (r *Recommend) handlePutSettings() func(context.Context, *http.Request, store.Game) (any, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (any, error) {
		b, err := readBody(req)
		if err != nil {
			return nil, err
		}
		s, err := ParseSettings(b)
		if err != nil {
			return nil, refuse(http.StatusBadRequest, err.Error())
		}
		if err := r.putSettings(ctx, game.ID, s); err != nil {
			return nil, err
		}
		return s, nil
	}
}
