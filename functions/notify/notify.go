// Package notify turns KPI alert rules and player rules into signed
// webhook, Slack and SNS notifications, each sent once.
//
// A PingSource tick ({"task":"evaluate"}, every minute) makes notify
// evaluate every alert rule whose next window has closed: each window that
// closed since the rule's last evaluation (at most a day of them, so a
// replica that was down catches up), with the value the report API answers
// for that window (shared/metrics), through a pure state machine (ok →
// pending → firing → resolved). A KafkaSource delivers every accepted
// event; player rules matching it make a notification for the player.
//
// Sent once: a notification's key (rule + window + transition, or player
// rule + player [+ event id]) is unique per game, and it is written with
// its deliveries in the transaction that advances the rule's state, on rule
// rows locked FOR UPDATE SKIP LOCKED. A dispatcher claims due deliveries
// the same way, signs webhooks per Standard Webhooks (the same webhook-id
// on every retry), retries with exponential backoff and jitter honouring
// Retry-After, fails at once on other 4xx and disables a destination that
// answers 410 Gone. The admin API (admin keys) manages destinations, alert
// rules, player rules and the failed deliveries.
package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/settings"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// TypePing is the type of the PingSource's events.
const TypePing = "dev.knative.sources.ping"

// Types of the notifications notify sends (the CloudEvent type of the
// webhook body).
const (
	TypeAlertFiring   = "com.gamemetrics.alert.firing"
	TypeAlertResolved = "com.gamemetrics.alert.resolved"
	TypePlayer        = "com.gamemetrics.player.notification"
	TypeTest          = "com.gamemetrics.notify.test"
)

// Config tunes notify. Start from DefaultConfig or ConfigFromEnv.
type Config struct {
	// EvaluationDelay is how long after a window closes it may be
	// evaluated, so events still in flight (client batching, ingest, Kafka,
	// process) are counted. With a tick every minute, any delay below a
	// minute means the window is evaluated at the first tick after it.
	EvaluationDelay time.Duration
	// CatchUp bounds how many windows' worth of time a rule evaluates
	// after notify was down: older windows are skipped.
	CatchUp time.Duration
	// MaxAttempts is how often one delivery is tried before it fails.
	MaxAttempts int
	// RetryBase is the wait after the first failed attempt; each further
	// wait is 3.1 times longer (±20% jitter): 1m, 3m, 10m, 30m, 1.5h,
	// 4.6h, 14h with the defaults, 8 attempts over about 22 hours.
	RetryBase time.Duration
	// SendTimeout bounds one delivery attempt.
	SendTimeout time.Duration
	// Workers is how many deliveries one replica sends at once, and how
	// many metric queries one evaluation runs at once.
	Workers int
	// DispatchBudget is how long a tick keeps its request open to send
	// what it made due (Knative counts a replica busy while it serves).
	DispatchBudget time.Duration
	// PollInterval is how often a running replica looks for due deliveries
	// (retries) between ticks.
	PollInterval time.Duration
	// AllowPrivate lets destinations be plain http and point at loopback
	// or private addresses (local development); otherwise a webhook or
	// Slack URL must be https to a public address, checked when dialling.
	AllowPrivate bool
	// DashboardURL is linked from Slack messages and notifications.
	DashboardURL string
	// SNSEndpoint overrides the SNS endpoint (a local stand-in); the
	// region comes from each topic's ARN, credentials from the AWS chain.
	SNSEndpoint string
	// RuleCacheTTL is how long a replica reuses a game's player rules
	// (rules changed through another replica apply within it).
	RuleCacheTTL time.Duration
	// KeyCacheTTL is how long an admin key lookup is remembered.
	KeyCacheTTL time.Duration
	// Keep is how long notifications (with their deliveries and attempts)
	// are kept; those of once-per-player rules are kept while the rule
	// exists, since they are what makes it once.
	Keep time.Duration
}

