package recommend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// record is one relevant event on its way into PostgreSQL.
type record struct {
	game, id, player string
	at               time.Time // event time
	received         time.Time // when ingest accepted it (event time if unknown)
	eff              Effect
}

// relevant reports whether recommend reads events of type typ; everything
// else is acknowledged without work.
func relevant(typ string) bool {
	switch typ {
	case events.TypePurchase, events.TypeResource, events.TypeDesign, events.TypeSessionStart:
		return true
	}
	return false
}

// decode checks a delivered event and says what it means to recommend
// (nil: nothing). Only events of the catalogue that came through ingest are
// read; a bad one is refused with a 4xx (dead-lettered, not retried).
func (r *Recommend) decode(ctx context.Context, e *event.Event) (*record, error) {
	if !relevant(e.Type()) {
		return nil, nil
	}
	game, _ := e.Extensions()[events.ExtGameID].(string)
	if game == "" {
		return nil, serving.Reject(http.StatusBadRequest, "event %q has no gameid extension (events must come through ingest)", e.ID())
	}
	if rej := r.validator.ValidateStored(e); rej != nil {
		return nil, serving.Reject(http.StatusBadRequest, "event %q is invalid: %s", e.ID(), rej.Error())
	}
	st, err := r.intakeSettings(ctx, game)
	if errors.Is(err, store.ErrNotFound) {
		return nil, serving.Reject(http.StatusUnprocessableEntity, "event %q: unknown game %q", e.ID(), game)
	}
	if err != nil {
		return nil, serving.Transient("look up game", err)
	}
	eff, err := Interpret(e.Type(), e.Data(), st)
	if err != nil {
		return nil, serving.Reject(http.StatusBadRequest, "event %q: %v", e.ID(), err)
	}
	if !eff.Relevant() {
		return nil, nil
	}
	rec := &record{game: game, id: e.ID(), player: e.Subject(), at: e.Time().UTC().Truncate(time.Microsecond), eff: eff}
	rec.received = rec.at
	if v, ok := e.Extensions()[events.ExtReceivedTime]; ok {
		t, err := types.ToTime(v)
		if err != nil {
			return nil, serving.Reject(http.StatusBadRequest, "event %q: receivedtime: %v", e.ID(), err)
		}
		rec.received = t.UTC()
	}
	return rec, nil
}

// intakeSettings are the game's settings as intake uses them (design event
// mapping), cached for Config.SettingsTTL.
func (r *Recommend) intakeSettings(ctx context.Context, game string) (Settings, error) {
	now := r.now()
	r.intakeMu.Lock()
	c, ok := r.intakeCache[game]
	r.intakeMu.Unlock()
	if ok && now.Before(c.expires) {
		return c.settings, c.err
	}
	s, _, err := r.gameSettings(ctx, game)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return s, err
	}
	r.intakeMu.Lock()
	if len(r.intakeCache) > 10_000 {
		clear(r.intakeCache)
	}
	r.intakeCache[game] = cachedSettings{settings: s, err: err, expires: now.Add(r.cfg.SettingsTTL)}
	r.intakeMu.Unlock()
	return s, err
}

type cachedSettings struct {
	settings Settings
	err      error
	expires  time.Time
}

// pending is a delivery waiting for its batch's transaction.
type pending struct {
	rec  *record
	done chan error // receives the batch's answer for rec, once
}

// batcher groups concurrent deliveries into one transaction: a queue under
// a mutex that one writer drains. When it finds deliveries waiting, the
// writer lets Linger pass (more arrive meanwhile), takes up to MaxBatch and
// writes them; each delivery is answered only once its batch committed.
type batcher struct {
	max    int
	linger time.Duration
	write  func([]*record) []error

	mu     sync.Mutex
	wake   *sync.Cond
	queue  []*pending
	closed bool
	done   chan struct{}
}

func newBatcher(maxBatch int, linger time.Duration, write func([]*record) []error) *batcher {
	b := &batcher{max: maxBatch, linger: linger, write: write, done: make(chan struct{})}
	b.wake = sync.NewCond(&b.mu)
	go b.writer()
	return b
}

