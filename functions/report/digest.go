package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"

	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// CloudEvent types report consumes and produces.
const (
	// TypePing is what a Knative PingSource sends.
	TypePing = "dev.knative.sources.ping"
	// TypeGenerated is report's reply once the digests are written.
	TypeGenerated = "com.gamemetrics.report.generated"
	// Source of the replies.
	Source = "/gamemetrics/report"
)

// Digest kinds, as a PingSource's data names them.
const (
	Daily  = "daily"
	Weekly = "weekly"
)

// digestKind reads {"report":"daily"|"weekly"}.
func digestKind(data []byte) (string, error) {
	var d struct {
		Report string `json:"report"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return "", fmt.Errorf(`data: want {"report":"daily"} or {"report":"weekly"}: %v`, err)
	}
	if d.Report != Daily && d.Report != Weekly {
		return "", fmt.Errorf(`data.report: want "daily" or "weekly", got %q`, d.Report)
	}
	return d.Report, nil
}

// DigestPeriod returns the last complete period of kind at now in loc: for
// daily yesterday, labelled YYYY-MM-DD; for weekly the last complete ISO
// week (Monday to Sunday), labelled YYYY-Www.
func DigestPeriod(kind string, now time.Time, loc *time.Location) (label string, from, to time.Time) {
	today := metrics.LocalDay(now, loc)
	if kind == Daily {
		d := today.AddDate(0, 0, -1)
		return d.Format(time.DateOnly), d, d
	}
	monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	from, to = monday.AddDate(0, 0, -7), monday.AddDate(0, 0, -1)
	y, w := from.ISOWeek()
	return fmt.Sprintf("%04d-W%02d", y, w), from, to
}

// DigestKeys are the S3 keys of one game's digest of one period.
func DigestKeys(game, period string) (jsonKey, csvKey string) {
	prefix := "reports/" + game + "/" + period + "/"
	return prefix + "digest.json", prefix + "digest.csv"
}

// Digest is the JSON digest of one game and period.
type Digest struct {
	Game        string `json:"game"`
	Name        string `json:"name"`
	Timezone    string `json:"timezone"`
	Report      string `json:"report"`
	Period      string `json:"period"`
	From        string `json:"from"`
	To          string `json:"to"`
	GeneratedAt string `json:"generated_at"`
	// Metrics are the period's totals (dau and paying_players are distinct
	// players over the whole period). Revenue metrics are per currency.
	Metrics map[string]float64            `json:"metrics"`
	Revenue map[string]map[string]float64 `json:"revenue"`
	// Approximate is true when a distinct count is a HyperLogLog estimate.
	Approximate bool `json:"approximate,omitempty"`
}

// Generated is the data of the reply event.
type Generated struct {
	Report      string            `json:"report"`
	GeneratedAt string            `json:"generated_at"`
	Bucket      string            `json:"bucket"`
	Objects     []GeneratedObject `json:"objects"`
}

// GeneratedObject names one game's digest objects.
type GeneratedObject struct {
	Game   string `json:"game"`
	Period string `json:"period"`
	JSON   string `json:"json"`
	CSV    string `json:"csv"`
}

// digestMetrics are the totals in every digest, in CSV order.
var digestMetrics = []string{"events", "dau", "new_players", "sessions", "session_length_avg", "playtime_per_dau",
	"transactions", "paying_players", "first_time_payers", "conversion", "ad_impressions", "ad_revenue_micros", "errors"}

// digest computes one game's digest of [from, to].
func (r *Report) digest(ctx context.Context, game store.Game, kind, label string, from, to time.Time, now time.Time) (Digest, error) {
	d := Digest{Game: game.ID, Name: game.Name, Timezone: game.Timezone, Report: kind, Period: label,
		From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), GeneratedAt: now.UTC().Format(time.RFC3339),
		Metrics: map[string]float64{}, Revenue: map[string]map[string]float64{}}
	// One week-long (or day-long) period: a "month" interval would split a
	// week at a month boundary, so the period is given whole.
	p := metrics.Period{Interval: metrics.Week, Label: label, From: from, To: to}
	if kind == Daily {
		p.Interval = metrics.Day
	}
	value := func(metric, currency string) (float64, bool, error) {
		s, err := r.queries.Value(ctx, metrics.ValueQuery{Game: game, Metric: metric, Period: p, Currency: currency})
		if err != nil {
			return 0, false, err
		}
		return s.Points[0].Value, s.Approximate, nil
	}
	for _, m := range digestMetrics {
		v, approx, err := value(m, "")
		if err != nil {
			return d, fmt.Errorf("%s: %w", m, err)
		}
		d.Metrics[m] = v
		d.Approximate = d.Approximate || approx
	}
	cs, err := r.queries.Currencies(ctx, game.ID)
	if err != nil {
		return d, err
	}
	for _, c := range cs {
		d.Revenue[c] = map[string]float64{}
		for _, m := range metrics.RevenueMetrics() {
			v, _, err := value(m, c)
			if err != nil {
				return d, fmt.Errorf("%s %s: %w", m, c, err)
			}
			d.Revenue[c][m] = v
		}
	}
	return d, nil
}

// csvOf is the digest as metric,currency,value rows.
func (d Digest) csvOf() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write([]string{"game", "period", "from", "to", "metric", "currency", "value"})
	for _, m := range digestMetrics {
		w.Write([]string{d.Game, d.Period, d.From, d.To, m, "", formatNumber(d.Metrics[m])})
	}
	for _, c := range sortedKeys(d.Revenue) {
		for _, m := range metrics.RevenueMetrics() {
			w.Write([]string{d.Game, d.Period, d.From, d.To, m, c, formatNumber(d.Revenue[c][m])})
		}
	}
	w.Flush()
	return buf.Bytes()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// digests writes every game's digest of kind and returns the reply event.
// Keys are deterministic, so a retried tick rewrites the same objects.
func (r *Report) digests(ctx context.Context, kind, pingID string) (*event.Event, error) {
	if r.objects == nil {
		return nil, serving.Transient("cannot write digests", errNoArchive)
	}
	now := r.now()
	games, err := r.games.List(ctx)
	if err != nil {
		return nil, serving.Transient("list games", err)
	}
	gen := Generated{Report: kind, GeneratedAt: now.UTC().Format(time.RFC3339), Bucket: r.objects.Bucket(), Objects: []GeneratedObject{}}
	for _, g := range games {
		label, from, to := DigestPeriod(kind, now, g.Location())
		d, err := r.digest(ctx, g, kind, label, from, to, now)
		if err != nil {
			r.instruments.digests.WithLabelValues(kind, "failed").Inc()
			return nil, serving.Transient("compute digest of game "+g.ID, err)
		}
		body, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, err
		}
		jsonKey, csvKey := DigestKeys(g.ID, label)
		if err := r.objects.Put(ctx, jsonKey, append(body, '\n'), "application/json"); err != nil {
			r.instruments.digests.WithLabelValues(kind, "failed").Inc()
			return nil, serving.Transient("write digest", err)
		}
		if err := r.objects.Put(ctx, csvKey, d.csvOf(), "text/csv"); err != nil {
			r.instruments.digests.WithLabelValues(kind, "failed").Inc()
			return nil, serving.Transient("write digest", err)
		}
		r.instruments.digests.WithLabelValues(kind, "written").Inc()
		gen.Objects = append(gen.Objects, GeneratedObject{Game: g.ID, Period: label, JSON: jsonKey, CSV: csvKey})
	}
	r.log.Info("digests written", "report", kind, "games", len(games), "ping", pingID)
	reply := event.New()
	reply.SetID(uuid.NewString())
	reply.SetType(TypeGenerated)
	reply.SetSource(Source)
	reply.SetSubject(kind)
	reply.SetTime(now)
	if err := reply.SetData(event.ApplicationJSON, gen); err != nil {
		return nil, serving.Reject(http.StatusInternalServerError, "encode reply: %v", err)
	}
	return &reply, nil
}
