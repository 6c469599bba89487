package retain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// ErasureRequest asks to erase one player of one game.
type ErasureRequest struct {
	// ID identifies the request (the CloudEvent id); a retry with the same
	// id resumes the same erasure.
	ID          string
	Game        string
	Player      string
	RequestedBy string
	RequestedAt time.Time
}

// ErasureResult is the data of com.gamemetrics.player.erasure.completed
// and what the audit row records. It names the player only by a hash.
type ErasureResult struct {
	Game         string    `json:"game"`
	RequestID    string    `json:"request_id"`
	PlayerSHA256 string    `json:"player_sha256"`
	RequestedBy  string    `json:"requested_by"`
	RequestedAt  time.Time `json:"requested_at"`
	StartedAt    time.Time `json:"started_at"`
	CompletedAt  time.Time `json:"completed_at"`
	// Removed counts what was removed per store and table, e.g.
	// postgres.events, postgres.sessions, redis.members, s3.events.
	Removed map[string]int64 `json:"removed"`
}

// PlayerHash is how the audit names a player: hex SHA-256 of "game:player".
func PlayerHash(game, player string) string { return store.PlayerHash(game, player) }

// Erase removes every trace of a player from PostgreSQL, Redis and the S3
// archive and records the audit row. Aggregates are kept.
func (r *Retain) Erase(ctx context.Context, req ErasureRequest) (ErasureResult, error) {
	t0 := time.Now()
	res, err := r.erase(ctx, req)
	r.metrics.duration.WithLabelValues("erasure").Observe(time.Since(t0).Seconds())
	if err != nil && serving.StatusOf(err) >= 500 {
		r.metrics.failures.WithLabelValues("erasure").Inc()
	}
	return res, err
}