var errStopping = errors.New("recommend is stopping")

// submit queues rec and waits for its batch to commit.
func (b *batcher) submit(ctx context.Context, rec *record) error {
	p := &pending{rec: rec, done: make(chan error, 1)}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errStopping
	}
	b.queue = append(b.queue, p)
	b.wake.Signal()
	b.mu.Unlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // it may still commit: a redelivery is counted once
	}
}

// writer writes batches until the batcher is closed and its queue empty.
func (b *batcher) writer() {
	defer close(b.done)
	for {
		b.mu.Lock()
		for len(b.queue) == 0 && !b.closed {
			b.wake.Wait()
		}
		if len(b.queue) == 0 {
			b.mu.Unlock()
			return
		}
		if len(b.queue) < b.max && !b.closed && b.linger > 0 {
			b.mu.Unlock()
			time.Sleep(b.linger)
			b.mu.Lock()
		}
		n := min(len(b.queue), b.max)
		batch := slices.Clone(b.queue[:n])
		b.queue = slices.Delete(b.queue, 0, n)
		b.mu.Unlock()

		recs := make([]*record, len(batch))
		for i, p := range batch {
			recs[i] = p.rec
		}
		for i, err := range b.write(recs) {
			batch[i].done <- err
		}
	}
}

// close refuses new deliveries; the writer writes what is queued, and
// close waits for that (or ctx).
func (b *batcher) close(ctx context.Context) error {
	b.mu.Lock()
	b.closed = true
	b.wake.Broadcast()
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeBatch writes records in one transaction and answers each: nil once
// committed (or deliberately dropped: a duplicate, an erased player).
// Deadlocks with another replica are retried; any other failure fails the
// whole batch with a 5xx, so the KafkaSource redelivers it.
func (r *Recommend) writeBatch(recs []*record) []error {
	start := time.Now()
	errs := make([]error, len(recs))
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	var res writeResult
	var err error
	erased := 0
	for attempt := 0; ; attempt++ {
		res, err = r.writeOnce(ctx, recs)
		if ee := (*erasedError)(nil); errors.As(err, &ee) {
			// Rare: rerun without them, so not even a lock row is left
			// for an erased player.
			recs = slices.DeleteFunc(slices.Clone(recs), func(rec *record) bool { return ee.recs[rec] })
			erased += len(ee.recs)
			attempt--
			continue
		}
		var pe *pgconn.PgError
		if err == nil || attempt == 3 || !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 10 * time.Millisecond)
	}
	res.erased += erased
	r.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		r.log.Warn("interactions not written; the deliveries will be retried", "events", len(recs), "err", err)
		for i := range errs {
			errs[i] = serving.Transient("interactions not committed", err)
		}
		r.metrics.events.WithLabelValues("failed").Add(float64(len(recs)))
		return errs
	}
	r.metrics.events.WithLabelValues("counted").Add(float64(res.counted))
	r.metrics.events.WithLabelValues("duplicate").Add(float64(res.duplicates))
	r.metrics.events.WithLabelValues("erased").Add(float64(res.erased))
	return errs
}

type writeResult struct{ counted, duplicates, erased int }

// erasedError names records of erased players that ingest received before
// their erasure began.
type erasedError struct{ recs map[*record]bool }

func (e *erasedError) Error() string { return fmt.Sprintf("%d events of erased players", len(e.recs)) }

type playerKey struct{ game, player string }

