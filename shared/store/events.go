package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EventPartition names the partition of the events table that holds one
// game's events of one UTC day: events_<gameid>_<yyyymmdd>. Game ids made by
// Games.Create are short lower-case hex, so the name is readable; any other
// id is replaced by a hash so the name stays a valid identifier.
func EventPartition(gameID string, day time.Time) string {
	safe := len(gameID) > 0 && len(gameID) <= 40
	for i := 0; i < len(gameID) && safe; i++ {
		c := gameID[i]
		safe = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_'
	}
	g := gameID
	if !safe {
		h := sha256.Sum256([]byte(gameID))
		g = "h" + hex.EncodeToString(h[:10])
	}
	return "events_" + g + "_" + day.UTC().Format("20060102")
}

// Partitions creates the events partitions writers need, once per process
// per (game, day), safely when several processes create the same one at the
// same moment.
type Partitions struct {
	pool *pgxpool.Pool

	mu    sync.Mutex
	known map[partitionKey]struct{}
}

type partitionKey struct {
	game string
	day  time.Time
}

// NewPartitions returns a partition maker for pool.
func NewPartitions(pool *pgxpool.Pool) *Partitions {
	return &Partitions{pool: pool, known: make(map[partitionKey]struct{})}
}

// Ensure makes sure the partition holding game's events of the UTC day of
// day exists.
func (p *Partitions) Ensure(ctx context.Context, game string, day time.Time) error {
	k := partitionKey{game, day.UTC().Truncate(24 * time.Hour)}
	p.mu.Lock()
	_, ok := p.known[k]
	p.mu.Unlock()
	if ok {
		return nil
	}
	if err := CreateEventPartition(ctx, p.pool, k.game, k.day); err != nil {
		return err
	}
	p.mu.Lock()
	p.known[k] = struct{}{}
	p.mu.Unlock()
	return nil
}

// Forget drops what Ensure remembers (after retain drops partitions).
func (p *Partitions) Forget() {
	p.mu.Lock()
	clear(p.known)
	p.mu.Unlock()
}

// CreateEventPartition creates the partition for game's events of the UTC
// day if it does not exist. Concurrent creators are serialised with a
// transaction-scoped advisory lock on the partition name, because two
// concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
func CreateEventPartition(ctx context.Context, pool *pgxpool.Pool, game string, day time.Time) error {
	day = day.UTC().Truncate(24 * time.Hour)
	name := EventPartition(game, day)
	h := fnv.New64a()
	h.Write([]byte(name))
	lock := int64(h.Sum64())
	// Most calls find the partition made by another replica or before a
	// restart: one query, and no transaction whose COMMIT could fail the
	// caller's batch.
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM (%s, '%s') TO (%s, '%s')`,
			pgx.Identifier{name}.Sanitize(), quoteLiteral(game), day.Format(time.DateOnly),
			quoteLiteral(game), day.AddDate(0, 0, 1).Format(time.DateOnly))
		if _, err := tx.Exec(ctx, sql); err != nil {
			return fmt.Errorf("create partition %s: %w", name, err)
		}
		return nil
	})
}

// quoteLiteral quotes s as an SQL string literal (DDL takes no parameters).
func quoteLiteral(s string) string {
	out := make([]byte, 0, len(s)+2)
	out = append(out, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
