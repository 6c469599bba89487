package recommend

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// LoadDataset reads a game's interactions, catalogue and segments, weighted
// by its settings (which it returns).
func LoadDataset(ctx context.Context, pool *pgxpool.Pool, game string) (*Dataset, Settings, error) {
	var raw []byte
	err := pool.QueryRow(ctx, `SELECT r.settings FROM games g LEFT JOIN recommend_games r ON r.gameid = g.id WHERE g.id = $1`, game).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, Settings{}, store.ErrNotFound
	}
	if err != nil {
		return nil, Settings{}, err
	}
	s := DefaultSettings()
	if len(raw) > 0 {
		if s, err = ParseSettings(raw); err != nil {
			s = DefaultSettings()
		}
	}
	b := NewDatasetBuilder(s)
	rows, err := pool.Query(ctx, `SELECT item_id FROM recommend_items WHERE gameid = $1 ORDER BY item_id COLLATE "C"`, game)
	if err != nil {
		return nil, s, err
	}
	var item string
	if _, err := pgx.ForEachRow(rows, []any{&item}, func() error { b.Item(item); return nil }); err != nil {
		return nil, s, fmt.Errorf("read items: %w", err)
	}
	rows, err = pool.Query(ctx, `SELECT subject, item_id, purchases, amount_minor::float8, sinks, views, last_at
		FROM recommend_interactions WHERE gameid = $1`, game)
	if err != nil {
		return nil, s, err
	}
	var player string
	var c Counters
	var last time.Time
	if _, err := pgx.ForEachRow(rows, []any{&player, &item, &c.Purchases, &c.AmountMinor, &c.Sinks, &c.Views, &last}, func() error {
		b.Add(player, item, c, last)
		return nil
	}); err != nil {
		return nil, s, fmt.Errorf("read interactions: %w", err)
	}
	rows, err = pool.Query(ctx, `SELECT subject, coalesce(platform, ''), coalesce(country, '') FROM recommend_players
		WHERE gameid = $1 AND segment_at IS NOT NULL`, game)
	if err != nil {
		return nil, s, err
	}
	var seg Segment
	if _, err := pgx.ForEachRow(rows, []any{&player, &seg.Platform, &seg.Country}, func() error {
		b.Segment(player, seg)
		return nil
	}); err != nil {
		return nil, s, fmt.Errorf("read segments: %w", err)
	}
	return b.Build(), s, nil
}

// trainConfig is the training configuration for a game's settings.
func (r *Recommend) trainConfig(s Settings) TrainConfig {
	cfg := r.cfg.Train
	cfg.HalfLife = time.Duration(s.HalfLifeDays * float64(24*time.Hour))
	return cfg
}

// EvaluateGame trains every candidate on the game's leave-last-out split
// and scores them on all held-out players (no sampling), as `gamemetrics
// recommend eval` prints them. Nothing is stored.
func EvaluateGame(ctx context.Context, pool *pgxpool.Pool, game string, cfg TrainConfig) (*FitResult, error) {
	d, s, err := LoadDataset(ctx, pool, game)
	if err != nil {
		return nil, err
	}
	cfg.HalfLife = time.Duration(s.HalfLifeDays * float64(24*time.Hour))
	cfg.ValidationPlayers = 0
	return Fit(d, cfg)
}

// TrainOutcome is what one game's training did.
type TrainOutcome struct {
	Game         string `json:"game"`
	Version      string `json:"version,omitempty"`
	Kind         string `json:"kind,omitempty"`
	Promoted     bool   `json:"promoted"`
	Reason       string `json:"reason"`
	Players      int    `json:"players"`
	Items        int    `json:"items"`
	Interactions int    `json:"interactions"`
	HeldOut      int    `json:"held_out"`
	// CandidatePlayers is how many players candidates were trained on.
	CandidatePlayers int         `json:"candidate_players"`
	Candidates       []Candidate `json:"candidates,omitempty"`
	Chosen           string      `json:"chosen,omitempty"`
	Comparison       *Comparison `json:"comparison,omitempty"`
	Current          string      `json:"current,omitempty"`
	Seconds          float64     `json:"seconds"`
	ModelKey         string      `json:"model_key,omitempty"`
	MetricsKey       string      `json:"metrics_key,omitempty"`
}

