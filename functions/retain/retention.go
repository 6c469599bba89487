package retain

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// DedupDays is how long event ids are kept for deduplication at least,
// whatever archive_days says: ingest accepts events up to 30 days old, so a
// duplicate of an older event cannot arrive.
const DedupDays = 35

// RetentionResult is the data of com.gamemetrics.retention.completed.
type RetentionResult struct {
	StartedAt   time.Time       `json:"started_at"`
	CompletedAt time.Time       `json:"completed_at"`
	Games       []GameRetention `json:"games"`
}

// GameRetention is what one retention run did to one game.
type GameRetention struct {
	Game string `json:"game"`
	// ExportBefore and DeleteBefore are the cut-off days (YYYY-MM-DD):
	// partitions before the first were archived, archives before the
	// second deleted.
	ExportBefore      string `json:"export_before"`
	DeleteBefore      string `json:"delete_before"`
	DaysArchived      int    `json:"days_archived"`
	EventsArchived    int64  `json:"events_archived"`
	PartitionsDropped int    `json:"partitions_dropped"`
	PartitionsCreated int    `json:"partitions_created"`
	ArchiveDaysDelete int    `json:"archive_days_deleted"`
	ObjectsDeleted    int    `json:"objects_deleted"`
	EventIDsDeleted   int64  `json:"event_ids_deleted"`
	MinutesDeleted    int64  `json:"minute_rollups_deleted"`
	Error             string `json:"error,omitempty"`
}

// RunRetention applies every game's retention settings. A game that fails
// does not stop the others; the error names every failed game, and the next
// run resumes where this one stopped.
func (r *Retain) RunRetention(ctx context.Context) (RetentionResult, error) {
	start := r.now()
	res := RetentionResult{StartedAt: start.UTC(), Games: []GameRetention{}}
	games, err := r.games.List(ctx)
	if err != nil {
		r.metrics.failures.WithLabelValues("retention").Inc()
		return res, fmt.Errorf("list games: %w", err)
	}
	var failed []string
	for _, g := range games {
		gr, err := r.RetainGame(ctx, g)
		if err != nil {
			gr.Error = err.Error()
			failed = append(failed, g.ID+": "+err.Error())
			r.log.Error("retention of a game failed", "gameid", g.ID, "err", err)
		}
		res.Games = append(res.Games, gr)
	}
	res.CompletedAt = r.now().UTC()
	if len(failed) > 0 {
		r.metrics.failures.WithLabelValues("retention").Inc()
		return res, errors.New(strings.Join(failed, "; "))
	}
	return res, nil
}

