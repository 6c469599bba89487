package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Key prefixes make a leaked key recognisable and tell the kinds apart.
const (
	WriteKeyPrefix = "gmw_"
	ReadKeyPrefix  = "gmr_"
	AdminKeyPrefix = "gma_"
)

// Game is one studio's game as the platform knows it.
type Game struct {
	ID          string
	Name        string
	Timezone    string
	HotDays     int
	ArchiveDays int
	// RateLimit is events per second; nil means the deployment default.
	RateLimit *int
	CreatedAt time.Time
}

// Location returns the game's time zone (UTC if the stored name is unknown).
func (g Game) Location() *time.Location {
	loc, err := time.LoadLocation(g.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Keys are a game's API keys, shown once at creation and stored only hashed:
// Write for game clients (ingest), Read for analysts (report, recommend),
// Admin for managing alert rules, destinations, player rules and items.
type Keys struct {
	Write string
	Read  string
	Admin string
}

// ErrNotFound means no game matched.
var ErrNotFound = errors.New("game not found")

// Games reads and writes the games table.
type Games struct{ pool *pgxpool.Pool }

// NewGames returns a Games backed by pool.
func NewGames(pool *pgxpool.Pool) *Games { return &Games{pool: pool} }

// HashKey is how keys are stored and looked up.
func HashKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func newSecret(prefix string) (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func newGameID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "g" + hex.EncodeToString(b), nil
}

// ValidTimezone checks that tz is an IANA zone name this binary knows.
func ValidTimezone(tz string) error {
	if tz == "" || strings.EqualFold(tz, "local") {
		return fmt.Errorf("timezone %q: use an IANA name such as UTC or Europe/Berlin", tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("timezone %q is not a known IANA zone (e.g. America/Los_Angeles)", tz)
	}
	return nil
}

// Create registers a game and returns it with its freshly generated keys.
func (g *Games) Create(ctx context.Context, name, timezone string) (Game, Keys, error) {
	if strings.TrimSpace(name) == "" {
		return Game{}, Keys{}, errors.New("game name is required")
	}
	if timezone == "" {
		timezone = "UTC"
	}
	if err := ValidTimezone(timezone); err != nil {
		return Game{}, Keys{}, err
	}
	id, err := newGameID()
	if err != nil {
		return Game{}, Keys{}, err
	}
	var keys Keys
	for _, k := range []struct {
		dst    *string
		prefix string
	}{{&keys.Write, WriteKeyPrefix}, {&keys.Read, ReadKeyPrefix}, {&keys.Admin, AdminKeyPrefix}} {
		if *k.dst, err = newSecret(k.prefix); err != nil {
			return Game{}, Keys{}, err
		}
	}
	var game Game
	err = pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO games (id, name, timezone) VALUES ($1, $2, $3) RETURNING `+gameColumns,
			id, name, timezone)
		if err != nil {
			return err
		}
		if game, err = pgx.CollectExactlyOneRow(rows, scanGame); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO game_keys (hash, gameid, kind) VALUES ($1, $4, 'write'), ($2, $4, 'read'), ($3, $4, 'admin')`,
			HashKey(keys.Write), HashKey(keys.Read), HashKey(keys.Admin), id)
		return err
	})
	if err != nil {
		return Game{}, Keys{}, fmt.Errorf("create game: %w", err)
	}
	return game, keys, nil
}

// Key kinds.
const (
	WriteKey = "write"
	ReadKey  = "read"
	AdminKey = "admin"
)

// keyPrefix is the prefix keys of kind carry ("" for an unknown kind).
func keyPrefix(kind string) string {
	switch kind {
	case WriteKey:
		return WriteKeyPrefix
	case ReadKey:
		return ReadKeyPrefix
	case AdminKey:
		return AdminKeyPrefix
	}
	return ""
}

// Rotation is the outcome of RotateKey.
type Rotation struct {
	// Key is the new current key; it is shown once and stored hashed.
	Key string
	// PreviousUntil is when the keys it replaces stop working.
	PreviousUntil time.Time
}

