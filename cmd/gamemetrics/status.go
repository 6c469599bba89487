package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/gamemetrics/gamemetrics/functions/retain"
	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// A status check's verdict. Only "fail" makes `gamemetrics status` exit
// non-zero: a warning is something to look at, not an outage.
const (
	statusOK   = "ok"
	statusWarn = "warn"
	statusFail = "fail"
)

type statusCheck struct {
	name, state, detail string
}

// statusOptions are the flags of `gamemetrics status`.
type statusOptions struct {
	sample  time.Duration // between the two lag samples
	maxLag  int64         // a group further behind than this fails
	groups  []string      // consumer groups to check (default: every gamemetrics-* group)
	game    string        // restrict the retention check to one game
	timeout time.Duration // per check
}

// runStatus checks a deployment from the outside with the same variables
// the functions use (DATABASE_URL, REDIS_URL, KAFKA_*, S3_*): reachability
// of PostgreSQL, Redis, Kafka and S3, the platform topics and their
// partitions, the lag of every consumer group (sampled twice, so a stopped
// consumer whose lag grows is told apart from a busy one), pending
// migrations and whether retention runs. It prints one line per check and
// fails if any check fails.
func runStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("status", stderr)
	opt := statusOptions{}
	fs.DurationVar(&opt.sample, "sample", 5*time.Second, "time between the two consumer lag samples")
	fs.Int64Var(&opt.maxLag, "max-lag", 100_000, "records a consumer group may be behind before status fails")
	groups := fs.String("groups", "", "comma-separated consumer groups to check (default: every group named gamemetrics-*)")
	fs.StringVar(&opt.game, "game", "", "check retention of this game only (default: every game)")
	fs.DurationVar(&opt.timeout, "timeout", 15*time.Second, "time limit of each check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, g := range strings.Split(*groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			opt.groups = append(opt.groups, g)
		}
	}

	var checks []statusCheck
	add := func(cs ...statusCheck) { checks = append(checks, cs...) }

	add(postgresChecks(ctx, getenv, opt)...)
	add(redisCheck(ctx, getenv, opt))
	add(kafkaChecks(ctx, getenv, opt)...)
	add(s3Check(ctx, getenv, opt))

	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tSTATE\tDETAIL")
	failed := 0
	for _, c := range checks {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.name, c.state, c.detail)
		if c.state == statusFail {
			failed++
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("status: %d of %d checks failed", failed, len(checks))
	}
	return nil
}

func failCheck(name string, err error) statusCheck {
	return statusCheck{name, statusFail, err.Error()}
}

func postgresChecks(ctx context.Context, getenv func(string) string, opt statusOptions) []statusCheck {
	cctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()
	pool, err := store.Open(cctx, getenv("DATABASE_URL"))
	if err != nil {
		return []statusCheck{failCheck("postgres", err), {"migrations", statusFail, "PostgreSQL unreachable"}, {"retention", statusFail, "PostgreSQL unreachable"}}
	}
	defer pool.Close()
	var version string
	if err := pool.QueryRow(cctx, "SHOW server_version").Scan(&version); err != nil {
		return []statusCheck{failCheck("postgres", err)}
	}
	return []statusCheck{
		{"postgres", statusOK, "reachable, PostgreSQL " + version},
		migrationCheck(cctx, pool),
		retentionCheck(cctx, pool, opt.game),
	}
}

// migrationCheck compares the migrations this binary embeds with those the
// database has applied.
func migrationCheck(ctx context.Context, pool *pgxpool.Pool) statusCheck {
	ms, err := store.Migrations()
	if err != nil {
		return failCheck("migrations", err)
	}
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return failCheck("migrations", err)
	}
	applied := map[int]bool{}
	if exists {
		rows, err := pool.Query(ctx, "SELECT version FROM schema_migrations")
		if err != nil {
			return failCheck("migrations", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return failCheck("migrations", err)
		}
		for _, v := range versions {
			applied[int(v)] = true
		}
	}
	var pending []string
	for _, m := range ms {
		if !applied[m.Version] {
			pending = append(pending, m.Name)
		}
		delete(applied, m.Version)
	}
	if len(pending) > 0 {
		return statusCheck{"migrations", statusFail, fmt.Sprintf("%d pending: %s (run gamemetrics migrate, or the migration Job)", len(pending), strings.Join(pending, ", "))}
	}
	if len(applied) > 0 {
		return statusCheck{"migrations", statusWarn, fmt.Sprintf("all %d applied; the database also has %d newer than this binary", len(ms), len(applied))}
	}
	return statusCheck{"migrations", statusOK, fmt.Sprintf("all %d applied (latest %s)", len(ms), ms[len(ms)-1].Name)}
}