func (r *Retain) erase(ctx context.Context, req ErasureRequest) (ErasureResult, error) {
	if req.Game == "" || req.Player == "" || len(req.Player) > 128 {
		return ErasureResult{}, serving.Reject(http.StatusBadRequest, "erasure needs a game and a player (1–128 characters)")
	}
	if req.ID == "" {
		return ErasureResult{}, serving.Reject(http.StatusBadRequest, "erasure request has no id")
	}
	if req.RequestedBy == "" {
		return ErasureResult{}, serving.Reject(http.StatusBadRequest, "erasure request does not say who requested it")
	}
	if _, err := r.games.Get(ctx, req.Game); errors.Is(err, store.ErrNotFound) {
		return ErasureResult{}, serving.Reject(http.StatusUnprocessableEntity, "unknown game %q", req.Game)
	} else if err != nil {
		return ErasureResult{}, err
	}
	if err := archive.ValidGame(req.Game); err != nil {
		return ErasureResult{}, serving.Reject(http.StatusUnprocessableEntity, "%v", err)
	}
	log := r.log.With("gameid", req.Game, "request", req.ID)
	unlock, err := r.lockGame(ctx, req.Game)
	if err != nil {
		return ErasureResult{}, err
	}
	defer unlock()

	hash := PlayerHash(req.Game, req.Player)
	// The erasure begins under the game's write lock: process's
	// transactions that store or count the game's events either committed
	// before (and the deletes below see what they wrote) or start after it
	// and see the erasure (and leave the player's earlier events out).
	if err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if err := store.LockGameWrites(ctx, tx, req.Game); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO erasures (gameid, request_id, player_sha256, requested_by, requested_at, started_at)
			VALUES ($1, $2, $3, $4, $5, clock_timestamp()) ON CONFLICT (gameid, request_id) DO NOTHING`,
			req.Game, req.ID, hash, req.RequestedBy, req.RequestedAt)
		return err
	}); err != nil {
		return ErasureResult{}, fmt.Errorf("record erasure: %w", err)
	}
	res, done, err := r.loadErasure(ctx, req.Game, req.ID)
	if err != nil {
		return res, err
	}
	if res.PlayerSHA256 != hash {
		return res, serving.Reject(http.StatusConflict, "request id %q was used for another player", req.ID)
	}
	if done {
		log.Info("erasure already completed")
		return res, nil
	}

	// 1. PostgreSQL, in one transaction with the audit counts.
	if err := r.erasePostgres(ctx, req); err != nil {
		return res, fmt.Errorf("erase from PostgreSQL: %w", err)
	}
	if err := r.checkpoint(FaultEraseDatabase); err != nil {
		return res, err
	}
	// 2. Redis.
	n, err := r.live.ErasePlayer(ctx, req.Game, req.Player)
	if err != nil {
		return res, fmt.Errorf("erase from Redis: %w", err)
	}
	if err := r.addRemoved(ctx, nil, req, map[string]int64{"redis.members": n}); err != nil {
		return res, err
	}
	r.metrics.erased.WithLabelValues("redis").Add(float64(n))
	// 3. The S3 archive, one day at a time.
	if err := r.eraseArchive(ctx, req); err != nil {
		return res, fmt.Errorf("erase from the archive: %w", err)
	}
	if _, err := r.pool.Exec(ctx, "UPDATE erasures SET completed_at = now() WHERE gameid = $1 AND request_id = $2", req.Game, req.ID); err != nil {
		return res, err
	}
	r.metrics.erasures.Inc()
	res, _, err = r.loadErasure(ctx, req.Game, req.ID)
	log.Info("player erased", "removed", res.Removed)
	return res, err
}

func (r *Retain) loadErasure(ctx context.Context, game, id string) (ErasureResult, bool, error) {
	res := ErasureResult{Game: game, RequestID: id}
	var completed *time.Time
	var removed []byte
	err := r.pool.QueryRow(ctx, `SELECT player_sha256, requested_by, requested_at, started_at, completed_at, removed
		FROM erasures WHERE gameid = $1 AND request_id = $2`, game, id).
		Scan(&res.PlayerSHA256, &res.RequestedBy, &res.RequestedAt, &res.StartedAt, &completed, &removed)
	if err != nil {
		return res, false, err
	}
	if err := json.Unmarshal(removed, &res.Removed); err != nil {
		return res, false, err
	}
	res.RequestedAt, res.StartedAt = res.RequestedAt.UTC(), res.StartedAt.UTC()
	if completed != nil {
		res.CompletedAt = completed.UTC()
	}
	return res, completed != nil, nil
}

// addRemoved adds counts to the audit row, in tx if given.
func (r *Retain) addRemoved(ctx context.Context, tx pgx.Tx, req ErasureRequest, counts map[string]int64) error {
	add := func(tx pgx.Tx) error {
		var raw []byte
		if err := tx.QueryRow(ctx, "SELECT removed FROM erasures WHERE gameid = $1 AND request_id = $2 FOR UPDATE", req.Game, req.ID).Scan(&raw); err != nil {
			return err
		}
		cur := map[string]int64{}
		if err := json.Unmarshal(raw, &cur); err != nil {
			return err
		}
		for k, v := range counts {
			cur[k] += v
		}
		b, _ := json.Marshal(cur)
		_, err := tx.Exec(ctx, "UPDATE erasures SET removed = $3 WHERE gameid = $1 AND request_id = $2", req.Game, req.ID, string(b))
		return err
	}
	if tx != nil {
		return add(tx)
	}
	return pgx.BeginFunc(ctx, r.pool, add)
}

// erasePostgres deletes the player's rows from every table that has them.
func (r *Retain) erasePostgres(ctx context.Context, req ErasureRequest) error {
	for attempt := 0; ; attempt++ {
		err := r.erasePostgresOnce(ctx, req)
		var pe *pgconn.PgError
		if err == nil || attempt == 4 || !errors.As(err, &pe) || (pe.Code != "40P01" && pe.Code != "40001") {
			return err
		}
		// Lost a deadlock against process writing the same rows: rerun.
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
}

const (
	deletePlayerEvents    = "DELETE FROM events WHERE gameid = $1 AND subject = $2 AND day BETWEEN $3 AND $4 RETURNING id"
	deleteAllPlayerEvents = "DELETE FROM events WHERE gameid = $1 AND subject = $2 RETURNING id"
)

func (r *Retain) erasePostgresOnce(ctx context.Context, req ErasureRequest) error {
	counts := map[string]int64{}
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		// Lock the player's key, whether or not the player has a row yet:
		// an upsert also waits for a process transaction that is inserting
		// the player right now (a SELECT ... FOR UPDATE would not see that
		// row). process changes a player's events, activity and install day
		// only under this key, and a process batch that starts after this
		// commits sees the erasure and leaves the player's older events out.
		var install, firstDay, lastDay pgtype.Date
		var inserted bool
		if err := tx.QueryRow(ctx, `INSERT INTO players AS p (gameid, subject, first_seen, last_seen, install_day)
			VALUES ($1, $2, now(), now(), current_date)
			ON CONFLICT (gameid, subject) DO UPDATE SET gameid = p.gameid
			RETURNING install_day, (first_seen AT TIME ZONE 'UTC')::date, (last_seen AT TIME ZONE 'UTC')::date, xmax = 0`,
			req.Game, req.Player).Scan(&install, &firstDay, &lastDay, &inserted); err != nil {
			return fmt.Errorf("lock player: %w", err)
		}
		if inserted {
			// Only a lock: the key stays locked until commit.
			if _, err := tx.Exec(ctx, "DELETE FROM players WHERE gameid = $1 AND subject = $2", req.Game, req.Player); err != nil {
				return fmt.Errorf("lock player: %w", err)
			}
			install.Valid = false
		}
		// The player's counted events lie in the UTC days of their first
		// and last event (process keeps first_seen and last_seen as the
		// earliest and latest event time it counted), and events stored but
		// not counted yet in the days of the game's pending rows; only
		// those day partitions are scanned, not every hot day of the game.
		// Without a player row, look everywhere.
		events, args := deleteAllPlayerEvents, []any{req.Game, req.Player}
		if !inserted {
			var pendingFrom, pendingTo pgtype.Date
			if err := tx.QueryRow(ctx, "SELECT min(day_from), max(day_to) FROM pending_events WHERE gameid = $1", req.Game).
				Scan(&pendingFrom, &pendingTo); err != nil {
				return fmt.Errorf("pending events: %w", err)
			}
			if pendingFrom.Valid && pendingFrom.Time.Before(firstDay.Time) {
				firstDay = pendingFrom
			}
			if pendingTo.Valid && pendingTo.Time.After(lastDay.Time) {
				lastDay = pendingTo
			}
			events, args = deletePlayerEvents, append(args, firstDay, lastDay)
		}
		rows, err := tx.Query(ctx, events, args...)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		counts["postgres.events"] = int64(len(ids))
		n, err := deleteIdentifyingIDs(ctx, tx, req, ids)
		if err != nil {
			return err
		}
		counts["postgres.event_ids"] = n
		rows, err = tx.Query(ctx, "DELETE FROM player_days WHERE gameid = $1 AND subject = $2 RETURNING day", req.Game, req.Player)
		if err != nil {
			return err
		}
		days, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
		if err != nil {
			return fmt.Errorf("player_days: %w", err)
		}
		counts["postgres.player_days"] = int64(len(days))
		if install.Valid && len(days) > 0 {
			// The player leaves their cohort on every day they were counted.
			if _, err := tx.Exec(ctx, `UPDATE cohort_days SET players = players - 1
				WHERE gameid = $1 AND install_day = $2 AND day = ANY($3)`, req.Game, install.Time, days); err != nil {
				return fmt.Errorf("cohort_days: %w", err)
			}
		}
		// LTV: the player's revenue leaves their cohort; their per-day
		// tuples (breakdowns' distinct counts) go like player_days.
		if install.Valid {
			if _, err := tx.Exec(ctx, `UPDATE cohort_revenue c SET amount_minor = c.amount_minor - r.amount_minor
				FROM player_revenue_days r WHERE r.gameid = $1 AND r.subject = $2
				  AND c.gameid = r.gameid AND c.install_day = $3 AND c.currency = r.currency AND c.day = r.day`,
				req.Game, req.Player, install.Time); err != nil {
				return fmt.Errorf("cohort_revenue: %w", err)
			}
		}
		for _, table := range []string{"player_revenue_days", "player_day_tuples", "player_hour_tuples", "sessions", "player_hours", "player_spend", "players"} {
			tag, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE gameid = $1 AND subject = $2", req.Game, req.Player)
			if err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
			counts["postgres."+table] = tag.RowsAffected()
		}
		if err := eraseRecommend(ctx, tx, req, counts); err != nil {
			return err
		}
		// The daily HyperLogLog sketches hold a hash of every player id
		// (exactly, while a day has few players): rebuild the player's days
		// from player_days without them. Lock the sketches first, so the
		// rebuild (a later statement, hence a later snapshot) sees every
		// player a concurrent process transaction committed.
		if len(days) > 0 {
			if _, err := tx.Exec(ctx, "SELECT 1 FROM players_hll_daily WHERE gameid = $1 AND day = ANY($2) ORDER BY day FOR UPDATE", req.Game, days); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `UPDATE players_hll_daily h SET players = coalesce(
				(SELECT hll_add_agg(hll_hash_text(p.subject)) FROM player_days p WHERE p.gameid = h.gameid AND p.day = h.day), hll_empty())
				WHERE h.gameid = $1 AND h.day = ANY($2)`, req.Game, days)
			if err != nil {
				return fmt.Errorf("players_hll_daily: %w", err)
			}
			counts["postgres.players_hll_daily_rebuilt"] = tag.RowsAffected()
			if _, err := tx.Exec(ctx, "SELECT 1 FROM players_hll_dim_daily WHERE gameid = $1 AND day = ANY($2) ORDER BY day, dname, dvalue FOR UPDATE", req.Game, days); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE players_hll_dim_daily h SET players = coalesce(
				(SELECT hll_add_agg(hll_hash_text(d.subject)) FROM player_day_tuples d
				 JOIN dim_tuples t ON t.gameid = d.gameid AND t.tuple = d.tuple
				 WHERE d.gameid = h.gameid AND d.day = h.day AND CASE h.dname WHEN 'platform' THEN t.platform
				   WHEN 'country' THEN t.country WHEN 'appversion' THEN t.appversion WHEN 'dim1' THEN t.dim1
				   WHEN 'dim2' THEN t.dim2 ELSE t.dim3 END = h.dvalue), hll_empty())
				WHERE h.gameid = $1 AND h.day = ANY($2)`, req.Game, days); err != nil {
				return fmt.Errorf("players_hll_dim_daily: %w", err)
			}
		}
		return r.addRemoved(ctx, tx, req, counts)
	})
	if err == nil {
		for k, v := range counts {
			if k != "postgres.players_hll_daily_rebuilt" {
				r.metrics.erased.WithLabelValues("postgres").Add(float64(v))
			}
		}
	}
	return err
}

