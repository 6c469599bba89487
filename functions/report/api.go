package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/archive"
	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/metrics"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// apiError is a refusal with its status; Param names the bad parameter.
type apiError struct {
	status int
	param  string
	reason string
}

func (e *apiError) Error() string { return e.reason }

func badParam(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, param: param, reason: param + ": " + fmt.Sprintf(format, args...)}
}

// refusal is err as the API's refusal, if it is one: an apiError, or a
// parameter shared/metrics refused (a 400 naming it).
func refusal(err error) (*apiError, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae, true
	}
	var pe *metrics.ParamError
	if errors.As(err, &pe) {
		return &apiError{status: http.StatusBadRequest, param: pe.Param, reason: pe.Error()}, true
	}
	return nil, false
}

// answer is what an API handler produces: a JSON value and its CSV form,
// or a stream of NDJSON (raw events) written after the handler returns.
type answer struct {
	json any
	csv  [][]string
	// stream writes the body; filename names the download.
	stream   func(ctx context.Context, w io.Writer) error
	filename string
}

// lazyResponse sends the 200 and its headers with the first byte of a
// stream, so a stream that fails before writing anything still gets an
// error status.
type lazyResponse struct {
	w        http.ResponseWriter
	filename string
	started  bool
}

func (l *lazyResponse) Write(b []byte) (int, error) {
	if !l.started {
		l.started = true
		l.w.Header().Set("Content-Type", "application/x-ndjson")
		l.w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, l.filename))
		l.w.WriteHeader(http.StatusOK)
	}
	return l.w.Write(b)
}

// api wraps an endpoint: authentication by read key, the game check, the
// query timeout, JSON or CSV encoding, errors and metrics.
func (r *Report) api(endpoint string, h func(ctx context.Context, req *http.Request, game store.Game) (answer, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Studios' own web tools read the API from their origin.
		serving.AllowAnyOrigin(w.Header(), "Content-Disposition")
		start := time.Now()
		status := http.StatusOK
		defer func() {
			r.instruments.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
			r.instruments.duration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
		}()
		fail := func(s int, reason string, extra map[string]string) {
			status = s
			body := map[string]string{"error": reason}
			for k, v := range extra {
				body[k] = v
			}
			if s == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="gamemetrics report"`)
			}
			serving.WriteJSON(w, s, body)
		}
		game, err := r.authenticate(req.Context(), req.Header.Get("Authorization"))
		if err != nil {
			if ae, ok := refusal(err); ok {
				fail(ae.status, ae.reason, nil)
				return
			}
			r.log.Error("read key lookup failed", "err", err)
			fail(http.StatusServiceUnavailable, "cannot check the read key right now; retry later", nil)
			return
		}
		if id := req.PathValue("game"); endpoint != "game" && id != game.ID {
			// Never reveal whether another game exists.
			fail(http.StatusNotFound, "game not found", nil)
			return
		}
		wantCSV, err := wantsCSV(req)
		if err != nil {
			ae, _ := refusal(err)
			fail(ae.status, ae.reason, map[string]string{"parameter": ae.param, "param": ae.param})
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), r.cfg.QueryTimeout)
		defer cancel()
		ans, err := h(ctx, req, game)
		if err != nil {
			if ae, ok := refusal(err); ok {
				fail(ae.status, ae.reason, map[string]string{"parameter": ae.param, "param": ae.param})
				return
			}
			r.log.Error("report query failed", "gameid", game.ID, "endpoint", endpoint, "url", req.URL.String(), "err", err)
			fail(http.StatusServiceUnavailable, "the numbers cannot be read right now; retry later", nil)
			return
		}
		if ans.stream != nil {
			sctx, scancel := context.WithTimeout(req.Context(), r.cfg.ExportTimeout)
			defer scancel()
			lw := &lazyResponse{w: w, filename: ans.filename}
			err := ans.stream(sctx, lw)
			switch {
			case err == nil && !lw.started:
				lw.Write(nil) // an empty day: 200 with no lines
			case err != nil && !lw.started:
				if ae, ok := refusal(err); ok {
					fail(ae.status, ae.reason, map[string]string{"parameter": ae.param, "param": ae.param})
					return
				}
				r.log.Error("export failed", "gameid", game.ID, "url", req.URL.String(), "err", err)
				fail(http.StatusServiceUnavailable, "the events cannot be read right now; retry later", nil)
			case err != nil:
				// Part of the body is out: cut the connection so the client
				// sees a broken download, never a silently short one.
				r.log.Error("export failed mid-stream", "gameid", game.ID, "url", req.URL.String(), "err", err)
				status = http.StatusInternalServerError
				panic(http.ErrAbortHandler)
			}
			return
		}
		if wantCSV && ans.csv != nil {
			var buf bytes.Buffer
			cw := csv.NewWriter(&buf)
			cw.WriteAll(ans.csv)
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.csv"`, game.ID, endpoint))
			w.WriteHeader(http.StatusOK)
			w.Write(buf.Bytes())
			return
		}
		serving.WriteJSON(w, http.StatusOK, ans.json)
	})
}