// retentionAheadDays is how many days ahead retain creates partitions
// (retain.DefaultConfig().AheadDays): the newest partition tells when it last ran.
var retentionAheadDays = retain.DefaultConfig().AheadDays

// retentionCheck reads retention's traces in the catalog: every run creates
// each game's day partitions up to AheadDays ahead and drops those past the
// game's hot days. A partition past that cutoff (with a day of grace for the
// daily schedule) means retention has not run or keeps failing: raw events
// are kept longer than the game asked for.
func retentionCheck(ctx context.Context, pool *pgxpool.Pool, only string) statusCheck {
	games, err := store.NewGames(pool).List(ctx)
	if err != nil {
		return failCheck("retention", err)
	}
	if only != "" {
		games = slices.DeleteFunc(games, func(g store.Game) bool { return g.ID != only })
		if len(games) == 0 {
			return statusCheck{"retention", statusFail, fmt.Sprintf("no game %q", only)}
		}
	}
	if len(games) == 0 {
		return statusCheck{"retention", statusOK, "no games yet"}
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	var (
		overdue []string
		newest  time.Time
	)
	for _, g := range games {
		days, err := partitionDays(ctx, pool, g.ID)
		if err != nil {
			return failCheck("retention", err)
		}
		exportBefore, _ := retain.Cutoffs(today, g.HotDays, g.ArchiveDays)
		late := 0
		for _, d := range days {
			if d.Before(exportBefore.AddDate(0, 0, -1)) {
				late++
			}
			if d.After(newest) {
				newest = d
			}
		}
		if late > 0 {
			overdue = append(overdue, fmt.Sprintf("%s: %d day partition(s) past its %d hot days (oldest %s)", g.ID, late, g.HotDays, days[0].Format(time.DateOnly)))
		}
	}
	if len(overdue) > 0 {
		return statusCheck{"retention", statusFail, "overdue, retention has not run or fails: " + strings.Join(overdue, "; ")}
	}
	if newest.After(today.AddDate(0, 0, 1)) {
		last := newest.AddDate(0, 0, -retentionAheadDays)
		return statusCheck{"retention", statusOK, fmt.Sprintf("last run on or after %s (partitions created through %s), nothing overdue in %d games", last.Format(time.DateOnly), newest.Format(time.DateOnly), len(games))}
	}
	return statusCheck{"retention", statusWarn, fmt.Sprintf("no run seen (no partitions ahead of today), nothing overdue yet in %d games", len(games))}
}

// partitionDays lists the days that have an events partition of game.
func partitionDays(ctx context.Context, pool *pgxpool.Pool, game string) ([]time.Time, error) {
	ref := store.EventPartition(game, time.Unix(0, 0))
	prefix := ref[:len(ref)-len("19700101")]
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i
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
		if d, err := time.Parse("20060102", n[len(prefix):]); err == nil {
			days = append(days, d)
		}
	}
	return days, nil
}

func redisCheck(ctx context.Context, getenv func(string) string, opt statusOptions) statusCheck {
	url := getenv("REDIS_URL")
	if url == "" {
		return statusCheck{"redis", statusFail, "no Redis configured (set REDIS_URL)"}
	}
	cctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()
	c, err := cache.Open(cctx, url)
	if err != nil {
		return failCheck("redis", err)
	}
	defer c.Close()
	return statusCheck{"redis", statusOK, "reachable"}
}

