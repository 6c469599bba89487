// Package simulation generates realistic game traffic for demos, load tests
// and end-to-end tests, and computes the exact aggregates GameMetrics must
// report for it. Generation is pure and deterministic for a seed: players
// install over several days, play sessions with a diurnal peak, progress
// through levels with failures, a few percent pay, watch ads, hit errors
// and send heartbeats. The Truth is computed from the generated events only,
// independently of the code that processes them, by a Recount: the one
// ground truth of the project's tests, which simtest also reads for the
// function tests' events.
package simulation

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Config describes the simulated population.
type Config struct {
	Players int
	// Days of history, ending at End (at most 29: ingest refuses events
	// older than 30 days).
	Days int
	// End is the simulated "now"; no event is later than it.
	End time.Time
	// Location is the game's time zone (day boundaries of the truth).
	Location *time.Location
	Seed     uint64
	// PayingShare of players who buy something (default 0.04).
	PayingShare float64
	// RunID prefixes event ids so separate runs never share an id (a
	// shared id would be deduplicated as a resend).
	RunID string
	// Items is the size of the game's item catalogue (see Catalogue). With
	// items, players have latent tastes that their purchases and resource
	// sinks follow; every other event is exactly what the same seed gives
	// without them. 0 keeps the four fixed in-app purchases and the
	// "chest" sink.
	Items int
}

// Event is one generated CloudEvent in structured form.
type Event struct {
	SpecVersion string         `json:"specversion"`
	ID          string         `json:"id"`
	Source      string         `json:"source"`
	Type        string         `json:"type"`
	Subject     string         `json:"subject"`
	Time        time.Time      `json:"time"`
	SessionID   string         `json:"sessionid,omitempty"`
	ContentType string         `json:"datacontenttype,omitempty"`
	Data        map[string]any `json:"data,omitempty"`
	// Dimensions, sent on every event as real SDKs do (CloudEvent
	// extensions platform, country, appversion, dim1..dim3).
	Platform   string `json:"platform,omitempty"`
	Country    string `json:"country,omitempty"`
	AppVersion string `json:"appversion,omitempty"`
	Dim1       string `json:"dim1,omitempty"`
	Dim2       string `json:"dim2,omitempty"`
	Dim3       string `json:"dim3,omitempty"`
}

var (
	platformsByShare = []string{"ios", "ios", "android", "android", "android", "web", "windows", "console"}
	countries        = []string{"US", "DE", "BR", "JP", "IN", "FR", "GB", "KR"}
	adNetworks       = []string{"admob", "unity", "applovin"}
	adTypes          = []string{"rewarded", "interstitial", "banner", "video"}
	items            = []struct {
		id     string
		amount int64
	}{{"gems_small", 99}, {"gems_medium", 499}, {"starter_pack", 999}, {"season_pass", 1999}}
)