// TrainAll trains every game whose last training is older than TrainEvery
// (every game with force), one after the other.
func (r *Recommend) TrainAll(ctx context.Context, force bool) ([]TrainOutcome, error) {
	games, err := r.games.List(ctx)
	if err != nil {
		return nil, err
	}
	var outs []TrainOutcome
	var errs []error
	for _, g := range games {
		if !force {
			var recent bool
			if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recommend_models WHERE gameid = $1 AND created_at > now() - make_interval(secs => $2))`,
				g.ID, r.cfg.TrainEvery.Seconds()).Scan(&recent); err != nil {
				return outs, err
			}
			if recent {
				outs = append(outs, TrainOutcome{Game: g.ID, Reason: "trained less than " + r.cfg.TrainEvery.String() + " ago"})
				r.metrics.trainings.WithLabelValues("skipped").Inc()
				continue
			}
		}
		o, err := r.TrainGame(ctx, g.ID)
		outs = append(outs, o)
		if err != nil {
			errs = append(errs, fmt.Errorf("game %s: %w", g.ID, err))
		}
	}
	return outs, errors.Join(errs...)
}

// TrainGame trains one game's candidates, decides whether the best one
// replaces the current model, stores its metrics (and, if promoted, the
// model) in S3 and records the run. Replicas pick a promoted model up
// within ModelPoll; this one serves it at once.
func (r *Recommend) TrainGame(ctx context.Context, game string) (TrainOutcome, error) {
	start := time.Now()
	out, err := r.trainGame(ctx, game)
	out.Game, out.Seconds = game, time.Since(start).Seconds()
	switch {
	case err != nil:
		r.metrics.trainings.WithLabelValues("failed").Inc()
		r.log.Error("training failed", "gameid", game, "err", err)
	case out.Promoted:
		r.metrics.trainings.WithLabelValues("promoted").Inc()
	case out.Version != "":
		r.metrics.trainings.WithLabelValues("kept").Inc()
	default:
		r.metrics.trainings.WithLabelValues("skipped").Inc()
	}
	if err == nil && out.Version != "" {
		r.metrics.trainSeconds.Observe(out.Seconds)
		r.log.Info("trained", "gameid", game, "version", out.Version, "kind", out.Kind, "promoted", out.Promoted,
			"reason", out.Reason, "players", out.Players, "items", out.Items, "seconds", out.Seconds)
	}
	return out, err
}

func (r *Recommend) trainGame(ctx context.Context, game string) (TrainOutcome, error) {
	var out TrainOutcome
	if err := archive.ValidGame(game); err != nil {
		return out, serving.Reject(http.StatusBadRequest, "%v", err)
	}
	if r.arc == nil {
		return out, errors.New("no S3 bucket configured for models (S3_BUCKET)")
	}
	unlock, ok, err := r.tryLock(ctx, game)
	if err != nil {
		return out, err
	}
	if !ok {
		out.Reason = "another training of this game is running"
		return out, nil
	}
	defer unlock()
	d, s, err := LoadDataset(ctx, r.pool, game)
	if errors.Is(err, store.ErrNotFound) {
		return out, serving.Reject(http.StatusNotFound, "unknown game %q", game)
	}
	if err != nil {
		return out, fmt.Errorf("load interactions: %w", err)
	}
	if d.X.NNZ() == 0 {
		out.Reason = "no interactions yet"
		return out, nil
	}
	res, err := Fit(d, r.trainConfig(s))
	if err != nil {
		return out, err
	}
	best := res.BestCandidate()
	out.Players, out.Items, out.Interactions, out.HeldOut, out.CandidatePlayers = res.Players, res.Items, res.Interactions, res.HeldOut, res.CandidatePlayers
	out.Candidates, out.Chosen, out.Kind = res.Candidates, best.Name, best.Kind
	cur, err := r.currentModel(ctx, game)
	if err != nil {
		return out, fmt.Errorf("load the current model: %w", err)
	}
	out.Promoted, out.Reason = r.decide(ctx, res, cur, &out)
	if cur != nil {
		out.Current = cur.Version
	}

	out.Version = newVersion(r.now())
	m := res.Model
	m.Version, m.Game, m.CreatedAt = out.Version, game, r.now().UTC()
	prefix := "models/" + game + "/" + out.Version + "/"
	out.MetricsKey = prefix + "metrics.json"
	var sum string
	var size int64
	if out.Promoted {
		var buf bytes.Buffer
		if err := m.Encode(&buf); err != nil {
			return out, fmt.Errorf("encode model: %w", err)
		}
		h := sha256.Sum256(buf.Bytes())
		sum, size = hex.EncodeToString(h[:]), int64(buf.Len())
		out.ModelKey = prefix + "model.bin"
		if err := r.arc.Put(ctx, out.ModelKey, buf.Bytes(), "application/octet-stream"); err != nil {
			return out, err
		}
	}
	doc, _ := json.MarshalIndent(out, "", "  ")
	if err := r.arc.Put(ctx, out.MetricsKey, doc, "application/json"); err != nil {
		return out, err
	}
	var objectKey, sha *string
	if out.Promoted {
		objectKey, sha = &out.ModelKey, &sum
	}
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO recommend_models (gameid, version, kind, metrics, object_key, sha256, size_bytes, promoted, reason)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, game, out.Version, out.Kind, doc, objectKey, sha, size, out.Promoted, out.Reason); err != nil {
			return err
		}
		if !out.Promoted {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO recommend_current (gameid, version) VALUES ($1, $2)
			ON CONFLICT (gameid) DO UPDATE SET version = excluded.version, promoted_at = now()`, game, out.Version)
		return err
	})
	if err != nil {
		return out, fmt.Errorf("record the model: %w", err)
	}
	if out.Promoted {
		r.models.install(m)
	}
	return out, nil
}