// RetainGame applies g's retention settings as of the clock's today.
func (r *Retain) RetainGame(ctx context.Context, g store.Game) (GameRetention, error) {
	t0 := time.Now()
	defer func() { r.metrics.duration.WithLabelValues("retention").Observe(time.Since(t0).Seconds()) }()
	today := utcDay(r.now())
	exportBefore, deleteBefore := Cutoffs(today, g.HotDays, g.ArchiveDays)
	res := GameRetention{Game: g.ID, ExportBefore: archive.FormatDay(exportBefore), DeleteBefore: archive.FormatDay(deleteBefore)}
	if err := archive.ValidGame(g.ID); err != nil {
		return res, err
	}
	log := r.log.With("gameid", g.ID)
	unlock, err := r.lockGame(ctx, g.ID)
	if err != nil {
		return res, err
	}
	defer unlock()

	// Partitions ahead, so writers never wait on DDL at midnight.
	for i := 0; i <= r.cfg.AheadDays; i++ {
		day := today.AddDate(0, 0, i)
		var exists bool
		if err := r.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", store.EventPartition(g.ID, day)).Scan(&exists); err != nil {
			return res, err
		}
		if !exists {
			if err := store.CreateEventPartition(ctx, r.pool, g.ID, day); err != nil {
				return res, err
			}
			res.PartitionsCreated++
		}
	}

	parts, err := r.partitionDays(ctx, g.ID)
	if err != nil {
		return res, err
	}
	stored, err := r.listArchive(ctx, g.ID)
	if err != nil {
		return res, err
	}
	for _, day := range parts {
		if !day.Before(exportBefore) {
			continue
		}
		n, archived, err := r.exportDay(ctx, g.ID, day, stored[day])
		if err != nil {
			return res, fmt.Errorf("archive %s: %w", archive.FormatDay(day), err)
		}
		if archived {
			res.DaysArchived++
		}
		res.EventsArchived += n
		res.PartitionsDropped++
		log.Info("day archived and partition dropped", "day", archive.FormatDay(day), "events", n)
	}

	// Expired archives, and leftovers of interrupted runs on days whose
	// partition is gone (while a partition exists, its export cleans up).
	stored, err = r.listArchive(ctx, g.ID)
	if err != nil {
		return res, err
	}
	hot := map[time.Time]bool{}
	if parts, err = r.partitionDays(ctx, g.ID); err != nil {
		return res, err
	}
	for _, d := range parts {
		hot[d] = true
	}
	for _, day := range sortedDays(stored) {
		objs := stored[day]
		if day.Before(deleteBefore) && !hot[day] {
			// Parts first, the manifest last: a crash in between leaves a
			// manifest the next run deletes the same way.
			if err := r.arc.Delete(ctx, objs.parts...); err != nil {
				return res, err
			}
			if objs.manifest {
				if err := r.arc.Delete(ctx, archive.ManifestKey(g.ID, day)); err != nil {
					return res, err
				}
			}
			res.ArchiveDaysDelete++
			res.ObjectsDeleted += len(objs.parts)
			r.metrics.daysDeleted.Inc()
			log.Info("archive expired and deleted", "day", archive.FormatDay(day), "objects", len(objs.parts))
			continue
		}
		if hot[day] {
			continue
		}
		var m *archive.Manifest
		if objs.manifest {
			if m, err = r.arc.ReadManifest(ctx, g.ID, day); err != nil {
				return res, err
			}
		}
		if m == nil || len(m.Parts) != len(objs.parts) {
			n, err := r.deleteUnlisted(ctx, g.ID, day, m)
			if err != nil {
				return res, err
			}
			res.ObjectsDeleted += n
		}
	}

	// Dedup ids of days whose archive is gone and that no duplicate can reach.
	idsBefore := deleteBefore
	if limit := today.AddDate(0, 0, -DedupDays); limit.Before(idsBefore) {
		idsBefore = limit
	}
	tag, err := r.pool.Exec(ctx, "DELETE FROM event_ids WHERE gameid = $1 AND day < $2", g.ID, idsBefore)
	if err != nil {
		return res, err
	}
	res.EventIDsDeleted = tag.RowsAffected()

	// Minute rollups serve recent alert windows only.
	if tag, err = r.pool.Exec(ctx, "DELETE FROM rollup_minutely WHERE gameid = $1 AND minute < $2",
		g.ID, r.now().Add(-store.MinuteRollupDays*24*time.Hour)); err != nil {
		return res, err
	}
	res.MinutesDeleted = tag.RowsAffected()
	return res, nil
}

