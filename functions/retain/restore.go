package retain

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"golang.org/x/sync/errgroup"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// RestoreResult says what Restore loaded.
type RestoreResult struct {
	Game string `json:"game"`
	// Days that had an archive, and days in the range that had none.
	Days        []string `json:"days"`
	MissingDays []string `json:"missing_days"`
	// Archived events read, and of them the ones inserted (the others were
	// in PostgreSQL already).
	Events   int64 `json:"events"`
	Inserted int64 `json:"inserted"`
}

// restoreBatch is how many events one INSERT carries.
const restoreBatch = 20000

// Restore loads game's archived days from..to (UTC days, inclusive) back
// into the events table, deduplicated by event_ids, without touching any
// aggregate: the rollups already count these events. Running it again
// inserts nothing. Restored days older than hot_days are archived and
// dropped again by the next retention run (their archive already holds
// every event, so it is only verified).
func (r *Retain) Restore(ctx context.Context, game string, from, to time.Time) (RestoreResult, error) {
	t0 := time.Now()
	res := RestoreResult{Game: game, Days: []string{}, MissingDays: []string{}}
	from, to = utcDay(from), utcDay(to)
	if to.Before(from) {
		return res, fmt.Errorf("restore: --to %s is before --from %s", archive.FormatDay(to), archive.FormatDay(from))
	}
	if to.Sub(from) > 3660*24*time.Hour {
		return res, fmt.Errorf("restore: at most ten years at once")
	}
	if _, err := r.games.Get(ctx, game); err != nil {
		return res, fmt.Errorf("restore: game %q: %w", game, err)
	}
	if err := archive.ValidGame(game); err != nil {
		return res, err
	}
	unlock, err := r.lockGame(ctx, game)
	if err != nil {
		return res, err
	}
	defer unlock()
	for day := from; !day.After(to); day = day.AddDate(0, 0, 1) {
		m, err := r.arc.ReadManifest(ctx, game, day)
		if err != nil {
			return res, err
		}
		if m == nil {
			res.MissingDays = append(res.MissingDays, archive.FormatDay(day))
			continue
		}
		res.Days = append(res.Days, archive.FormatDay(day))
		if err := store.CreateEventPartition(ctx, r.pool, game, day); err != nil {
			return res, err
		}
		// Decoding the archive and inserting into PostgreSQL overlap.
		batches := make(chan []archive.Row, 2)
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error {
			defer close(batches)
			batch := make([]archive.Row, 0, restoreBatch)
			send := func() error {
				select {
				case batches <- batch:
					batch = make([]archive.Row, 0, restoreBatch)
					return nil
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			err := r.arc.ReadEvents(gctx, m, func(e event.Event) error {
				rw, err := archive.RowFromEvent(game, &e)
				if err != nil {
					return err
				}
				if !utcDay(rw.Time).Equal(day) {
					return fmt.Errorf("event %q of %s is in the archive of %s", rw.ID, archive.FormatDay(rw.Time), archive.FormatDay(day))
				}
				res.Events++
				batch = append(batch, rw)
				if len(batch) == restoreBatch {
					return send()
				}
				return nil
			})
			if err == nil && len(batch) > 0 {
				err = send()
			}
			return err
		})
		g.Go(func() error {
			for b := range batches {
				n, err := r.insertRows(gctx, game, day, b)
				res.Inserted += n
				if err != nil {
					return err
				}
			}
			return nil
		})
		err = g.Wait()
		if err != nil {
			return res, fmt.Errorf("restore %s: %w", archive.FormatDay(day), err)
		}
	}
	r.metrics.restored.Add(float64(res.Inserted))
	r.metrics.duration.WithLabelValues("restore").Observe(time.Since(t0).Seconds())
	return res, nil
}

// restoreRows inserts archived events that PostgreSQL does not hold: their
// id is recorded in event_ids if it is not (ids of days past DedupDays may
// have been deleted), and the raw row is inserted unless event_ids says
// that id was stored on another day (then this copy was never the counted
// one) or the row is there already.
const restoreRows = `WITH u AS (
	SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::timestamptz[], $9::text[], $10::text[])
	AS u(id, type, source, subject, time, sessionid, receivedtime, data, ext)
), ids AS (
	INSERT INTO event_ids (gameid, id, day) SELECT $1, id, $11::date FROM u ON CONFLICT DO NOTHING
), ins AS (
	INSERT INTO events (gameid, day, id, type, source, subject, time, sessionid, receivedtime, data, extensions)
	SELECT $1, $11::date, u.id, u.type, u.source, u.subject, u.time, u.sessionid, u.receivedtime, u.data::jsonb, u.ext::jsonb
	FROM u
	-- a scalar subquery, so it stays one primary-key lookup per event (as
	-- NOT EXISTS it may become an anti join over all the game's ids)
	WHERE coalesce((SELECT x.day FROM event_ids x WHERE x.gameid = $1 AND x.id = u.id), $11::date) = $11::date
	ON CONFLICT DO NOTHING
	RETURNING 1
)
SELECT count(*) FROM ins`

func (r *Retain) insertRows(ctx context.Context, game string, day time.Time, rows []archive.Row) (int64, error) {
	n := len(rows)
	ids, types, sources, subjects := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	times, received := make([]time.Time, n), make([]pgtype.Timestamptz, n)
	sids := make([]pgtype.Text, n)
	datas, exts := make([]*string, n), make([]*string, n)
	for i, rw := range rows {
		ids[i], types[i], sources[i], subjects[i], times[i], received[i], sids[i] = rw.ID, rw.Type, rw.Source, rw.Subject, rw.Time, rw.Received, rw.SessionID
		if rw.Data != nil {
			s := string(rw.Data)
			datas[i] = &s
		}
		if rw.Ext != nil {
			s := string(rw.Ext)
			exts[i] = &s
		}
	}
	var inserted int64
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, restoreRows, game, ids, types, sources, subjects, times, sids, received, datas, exts, day).Scan(&inserted)
	})
	return inserted, err
}