// decide says whether the run's best candidate replaces cur, and why.
func (r *Recommend) decide(ctx context.Context, res *FitResult, cur *Model, out *TrainOutcome) (bool, string) {
	best, pop := res.BestCandidate(), res.Popular()
	learned := best.Kind != KindPopular
	switch {
	case cur == nil && !learned:
		return true, "first model of the game: no candidate beat popularity, so popularity (with similar items) is served"
	case cur == nil:
		return true, fmt.Sprintf("first model of the game; %s beats popularity (NDCG@%d %.4f vs %.4f)", best.Name, best.Validation.K, best.Validation.NDCG, pop.Validation.NDCG)
	case !learned && cur.Kind == KindPopular:
		return true, "no candidate beat popularity; the popularity model is refreshed"
	case !learned:
		return false, fmt.Sprintf("no candidate beat popularity (best learned below NDCG@%d %.4f); the current %s model stays", pop.Validation.K, pop.Validation.NDCG, cur.Kind)
	}
	cmp, ok := res.CompareWithCurrent(cur, r.cfg.Train.MinFresh, r.cfg.Train.ValidationPlayers)
	if ok {
		out.Comparison = &cmp
		if cmp.Candidate.NDCG >= cmp.Current.NDCG {
			return true, fmt.Sprintf("%s beats popularity and, on %d interactions newer than the current model, the current model (NDCG@%d %.4f vs %.4f)",
				best.Name, cmp.Fresh, cmp.Candidate.K, cmp.Candidate.NDCG, cmp.Current.NDCG)
		}
		return false, fmt.Sprintf("on %d interactions newer than the current model, the current model is better (NDCG@%d %.4f vs %.4f)",
			cmp.Fresh, cmp.Candidate.K, cmp.Current.NDCG, cmp.Candidate.NDCG)
	}
	recorded, err := r.recordedNDCG(ctx, cur)
	if err != nil || best.Validation.NDCG >= recorded {
		return true, fmt.Sprintf("%s beats popularity (NDCG@%d %.4f vs %.4f) and the current model's own validation (%.4f)",
			best.Name, best.Validation.K, best.Validation.NDCG, pop.Validation.NDCG, recorded)
	}
	return false, fmt.Sprintf("too few interactions newer than the current model to compare on; its own validation NDCG %.4f beats %s's %.4f",
		recorded, best.Name, best.Validation.NDCG)
}

// recordedNDCG is the validation NDCG the current model had when trained.
func (r *Recommend) recordedNDCG(ctx context.Context, cur *Model) (float64, error) {
	var doc []byte
	if err := r.pool.QueryRow(ctx, `SELECT metrics FROM recommend_models WHERE gameid = $1 AND version = $2`,
		cur.Game, cur.Version).Scan(&doc); err != nil {
		return 0, err
	}
	var o TrainOutcome
	if err := json.Unmarshal(doc, &o); err != nil {
		return 0, err
	}
	for _, c := range o.Candidates {
		if c.Name == o.Chosen {
			return c.Validation.NDCG, nil
		}
	}
	return 0, errors.New("chosen candidate missing from the metrics")
}

// currentModel is the game's promoted model (from memory if this replica
// serves it), nil if none.
func (r *Recommend) currentModel(ctx context.Context, game string) (*Model, error) {
	var version, key, sum string
	err := r.pool.QueryRow(ctx, `SELECT c.version, m.object_key, m.sha256 FROM recommend_current c
		JOIN recommend_models m USING (gameid, version) WHERE c.gameid = $1`, game).Scan(&version, &key, &sum)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m := r.models.model(game); m != nil && m.Version == version {
		return m, nil
	}
	return r.models.fetch(ctx, key, sum)
}

// newVersion names a model: its UTC creation time (so versions sort) and
// a random suffix.
func newVersion(now time.Time) string {
	b := make([]byte, 3)
	rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// trainingLease is how long a training holds its game: longer than any
// training, short enough that a crashed one does not block the next day's.
const trainingLease = 45 * time.Minute

// tryLock takes the game's training lease, which keeps two trainings of
// one game (the PingSource on two replicas, the CLI) from running at once;
// false if another holds it. The returned function gives it back.
func (r *Recommend) tryLock(ctx context.Context, game string) (func(), bool, error) {
	rows, err := r.pool.Query(ctx, `INSERT INTO recommend_games AS g (gameid, training_until)
		VALUES ($1, now() + make_interval(secs => $2))
		ON CONFLICT (gameid) DO UPDATE SET training_until = excluded.training_until
		WHERE g.training_until IS NULL OR g.training_until < now()
		RETURNING true`, game, trainingLease.Seconds())
	if err != nil {
		return nil, false, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[bool])
	if err != nil || len(got) == 0 {
		return nil, false, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.pool.Exec(ctx, `UPDATE recommend_games SET training_until = NULL WHERE gameid = $1`, game); err != nil {
			r.log.Warn("training lease not given back; it runs out by itself", "gameid", game, "err", err)
		}
	}, true, nil
}