// DefaultConfig is what `gamemetrics serve notify` uses with no settings.
func DefaultConfig() Config {
	return Config{
		EvaluationDelay: 30 * time.Second,
		CatchUp:         24 * time.Hour,
		MaxAttempts:     8,
		RetryBase:       time.Minute,
		SendTimeout:     10 * time.Second,
		Workers:         8,
		DispatchBudget:  20 * time.Second,
		PollInterval:    2 * time.Second,
		RuleCacheTTL:    5 * time.Second,
		KeyCacheTTL:     30 * time.Second,
		Keep:            30 * 24 * time.Hour,
	}
}

// ConfigFromEnv reads NOTIFY_* (every bad value at once, each named).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	d := DefaultConfig()
	env := settings.From(getenv)
	c := Config{
		EvaluationDelay: env.Duration("NOTIFY_EVALUATION_DELAY", d.EvaluationDelay, 0),
		CatchUp:         env.Duration("NOTIFY_CATCH_UP", d.CatchUp, time.Minute),
		MaxAttempts:     env.Int("NOTIFY_MAX_ATTEMPTS", d.MaxAttempts, 1),
		RetryBase:       env.Duration("NOTIFY_RETRY_BASE", d.RetryBase, time.Millisecond),
		SendTimeout:     env.Duration("NOTIFY_SEND_TIMEOUT", d.SendTimeout, 100*time.Millisecond),
		Workers:         env.Int("NOTIFY_WORKERS", d.Workers, 1),
		DispatchBudget:  env.Duration("NOTIFY_DISPATCH_BUDGET", d.DispatchBudget, 0),
		PollInterval:    env.Duration("NOTIFY_POLL_INTERVAL", d.PollInterval, 10*time.Millisecond),
		AllowPrivate:    env.Bool("NOTIFY_ALLOW_PRIVATE_DESTINATIONS", false),
		DashboardURL:    env.String("NOTIFY_DASHBOARD_URL", ""),
		SNSEndpoint:     env.String("NOTIFY_SNS_ENDPOINT", ""),
		RuleCacheTTL:    env.Duration("NOTIFY_RULE_CACHE_TTL", d.RuleCacheTTL, 0),
		KeyCacheTTL:     d.KeyCacheTTL,
		Keep:            env.Duration("NOTIFY_KEEP", d.Keep, 48*time.Hour),
	}
	return c, env.Err()
}

// Notify is the notify function. Build it with New; Stop ends its
// dispatcher.
type Notify struct {
	cfg     Config
	pool    *pgxpool.Pool
	queries *metrics.Queries
	games   *store.Games
	keys    *store.KeyCache
	log     *slog.Logger
	m       *instruments
	now     func() time.Time
	handler http.Handler

	senders *senders
	rules   *ruleCache

	wake     chan struct{}
	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// New builds notify from its dependencies: the PostgreSQL pool process
// writes to (migrated), a logger, a registry for its metrics and a clock
// (time.Now outside tests). It starts the dispatcher, which Stop ends.
func New(cfg Config, pool *pgxpool.Pool, log *slog.Logger, reg prometheus.Registerer, now func() time.Time) *Notify {
	d := DefaultConfig()
	if now == nil {
		now = time.Now
	}
	orDefault(&cfg.MaxAttempts, d.MaxAttempts)
	orDefault(&cfg.Workers, d.Workers)
	for _, x := range []struct{ v, def *time.Duration }{{&cfg.RetryBase, &d.RetryBase}, {&cfg.SendTimeout, &d.SendTimeout},
		{&cfg.PollInterval, &d.PollInterval}, {&cfg.CatchUp, &d.CatchUp}, {&cfg.KeyCacheTTL, &d.KeyCacheTTL}, {&cfg.Keep, &d.Keep}} {
		orDefault(x.v, *x.def)
	}
	games := store.NewGames(pool)
	n := &Notify{
		cfg:     cfg,
		pool:    pool,
		queries: metrics.New(pool, now),
		games:   games,
		keys:    store.NewKeyCache(games.ByAdminKey, cfg.KeyCacheTTL),
		log:     log,
		m:       newInstruments(reg),
		now:     now,
		senders: newSenders(cfg, now),
		rules:   newRuleCache(cfg.RuleCacheTTL, now),
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	n.handler = n.routes()
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.dispatchLoop(ctx)
	return n
}

// orDefault sets *v to def unless it is positive.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ServeHTTP serves the admin API and CloudEvents on POST /.
func (n *Notify) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.handler.ServeHTTP(w, r) }

// Handle evaluates the alert rules on a PingSource tick (data
// {"task":"evaluate"}) and then sends what became due, and runs the player
// rules on any other event (the KafkaSource's accepted events).
func (n *Notify) Handle(ctx context.Context, e event.Event) (*event.Event, error) {
	if e.Type() != TypePing {
		return nil, n.handlePlayerEvent(ctx, e)
	}
	var body struct {
		Task string `json:"task"`
	}
	if err := json.Unmarshal(e.Data(), &body); err != nil || body.Task != "evaluate" {
		return nil, serving.Reject(http.StatusBadRequest, `notify's PingSource sends {"task":"evaluate"}, not %q`, e.Data())
	}
	tick := n.now()
	if _, err := n.Evaluate(ctx); err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, serving.Transient("evaluation interrupted", err)
		}
		return nil, serving.Transient("evaluate alert rules", err)
	}
	n.m.tickDuration.Observe(n.now().Sub(tick).Seconds())
	if _, err := n.Prune(ctx); err != nil {
		n.log.Warn("prune old notifications", "err", err)
	}
	// Send what is due while the request keeps this replica busy.
	if n.cfg.DispatchBudget > 0 {
		dctx, cancel := context.WithTimeout(ctx, n.cfg.DispatchBudget)
		defer cancel()
		if err := n.DispatchDue(dctx); err != nil && dctx.Err() == nil {
			n.log.Warn("dispatch after tick", "err", err)
		}
	}
	return nil, nil
}

