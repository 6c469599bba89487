package simulation

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Reader reads one game's answers from the report API, to compare them
// with a Truth (the end-to-end and chaos tests, and anyone checking a
// deployment against a simulated run).
type Reader struct {
	// BaseURL is the report function's URL, e.g. http://127.0.0.1:8086/.
	BaseURL string
	Game    string
	ReadKey string
	// Client defaults to http.DefaultClient.
	Client *http.Client
}

// Get decodes the JSON answer to GET path (relative to BaseURL) into v and
// returns the status; a status other than 200 is also an error.
func (r Reader) Get(ctx context.Context, path string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(r.BaseURL, "/")+"/"+strings.TrimPrefix(path, "/"), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+r.ReadKey)
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return resp.StatusCode, json.Unmarshal(b, v)
}

// Metric reads one daily series.
func (r Reader) Metric(ctx context.Context, metric, from, to string) ([]Point, error) {
	q := url.Values{"from": {from}, "to": {to}, "interval": {"day"}}
	var out struct {
		Points []Point `json:"points"`
	}
	_, err := r.Get(ctx, fmt.Sprintf("v1/games/%s/metrics/%s?%s", r.Game, metric, q.Encode()), &out)
	return out.Points, err
}

// Retention reads the cohorts installed in [from, to] for days.
func (r Reader) Retention(ctx context.Context, from, to string, days []int) ([]Cohort, error) {
	ds := make([]string, len(days))
	for i, d := range days {
		ds[i] = fmt.Sprint(d)
	}
	q := url.Values{"from": {from}, "to": {to}, "days": {strings.Join(ds, ",")}}
	var out struct {
		Cohorts []Cohort `json:"cohorts"`
	}
	_, err := r.Get(ctx, fmt.Sprintf("v1/games/%s/retention?%s", r.Game, q.Encode()), &out)
	return out.Cohorts, err
}

// Mismatches compares the report API's answers with truth and describes
// every difference; none means exact agreement (averages, which the API
// rounds to 2 decimals, within 0.011).
func (r Reader) Mismatches(ctx context.Context, truth Truth) ([]string, error) {
	var diffs []string
	for _, m := range TruthMetrics() {
		got, err := r.Metric(ctx, m, truth.From, truth.To)
		if err != nil {
			return nil, err
		}
		want := truth.Metrics[m]
		if len(got) != len(want) {
			diffs = append(diffs, fmt.Sprintf("%s: %d points, want %d", m, len(got), len(want)))
			continue
		}
		tol := 0.0
		if strings.HasSuffix(m, "_avg") {
			tol = 0.011
		}
		for i := range want {
			if got[i].T != want[i].T || math.Abs(got[i].Value-want[i].Value) > tol {
				diffs = append(diffs, fmt.Sprintf("%s %s = %v, want %s %v", m, got[i].T, got[i].Value, want[i].T, want[i].Value))
			}
		}
	}
	more, err := r.extraMismatches(ctx, truth)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, more...)
	cohorts, err := r.Retention(ctx, truth.From, truth.To, truth.RetentionDays)
	if err != nil {
		return nil, err
	}
	if len(cohorts) != len(truth.Retention) {
		return append(diffs, fmt.Sprintf("retention: %d cohorts, want %d", len(cohorts), len(truth.Retention))), nil
	}
	for i, want := range truth.Retention {
		got := cohorts[i]
		if g, w := retained(got.Retained), retained(want.Retained); got.Cohort != want.Cohort || got.Size != want.Size || g != w {
			diffs = append(diffs, fmt.Sprintf("retention %s = size %d %s, want %s size %d %s", got.Cohort, got.Size, g, want.Cohort, want.Size, w))
		}
	}
	return diffs, nil
}

// WaitForTruth polls Mismatches every poll until the report API agrees with
// truth or ctx ends; it then returns the last differences (or the error
// that stopped the last comparison).
func (r Reader) WaitForTruth(ctx context.Context, truth Truth, poll time.Duration) ([]string, error) {
	var last []string // the last comparison that completed, for the report
	for {
		diffs, err := r.Mismatches(ctx, truth)
		if err == nil && len(diffs) == 0 {
			return nil, nil
		}
		if err == nil {
			last = diffs
		}
		select {
		case <-ctx.Done():
			if err != nil && last != nil {
				// The deadline cut a request short: what still differed
				// says more than the cancelled request.
				return last, nil
			}
			return diffs, err
		case <-time.After(poll):
		}
	}
}