// eraseRecommend deletes what recommend keeps of the player (see
// shared/store/migrations/0009_recommend.sql). The player's row is locked
// first the way recommend locks it before writing their interactions, so
// a recommend transaction still in flight either commits before (and its
// rows are deleted here) or checks the erasures after (and counts nothing).
func eraseRecommend(ctx context.Context, tx pgx.Tx, req ErasureRequest, counts map[string]int64) error {
	var lockOnly bool
	if err := tx.QueryRow(ctx, `INSERT INTO recommend_players AS p (gameid, subject) VALUES ($1, $2)
		ON CONFLICT (gameid, subject) DO UPDATE SET gameid = p.gameid RETURNING xmax = 0`, req.Game, req.Player).Scan(&lockOnly); err != nil {
		return fmt.Errorf("lock recommend player: %w", err)
	}
	for _, table := range []string{"recommend_interactions", "recommend_event_ids", "recommend_players"} {
		tag, err := tx.Exec(ctx, "DELETE FROM "+table+" WHERE gameid = $1 AND subject = $2", req.Game, req.Player)
		if err != nil {
			return fmt.Errorf("%s: %w", table, err)
		}
		counts["postgres."+table] = tag.RowsAffected()
	}
	if lockOnly { // the row inserted above only to lock the key
		counts["postgres.recommend_players"]--
	}
	return nil
}