// authenticate maps "Bearer <read key>" to its game. Write keys and
// unknown keys are refused alike with 401.
func (r *Report) authenticate(ctx context.Context, header string) (store.Game, error) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return store.Game{}, &apiError{status: http.StatusUnauthorized, reason: "missing read key: send Authorization: Bearer <read key>"}
	}
	if strings.HasPrefix(key, store.WriteKeyPrefix) {
		return store.Game{}, &apiError{status: http.StatusUnauthorized, reason: "a write key cannot read: use the game's read key"}
	}
	game, err := r.keys.Game(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return store.Game{}, &apiError{status: http.StatusUnauthorized, reason: "unknown read key"}
	}
	return game, err
}

// wantsCSV decides the answer's format from ?format= (json or csv, which
// wins) or the Accept header.
func wantsCSV(req *http.Request) (bool, error) {
	switch f := req.URL.Query().Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, badParam("format", "want json or csv, got %q", f)
	}
	for _, part := range strings.Split(req.Header.Get("Accept"), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err == nil && mt == "text/csv" {
			return true, nil
		}
	}
	return false, nil
}

// dateRange reads from and to (YYYY-MM-DD, inclusive, both required), a
// range no longer than interval's limit.
func dateRange(req *http.Request, interval metrics.Interval) (time.Time, time.Time, error) {
	q := req.URL.Query()
	var out [2]time.Time
	for i, name := range []string{"from", "to"} {
		v := q.Get(name)
		if v == "" {
			return time.Time{}, time.Time{}, badParam(name, "required, as YYYY-MM-DD in the game's time zone")
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return time.Time{}, time.Time{}, badParam(name, "want a date as YYYY-MM-DD, got %q", v)
		}
		out[i] = d
	}
	if err := metrics.CheckRange(interval, out[0], out[1]); err != nil {
		return time.Time{}, time.Time{}, err
	}
	return out[0], out[1], nil
}

// Series is the answer of the metrics endpoint.
type Series struct {
	Game     string `json:"game"`
	Metric   string `json:"metric"`
	Interval string `json:"interval"`
	Timezone string `json:"timezone"`
	// By is the dimension of a breakdown (by=); Groups then replace Points.
	By       string `json:"by,omitempty"`
	Currency string `json:"currency,omitempty"`
	// CurrencyExponent is the ISO 4217 minor-unit exponent of Currency.
	CurrencyExponent *int     `json:"currency_exponent,omitempty"`
	Points           []Point  `json:"points,omitempty"`
	Groups           []Groups `json:"series,omitempty"`
	// Approximate is true when a week or month distinct count came from
	// HyperLogLog sketches (relative standard error about 2.3%).
	Approximate bool `json:"approximate,omitempty"`
}

// Groups is one value's series of a breakdown.
type Groups struct {
	Value  string  `json:"value"`
	Points []Point `json:"points"`
}

// Point is one interval's value.
type Point struct {
	T     string  `json:"t"`
	Value float64 `json:"value"`
}

// parseSeries reads a metrics request. The metric and the interval are
// checked before the dates, whose limit depends on the interval; the rest
// (currency, severity) is checked by the query.
func parseSeries(req *http.Request, game store.Game) (metrics.SeriesQuery, error) {
	params := req.URL.Query()
	q := metrics.SeriesQuery{Game: game, Metric: req.PathValue("metric"), Interval: metrics.Interval(params.Get("interval")),
		Currency: params.Get("currency"), Severity: params.Get("severity"), By: params.Get("by")}
	if q.Interval == "" {
		q.Interval = metrics.Day
	}
	if err := metrics.CheckMetric(q.Metric); err != nil {
		return q, err
	}
	if err := metrics.CheckBy(q.By); err != nil {
		return q, err
	}
	f, err := metrics.FilterOf(params)
	if err != nil {
		return q, err
	}
	q.Filter = f
	if err := q.Interval.Check(); err != nil {
		return q, err
	}
	if err := metrics.CheckGrain(q.Metric, q.Interval); err != nil {
		return q, err
	}
	if v := params.Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return q, badParam("minutes", "want 1, 5 or 15, got %q", v)
		}
		q.Minutes = n
	}
	q.From, q.To, err = dateRange(req, q.Interval)
	return q, err
}