// retained formats a cohort's cells in key order, null where nil.
func retained(m map[string]*int) string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = "null"
		if v != nil {
			out[k] = fmt.Sprint(*v)
		}
	}
	return fmt.Sprint(out) // fmt sorts map keys
}

// extraMismatches compares breakdowns, LTV, economy and ccu_peak.
func (r Reader) extraMismatches(ctx context.Context, truth Truth) ([]string, error) {
	var diffs []string
	span := url.Values{"from": {truth.From}, "to": {truth.To}}
	for _, b := range truth.Breakdowns {
		interval := b.Interval
		if interval == "" {
			interval = "day"
		}
		q := url.Values{"from": {truth.From}, "to": {truth.To}, "interval": {interval}, "by": {b.By}}
		var out struct {
			Series []ByValue `json:"series"`
		}
		if _, err := r.Get(ctx, fmt.Sprintf("v1/games/%s/metrics/%s?%s", r.Game, b.Metric, q.Encode()), &out); err != nil {
			return nil, err
		}
		got := map[string][]Point{}
		for _, s := range out.Series {
			got[s.Value] = s.Points
		}
		for _, want := range b.Series {
			pts := got[want.Value]
			for i, w := range want.Points {
				var g float64
				if i < len(pts) {
					g = pts[i].Value
				}
				if g != w.Value {
					diffs = append(diffs, fmt.Sprintf("%s per %s by %s=%s %s = %v, want %v", b.Metric, interval, b.By, want.Value, w.T, g, w.Value))
				}
			}
			delete(got, want.Value)
		}
		for v := range got {
			diffs = append(diffs, fmt.Sprintf("%s by %s: series %q the truth has no events of", b.Metric, b.By, v))
		}
	}
	if truth.LTV != nil {
		q := url.Values{"from": {truth.From}, "to": {truth.To}}
		ds := make([]string, 0)
		for _, d := range TruthLTVDays() {
			ds = append(ds, fmt.Sprint(d))
		}
		q.Set("days", strings.Join(ds, ","))
		var out struct {
			Currencies []struct {
				Currency string      `json:"currency"`
				Cohorts  []LTVCohort `json:"cohorts"`
			} `json:"currencies"`
		}
		if _, err := r.Get(ctx, fmt.Sprintf("v1/games/%s/ltv?%s", r.Game, q.Encode()), &out); err != nil {
			return nil, err
		}
		if len(out.Currencies) != len(truth.LTV) {
			diffs = append(diffs, fmt.Sprintf("ltv: %d currencies, want %d", len(out.Currencies), len(truth.LTV)))
		}
		for _, c := range out.Currencies {
			g, _ := json.Marshal(c.Cohorts)
			w, _ := json.Marshal(truth.LTV[c.Currency])
			if string(g) != string(w) {
				diffs = append(diffs, fmt.Sprintf("ltv %s = %s, want %s", c.Currency, g, w))
			}
		}
	}
	if truth.Economy != nil {
		var out struct {
			Currencies []struct {
				Currency string      `json:"currency"`
				Points   []FlowTruth `json:"points"`
			} `json:"currencies"`
		}
		if _, err := r.Get(ctx, fmt.Sprintf("v1/games/%s/economy?%s", r.Game, span.Encode()), &out); err != nil {
			return nil, err
		}
		if len(out.Currencies) != len(truth.Economy) {
			diffs = append(diffs, fmt.Sprintf("economy: %d currencies, want %d", len(out.Currencies), len(truth.Economy)))
		}
		for _, c := range out.Currencies {
			want := truth.Economy[c.Currency]
			for i, p := range c.Points {
				if i >= len(want) || p.T != want[i].T || math.Abs(p.Source-want[i].Source) > 1e-6 || math.Abs(p.Sink-want[i].Sink) > 1e-6 {
					diffs = append(diffs, fmt.Sprintf("economy %s %+v, want %+v", c.Currency, p, want[min(i, len(want)-1)]))
				}
			}
		}
	}
	if truth.CCU != nil {
		got, err := r.Metric(ctx, "ccu_peak", truth.From, truth.To)
		if err != nil {
			return nil, err
		}
		for i, w := range truth.CCU {
			if i >= len(got) || got[i].Value != w.Value {
				diffs = append(diffs, fmt.Sprintf("ccu_peak %s = %v, want %v", w.T, got[min(i, len(got)-1)], w.Value))
			}
		}
	}
	return diffs, nil
}