const (
	// lockPlayers creates or locks every player row of the batch, in key
	// order: retain's erasure takes the same lock, so a player's
	// interactions are never written while (or, given the erasures check
	// that follows, after) they are erased.
	lockPlayers = `INSERT INTO recommend_players AS p (gameid, subject)
SELECT u.gameid, u.subject FROM unnest($1::text[], $2::text[]) AS u(gameid, subject)
ORDER BY u.gameid COLLATE "C", u.subject COLLATE "C"
ON CONFLICT (gameid, subject) DO UPDATE SET gameid = p.gameid`

	// erasedSince: the latest erasure of each of the batch's players;
	// their events ingest received before it began are not counted.
	erasedSince = `SELECT e.gameid, e.player_sha256, max(e.started_at)
FROM erasures e JOIN unnest($1::text[], $2::text[]) AS u(gameid, hash)
	ON e.gameid = u.gameid AND e.player_sha256 = u.hash
GROUP BY e.gameid, e.player_sha256`

	insertEventIDs = `INSERT INTO recommend_event_ids (gameid, id, subject)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
ON CONFLICT DO NOTHING RETURNING gameid, id`

	upsertInteractions = `INSERT INTO recommend_interactions AS t
	(gameid, subject, item_id, purchases, amount_minor, sinks, views, first_at, last_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::numeric[], $6::bigint[], $7::bigint[],
	$8::timestamptz[], $9::timestamptz[])
ON CONFLICT (gameid, subject, item_id) DO UPDATE SET
	purchases = t.purchases + excluded.purchases, amount_minor = t.amount_minor + excluded.amount_minor,
	sinks = t.sinks + excluded.sinks, views = t.views + excluded.views,
	first_at = least(t.first_at, excluded.first_at), last_at = greatest(t.last_at, excluded.last_at)`

	// updateSegments keeps each player's latest session start by (event
	// time, event id), whatever order they arrive in.
	updateSegments = `UPDATE recommend_players p SET platform = u.platform, country = nullif(u.country, ''),
	segment_at = u.at, segment_id = u.id
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
	AS u(gameid, subject, platform, country, at, id)
WHERE p.gameid = u.gameid AND p.subject = u.subject
	AND (p.segment_at IS NULL OR (u.at, u.id) > (p.segment_at, p.segment_id))`

	insertSeenItems = `INSERT INTO recommend_items (gameid, item_id)
SELECT u.gameid, u.item FROM unnest($1::text[], $2::text[]) AS u(gameid, item)
ORDER BY u.gameid COLLATE "C", u.item COLLATE "C"
ON CONFLICT DO NOTHING`
)

func (r *Recommend) writeOnce(ctx context.Context, recs []*record) (writeResult, error) {
	var res writeResult
	// One copy of each (game, id) per batch; the others are duplicates.
	type idKey struct{ game, id string }
	first := make(map[idKey]*record, len(recs))
	var unique []*record
	for _, rec := range recs {
		if _, dup := first[idKey{rec.game, rec.id}]; dup {
			res.duplicates++
			continue
		}
		first[idKey{rec.game, rec.id}] = rec
		unique = append(unique, rec)
	}
	if len(unique) == 0 {
		return res, nil
	}
	players := map[playerKey]bool{}
	for _, rec := range unique {
		players[playerKey{rec.game, rec.player}] = true
	}
	keys := make([]playerKey, 0, len(players))
	for k := range players {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b playerKey) int {
		return cmp.Or(cmp.Compare(a.game, b.game), cmp.Compare(a.player, b.player))
	})
	pg, pp, hashes := make([]string, len(keys)), make([]string, len(keys)), make([]string, len(keys))
	byHash := map[string]playerKey{}
	for i, k := range keys {
		pg[i], pp[i], hashes[i] = k.game, k.player, store.PlayerHash(k.game, k.player)
		byHash[hashes[i]] = k
	}
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(lockPlayers, pg, pp)
		b.Queue(erasedSince, pg, hashes)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return fmt.Errorf("lock players: %w", err)
		}
		erased := map[playerKey]time.Time{}
		rows, _ := br.Query()
		var g, hash string
		var began time.Time
		if _, err := pgx.ForEachRow(rows, []any{&g, &hash, &began}, func() error {
			erased[byHash[hash]] = began
			return nil
		}); err != nil {
			br.Close()
			return fmt.Errorf("check erasures: %w", err)
		}
		if err := br.Close(); err != nil {
			return err
		}
		gone := map[*record]bool{}
		for _, rec := range recs {
			if at, ok := erased[playerKey{rec.game, rec.player}]; ok && !rec.received.After(at) {
				gone[rec] = true
			}
		}
		if len(gone) > 0 {
			return &erasedError{recs: gone}
		}
		keep := unique
		ig, ii, is := make([]string, len(keep)), make([]string, len(keep)), make([]string, len(keep))
		for i, rec := range keep {
			ig[i], ii[i], is[i] = rec.game, rec.id, rec.player
		}
		rows, _ = tx.Query(ctx, insertEventIDs, ig, ii, is)
		fresh := map[idKey]bool{}
		var id string
		if _, err := pgx.ForEachRow(rows, []any{&g, &id}, func() error {
			fresh[idKey{g, id}] = true
			return nil
		}); err != nil {
			return fmt.Errorf("event ids: %w", err)
		}
		var counted []*record
		for _, rec := range keep {
			if fresh[idKey{rec.game, rec.id}] {
				counted = append(counted, rec)
			} else {
				res.duplicates++
			}
		}
		res.counted = len(counted)
		return r.applyEffects(ctx, tx, counted)
	})
	if err != nil {
		return writeResult{}, err
	}
	return res, nil
}