func kafkaChecks(ctx context.Context, getenv func(string) string, opt statusOptions) []statusCheck {
	cfg, err := kafka.ConfigFromEnv(getenv)
	if err != nil {
		return []statusCheck{failCheck("kafka", err)}
	}
	cl, err := cfg.Client()
	if err != nil {
		return []statusCheck{failCheck("kafka", err)}
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()
	brokers, err := adm.ListBrokers(cctx)
	if err != nil {
		return []statusCheck{failCheck("kafka", fmt.Errorf("reach %s: %w", strings.Join(cfg.Brokers, ","), err)), {"topics", statusFail, "Kafka unreachable"}, {"consumers", statusFail, "Kafka unreachable"}}
	}
	checks := []statusCheck{{"kafka", statusOK, fmt.Sprintf("reachable, %d brokers", len(brokers))}}
	checks = append(checks, topicCheck(cctx, adm))
	return append(checks, lagChecks(ctx, adm, opt)...)
}

// topicCheck: every platform topic exists; its partitions are listed.
func topicCheck(ctx context.Context, adm *kadm.Client) statusCheck {
	want := kafka.Topics()
	details, err := adm.ListTopics(ctx, want...)
	if err != nil {
		return failCheck("topics", err)
	}
	var have, missing []string
	for _, t := range want {
		d, ok := details[t]
		if !ok || d.Err != nil {
			missing = append(missing, t)
			continue
		}
		have = append(have, fmt.Sprintf("%s %dp", t, len(d.Partitions)))
	}
	if len(missing) > 0 {
		return statusCheck{"topics", statusFail, fmt.Sprintf("missing %s (present: %s)", strings.Join(missing, ", "), strings.Join(have, ", "))}
	}
	return statusCheck{"topics", statusOK, strings.Join(have, ", ")}
}

// lagChecks samples every group's lag twice. A group with no members whose
// lag grew between the samples is a stopped consumer falling behind; any
// group further behind than maxLag fails too. A group without members that
// is caught up is idle (Knative scales consumers to the traffic).
func lagChecks(ctx context.Context, adm *kadm.Client, opt statusOptions) []statusCheck {
	groups := opt.groups
	if len(groups) == 0 {
		cctx, cancel := context.WithTimeout(ctx, opt.timeout)
		listed, err := adm.ListGroups(cctx)
		cancel()
		if err != nil {
			return []statusCheck{failCheck("consumers", err)}
		}
		for _, g := range listed.Groups() {
			if strings.HasPrefix(g, "gamemetrics-") {
				groups = append(groups, g)
			}
		}
		slices.Sort(groups)
	}
	if len(groups) == 0 {
		return []statusCheck{{"consumers", statusWarn, "no gamemetrics-* consumer group has committed yet"}}
	}
	sample := func() (kadm.DescribedGroupLags, error) {
		cctx, cancel := context.WithTimeout(ctx, opt.timeout)
		defer cancel()
		return adm.Lag(cctx, groups...)
	}
	first, err := sample()
	if err != nil {
		return []statusCheck{failCheck("consumers", err)}
	}
	select {
	case <-ctx.Done():
		return []statusCheck{failCheck("consumers", ctx.Err())}
	case <-time.After(opt.sample):
	}
	second, err := sample()
	if err != nil {
		return []statusCheck{failCheck("consumers", err)}
	}
	var checks []statusCheck
	for _, g := range groups {
		name := "lag " + g
		a, b := first[g], second[g]
		if err := errors.Join(b.DescribeErr, b.FetchErr); err != nil {
			checks = append(checks, failCheck(name, err))
			continue
		}
		if len(b.Lag) == 0 {
			checks = append(checks, statusCheck{name, statusFail, "no committed offsets: the group does not exist or never consumed"})
			continue
		}
		before, after := a.Lag.Total(), b.Lag.Total()
		var topics []string
		for _, t := range b.Lag.Sorted() {
			if !slices.Contains(topics, t.Topic) {
				topics = append(topics, t.Topic)
			}
		}
		detail := fmt.Sprintf("%d behind on %s (%d %s ago), %d members, %s", after, strings.Join(topics, ","), before, opt.sample, len(b.Members), b.State)
		switch {
		case len(b.Members) == 0 && after > before:
			checks = append(checks, statusCheck{name, statusFail, "stopped consumer, lag growing: " + detail})
		case after > opt.maxLag:
			checks = append(checks, statusCheck{name, statusFail, fmt.Sprintf("more than %d behind: %s", opt.maxLag, detail)})
		case after > before:
			checks = append(checks, statusCheck{name, statusWarn, "falling behind: " + detail})
		case len(b.Members) == 0 && after > 0:
			checks = append(checks, statusCheck{name, statusWarn, "no members with a backlog: " + detail})
		default:
			checks = append(checks, statusCheck{name, statusOK, detail})
		}
	}
	return checks
}

func s3Check(ctx context.Context, getenv func(string) string, opt statusOptions) statusCheck {
	cfg, err := archive.ConfigFromEnv(getenv)
	if err != nil {
		return failCheck("s3", err)
	}
	cctx, cancel := context.WithTimeout(ctx, opt.timeout)
	defer cancel()
	c, err := archive.Open(cctx, cfg)
	if err != nil {
		return failCheck("s3", err)
	}
	// A listing of a prefix that holds nothing: cheap on any bucket size,
	// and it fails on a wrong endpoint, a missing bucket or a role without
	// s3:ListBucket on raw/ (retain's).
	if _, err := c.List(cctx, "raw/.gamemetrics-status/"); err != nil {
		return failCheck("s3", fmt.Errorf("bucket %s: %w", c.Bucket(), err))
	}
	return statusCheck{"s3", statusOK, "bucket " + c.Bucket() + " reachable"}
}
