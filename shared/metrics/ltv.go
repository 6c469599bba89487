package metrics

import (
	"context"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// DefaultLTVDays are the days an LTV query answers when it names none.
func DefaultLTVDays() []int { return []int{1, 7, 30, 90} }

// LTVQuery asks for the lifetime value of the install cohorts of the days
// [From, To] (the game's calendar): for each n in Days, the cumulative
// revenue of the cohort's players from install day through install day + n.
type LTVQuery struct {
	Game     store.Game
	From, To time.Time
	Days     []int
	// Currency keeps only that currency ("" for every one).
	Currency string
	// Filter keeps the players whose install (earliest event) carried its
	// values.
	Filter Filter
}

// LTVCurrency is one currency's cohorts.
type LTVCurrency struct {
	Currency         string      `json:"currency"`
	CurrencyExponent int         `json:"currency_exponent"`
	Cohorts          []LTVCohort `json:"cohorts"`
}

// LTVCohort is one install day's lifetime value.
type LTVCohort struct {
	Cohort string `json:"cohort"`
	Size   int64  `json:"size"`
	// RevenueMinor maps each n of the query's days to the cohort's
	// cumulative revenue through install day + n, in minor units; nil
	// while that day is after today.
	RevenueMinor map[string]*float64 `json:"revenue_minor"`
	// PerPlayerMinor is RevenueMinor / Size, 2 decimals (0 for an empty
	// cohort); nil likewise.
	PerPlayerMinor map[string]*float64 `json:"per_player_minor"`
}

// Validate checks game, from, to, days, currency and the filter.
func (q LTVQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	if err := CheckRange(Day, q.From, q.To); err != nil {
		return err
	}
	if err := CheckDays(q.Days); err != nil {
		return err
	}
	if q.Currency != "" && !currencyRe.MatchString(q.Currency) {
		return paramError("currency", "want an ISO 4217 code such as USD, got %q", q.Currency)
	}
	return checkDims(Day, q.Filter, "")
}

// LTV answers lq, one entry per currency with revenue (sorted), each with
// every cohort of the range. process keeps the revenue per cohort and day
// (cohort_revenue), so the unfiltered answer reads a row per cohort,
// currency and day whatever the game's size; a filtered one reads the
// cohorts' players.
func (q *Queries) LTV(ctx context.Context, lq LTVQuery) ([]LTVCurrency, error) {
	if len(lq.Days) == 0 {
		lq.Days = DefaultLTVDays()
	}
	if err := lq.Validate(); err != nil {
		return nil, err
	}
	from, to := civilDay(lq.From), civilDay(lq.To)
	today := LocalDay(q.now(), lq.Game.Location())
	last := to.AddDate(0, 0, slices.Max(lq.Days))
	sizes := map[time.Time]int64{}
	type cell struct {
		cur     string
		install time.Time
	}
	daily := map[cell]map[time.Time]float64{}
	var sizeSQL, revSQL string
	args := []any{lq.Game.ID, from, to, last, lq.Currency}
	sizeArgs := args[:3]
	if len(lq.Filter) == 0 {
		sizeSQL = `SELECT install_day, players FROM cohort_days WHERE gameid = $1 AND install_day BETWEEN $2 AND $3 AND day = install_day`
		revSQL = `SELECT currency, install_day, day, amount_minor::float8 FROM cohort_revenue
			WHERE gameid = $1 AND install_day BETWEEN $2 AND $3 AND day <= $4 AND ($5::text = '' OR currency = $5)`
	} else {
		where, dargs, _ := dimSQL(lq.Filter, "", 6)
		swhere, sargs, _ := dimSQL(lq.Filter, "", 4)
		sizeSQL = `SELECT p.install_day, count(*) FROM players p JOIN dim_tuples t ON t.gameid = p.gameid AND t.tuple = p.tuple
			WHERE p.gameid = $1 AND p.install_day BETWEEN $2 AND $3` + swhere + ` GROUP BY 1`
		sizeArgs = append(slices.Clone(sizeArgs), sargs...)
		revSQL = `SELECT r.currency, p.install_day, r.day, sum(r.amount_minor)::float8 FROM players p
			JOIN dim_tuples t ON t.gameid = p.gameid AND t.tuple = p.tuple
			JOIN player_revenue_days r ON r.gameid = p.gameid AND r.subject = p.subject
			WHERE p.gameid = $1 AND p.install_day BETWEEN $2 AND $3 AND r.day <= $4 AND ($5::text = '' OR r.currency = $5)` + where + `
			GROUP BY 1, 2, 3`
		args = append(args, dargs...)
	}
	b := &pgx.Batch{}
	b.Queue(sizeSQL, sizeArgs...).Query(func(rows pgx.Rows) error {
		var d time.Time
		var n int64
		_, err := pgx.ForEachRow(rows, []any{&d, &n}, func() error {
			sizes[d] = n
			return nil
		})
		return err
	})
	b.Queue(revSQL, args...).Query(func(rows pgx.Rows) error {
		var c cell
		var d time.Time
		var v float64
		_, err := pgx.ForEachRow(rows, []any{&c.cur, &c.install, &d, &v}, func() error {
			if daily[c] == nil {
				daily[c] = map[time.Time]float64{}
			}
			daily[c][d] += v
			return nil
		})
		return err
	})
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	curs := map[string]bool{}
	for c := range daily {
		curs[c.cur] = true
	}
	if lq.Currency != "" {
		curs = map[string]bool{lq.Currency: true}
	}
	var out []LTVCurrency
	for _, cur := range sortedStrings(curs) {
		lc := LTVCurrency{Currency: cur, CurrencyExponent: events.CurrencyExponent(cur)}
		for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
			c := LTVCohort{Cohort: d.Format(time.DateOnly), Size: sizes[d], RevenueMinor: map[string]*float64{}, PerPlayerMinor: map[string]*float64{}}
			rev := daily[cell{cur, d}]
			for _, n := range lq.Days {
				key, end := strconv.Itoa(n), d.AddDate(0, 0, n)
				if end.After(today) {
					c.RevenueMinor[key], c.PerPlayerMinor[key] = nil, nil
					continue
				}
				var sum float64
				for day, v := range rev {
					if !day.After(end) {
						sum += v
					}
				}
				pp := 0.0
				if c.Size > 0 {
					pp = round(sum/float64(c.Size), 2)
				}
				c.RevenueMinor[key], c.PerPlayerMinor[key] = &sum, &pp
			}
			lc.Cohorts = append(lc.Cohorts, c)
		}
		out = append(out, lc)
	}
	if out == nil {
		out = []LTVCurrency{}
	}
	return out, nil
}