// exponent is the currency exponent an answer carries with a currency.
func exponent(currency string) *int {
	if currency == "" {
		return nil
	}
	e := events.CurrencyExponent(currency)
	return &e
}

func (r *Report) handleMetrics() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		q, err := parseSeries(req, game)
		if err != nil {
			return answer{}, err
		}
		series, err := r.queries.Series(ctx, q)
		if err != nil {
			return answer{}, err
		}
		s := Series{Game: game.ID, Metric: q.Metric, Interval: string(q.Interval), Timezone: game.Timezone, By: q.By,
			Currency: series.Currency, CurrencyExponent: exponent(series.Currency), Approximate: series.Approximate}
		if q.By != "" {
			rows := [][]string{{"t", q.By, "value"}}
			s.Groups = make([]Groups, len(series.Groups))
			for i, g := range series.Groups {
				s.Groups[i] = Groups{Value: g.Value, Points: make([]Point, len(g.Points))}
				for j, p := range g.Points {
					s.Groups[i].Points[j] = Point{T: p.Label, Value: p.Value}
					rows = append(rows, []string{p.Label, g.Value, formatNumber(p.Value)})
				}
			}
			if s.Groups == nil || len(s.Groups) == 0 {
				return answer{json: seriesNoGroups{s}, csv: rows}, nil
			}
			return answer{json: s, csv: rows}, nil
		}
		s.Points = make([]Point, len(series.Points))
		rows := [][]string{{"t", "value"}}
		for i, p := range series.Points {
			s.Points[i] = Point{T: p.Label, Value: p.Value}
			rows = append(rows, []string{p.Label, formatNumber(p.Value)})
		}
		if len(s.Points) == 0 {
			return answer{json: seriesNoPoints{s}, csv: rows}, nil
		}
		return answer{json: s, csv: rows}, nil
	}
}

// seriesNoPoints and seriesNoGroups keep an empty points or series list
// in the answer (omitempty would drop it).
type seriesNoPoints struct{ Series }

func (s seriesNoPoints) MarshalJSON() ([]byte, error) {
	type plain Series
	return json.Marshal(struct {
		plain
		Points []Point `json:"points"`
	}{plain(s.Series), []Point{}})
}

type seriesNoGroups struct{ Series }

func (s seriesNoGroups) MarshalJSON() ([]byte, error) {
	type plain Series
	return json.Marshal(struct {
		plain
		Groups []Groups `json:"series"`
	}{plain(s.Series), []Groups{}})
}

func formatNumber(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// Retention is the answer of the retention endpoint.
type Retention struct {
	Game     string           `json:"game"`
	Timezone string           `json:"timezone"`
	Days     []int            `json:"days"`
	Cohorts  []metrics.Cohort `json:"cohorts"`
}

func parseDays(v string, def []int) ([]int, error) {
	if v == "" {
		return def, nil
	}
	var days []int
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 0 || n > metrics.MaxRetentionDays {
			return nil, badParam("days", "want a comma-separated list of day numbers 0-%d, got %q", metrics.MaxRetentionDays, part)
		}
		if !slices.Contains(days, n) {
			days = append(days, n)
		}
	}
	if len(days) > metrics.MaxRetentionColumns {
		return nil, badParam("days", "at most %d days", metrics.MaxRetentionColumns)
	}
	slices.Sort(days)
	return days, nil
}

func (r *Report) handleRetention() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		from, to, err := dateRange(req, metrics.Day)
		if err != nil {
			return answer{}, err
		}
		days, err := parseDays(req.URL.Query().Get("days"), []int{1, 7, 30})
		if err != nil {
			return answer{}, err
		}
		f, err := metrics.FilterOf(req.URL.Query())
		if err != nil {
			return answer{}, err
		}
		cohorts, err := r.queries.Retention(ctx, metrics.RetentionQuery{Game: game, From: from, To: to, Days: days, Filter: f})
		if err != nil {
			return answer{}, err
		}
		header := []string{"cohort", "size"}
		for _, n := range days {
			header = append(header, fmt.Sprintf("day_%d", n))
		}
		rows := [][]string{header}
		for _, c := range cohorts {
			row := []string{c.Cohort, strconv.FormatInt(c.Size, 10)}
			for _, n := range days {
				if v := c.Retained[strconv.Itoa(n)]; v != nil {
					row = append(row, strconv.FormatInt(*v, 10))
				} else {
					row = append(row, "")
				}
			}
			rows = append(rows, row)
		}
		return answer{json: Retention{Game: game.ID, Timezone: game.Timezone, Days: days, Cohorts: cohorts}, csv: rows}, nil
	}
}

