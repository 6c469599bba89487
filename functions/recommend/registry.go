package recommend

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/singleflight"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

// registry holds what this replica serves: the promoted model of each game
// (loaded from S3, replaced when its pointer changes) and each game's
// catalogue and settings joined with it, re-read when an admin changes them.
type registry struct {
	r      *Recommend
	mu     sync.RWMutex
	models map[string]*Model
	states map[string]*gameState
	group  singleflight.Group
	ready  atomic.Bool
}

// gameState is one game as served: immutable once built, replaced whole.
type gameState struct {
	version      int64 // recommend_games.version it was read at
	settings     Settings
	catalogue    map[string]catalogueEntry
	model        *Model // the promoted model, or live popularity
	live         bool   // model is live popularity (no promoted model)
	liveUntil    time.Time
	view         *view
	knownVersion string // the promoted model's version, "" if none
}

func newRegistry(r *Recommend) *registry {
	return &registry{r: r, models: map[string]*Model{}, states: map[string]*gameState{}}
}

func (g *registry) loaded() bool { return g.ready.Load() }

// WaitLoaded waits until the promoted models were loaded once (or tried
// once, when S3 or PostgreSQL failed: the poll retries), or ctx ends.
func (r *Recommend) WaitLoaded(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !r.models.loaded() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the promoted models are still loading: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// model returns the game's promoted model, nil if none.
func (g *registry) model(game string) *Model {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.models[game]
}

// install makes m the game's served model.
func (g *registry) install(m *Model) {
	g.mu.Lock()
	g.models[m.Game] = m
	n := len(g.models)
	g.mu.Unlock()
	g.r.metrics.models.Set(float64(n))
}

// poll loads the promoted models now and then every ModelPoll until ctx ends.
func (g *registry) poll(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(g.r.cfg.ModelPoll)
	defer t.Stop()
	for {
		if err := g.refresh(ctx); err != nil && ctx.Err() == nil {
			g.r.log.Warn("promoted models not (all) loaded; retrying", "err", err)
		}
		g.ready.Store(true)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const promotedModels = `SELECT c.gameid, c.version, m.object_key, m.sha256
FROM recommend_current c JOIN recommend_models m USING (gameid, version)`

// refresh loads every promoted model this replica does not serve yet.
func (g *registry) refresh(ctx context.Context) error {
	rows, err := g.r.pool.Query(ctx, promotedModels)
	if err != nil {
		return fmt.Errorf("read model pointers: %w", err)
	}
	type pointer struct{ game, version, key, sum string }
	var ptrs []pointer
	var p pointer
	if _, err := pgx.ForEachRow(rows, []any{&p.game, &p.version, &p.key, &p.sum}, func() error {
		ptrs = append(ptrs, p)
		return nil
	}); err != nil {
		return fmt.Errorf("read model pointers: %w", err)
	}
	var errs []error
	for _, p := range ptrs {
		if m := g.model(p.game); m != nil && m.Version == p.version {
			continue
		}
		m, err := g.fetch(ctx, p.key, p.sum)
		if err != nil {
			g.r.metrics.modelLoads.WithLabelValues("failed").Inc()
			errs = append(errs, fmt.Errorf("game %s model %s: %w", p.game, p.version, err))
			continue
		}
		g.r.metrics.modelLoads.WithLabelValues("loaded").Inc()
		g.install(m)
		g.r.log.Info("model loaded", "gameid", p.game, "version", p.version, "kind", m.Kind, "items", len(m.Items))
	}
	return errors.Join(errs...)
}

// fetch reads and checks a stored model.
func (g *registry) fetch(ctx context.Context, key, sum string) (*Model, error) {
	if g.r.arc == nil {
		return nil, errors.New("no S3 bucket configured (S3_BUCKET)")
	}
	b, err := g.r.arc.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != sum {
		return nil, fmt.Errorf("%s: SHA-256 differs from the pointer row's", key)
	}
	return DecodeModel(b)
}

// state returns the game as served, given the catalogue version the
// request read alongside the player's rows: it is rebuilt when an admin
// changed items or settings since, when a new model was promoted, or when
// a game without a model should count its popularity again.
func (g *registry) state(ctx context.Context, game string, version int64) (*gameState, error) {
	m := g.model(game)
	now := g.r.now()
	g.mu.RLock()
	st := g.states[game]
	g.mu.RUnlock()
	if st.current(m, version, now) {
		return st, nil
	}
	v, err, _ := g.group.Do(game, func() (any, error) {
		g.mu.RLock()
		st := g.states[game]
		g.mu.RUnlock()
		if st.current(m, version, now) {
			return st, nil
		}
		next := &gameState{version: version}
		if st != nil && st.version == version {
			next.settings, next.catalogue = st.settings, st.catalogue
		} else {
			s, v, err := g.r.gameSettings(ctx, game)
			if err != nil {
				return nil, err
			}
			cat, err := g.r.catalogue(ctx, game)
			if err != nil {
				return nil, err
			}
			next.settings, next.catalogue, next.version = s, cat, v
		}
		if m != nil {
			next.model, next.knownVersion = m, m.Version
		} else {
			lm, err := g.r.livePopularity(ctx, game)
			if err != nil {
				return nil, err
			}
			next.model, next.live, next.liveUntil = lm, true, now.Add(g.r.cfg.PopularTTL)
		}
		next.view = newView(next.model, next.catalogue)
		g.mu.Lock()
		g.states[game] = next
		g.mu.Unlock()
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*gameState), nil
}

func (st *gameState) current(m *Model, version int64, now time.Time) bool {
	if st == nil || st.version != version {
		return false
	}
	if m == nil {
		return st.live && now.Before(st.liveUntil)
	}
	return !st.live && st.model == m
}

// gameSettings reads a game's settings and their version;
// store.ErrNotFound if the game does not exist.
func (r *Recommend) gameSettings(ctx context.Context, game string) (Settings, int64, error) {
	var raw []byte
	var version int64
	err := r.pool.QueryRow(ctx, `SELECT r.settings, coalesce(r.version, 0) FROM games g
		LEFT JOIN recommend_games r ON r.gameid = g.id WHERE g.id = $1`, game).Scan(&raw, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return DefaultSettings(), 0, store.ErrNotFound
	}
	if err != nil {
		return DefaultSettings(), 0, err
	}
	if len(raw) == 0 {
		return DefaultSettings(), version, nil
	}
	s, err := ParseSettings(raw)
	if err != nil {
		// Stored settings were valid when written; a later release may
		// have tightened a limit. Serve with the defaults, loudly.
		r.log.Error("stored settings no longer valid; using the defaults", "gameid", game, "err", err)
		return DefaultSettings(), version, nil
	}
	return s, version, nil
}

// catalogue reads what serving needs of a game's items.
func (r *Recommend) catalogue(ctx context.Context, game string) (map[string]catalogueEntry, error) {
	rows, err := r.pool.Query(ctx, `SELECT item_id, consumable, available FROM recommend_items WHERE gameid = $1`, game)
	if err != nil {
		return nil, err
	}
	cat := map[string]catalogueEntry{}
	var id string
	var e catalogueEntry
	if _, err := pgx.ForEachRow(rows, []any{&id, &e.consumable, &e.available}, func() error {
		if e.consumable != nil {
			c := *e.consumable
			e.consumable = &c
		}
		cat[id] = e
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read items: %w", err)
	}
	return cat, nil
}

// livePopularity is the model of a game nothing was trained for yet: its
// items by how many players interacted with them, so a new game gets
// popular items from its first purchases.
func (r *Recommend) livePopularity(ctx context.Context, game string) (*Model, error) {
	rows, err := r.pool.Query(ctx, `SELECT item_id, count(*), bool_or(purchases + sinks >= 2) FROM recommend_interactions
		WHERE gameid = $1 GROUP BY item_id ORDER BY count(*) DESC, item_id LIMIT 1000`, game)
	if err != nil {
		return nil, fmt.Errorf("count popular items: %w", err)
	}
	m := &Model{Game: game, Kind: KindPopular, Popularity: &Popularity{Segments: map[string][]float32{"": nil}}, Neighbors: &Neighbors{}}
	var id string
	var n int64
	var repeat bool
	if _, err := pgx.ForEachRow(rows, []any{&id, &n, &repeat}, func() error {
		m.Items = append(m.Items, id)
		m.Repeat = append(m.Repeat, repeat)
		m.Popularity.Segments[""] = append(m.Popularity.Segments[""], float32(n))
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count popular items: %w", err)
	}
	m.prepare()
	return m, nil
}