func sortedStrings(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// EconomyQuery asks for the flow of a game's virtual currencies (resource
// events: sources and sinks) over the days [From, To] per Interval (day,
// week or month).
type EconomyQuery struct {
	Game     store.Game
	From, To time.Time
	Interval Interval
	// Currency keeps only that virtual currency ("" for every one).
	Currency string
	// Filter keeps the resource events that carried its values.
	Filter Filter
}

// MaxTopItems is how many items an economy answer lists per currency.
const MaxTopItems = 20

// EconomyCurrency is one virtual currency's flow.
type EconomyCurrency struct {
	Currency  string        `json:"currency"`
	Points    []FlowPoint   `json:"points"`
	ItemTypes []ItemTypeSum `json:"item_types"`
	TopItems  []ItemSum     `json:"top_items"`
}

// FlowPoint is one period's amounts in and out.
type FlowPoint struct {
	T      string  `json:"t"`
	Source float64 `json:"source"`
	Sink   float64 `json:"sink"`
}

// ItemTypeSum is one item type's amounts over the range.
type ItemTypeSum struct {
	ItemType string  `json:"item_type"`
	Source   float64 `json:"source"`
	Sink     float64 `json:"sink"`
}

// ItemSum is one item's amounts over the range.
type ItemSum struct {
	ItemID   string  `json:"item_id"`
	ItemType string  `json:"item_type"`
	Source   float64 `json:"source"`
	Sink     float64 `json:"sink"`
}

// Validate checks game, interval, from, to and the filter.
func (q EconomyQuery) Validate() error {
	if err := checkGame(q.Game.ID); err != nil {
		return err
	}
	switch q.Interval {
	case Day, Week, Month:
	default:
		return paramError("interval", "want day, week or month, got %q", string(q.Interval))
	}
	if err := CheckRange(q.Interval, q.From, q.To); err != nil {
		return err
	}
	if len(q.Currency) > events.MaxStringLen {
		return paramError("currency", "at most %d characters", events.MaxStringLen)
	}
	return checkDims(Day, q.Filter, "")
}

// Economy answers eq, one entry per virtual currency (sorted): amounts per
// period (zeros included), per item type and the MaxTopItems items with
// the most source + sink (ties by item), from the daily rollups process
// keeps per currency, item type and item.
func (q *Queries) Economy(ctx context.Context, eq EconomyQuery) ([]EconomyCurrency, error) {
	if eq.Interval == "" {
		eq.Interval = Day
	}
	if err := eq.Validate(); err != nil {
		return nil, err
	}
	from, to := civilDay(eq.From), civilDay(eq.To)
	qq := query{ps: Periods(eq.Interval, from, to, eq.Game.Location())}
	idx := qq.dayIndex()
	prefix := ""
	if eq.Currency != "" {
		prefix = eq.Currency + "\x1f"
	}
	sql := `SELECT day, metric, dim, sum(value)::float8 FROM rollup_daily
		WHERE gameid = $1 AND day BETWEEN $2 AND $3 AND metric IN ('economy_source', 'economy_sink')
		  AND ($4::text = '' OR starts_with(dim, $4)) GROUP BY 1, 2, 3`
	args := []any{eq.Game.ID, from, to, prefix}
	if len(eq.Filter) > 0 {
		where, dargs, _ := dimSQL(eq.Filter, "", 5)
		sql = `SELECT r.day, r.metric, r.dim, sum(r.value)::float8 FROM rollup_tuple_daily r
		JOIN dim_tuples t ON t.gameid = r.gameid AND t.tuple = r.tuple
		WHERE r.gameid = $1 AND r.day BETWEEN $2 AND $3 AND r.metric IN ('economy_source', 'economy_sink')
		  AND ($4::text = '' OR starts_with(r.dim, $4))` + where + ` GROUP BY 1, 2, 3`
		args = append(args, dargs...)
	}
	rows, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	type acc struct {
		points []FlowPoint
		types  map[string]*ItemTypeSum
		items  map[[2]string]*ItemSum
	}
	byCur := map[string]*acc{}
	var (
		d           time.Time
		metric, dim string
		v           float64
	)
	if _, err := pgx.ForEachRow(rows, []any{&d, &metric, &dim, &v}, func() error {
		i, ok := idx[d]
		parts := strings.SplitN(dim, "\x1f", 3)
		if !ok || len(parts) != 3 {
			return nil
		}
		a := byCur[parts[0]]
		if a == nil {
			a = &acc{points: make([]FlowPoint, len(qq.ps)), types: map[string]*ItemTypeSum{}, items: map[[2]string]*ItemSum{}}
			for j, p := range qq.ps {
				a.points[j].T = p.Label
			}
			byCur[parts[0]] = a
		}
		t := a.types[parts[1]]
		if t == nil {
			t = &ItemTypeSum{ItemType: parts[1]}
			a.types[parts[1]] = t
		}
		it := a.items[[2]string{parts[1], parts[2]}]
		if it == nil {
			it = &ItemSum{ItemID: parts[2], ItemType: parts[1]}
			a.items[[2]string{parts[1], parts[2]}] = it
		}
		if metric == "economy_source" {
			a.points[i].Source += v
			t.Source += v
			it.Source += v
		} else {
			a.points[i].Sink += v
			t.Sink += v
			it.Sink += v
		}
		return nil
	}); err != nil {
		return nil, err
	}
	out := []EconomyCurrency{}
	curs := map[string]bool{}
	for c := range byCur {
		curs[c] = true
	}
	for _, c := range sortedStrings(curs) {
		a := byCur[c]
		ec := EconomyCurrency{Currency: c, Points: a.points, ItemTypes: []ItemTypeSum{}, TopItems: []ItemSum{}}
		for _, t := range a.types {
			ec.ItemTypes = append(ec.ItemTypes, *t)
		}
		sort.Slice(ec.ItemTypes, func(i, j int) bool { return ec.ItemTypes[i].ItemType < ec.ItemTypes[j].ItemType })
		for _, it := range a.items {
			ec.TopItems = append(ec.TopItems, *it)
		}
		sort.Slice(ec.TopItems, func(i, j int) bool {
			a, b := ec.TopItems[i], ec.TopItems[j]
			if sa, sb := a.Source+a.Sink, b.Source+b.Sink; sa != sb {
				return sa > sb
			}
			if a.ItemID != b.ItemID {
				return a.ItemID < b.ItemID
			}
			return a.ItemType < b.ItemType
		})
		if len(ec.TopItems) > MaxTopItems {
			ec.TopItems = ec.TopItems[:MaxTopItems]
		}
		out = append(out, ec)
	}
	return out, nil
}