// Generate returns the events of the simulated population, ordered by time.
func Generate(cfg Config) []Event {
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.PayingShare == 0 {
		cfg.PayingShare = 0.04
	}
	cfg.Days = max(1, min(cfg.Days, 29))
	r := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	start := cfg.End.Add(-time.Duration(cfg.Days) * 24 * time.Hour)
	var cat *Catalogue
	if cfg.Items > 0 {
		cat = NewCatalogue(cfg.Items, cfg.Seed)
	}
	var out []Event
	for p := range cfg.Players {
		out = append(out, player(r, cfg, cat, start, p)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// diurnal returns an hour of day weighted towards evenings.
func diurnal(r *rand.Rand) float64 {
	for {
		h := r.Float64() * 24
		// Peak around 20:00 local, trough around 05:00.
		w := 0.55 + 0.45*math.Cos((h-20)/24*2*math.Pi)
		if r.Float64() < w {
			return h
		}
	}
}

func player(r *rand.Rand, cfg Config, cat *Catalogue, start time.Time, n int) []Event {
	subject := fmt.Sprintf("player-%05d", n)
	installDay := r.IntN(cfg.Days)
	paying := r.Float64() < cfg.PayingShare
	platform := platformsByShare[r.IntN(len(platformsByShare))]
	countryIdx := r.IntN(len(countries))
	country := countries[countryIdx]
	var shopper *Shopper
	if cat != nil {
		shopper = cat.Shopper(n, countryIdx)
	}
	level := 1
	var out []Event
	seq := 0
	// The player's build and segments: a custom dimension per spender
	// tier, an A/B group and a cohort label.
	version := fmt.Sprintf("1.%d.%d", 3+r.IntN(2), r.IntN(3))
	tier := "free"
	if paying {
		tier = "payer"
	}
	ab := []string{"A", "B"}[r.IntN(2)]
	label := fmt.Sprintf("wave%d", installDay/7)
	emit := func(t time.Time, typ, session string, data map[string]any) {
		if t.After(cfg.End) {
			return
		}
		seq++
		out = append(out, Event{SpecVersion: "1.0", ID: fmt.Sprintf("%s%s-%d", cfg.RunID, subject, seq), Source: "/sim/" + platform,
			Type: typ, Subject: subject, Time: t.UTC().Truncate(time.Millisecond), SessionID: session,
			ContentType: "application/json", Data: data,
			Platform: platform, Country: country, AppVersion: version, Dim1: tier, Dim2: ab, Dim3: label})
	}
	// Retention decays: each later day the player comes back with a falling chance.
	for day := installDay; day < cfg.Days; day++ {
		if day > installDay && r.Float64() > 0.45*math.Pow(0.93, float64(day-installDay)) {
			continue
		}
		dayStart := start.Add(time.Duration(day) * 24 * time.Hour)
		sessions := 1 + r.IntN(3)
		for s := range sessions {
			begin := dayStart.Add(time.Duration(diurnal(r) * float64(time.Hour)))
			session := fmt.Sprintf("%s-d%d-s%d", subject, day, s)
			length := time.Duration(60+r.IntN(1500)) * time.Second
			emit(begin, events.TypeSessionStart, session, map[string]any{"platform": platform, "app_version": version, "country": country})
			t := begin
			for t.Before(begin.Add(length)) {
				t = t.Add(time.Duration(20+r.IntN(100)) * time.Second)
				if t.After(begin.Add(length)) {
					break
				}
				switch x := r.Float64(); {
				case x < 0.35:
					emit(t, events.TypeHeartbeat, session, nil)
				case x < 0.60:
					lvl := fmt.Sprintf("world%d/level%d", 1+(level-1)/10, level)
					emit(t, events.TypeProgression, session, map[string]any{"status": "start", "level": lvl})
					t = t.Add(time.Duration(10+r.IntN(50)) * time.Second)
					if r.Float64() < 0.3 {
						emit(t, events.TypeProgression, session, map[string]any{"status": "fail", "level": lvl, "attempt": 1})
					} else {
						emit(t, events.TypeProgression, session, map[string]any{"status": "complete", "level": lvl, "attempt": 1, "score": r.IntN(1000)})
						level++
					}
				case x < 0.72:
					ad := map[string]any{"action": "show", "ad_type": adTypes[r.IntN(len(adTypes))], "network": adNetworks[r.IntN(len(adNetworks))], "revenue_micros": 500 + r.IntN(20000)}
					emit(t, events.TypeAd, session, ad)
				case x < 0.85:
					flow := "source"
					if r.IntN(2) == 0 {
						flow = "sink"
					}
					data := map[string]any{"flow": flow, "currency": "gold", "amount": 10 + r.IntN(90), "item_type": "loot", "item_id": "chest"}
					if flow == "sink" && shopper != nil {
						data["item_id"] = shopper.Pick(false).ID
					}
					emit(t, events.TypeResource, session, data)
				case x < 0.95:
					emit(t, events.TypeDesign, session, map[string]any{"event": "ui:shop:open", "value": 1})
				case x < 0.98:
					if paying {
						it := items[r.IntN(len(items))]
						id, amount := it.id, it.amount
						if shopper != nil {
							bought := shopper.Pick(true)
							id, amount = bought.ID, bought.Price
						}
						emit(t, events.TypePurchase, session, map[string]any{"item_id": id, "item_type": "iap", "currency": "USD", "amount_minor": amount, "transaction_id": fmt.Sprintf("tx-%s-%d", subject, seq)})
					}
				default:
					sev := []string{"warning", "error", "critical"}[r.IntN(3)]
					emit(t, events.TypeError, session, map[string]any{"severity": sev, "message": "texture streaming stalled"})
				}
			}
			emit(begin.Add(length), events.TypeSessionEnd, session, map[string]any{"length_s": length.Seconds()})
		}
	}
	return out
}

// JSON encodes an event in structured mode.
func (e Event) JSON() json.RawMessage {
	b, _ := json.Marshal(e)
	return b
}