// Progression is the answer of the progression endpoint.
type Progression struct {
	Game     string          `json:"game"`
	Timezone string          `json:"timezone"`
	From     string          `json:"from"`
	To       string          `json:"to"`
	Levels   []metrics.Level `json:"levels"`
}

func (r *Report) handleProgression() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		from, to, err := dateRange(req, metrics.Day)
		if err != nil {
			return answer{}, err
		}
		f, err := metrics.FilterOf(req.URL.Query())
		if err != nil {
			return answer{}, err
		}
		levels, err := r.queries.Progression(ctx, metrics.ProgressionQuery{Game: game, From: from, To: to, Filter: f})
		if err != nil {
			return answer{}, err
		}
		rows := [][]string{{"level", "starts", "completes", "fails", "fail_rate", "avg_attempts_on_complete"}}
		for _, l := range levels {
			avg := ""
			if l.AvgAttempts != nil {
				avg = formatNumber(*l.AvgAttempts)
			}
			rows = append(rows, []string{l.Level, strconv.FormatInt(l.Starts, 10), strconv.FormatInt(l.Completes, 10),
				strconv.FormatInt(l.Fails, 10), formatNumber(l.FailRate), avg})
		}
		return answer{json: Progression{Game: game.ID, Timezone: game.Timezone, From: from.Format(time.DateOnly),
			To: to.Format(time.DateOnly), Levels: levels}, csv: rows}, nil
	}
}

// LTV is the answer of the ltv endpoint.
type LTV struct {
	Game       string                `json:"game"`
	Timezone   string                `json:"timezone"`
	Days       []int                 `json:"days"`
	Currencies []metrics.LTVCurrency `json:"currencies"`
}

func (r *Report) handleLTV() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		params := req.URL.Query()
		days, err := parseDays(params.Get("days"), metrics.DefaultLTVDays())
		if err != nil {
			return answer{}, err
		}
		f, err := metrics.FilterOf(params)
		if err != nil {
			return answer{}, err
		}
		from, to, err := dateRange(req, metrics.Day)
		if err != nil {
			return answer{}, err
		}
		cs, err := r.queries.LTV(ctx, metrics.LTVQuery{Game: game, From: from, To: to, Days: days, Currency: params.Get("currency"), Filter: f})
		if err != nil {
			return answer{}, err
		}
		rows := [][]string{{"currency", "cohort", "size", "day", "revenue_minor", "per_player_minor"}}
		for _, c := range cs {
			for _, co := range c.Cohorts {
				for _, n := range days {
					rev, pp := "", ""
					if v := co.RevenueMinor[strconv.Itoa(n)]; v != nil {
						rev, pp = formatNumber(*v), formatNumber(*co.PerPlayerMinor[strconv.Itoa(n)])
					}
					rows = append(rows, []string{c.Currency, co.Cohort, strconv.FormatInt(co.Size, 10), strconv.Itoa(n), rev, pp})
				}
			}
		}
		return answer{json: LTV{Game: game.ID, Timezone: game.Timezone, Days: days, Currencies: cs}, csv: rows}, nil
	}
}

// Economy is the answer of the economy endpoint.
type Economy struct {
	Game       string                    `json:"game"`
	Interval   string                    `json:"interval"`
	Timezone   string                    `json:"timezone"`
	Currencies []metrics.EconomyCurrency `json:"currencies"`
}

func (r *Report) handleEconomy() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		params := req.URL.Query()
		interval := metrics.Interval(params.Get("interval"))
		if interval == "" {
			interval = metrics.Day
		}
		switch interval {
		case metrics.Day, metrics.Week, metrics.Month:
		default:
			return answer{}, badParam("interval", "want day, week or month, got %q", string(interval))
		}
		f, err := metrics.FilterOf(params)
		if err != nil {
			return answer{}, err
		}
		from, to, err := dateRange(req, interval)
		if err != nil {
			return answer{}, err
		}
		cs, err := r.queries.Economy(ctx, metrics.EconomyQuery{Game: game, From: from, To: to, Interval: interval,
			Currency: params.Get("currency"), Filter: f})
		if err != nil {
			return answer{}, err
		}
		rows := [][]string{{"currency", "t", "source", "sink"}}
		for _, c := range cs {
			for _, p := range c.Points {
				rows = append(rows, []string{c.Currency, p.T, formatNumber(p.Source), formatNumber(p.Sink)})
			}
		}
		return answer{json: Economy{Game: game.ID, Interval: string(interval), Timezone: game.Timezone, Currencies: cs}, csv: rows}, nil
	}
}