// partitionDays lists the days that have an events partition of game.
func (r *Retain) partitionDays(ctx context.Context, game string) ([]time.Time, error) {
	ref := store.EventPartition(game, time.Unix(0, 0))
	prefix := ref[:len(ref)-len("19700101")]
	rows, err := r.pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
		JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND starts_with(c.relname, $1) AND length(c.relname) = $2
		ORDER BY c.relname`, prefix, len(ref))
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var days []time.Time
	for _, n := range names {
		d, err := time.Parse("20060102", n[len(prefix):])
		if err != nil {
			continue
		}
		days = append(days, d)
	}
	return days, nil
}

// scanBatch is how many rows the scanner hands the encoder at once.
const scanBatch = 1000

// errPartitionChanged means rows arrived in a partition while it was exported.
var errPartitionChanged = errors.New("partition changed during export")

// exportDay archives game's partition of day and drops it. existing are the
// day's stored objects (nil if none). It returns the events the partition
// held and whether an archive was written.
func (r *Retain) exportDay(ctx context.Context, game string, day time.Time, existing *dayObjects) (int64, bool, error) {
	for attempt := 0; ; attempt++ {
		n, archived, err := r.exportDayOnce(ctx, game, day, existing)
		if errors.Is(err, errPartitionChanged) && attempt < 3 {
			r.log.Info("rows arrived during export, exporting again", "gameid", game, "day", archive.FormatDay(day))
			if existing, err = r.dayObjects(ctx, game, day); err != nil {
				return 0, false, err
			}
			continue
		}
		return n, archived, err
	}
}

func (r *Retain) dayObjects(ctx context.Context, game string, day time.Time) (*dayObjects, error) {
	all, err := r.listArchive(ctx, game)
	if err != nil {
		return nil, err
	}
	return all[day], nil
}

func (r *Retain) exportDayOnce(ctx context.Context, game string, day time.Time, existing *dayObjects) (int64, bool, error) {
	partition := store.EventPartition(game, day)
	next := 0
	var old *archive.Manifest
	if existing != nil {
		next = existing.maxPart + 1
		if existing.manifest {
			m, err := r.arc.ReadManifest(ctx, game, day)
			if err != nil {
				return 0, false, err
			}
			old = m
		}
	}
	// Events the committed archive already holds (a crash after commit and
	// before drop, a restored day, or late events for an archived day).
	archived := map[string]bool{}
	if old != nil {
		if err := r.arc.ReadEvents(ctx, old, func(e event.Event) error {
			archived[e.ID()] = true
			return nil
		}); err != nil {
			return 0, false, err
		}
	}

	w := r.newDayWriter(ctx, game, day, next)
	var total, fresh int64
	// Rows are scanned in one goroutine and encoded in another, so reading
	// from PostgreSQL and JSON + gzip overlap.
	batches := make(chan []archive.Row, 4)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		rows, err := r.pool.Query(gctx, "SELECT "+archive.RowColumns+" FROM "+pgx.Identifier{partition}.Sanitize())
		if err != nil {
			return err
		}
		defer rows.Close()
		batch := make([]archive.Row, 0, scanBatch)
		send := func() error {
			select {
			case batches <- batch:
				batch = make([]archive.Row, 0, scanBatch)
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		for rows.Next() {
			batch = append(batch, archive.Row{})
			if err := rows.Scan(batch[len(batch)-1].ScanTargets()...); err != nil {
				return err
			}
			total++
			if len(batch) == scanBatch {
				if err := send(); err != nil {
					return err
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			return send()
		}
		return nil
	})
	g.Go(func() error {
		var line []byte
		for b := range batches {
			for i := range b {
				if archived[b[i].ID] {
					continue
				}
				var err error
				if line, err = b[i].AppendJSON(line[:0], game); err != nil {
					return err
				}
				fresh++
				if err := w.addLine(line); err != nil {
					return err
				}
			}
		}
		return nil
	})
	err := g.Wait()
	if err != nil {
		w.abandon()
		return 0, false, err
	}

	wrote := false
	switch {
	case fresh == 0 && old != nil:
		// The archive holds every row already.
		w.abandon()
		if _, err := r.deleteUnlisted(ctx, game, day, old); err != nil {
			return 0, false, err
		}
		if err := r.checkpoint(FaultExportCommitted); err != nil {
			return 0, false, err
		}
	case total == 0:
		// An empty partition (created ahead, never written): nothing to keep.
		w.abandon()
	default:
		if old != nil {
			// Merge: the new generation holds the old archive too.
			if err := r.arc.ReadEvents(ctx, old, func(e event.Event) error { return w.add(&e) }); err != nil {
				w.abandon()
				return 0, false, err
			}
		}
		m, err := w.commit(FaultExportUploaded)
		if err != nil {
			return 0, false, err
		}
		wrote = true
		r.metrics.eventsArchived.Add(float64(fresh))
		if _, err := r.deleteUnlisted(ctx, game, day, &m); err != nil {
			return 0, false, err
		}
		if err := r.checkpoint(FaultExportCommitted); err != nil {
			return 0, false, err
		}
	}
	if err := r.dropPartition(ctx, partition, total); err != nil {
		return 0, false, err
	}
	r.metrics.partitionsDropped.Inc()
	return total, wrote, nil
}

// dropPartition drops a partition if it still holds exactly want rows,
// counted while no new row can be inserted into events.
func (r *Retain) dropPartition(ctx context.Context, partition string, want int64) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", r.cfg.LockTimeout.Milliseconds())); err != nil {
			return err
		}
		// SHARE ROW EXCLUSIVE on the parent stops inserts (which take ROW
		// EXCLUSIVE on it) but not reads; DROP then takes ACCESS EXCLUSIVE.
		if _, err := tx.Exec(ctx, "LOCK TABLE ONLY events IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return err
		}
		ident := pgx.Identifier{partition}.Sanitize()
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+ident).Scan(&n); err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%w: %s holds %d rows, %d were exported", errPartitionChanged, partition, n, want)
		}
		_, err := tx.Exec(ctx, "DROP TABLE "+ident)
		return err
	})
}
