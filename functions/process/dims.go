package process

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// registrar caps each game's custom dimensions (dim1..dim3) at
// events.MaxCustomValues distinct values: the first values registered in
// dim_values (under the game's dims lock, so registration is serialised
// per game whatever the replicas) are the game's, every later one counts
// as events.Other. A value's fate never changes once decided (values are
// never removed, and once a dimension is full it stays full), so the
// registrar remembers what committed and asks the database only about
// values it cannot decide. It remembers the values a game keeps and, per
// game and dimension, that it is full, never the refused values
// themselves: a client putting a timestamp or a user id in dim1 sends
// unboundedly many, and remembering each would grow every replica's
// memory without bound, the very case the cap protects the rollups from.
// Memory stays at most 3 × MaxCustomValues values per game.
type registrar struct {
	q querier
	// tx says q is a transaction that already holds the games' write
	// locks exclusively (a rebuild): registration joins it, uncached.
	tx bool

	mu   sync.Mutex
	kept map[regKey]struct{} // values the games keep
	full map[dimKey]struct{} // dimensions that keep no more values
}

type regKey struct {
	game string
	dim  int8
	val  string
}

type dimKey struct {
	game string
	dim  int8
}

func newRegistrar(q querier, tx bool) *registrar {
	return &registrar{q: q, tx: tx, kept: make(map[regKey]struct{}), full: make(map[dimKey]struct{})}
}

// decide answers from memory: kept, or known to count as other (its
// dimension is full), or unknown (ask the database). Callers hold mu.
func (g *registrar) decide(k regKey) (kept, known bool) {
	if _, ok := g.kept[k]; ok {
		return true, true
	}
	if _, ok := g.full[dimKey{k.game, k.dim}]; ok {
		return false, true
	}
	return false, false
}

// resolve sets dims and tuple of every record: raw with custom values the
// game does not keep as events.Other.
func (g *registrar) resolve(ctx context.Context, recs []*record) error {
	var ask []regKey
	asked := map[regKey]bool{}
	g.mu.Lock()
	for _, r := range recs {
		for i := 3; i < len(r.raw); i++ {
			v := r.raw[i]
			if v == events.Unknown || v == events.Other {
				continue
			}
			k := regKey{r.game, int8(i), v}
			if _, known := g.decide(k); !known && !asked[k] {
				asked[k] = true
				ask = append(ask, k)
			}
		}
	}
	g.mu.Unlock()
	decided := map[regKey]bool{}
	if len(ask) > 0 {
		var err error
		if decided, err = g.register(ctx, ask); err != nil {
			return fmt.Errorf("register custom dimension values: %w", err)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.tx {
		for k, ok := range decided {
			if ok {
				g.kept[k] = struct{}{}
			} else {
				// Registration refuses a value only when its dimension
				// already holds MaxCustomValues: full, for good.
				g.full[dimKey{k.game, k.dim}] = struct{}{}
			}
		}
	}
	for _, r := range recs {
		r.dims = r.raw
		for i := 3; i < len(r.raw); i++ {
			v := r.raw[i]
			if v == events.Unknown || v == events.Other {
				continue
			}
			k := regKey{r.game, int8(i), v}
			ok, seen := decided[k]
			if !seen {
				ok, _ = g.decide(k)
			}
			if !ok {
				r.dims[i] = events.Other
			}
		}
		r.tuple = r.dims.ID()
	}
	return nil
}

// register asks the database about keys: true for the values the games
// keep (registered now or before).
func (g *registrar) register(ctx context.Context, keys []regKey) (map[regKey]bool, error) {
	names := events.DimensionNames()
	games, dims, vals := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	gameSet := map[string]bool{}
	for i, k := range keys {
		games[i], dims[i], vals[i] = k.game, names[k.dim], k.val
		gameSet[k.game] = true
	}
	out := make(map[regKey]bool, len(keys))
	for _, k := range keys {
		out[k] = false
	}
	b := &pgx.Batch{}
	if !g.tx {
		b.Queue("BEGIN")
	}
	b.Queue(lockDims, sortedKeys(gameSet, func(a, b string) int { return cmpPlayer(playerKey{a, ""}, playerKey{b, ""}) }))
	b.Queue(registerDims, games, dims, vals, events.MaxCustomValues).Query(func(rows pgx.Rows) error {
		var game, dim, val string
		_, err := pgx.ForEachRow(rows, []any{&game, &dim, &val}, func() error {
			out[regKey{game, int8(events.DimIndex(dim)), val}] = true
			return nil
		})
		return err
	})
	if !g.tx {
		b.Queue("COMMIT")
	}
	if err := g.q.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}
