package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// webhookLog is a local webhook receiver verifying every request with the
// Standard Webhooks reference library.
type webhookLog struct {
	mu     sync.Mutex
	secret string
	got    []webhookCall
}

type webhookCall struct {
	id, typ string
	data    map[string]any
	err     error
}

func (l *webhookLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var ev struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	json.Unmarshal(body, &ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(l.secret)
	if err == nil {
		err = wh.Verify(body, r.Header)
	}
	l.got = append(l.got, webhookCall{id: r.Header.Get("webhook-id"), typ: ev.Type, data: ev.Data, err: err})
}

func (l *webhookLog) of(typ string) []webhookCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []webhookCall
	for _, c := range l.got {
		if c.typ == typ {
			out = append(out, c)
		}
	}
	return out
}

// admin calls notify's API with the game's admin key.
func (p *platform) admin(method, path string, body any, want int) map[string]any {
	p.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, p.url(serving.Notify)+"v1/games/"+p.game.ID+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+p.keys.Admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		p.t.Fatalf("%s %s = %d %v", method, path, resp.StatusCode, out)
	}
	return out
}

// purchases sends n purchases by players p0..p(players-1) through ingest,
// timed now.
func (p *platform) purchases(n, players int, tag string) {
	p.t.Helper()
	var stream []json.RawMessage
	now := time.Now().UTC()
	for i := range n {
		ev := map[string]any{"specversion": "1.0", "id": fmt.Sprintf("%s-%d", tag, i), "source": "/e2e", "type": "com.gamemetrics.purchase",
			"subject": fmt.Sprint("p", i%players), "time": now.Format(time.RFC3339Nano),
			"data": map[string]any{"item_id": "gems", "currency": "USD", "amount_minor": 99 + i}}
		b, _ := json.Marshal(ev)
		stream = append(stream, b)
	}
	st, err := simulation.Send(context.Background(), stream, simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 50})
	if err != nil || st.Accepted != int64(n) {
		p.t.Fatalf("ingest accepted %d of %d: %v", st.Accepted, n, err)
	}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: still no %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// untilClosed sleeps until the minute holding t has closed and the
// evaluation delay passed.
func untilClosed(t time.Time, delay time.Duration) {
	time.Sleep(time.Until(t.Truncate(time.Minute).Add(time.Minute + delay)))
}

// Traffic through ingest, a KPI rule that fires when a minute goes quiet
// and resolves when traffic returns, and a player rule fed by the real
// KafkaSource: the local receiver gets each notification once, signed so
// that the Standard Webhooks reference library verifies it. Real minutes
// pass (about three), as they would in production.
func TestNotifyFiresOnQuietTrafficResolvesWhenItReturnsAndSignsEverything(t *testing.T) {
	const delay = 2 * time.Second
	t.Setenv("NOTIFY_EVALUATION_DELAY", delay.String())
	t.Setenv("NOTIFY_ALLOW_PRIVATE_DESTINATIONS", "true")
	t.Setenv("NOTIFY_RETRY_BASE", "1s")
	p := newPlatform(t, "UTC")
	log := &webhookLog{}
	rcv := httptest.NewServer(log)
	defer rcv.Close()
	d := p.admin("POST", "/destinations", map[string]any{"name": "e2e", "kind": "webhook", "url": rcv.URL}, http.StatusCreated)
	log.mu.Lock()
	log.secret = d["secret"].(string)
	log.mu.Unlock()
	dst := d["id"].(string)
	alert := p.admin("POST", "/alerts", map[string]any{"name": "traffic drop", "metric": "events", "window": "1m",
		"condition": map[string]any{"type": "below", "value": 20}, "destinations": []string{dst}}, http.StatusCreated)
	p.admin("POST", "/player-rules", map[string]any{"name": "first purchase", "event": "purchase", "once_per_player": true,
		"destinations": []string{dst}}, http.StatusCreated)
	// Let the KafkaSource's new group (initialOffset latest) join before
	// traffic starts.
	time.Sleep(5 * time.Second)

	// Minute 0: traffic. Minute 1: none.
	m0 := time.Now()
	p.purchases(30, 10, "m0")
	untilClosed(m0.Add(time.Minute), delay)
	ctx := context.Background()
	if err := p.servers.Ping(ctx, "notify-evaluate"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "firing notification", 30*time.Second, func() bool { return len(log.of("com.gamemetrics.alert.firing")) > 0 })

	// Minute 2: traffic returns (the same players: no new first purchase).
	m2 := time.Now()
	p.purchases(40, 10, "m2")
	untilClosed(m2, delay)
	if err := p.servers.Ping(ctx, "notify-evaluate"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "resolved notification", 30*time.Second, func() bool { return len(log.of("com.gamemetrics.alert.resolved")) > 0 })
	waitFor(t, "10 player notifications", 30*time.Second, func() bool { return len(log.of("com.gamemetrics.player.notification")) >= 10 })
	time.Sleep(2 * time.Second) // anything sent twice would arrive by now

	firing, resolved := log.of("com.gamemetrics.alert.firing"), log.of("com.gamemetrics.alert.resolved")
	if len(firing) != 1 || len(resolved) != 1 {
		t.Fatalf("%d firing and %d resolved notifications, want one each", len(firing), len(resolved))
	}
	if firing[0].data["value"] != 0.0 || resolved[0].data["value"] != 40.0 {
		t.Errorf("firing on %v events, resolved on %v; want 0 and 40", firing[0].data["value"], resolved[0].data["value"])
	}
	if a := firing[0].data["alert"].(map[string]any); a["id"] != alert["id"] {
		t.Errorf("firing for %v", a)
	}
	players := map[string]int{}
	for _, c := range log.of("com.gamemetrics.player.notification") {
		players[c.data["player"].(string)]++
	}
	for i := range 10 {
		if n := players[fmt.Sprint("p", i)]; n != 1 {
			t.Errorf("player p%d: %d first-purchase notifications", i, n)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	ids := map[string]bool{}
	for _, c := range log.got {
		if c.err != nil {
			t.Errorf("%s %s: signature: %v", c.typ, c.id, c.err)
		}
		if ids[c.id] {
			t.Errorf("webhook-id %s received twice", c.id)
		}
		ids[c.id] = true
	}
}
