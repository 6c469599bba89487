package simulation

import (
	"math/big"
	"sort"
	"strconv"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Values lists the values dimension name takes in the recounted events,
// sorted.
func (r *Recount) Values(name string) []string {
	i := events.DimIndex(name)
	set := map[string]bool{}
	for _, e := range r.Events {
		set[e.Dims[i]] = true
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// ValueBy is metric over p per value of dimension by (under f), for every
// value any event carries.
func (r *Recount) ValueBy(metric string, p Period, f Filter, by string) map[string]float64 {
	out := map[string]float64{}
	for _, v := range r.Values(by) {
		out[v] = r.Value(metric, p, f.With(by, v))
	}
	return out
}

// LTVCohort is one install cohort's lifetime value in one currency, as the
// report API answers it (minor units).
type LTVCohort struct {
	Cohort    string              `json:"cohort"`
	Size      int64               `json:"size"`
	Revenue   map[string]*float64 `json:"revenue_minor"`
	PerPlayer map[string]*float64 `json:"per_player_minor"`
}

// LTV is, per install day in [from, to] of the players f keeps (by their
// install dimensions), the cumulative revenue in currency of the cohort
// from install day through install day + n for each n of days, and per
// player (2 decimals); nil while install day + n is after Now's day.
func (r *Recount) LTV(from, to time.Time, days []int, currency string, f Filter) []LTVCohort {
	today := r.Day(r.Now)
	var out []LTVCohort
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		c := LTVCohort{Cohort: d.Format(time.DateOnly), Revenue: map[string]*float64{}, PerPlayer: map[string]*float64{}}
		var members []*Player
		for _, pl := range r.Players {
			if r.Day(pl.First).Equal(d) && f.Keeps(pl.Dims) {
				members = append(members, pl)
			}
		}
		c.Size = int64(len(members))
		for _, n := range days {
			end := d.AddDate(0, 0, n)
			if end.After(today) {
				c.Revenue[strconv.Itoa(n)], c.PerPlayer[strconv.Itoa(n)] = nil, nil
				continue
			}
			var sum int64
			for _, pl := range members {
				for day, amt := range pl.Revenue[currency] {
					if !day.After(end) {
						sum += amt
					}
				}
			}
			v := float64(sum)
			pp := 0.0
			if c.Size > 0 {
				pp = round(v/float64(c.Size), 2)
			}
			c.Revenue[strconv.Itoa(n)], c.PerPlayer[strconv.Itoa(n)] = &v, &pp
		}
		out = append(out, c)
	}
	return out
}

// Flow is one virtual currency's sources and sinks.
type Flow struct{ Source, Sink *big.Rat }

// Economy is, per virtual currency, the resource amounts in (source) and
// out (sink) per calendar day of [from, to], and per item type and item
// over the whole range, of the events f keeps.
func (r *Recount) Economy(from, to time.Time, f Filter) (perDay map[string]map[string]Flow, itemTypes, items map[string]map[string]Flow) {
	perDay, itemTypes, items = map[string]map[string]Flow{}, map[string]map[string]Flow{}, map[string]map[string]Flow{}
	add := func(m map[string]map[string]Flow, cur, key, flow string, amt *big.Rat) {
		if m[cur] == nil {
			m[cur] = map[string]Flow{}
		}
		fl, ok := m[cur][key]
		if !ok {
			fl = Flow{new(big.Rat), new(big.Rat)}
		}
		if flow == "source" {
			fl.Source.Add(fl.Source, amt)
		} else {
			fl.Sink.Add(fl.Sink, amt)
		}
		m[cur][key] = fl
	}
	r.each(Period{From: from, To: to}, func(e *Fact) {
		if e.Type != events.TypeResource || !f.Keeps(e.Dims) {
			return
		}
		amt, _ := e.Rat("amount")
		cur, flow := e.Text("currency"), e.Text("flow")
		add(perDay, cur, r.Day(e.Time).Format(time.DateOnly), flow, amt)
		add(itemTypes, cur, e.Text("item_type"), flow, amt)
		add(items, cur, e.Text("item_type")+"\x1f"+e.Text("item_id"), flow, amt)
	})
	return perDay, itemTypes, items
}

// Online is how many players were online in the UTC minute m: an event
// in m or the minute before.
func (r *Recount) Online(m time.Time) int { return r.OnlineUnder(m, Filter{}) }

// OnlineUnder is Online counting only events f keeps: a player is online
// under a dimension value when an event carrying it fell in m or the
// minute before.
func (r *Recount) OnlineUnder(m time.Time, f Filter) int {
	set := map[string]bool{}
	for _, h := range []time.Time{m.Add(-time.Minute).Truncate(time.Hour), m.Truncate(time.Hour)} {
		for _, i := range r.byHour[h] {
			e := &r.Events[i]
			if t := e.Time.Truncate(time.Minute); (t.Equal(m) || t.Equal(m.Add(-time.Minute))) && f.Keeps(e.Dims) {
				set[e.Subject] = true
			}
		}
	}
	return len(set)
}

// CCUPeak is the highest Online of the minutes of p (a UTC hour, or
// calendar days of the game).
func (r *Recount) CCUPeak(p Period) int { return r.CCUPeakUnder(p, Filter{}) }

// CCUPeakUnder is CCUPeak of the events f keeps.
func (r *Recount) CCUPeakUnder(p Period, f Filter) int {
	var start, end time.Time
	if !p.Hour.IsZero() {
		start, end = p.Hour, p.Hour.Add(time.Hour)
	} else {
		start = time.Date(p.From.Year(), p.From.Month(), p.From.Day(), 0, 0, 0, 0, r.Location)
		end = time.Date(p.To.Year(), p.To.Month(), p.To.Day()+1, 0, 0, 0, 0, r.Location)
	}
	peak := 0
	// Only minutes with an event or just after one can have players online.
	cands := map[time.Time]bool{}
	for _, e := range r.Events {
		m := e.Time.Truncate(time.Minute)
		for _, c := range []time.Time{m, m.Add(time.Minute)} {
			if !c.Before(start) && c.Before(end) {
				cands[c] = true
			}
		}
	}
	for m := range cands {
		peak = max(peak, r.OnlineUnder(m, f))
	}
	return peak
}

// OnlineMinutes is Online of every minute that has players online.
func (r *Recount) OnlineMinutes() map[time.Time]int {
	out := map[time.Time]int{}
	for _, e := range r.Events {
		m := e.Time.Truncate(time.Minute)
		for _, c := range []time.Time{m, m.Add(time.Minute)} {
			if _, ok := out[c]; !ok {
				out[c] = r.Online(c)
			}
		}
	}
	return out
}