// RotateKey gives game a new key of kind (WriteKey, ReadKey or AdminKey).
// Every key of that kind still working stops at now+grace at the latest (a
// grace of 0 revokes them at once; a longer grace lets game builds with the
// old write key keep sending until players have updated). Lookups are cached by
// KeyCache, so a revoked key may work for up to its TTL more.
func (g *Games) RotateKey(ctx context.Context, id, kind string, grace time.Duration) (Rotation, error) {
	prefix := keyPrefix(kind)
	if prefix == "" {
		return Rotation{}, fmt.Errorf("key kind %q: want %s, %s or %s", kind, WriteKey, ReadKey, AdminKey)
	}
	if grace < 0 {
		return Rotation{}, fmt.Errorf("grace %s: want 0 or more", grace)
	}
	key, err := newSecret(prefix)
	if err != nil {
		return Rotation{}, err
	}
	var until time.Time
	err = pgx.BeginFunc(ctx, g.pool, func(tx pgx.Tx) error {
		// The game row lock orders concurrent rotations of one game.
		var found bool
		if err := tx.QueryRow(ctx, `SELECT true FROM games WHERE id = $1 FOR UPDATE`, id).Scan(&found); errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT now() + make_interval(secs => $1)`, grace.Seconds()).Scan(&until); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE game_keys SET expires_at = $3
			WHERE gameid = $1 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)`, id, kind, until); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO game_keys (hash, gameid, kind) VALUES ($1, $2, $3)`, HashKey(key), id, kind)
		return err
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("rotate %s key of %s: %w", kind, id, err)
	}
	return Rotation{Key: key, PreviousUntil: until.UTC()}, nil
}

const gameColumns = `id, name, timezone, hot_days, archive_days, rate_limit, created_at`

func scanGame(row pgx.CollectableRow) (Game, error) {
	var g Game
	err := row.Scan(&g.ID, &g.Name, &g.Timezone, &g.HotDays, &g.ArchiveDays, &g.RateLimit, &g.CreatedAt)
	return g, err
}

func (g *Games) one(ctx context.Context, sql string, args ...any) (Game, error) {
	rows, err := g.pool.Query(ctx, sql, args...)
	if err != nil {
		return Game{}, err
	}
	game, err := pgx.CollectExactlyOneRow(rows, scanGame)
	if errors.Is(err, pgx.ErrNoRows) {
		return Game{}, ErrNotFound
	}
	return game, err
}

// Get returns the game with the given id.
func (g *Games) Get(ctx context.Context, id string) (Game, error) {
	return g.one(ctx, "SELECT "+gameColumns+" FROM games WHERE id = $1", id)
}

// byKey finds the game of a key of kind that has not expired.
const byKey = `SELECT ` + gameColumns + ` FROM games
WHERE id = (SELECT gameid FROM game_keys WHERE hash = $1 AND kind = $2 AND (expires_at IS NULL OR expires_at > now()))`

// ByKey returns the game a working key of kind belongs to; a key of
// another kind is ErrNotFound.
func (g *Games) ByKey(ctx context.Context, kind, key string) (Game, error) {
	if prefix := keyPrefix(kind); prefix == "" || !strings.HasPrefix(key, prefix) {
		return Game{}, ErrNotFound
	}
	return g.one(ctx, byKey, HashKey(key), kind)
}

// ByWriteKey returns the game a write key belongs to.
func (g *Games) ByWriteKey(ctx context.Context, key string) (Game, error) {
	return g.ByKey(ctx, WriteKey, key)
}

// ByReadKey returns the game a read key belongs to.
func (g *Games) ByReadKey(ctx context.Context, key string) (Game, error) {
	return g.ByKey(ctx, ReadKey, key)
}

// ByAdminKey returns the game an admin key belongs to.
func (g *Games) ByAdminKey(ctx context.Context, key string) (Game, error) {
	return g.ByKey(ctx, AdminKey, key)
}

// List returns every game, oldest first.
func (g *Games) List(ctx context.Context) ([]Game, error) {
	rows, err := g.pool.Query(ctx, "SELECT "+gameColumns+" FROM games ORDER BY created_at, id")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanGame)
}

// KeyCache remembers which game a key belongs to for a short time, so the
// hot path does not pay a database round trip per request. A revoked key
// stops working within TTL.
//
// While PostgreSQL cannot answer, a key's last answer keeps standing for up
// to StaleFor after it was last checked (asked again every RetryAfter), so
// ingest goes on accepting events of known keys during a database outage:
// Kafka, not PostgreSQL, is what a 202 depends on. A key never seen before
// gets the lookup's error (ingest: 503, the client retries).
type KeyCache struct {
	lookup func(context.Context, string) (Game, error)
	ttl    time.Duration
	now    func() time.Time
	// StaleFor bounds how long an answer outlives its check while lookups
	// fail; RetryAfter is how often a failing lookup is tried again.
	StaleFor, RetryAfter time.Duration

	mu      sync.Mutex
	entries map[string]keyEntry
}

type keyEntry struct {
	game     Game
	found    bool
	expires  time.Time // when to ask the database again
	verified time.Time // when the database last answered for this key
}

// maxCachedKeys bounds the cache so a flood of random bad keys cannot grow it.
const maxCachedKeys = 10_000

// NewKeyCache caches lookup (Games.ByWriteKey or ByReadKey) for ttl.
func NewKeyCache(lookup func(context.Context, string) (Game, error), ttl time.Duration) *KeyCache {
	return &KeyCache{lookup: lookup, ttl: ttl, now: time.Now, entries: make(map[string]keyEntry),
		StaleFor: time.Hour, RetryAfter: min(ttl, 5*time.Second)}
}

// Game returns the game of key, or ErrNotFound.
func (c *KeyCache) Game(ctx context.Context, key string) (Game, error) {
	now := c.now()
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		if !e.found {
			return Game{}, ErrNotFound
		}
		return e.game, nil
	}
	game, err := c.lookup(ctx, key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		if !ok || now.Sub(e.verified) > c.StaleFor {
			return Game{}, err
		}
		// Stand by the last answer, and spare the database (and this
		// request's latency) another lookup until RetryAfter.
		e.expires = now.Add(c.RetryAfter)
		c.mu.Lock()
		c.entries[key] = e
		c.mu.Unlock()
		if !e.found {
			return Game{}, ErrNotFound
		}
		return e.game, nil
	}
	c.mu.Lock()
	if len(c.entries) >= maxCachedKeys {
		for k, v := range c.entries {
			if !now.Before(v.expires) || !v.found {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCachedKeys {
			clear(c.entries)
		}
	}
	c.entries[key] = keyEntry{game: game, found: err == nil, expires: now.Add(c.ttl), verified: now}
	c.mu.Unlock()
	return game, err
}