// deleteIdentifyingIDs deletes the dedup entries of the player's events
// whose id contains the player id (see the package comment for why the
// others are kept).
func deleteIdentifyingIDs(ctx context.Context, tx pgx.Tx, req ErasureRequest, ids []string) (int64, error) {
	var naming []string
	for _, id := range ids {
		if strings.Contains(id, req.Player) {
			naming = append(naming, id)
		}
	}
	if len(naming) == 0 {
		return 0, nil
	}
	tag, err := tx.Exec(ctx, "DELETE FROM event_ids WHERE gameid = $1 AND id = ANY($2)", req.Game, naming)
	return tag.RowsAffected(), err
}

// eraseArchive rewrites every archived day holding the player's events
// without them, and deletes uncommitted parts (which may hold them too).
func (r *Retain) eraseArchive(ctx context.Context, req ErasureRequest) error {
	stored, err := r.listArchive(ctx, req.Game)
	if err != nil {
		return err
	}
	for _, day := range sortedDays(stored) {
		objs := stored[day]
		var m *archive.Manifest
		if objs.manifest {
			if m, err = r.arc.ReadManifest(ctx, req.Game, day); err != nil {
				return err
			}
		}
		// Parts no manifest lists are uncommitted (their events are still
		// in a partition, or in the committed parts): delete them.
		debris, err := r.deleteUnlisted(ctx, req.Game, day, m)
		if err != nil {
			return err
		}
		counts := map[string]int64{}
		if debris > 0 {
			counts["s3.uncommitted_parts_deleted"] = int64(debris)
		}
		if m != nil {
			n, ids, err := r.eraseDay(ctx, req, day, m, objs.maxPart+1)
			if err != nil {
				return fmt.Errorf("%s: %w", archive.FormatDay(day), err)
			}
			if n > 0 {
				counts["s3.events"] = n
				counts["s3.days_rewritten"] = 1
				r.metrics.erased.WithLabelValues("s3").Add(float64(n))
				err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
					k, err := deleteIdentifyingIDs(ctx, tx, req, ids)
					if err != nil {
						return err
					}
					counts["postgres.event_ids"] = k
					return r.addRemoved(ctx, tx, req, counts)
				})
				if err != nil {
					return err
				}
				continue
			}
		}
		if len(counts) > 0 {
			if err := r.addRemoved(ctx, nil, req, counts); err != nil {
				return err
			}
		}
	}
	return nil
}

// eraseDay rewrites one day's archive without the player's events if it
// has any: new parts (numbered from next), verified, then the manifest,
// then the old parts are deleted. It returns how many events it removed
// and their ids.
func (r *Retain) eraseDay(ctx context.Context, req ErasureRequest, day time.Time, m *archive.Manifest, next int) (int64, []string, error) {
	var ids []string
	if err := r.arc.ReadEvents(ctx, m, func(e event.Event) error {
		if e.Subject() == req.Player {
			ids = append(ids, e.ID())
		}
		return nil
	}); err != nil {
		return 0, nil, err
	}
	if len(ids) == 0 {
		return 0, nil, nil
	}
	w := r.newDayWriter(ctx, req.Game, day, next)
	if err := r.arc.ReadEvents(ctx, m, func(e event.Event) error {
		if e.Subject() == req.Player {
			return nil
		}
		return w.add(&e)
	}); err != nil {
		w.abandon()
		return 0, nil, err
	}
	nm, err := w.commit(FaultEraseUploaded)
	if err != nil {
		return 0, nil, err
	}
	if _, err := r.deleteUnlisted(ctx, req.Game, day, &nm); err != nil {
		return 0, nil, err
	}
	return int64(len(ids)), ids, nil
}
