package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/store"
)

// stage1 makes batches of delivered events durable, one transaction each:
// the raw events in their day partitions, their ids in event_ids (only new
// ids go further) and, per game, one pending_events row holding the new
// events for stage 2 (aggregate.go). That is all a delivery waits for.
// Concurrent stage-1 transactions share no rows but the ids they insert,
// which they insert in key order.
type stage1 struct {
	pool       *pgxpool.Pool
	partitions *store.Partitions
	retries    int
}

// durable is what one stage-1 transaction did.
type durable struct {
	fresh  []*record    // new events, stored and queued for aggregation
	erased []*record    // events a player's erasure holds: acknowledged, not stored
	rows   []pendingRow // the pending rows written
}

// pendingRow is a pending_events row a process wrote and waits for.
type pendingRow struct {
	seq    int64
	events int
}

// permanent reports whether err is a fault of the data (it will fail the
// same way every time) rather than of the database being unavailable.
func permanent(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23") // data exception, integrity violation
	}
	return false
}

// retryable reports whether a transaction lost a race and may simply be rerun.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// missingPartition reports whether err is an insert into a dropped partition.
func missingPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition of relation")
}

// write stores recs (unique by game and id).
func (s *stage1) write(ctx context.Context, recs []*record) (durable, error) {
	// Key order for the event id inserts, so concurrent transactions wait
	// for each other instead of deadlocking.
	slices.SortFunc(recs, func(a, b *record) int { return cmpPlayer(playerKey{a.game, a.id}, playerKey{b.game, b.id}) })
	out, err := s.writeRetrying(ctx, recs)
	if missingPartition(err) {
		// retain archived and dropped a day partition this process had
		// created, and a late event for that day arrived: create it again
		// (retain merges it into the day's archive on its next run).
		s.partitions.Forget()
		out, err = s.writeRetrying(ctx, recs)
	}
	return out, err
}