// Ready reports whether PostgreSQL answers.
func (n *Notify) Ready(ctx context.Context) (bool, error) {
	if err := n.pool.Ping(ctx); err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return true, nil
}

// Stop ends the dispatcher, letting sends in flight finish (their outcome
// is recorded) until ctx ends; a delivery cut short is sent again once its
// lease runs out, with the same webhook-id.
func (n *Notify) Stop(ctx context.Context) error {
	n.stopOnce.Do(n.cancel)
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// kick wakes the dispatcher.
func (n *Notify) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// instruments are notify's Prometheus metrics.
type instruments struct {
	evaluations   *prometheus.CounterVec
	tickDuration  prometheus.Histogram
	notifications *prometheus.CounterVec
	attempts      *prometheus.CounterVec
	dispatchLag   prometheus.Histogram
	playerEvents  *prometheus.CounterVec
	skipped       prometheus.Counter
}

func newInstruments(reg prometheus.Registerer) *instruments {
	m := &instruments{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_notify_evaluations_total",
			Help: "Alert rule windows evaluated, by outcome (clear, breach, no_data: too little volume or history, error)."},
			[]string{"outcome"}),
		tickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gamemetrics_notify_tick_duration_seconds",
			Help:    "Time from a PingSource tick to every due alert rule evaluated and its notifications written.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30, 60}}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_notify_notifications_total",
			Help: "Notifications by kind (firing, resolved, renotify, player, test) and state (created; duplicate: its key existed, nothing sent; delivered and failed count deliveries finished)."},
			[]string{"kind", "state"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_notify_delivery_attempts_total",
			Help: "Delivery attempts by destination kind (webhook, slack, sns) and status (2xx, 4xx, 410, 429, 5xx, timeout, error)."},
			[]string{"destination", "status"}),
		dispatchLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gamemetrics_notify_dispatch_lag_seconds",
			Help:    "How late a delivery attempt starts after it became due.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300}}),
		playerEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_notify_player_events_total",
			Help: "Events the KafkaSource delivered, by outcome (no_rules, unmatched, matched, error)."},
			[]string{"outcome"}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_notify_skipped_windows_total",
			Help: "Alert windows not evaluated because they closed longer ago than the catch-up bound (notify was down)."}),
	}
	reg.MustRegister(m.evaluations, m.tickDuration, m.notifications, m.attempts, m.dispatchLag, m.playerEvents, m.skipped)
	return m
}