// Live is the answer of the live endpoint.
type Live struct {
	Game string `json:"game"`
	// Online counts players with an event in the last 5 minutes.
	Online int64 `json:"online"`
	// ActiveToday counts players with an event today (game time zone).
	ActiveToday     int64   `json:"active_today"`
	EventsPerMinute []Point `json:"events_per_minute"`
}

func (r *Report) handleLive() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		now := r.now()
		online, err := r.live.OnlineNow(ctx, game.ID, now)
		if err != nil {
			return answer{}, fmt.Errorf("live view: %w", err)
		}
		active, err := r.live.ActiveOn(ctx, game.ID, cache.Today(now, game.Location()))
		if err != nil {
			return answer{}, fmt.Errorf("live view: %w", err)
		}
		mins, err := r.live.EventsPerMinute(ctx, game.ID, now)
		if err != nil {
			return answer{}, fmt.Errorf("live view: %w", err)
		}
		l := Live{Game: game.ID, Online: online, ActiveToday: active, EventsPerMinute: make([]Point, len(mins))}
		rows := [][]string{{"series", "t", "value"},
			{"online", now.UTC().Format(time.RFC3339), strconv.FormatInt(online, 10)},
			{"active_today", cache.Today(now, game.Location()).Format(time.DateOnly), strconv.FormatInt(active, 10)}}
		for i, m := range mins {
			t := m.Minute.UTC().Format(time.RFC3339)
			l.EventsPerMinute[i] = Point{T: t, Value: float64(m.Events)}
			rows = append(rows, []string{"events_per_minute", t, strconv.FormatInt(m.Events, 10)})
		}
		return answer{json: l, csv: rows}, nil
	}
}

// GameInfo is the answer of GET /v1/game: the game a read key belongs to.
type GameInfo struct {
	Game       string   `json:"game"`
	Name       string   `json:"name"`
	Timezone   string   `json:"timezone"`
	Currencies []string `json:"currencies"`
	Today      string   `json:"today"`
}

func (r *Report) handleGame() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(ctx context.Context, req *http.Request, game store.Game) (answer, error) {
		cs, err := r.queries.Currencies(ctx, game.ID)
		if err != nil {
			return answer{}, err
		}
		if cs == nil {
			cs = []string{}
		}
		today := metrics.LocalDay(r.now(), game.Location()).Format(time.DateOnly)
		info := GameInfo{Game: game.ID, Name: game.Name, Timezone: game.Timezone, Currencies: cs, Today: today}
		return answer{json: info, csv: [][]string{{"game", "name", "timezone", "currencies", "today"},
			{game.ID, game.Name, game.Timezone, strings.Join(cs, " "), today}}}, nil
	}
}

// handlePreflight answers a browser's CORS preflight for the API (sent
// before a cross-origin GET with an Authorization header).
func handlePreflight() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		serving.AllowAnyOrigin(h, "Content-Disposition")
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Allow-Headers", "Authorization, Accept")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
	})
}

// handleEvents exports one UTC day of the game's raw events, as stored
// (one per id), as NDJSON structured CloudEvents: the studio's own data,
// from PostgreSQL while the day is hot and from the S3 archive after.
func (r *Report) handleEvents() func(context.Context, *http.Request, store.Game) (answer, error) {
	return func(_ context.Context, req *http.Request, game store.Game) (answer, error) {
		q := req.URL.Query().Get("date")
		day, err := time.Parse(time.DateOnly, q)
		if err != nil {
			return answer{}, badParam("date", "want the UTC day as YYYY-MM-DD, not %q", q)
		}
		if day.After(r.now().UTC().Add(24 * time.Hour)) {
			return answer{}, badParam("date", "%s is in the future", q)
		}
		return answer{
			filename: fmt.Sprintf("%s-%s.ndjson", game.ID, q),
			stream: func(ctx context.Context, w io.Writer) error {
				_, err := archive.WriteDay(ctx, r.pool, r.objects, game.ID, day, w)
				if errors.Is(err, archive.ErrNoArchive) {
					return &apiError{status: http.StatusServiceUnavailable, reason: "the day is archived and this deployment has no S3 archive configured (S3_BUCKET)"}
				}
				return err
			},
		}, nil
	}
}
