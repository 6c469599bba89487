package notify

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// retryFactor is how much longer each wait between attempts is.
const retryFactor = 3.1

// maxRetryAfter bounds how long a receiver's Retry-After may hold a
// delivery back.
const maxRetryAfter = 24 * time.Hour

// backoff is the wait after the attempt-th failed attempt: RetryBase ×
// 3.1^(attempt−1) with ±20% jitter (so receivers that failed together do
// not all come back at once), or the receiver's Retry-After when it sent
// one (429, 503).
func backoff(base time.Duration, attempt int, retryAfter time.Duration, jitter float64) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, maxRetryAfter)
	}
	d := float64(base) * math.Pow(retryFactor, float64(attempt-1)) * (0.8 + 0.4*jitter)
	return time.Duration(min(d, float64(maxRetryAfter)))
}

// lease is how long a claimed delivery is held: if the replica sending it
// dies, another sends it again after this (with the same webhook-id).
func (n *Notify) lease() time.Duration { return 2*n.cfg.SendTimeout + 30*time.Second }

// claimed is a delivery one replica holds.
type claimed struct {
	delivery
	attempt  int
	due      time.Time
	seq      int64
	disabled bool
}

const claimDue = `WITH due AS (
  SELECT d.notification_id, d.destination_id, d.due_at, n.seq FROM notify_deliveries d
  JOIN notify_notifications n ON n.id = d.notification_id
  WHERE d.state = 'pending' AND d.due_at <= $1
  ORDER BY d.due_at, n.seq LIMIT $2
  FOR UPDATE OF d SKIP LOCKED)
UPDATE notify_deliveries d SET attempts = d.attempts + 1, due_at = $1 + make_interval(secs => $3)
FROM due, notify_notifications n, notify_destinations t
WHERE d.notification_id = due.notification_id AND d.destination_id = due.destination_id
  AND n.id = d.notification_id AND t.id = d.destination_id
RETURNING d.notification_id, d.destination_id, d.gameid, d.attempts, due.due_at, due.seq, n.type, n.event::text,
  t.kind, t.target, coalesce(t.secret, ''), t.disabled_at IS NOT NULL`

// claim takes up to limit due deliveries: their attempt number goes up
// and they stay invisible to other dispatchers for the lease.
func (n *Notify) claim(ctx context.Context, limit int) ([]claimed, error) {
	rows, err := n.pool.Query(ctx, claimDue, n.now(), limit, n.lease().Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (claimed, error) {
		var (
			c   claimed
			ev  string
			att int32
		)
		err := row.Scan(&c.notification, &c.destination, &c.game, &att, &c.due, &c.seq, &c.typ, &ev, &c.kind, &c.target, &c.secret, &c.disabled)
		c.attempt, c.event = int(att), []byte(ev)
		return c, err
	})
}