func (s *stage1) writeRetrying(ctx context.Context, recs []*record) (durable, error) {
	for _, r := range recs {
		if err := s.partitions.Ensure(ctx, r.game, r.day); err != nil {
			return durable{}, fmt.Errorf("events partition: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		out, err := s.writeOnce(ctx, recs)
		if err == nil || !retryable(err) || attempt >= s.retries {
			return out, err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
}

// writeOnce is one attempt, in three round trips: BEGIN, the games' write
// locks, and the id inserts with the erasure check; the raw events (COPY);
// the pending rows and COMMIT.
func (s *stage1) writeOnce(ctx context.Context, recs []*record) (durable, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return durable{}, err
	}
	defer conn.Release() // destroys the connection if it is still in a transaction
	out, err := s.tx(ctx, conn.Conn(), recs)
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		if _, rerr := conn.Exec(ctx, "ROLLBACK"); rerr != nil {
			conn.Conn().Close(ctx)
		}
	}
	return out, err
}

func (s *stage1) tx(ctx context.Context, conn *pgx.Conn, recs []*record) (durable, error) {
	n := len(recs)
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	var games []string
	for _, r := range recs {
		if len(games) == 0 || games[len(games)-1] != r.game { // recs are sorted by game
			games = append(games, r.game)
		}
	}
	b.Queue(lockGamesShared, games)
	byHash := make(map[[2]string]playerKey)
	{
		gs, ids, days := make([]string, n), make([]string, n), make([]time.Time, n)
		for i, r := range recs {
			gs[i], ids[i], days[i] = r.game, r.id, r.day
		}
		var pg, hashes []string
		seen := make(map[playerKey]bool)
		for _, r := range recs {
			k := playerKey{r.game, r.subject}
			if seen[k] {
				continue
			}
			seen[k] = true
			h := store.PlayerHash(r.game, r.subject)
			byHash[[2]string{r.game, h}] = k
			pg, hashes = append(pg, r.game), append(hashes, h)
		}
		b.Queue(storeIDs, gs, ids, days, pg, hashes)
	}
	res := conn.SendBatch(ctx, b)
	for range 2 { // BEGIN, locks
		if _, err := res.Exec(); err != nil {
			res.Close()
			return durable{}, fmt.Errorf("begin: %w", err)
		}
	}
	inserted := make(map[[2]string]bool, n)
	erasedAt := map[playerKey]time.Time{}
	var g, key string
	var began pgtype.Timestamptz
	rows, _ := res.Query()
	if _, err := pgx.ForEachRow(rows, []any{&g, &key, &began}, func() error {
		if began.Valid {
			erasedAt[byHash[[2]string{g, key}]] = began.Time
		} else {
			inserted[[2]string{g, key}] = true
		}
		return nil
	}); err != nil {
		res.Close()
		return durable{}, fmt.Errorf("store event ids: %w", err)
	}
	if err := res.Close(); err != nil {
		return durable{}, err
	}

	var out durable
	var heldGames, heldIDs []string
	for _, r := range recs {
		at, held := erasedAt[playerKey{r.game, r.subject}]
		held = held && !heldTime(r).After(at)
		isNew := inserted[[2]string{r.game, r.id}]
		switch {
		case held && isNew:
			heldGames, heldIDs = append(heldGames, r.game), append(heldIDs, r.id)
			fallthrough
		case held:
			out.erased = append(out.erased, r)
		case isNew:
			out.fresh = append(out.fresh, r)
		}
	}

	// Then the raw events, with COPY: it costs a round trip more than an
	// INSERT in the batch below, and PostgreSQL 40% less CPU per row (the
	// rows are known to be new).
	if m := len(out.fresh); m > 0 {
		rows := make([][]any, m)
		for i, r := range out.fresh {
			rows[i] = []any{r.game, r.day, r.id, r.typ, r.source, r.subject, r.time, optText(r.sessionID), tstz(r.received),
				rawJSON(r.data), rawJSON(r.ext)}
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, pgx.CopyFromRows(rows)); err != nil {
			return durable{}, fmt.Errorf("copy events: %w", err)
		}
	}
	// Last round trip: the pending rows and COMMIT.
	b = &pgx.Batch{}
	if len(heldIDs) > 0 {
		b.Queue(deleteEventIDs, heldGames, heldIDs)
	}
	if len(out.fresh) > 0 {
		b.Queue(insertPending, pendingArgs(out.fresh)...).Query(func(rows pgx.Rows) error {
			var seq int64
			var events int32
			_, err := pgx.ForEachRow(rows, []any{&seq, &events}, func() error {
				out.rows = append(out.rows, pendingRow{seq, int(events)})
				return nil
			})
			return err
		})
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return durable{}, fmt.Errorf("store events: %w", err)
	}
	return out, nil
}

// pendingArgs are the arguments of insertPending for fresh (sorted by
// game): one row per game.
func pendingArgs(fresh []*record) []any {
	var games []string
	var counts []int32
	var from, to []time.Time
	var batches [][]byte
	for i := 0; i < len(fresh); {
		j := i + 1
		for j < len(fresh) && fresh[j].game == fresh[i].game {
			j++
		}
		group := fresh[i:j]
		lo, hi := group[0].day, group[0].day
		for _, r := range group {
			if r.day.Before(lo) {
				lo = r.day
			}
			if r.day.After(hi) {
				hi = r.day
			}
		}
		games, counts = append(games, group[0].game), append(counts, int32(len(group)))
		from, to = append(from, lo), append(to, hi)
		batches = append(batches, encodePending(make([]byte, 0, 128*len(group)), group))
		i = j
	}
	return []any{games, counts, from, to, batches}
}

// heldTime is when an event counts as received for an erasure hold: when
// ingest received it, or (events that did not come through ingest) its
// own time.
func heldTime(r *record) time.Time {
	if r.received.IsZero() {
		return r.time
	}
	return r.received
}

// rawJSON passes JSON text to a jsonb column (nil is NULL).
func rawJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

func tstz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

func optText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: s != ""} }