// applyEffects adds the new records' interactions and segments.
func (r *Recommend) applyEffects(ctx context.Context, tx pgx.Tx, recs []*record) error {
	type itemKey struct{ game, player, item string }
	type sums struct {
		purchases, amount, sinks, views int64
		first, last                     int64 // unix microseconds
	}
	inter := map[itemKey]*sums{}
	type segment struct {
		seg Segment
		at  time.Time
		id  string
	}
	segs := map[playerKey]segment{}
	seen := map[[2]string]bool{}
	for _, rec := range recs {
		if s := rec.eff.Segment; s != nil {
			k := playerKey{rec.game, rec.player}
			cur, ok := segs[k]
			if !ok || rec.at.After(cur.at) || (rec.at.Equal(cur.at) && rec.id > cur.id) {
				segs[k] = segment{*s, rec.at, rec.id}
			}
		}
		if rec.eff.Item == "" {
			continue
		}
		seen[[2]string{rec.game, rec.eff.Item}] = true
		k := itemKey{rec.game, rec.player, rec.eff.Item}
		at := rec.at.UnixMicro()
		s := inter[k]
		if s == nil {
			s = &sums{first: at, last: at}
			inter[k] = s
		}
		c := rec.eff.Counters
		s.purchases += c.Purchases
		s.amount += rec.eff.AmountMinor
		s.sinks += c.Sinks
		s.views += c.Views
		s.first, s.last = min(s.first, at), max(s.last, at)
	}
	b := &pgx.Batch{}
	if len(inter) > 0 {
		keys := make([]itemKey, 0, len(inter))
		for k := range inter {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b itemKey) int {
			return cmp.Or(cmp.Compare(a.game, b.game), cmp.Compare(a.player, b.player), cmp.Compare(a.item, b.item))
		})
		n := len(keys)
		g, p, it := make([]string, n), make([]string, n), make([]string, n)
		pu, am, si, vi := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		fa, la := make([]time.Time, n), make([]time.Time, n)
		for i, k := range keys {
			s := inter[k]
			g[i], p[i], it[i] = k.game, k.player, k.item
			pu[i], am[i], si[i], vi[i] = s.purchases, s.amount, s.sinks, s.views
			fa[i], la[i] = time.UnixMicro(s.first).UTC(), time.UnixMicro(s.last).UTC()
		}
		b.Queue(upsertInteractions, g, p, it, pu, am, si, vi, fa, la)
		ig, ii := make([]string, 0, len(seen)), make([]string, 0, len(seen))
		for k := range seen {
			ig, ii = append(ig, k[0]), append(ii, k[1])
		}
		b.Queue(insertSeenItems, ig, ii)
	}
	if len(segs) > 0 {
		var g, p, pl, co, id []string
		var at []time.Time
		for k, s := range segs {
			g, p, pl, co, at, id = append(g, k.game), append(p, k.player), append(pl, s.seg.Platform), append(co, s.seg.Country), append(at, s.at), append(id, s.id)
		}
		b.Queue(updateSegments, g, p, pl, co, at, id)
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}