// DispatchDue sends every delivery due now, Workers at a time, until none
// is left or ctx ends. Sends already started finish and are recorded even
// when ctx ends.
func (n *Notify) DispatchDue(ctx context.Context) error {
	for ctx.Err() == nil {
		batch, err := n.claim(ctx, 4*n.cfg.Workers)
		if err != nil {
			return fmt.Errorf("claim deliveries: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		// One destination's deliveries go one at a time, in the order
		// they were made (a rule's firing before its resolved); different
		// destinations go in parallel.
		slices.SortFunc(batch, func(a, b claimed) int {
			return cmp.Or(a.due.Compare(b.due), cmp.Compare(a.seq, b.seq))
		})
		byDest := map[string][]claimed{}
		var order []string
		for _, c := range batch {
			if byDest[c.destination] == nil {
				order = append(order, c.destination)
			}
			byDest[c.destination] = append(byDest[c.destination], c)
		}
		var (
			wg   sync.WaitGroup
			sem  = make(chan struct{}, n.cfg.Workers)
			mu   sync.Mutex
			errs []error
		)
		for _, dest := range order {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				for _, c := range byDest[dest] {
					if err := n.attempt(context.WithoutCancel(ctx), c); err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	return nil
}

// dispatchLoop sends retries as they fall due between ticks, and what a
// tick or a player event made due as soon as it is told (kick).
func (n *Notify) dispatchLoop(ctx context.Context) {
	defer close(n.done)
	t := time.NewTicker(n.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.wake:
		}
		if err := n.DispatchDue(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("dispatch", "err", err)
		}
	}
}

// attempt sends one claimed delivery and records what came of it.
func (n *Notify) attempt(ctx context.Context, c claimed) error {
	if c.disabled {
		return n.finish(ctx, c, result{err: errors.New("the destination is disabled"), permanent: true}, n.now(), 0)
	}
	if c.kind == kindSlack {
		wait, err := n.slackSlot(ctx, c)
		if err != nil {
			return err
		}
		if wait < 0 {
			return nil // put back for its slot
		}
		time.Sleep(wait)
	}
	start := n.now()
	n.m.dispatchLag.Observe(max(start.Sub(c.due), 0).Seconds())
	r := n.senders.send(ctx, c.delivery)
	n.m.attempts.WithLabelValues(c.kind, r.label()).Inc()
	return n.finish(ctx, c, r, start, n.now().Sub(start))
}

// slackSlot reserves the next free second of a Slack destination (at most
// one message per second per incoming webhook, across replicas) and
// returns how long to wait for it; a slot further away than the lease
// allows puts the delivery back due at its slot, not counting an attempt
// (a negative wait).
func (n *Notify) slackSlot(ctx context.Context, c claimed) (time.Duration, error) {
	now := n.now()
	var slot time.Time
	if err := n.pool.QueryRow(ctx, `UPDATE notify_destinations SET send_after = greatest(send_after, $2) + interval '1 second'
		WHERE id = $1 RETURNING send_after - interval '1 second'`, c.destination, now).Scan(&slot); err != nil {
		return 0, fmt.Errorf("reserve a Slack slot: %w", err)
	}
	wait := slot.Sub(now)
	if wait <= n.cfg.SendTimeout {
		return max(wait, 0), nil
	}
	_, err := n.pool.Exec(ctx, `UPDATE notify_deliveries SET attempts = attempts - 1, due_at = $3
		WHERE notification_id = $1 AND destination_id = $2 AND attempts = $4 AND state = 'pending'`,
		c.notification, c.destination, slot, c.attempt)
	return -1, err
}

// finish records an attempt and moves its delivery on: delivered, due
// again after a backoff, or failed (attempts used up, a permanent refusal,
// or a destination gone: then it is disabled and its other pending
// deliveries fail with it). Only the attempt that claimed the delivery can
// move it (attempts is the fence).
func (n *Notify) finish(ctx context.Context, c claimed, r result, start time.Time, took time.Duration) error {
	now := n.now()
	var status *int
	if r.status != 0 {
		status = &r.status
	}
	var errText *string
	if r.err != nil {
		s := r.err.Error()
		if len(s) > 1000 {
			s = s[:1000]
		}
		errText = &s
	}
	state, due := "pending", now
	switch {
	case r.err == nil:
		state = "delivered"
	case r.permanent || c.attempt >= n.cfg.MaxAttempts:
		state = "failed"
	default:
		due = now.Add(backoff(n.cfg.RetryBase, c.attempt, r.retryAfter, rand.Float64()))
	}
	err := pgx.BeginFunc(ctx, n.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE notify_deliveries SET state = $4, due_at = $5, last_status = $6, last_error = $7,
			delivered_at = CASE WHEN $4 = 'delivered' THEN $8 ELSE delivered_at END
			WHERE notification_id = $1 AND destination_id = $2 AND attempts = $3 AND state = 'pending'`,
			c.notification, c.destination, c.attempt, state, due, status, errText, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return nil // the lease ran out and another attempt took it over
		}
		if _, err := tx.Exec(ctx, `INSERT INTO notify_attempts (notification_id, destination_id, attempt, at, status, error, duration_ms)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			c.notification, c.destination, c.attempt, start, status, errText, took.Milliseconds()); err != nil {
			return err
		}
		if r.gone {
			reason := fmt.Sprintf("the receiver answered that it is gone: %v", r.err)
			if _, err := tx.Exec(ctx, `UPDATE notify_destinations SET disabled_at = $2, disabled_reason = $3 WHERE id = $1 AND disabled_at IS NULL`,
				c.destination, now, reason); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE notify_deliveries SET state = 'failed', last_error = 'the destination is disabled: ' || $2
				WHERE destination_id = $1 AND state = 'pending'`, c.destination, reason); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record delivery %s → %s: %w", c.notification, c.destination, err)
	}
	switch state {
	case "delivered", "failed":
		n.m.notifications.WithLabelValues(kindOfType(c.typ), state).Inc()
		if state == "failed" {
			n.log.Warn("delivery failed", "gameid", c.game, "notification", c.notification, "destination", c.destination,
				"attempts", c.attempt, "status", r.status, "err", r.err)
		}
	default:
		n.log.Info("delivery will be retried", "gameid", c.game, "notification", c.notification, "destination", c.destination,
			"attempt", c.attempt, "at", due, "err", r.err)
	}
	return nil
}

// kindOfType is the metric kind of a notification type.
func kindOfType(typ string) string {
	switch typ {
	case TypeAlertFiring:
		return "firing"
	case TypeAlertResolved:
		return "resolved"
	case TypePlayer:
		return "player"
	}
	return "test"
}

// pruneBatch bounds the notifications one tick deletes, so a backlog of
// old ones is worked off over several ticks without a long transaction.
const pruneBatch = 5000

// Prune deletes notifications older than Keep with their deliveries and
// attempts, keeping those of once-per-player rules (their key is what
// keeps the rule once per player) and any still pending. It returns how
// many it deleted.
func (n *Notify) Prune(ctx context.Context) (int64, error) {
	tag, err := n.pool.Exec(ctx, `DELETE FROM notify_notifications WHERE id IN (
		SELECT x.id FROM notify_notifications x
		WHERE x.created_at < $1
		  AND NOT EXISTS (SELECT 1 FROM notify_player_rules r WHERE r.id = x.rule_id AND (r.spec->>'once_per_player')::boolean)
		  AND NOT EXISTS (SELECT 1 FROM notify_deliveries d WHERE d.notification_id = x.id AND d.state = 'pending')
		LIMIT $2)`, n.now().Add(-n.cfg.Keep), pruneBatch)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}
