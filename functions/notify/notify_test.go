package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/report"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
)

func ping() event.Event {
	e := event.New()
	e.SetID(newID("tick_"))
	e.SetType(TypePing)
	e.SetSource("/apis/v1/namespaces/gamemetrics/pingsources/notify-evaluate")
	e.SetData(event.ApplicationJSON, []byte(`{"task":"evaluate"}`))
	return e
}

// A rule fires on a window with errors and resolves on the next quiet one;
// the same tick delivered twice to each of two replicas evaluating at once
// makes one firing and one resolved notification, each sent once, signed
// so that the reference library verifies it.
func TestDuplicateTicksAndTwoReplicasSendEachNotificationOnce(t *testing.T) {
	base := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour)
	e := newEnv(t, "UTC", base.Add(30*time.Second), nil)
	rcv := newReceiver(t)
	dst, secret := e.webhook(rcv.srv.URL)
	rcv.secret = secret
	alert := e.admin("POST", e.path("/alerts"), map[string]any{"name": "errors spike", "metric": "errors", "window": "1m",
		"condition": map[string]any{"type": "above", "value": 2}, "destinations": []string{dst}}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	var evs []event.Event
	for i := range 5 {
		evs = append(evs, g.Event(events.TypeError, fmt.Sprint("p", i), "", base.Add(time.Duration(10+i)*time.Second), `{"severity":"error","message":"boom"}`))
	}
	e.seed(evs)
	e.clock.set(base.Add(2*time.Minute + 15*time.Second)) // both minutes closed, 10 s delay passed
	second, _ := e.replica()
	var wg sync.WaitGroup
	for _, n := range []*Notify{e.n, second, e.n, second} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.Handle(context.Background(), ping()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	e.dispatchAll(e.n, 10*time.Second)
	if _, err := second.Handle(context.Background(), ping()); err != nil { // a late duplicate
		t.Fatal(err)
	}
	e.dispatchAll(second, 5*time.Second)
	calls := rcv.got()
	if len(calls) != 2 {
		t.Fatalf("receiver got %d requests, want one firing and one resolved", len(calls))
	}
	for i, want := range []string{TypeAlertFiring, TypeAlertResolved} {
		c := calls[i]
		if c.verified != nil {
			t.Errorf("request %d: signature: %v", i, c.verified)
		}
		typ, data := c.event(t)
		if typ != want || data["value"] != map[int]float64{0: 5, 1: 0}[i] {
			t.Errorf("request %d: %s with value %v, want %s", i, typ, data["value"], want)
		}
	}
	if calls[0].id == calls[1].id {
		t.Error("two notifications share a webhook-id")
	}
	a := e.admin("GET", e.path("/alerts/"+alert["id"].(string)), nil, http.StatusOK)
	if a["state"] != stateResolved || a["last_value"] != 0.0 {
		t.Errorf("alert after the ticks: %v", a)
	}
}

// A receiver that fails three times and then succeeds gets exactly four
// attempts, all with one webhook-id, and one success.
func TestAReceiverFailingThreeTimesGetsFourAttemptsWithOneWebhookID(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), nil)
	rcv := newReceiver(t, 500, 502, 503)
	dst, secret := e.webhook(rcv.srv.URL)
	rcv.secret = secret
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "big spender", "event": "purchase",
		"conditions": []map[string]any{{"field": "amount_minor", "op": "gte", "value": 1000}}, "destinations": []string{dst}}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	if _, err := e.n.Handle(context.Background(), g.Event(events.TypePurchase, "whale", "", time.Now(), `{"item_id":"gems","currency":"USD","amount_minor":4999}`)); err != nil {
		t.Fatal(err)
	}
	e.dispatchAll(e.n, 20*time.Second)
	calls := rcv.got()
	ok := 0
	for _, c := range calls {
		if c.id != calls[0].id || c.verified != nil {
			t.Errorf("attempt with webhook-id %s (first %s), signature %v", c.id, calls[0].id, c.verified)
		}
		if c.status == 200 {
			ok++
		}
	}
	if len(calls) != 4 || ok != 1 {
		t.Fatalf("%d attempts, %d successful; want 4 and 1", len(calls), ok)
	}
	typ, data := calls[3].event(t)
	if typ != TypePlayer || data["player"] != "whale" {
		t.Errorf("%s for %v", typ, data["player"])
	}
	nv := e.admin("GET", e.path("/notifications/"+calls[0].id), nil, http.StatusOK)
	d := nv["deliveries"].([]any)[0].(map[string]any)
	if d["state"] != "delivered" || d["attempts"] != 4.0 || len(d["history"].([]any)) != 4 {
		t.Errorf("delivery: %v", d)
	}
}

// once_per_player: however often the KafkaSource redelivers a player's
// events (concurrently, out of order), the rule notifies once per player;
// a rule for every event notifies once per event.
func TestOncePerPlayerFiresOncePerPlayerUnderRedelivery(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), nil)
	rcv := newReceiver(t)
	dst, _ := e.webhook(rcv.srv.URL)
	first := e.admin("POST", e.path("/player-rules"), map[string]any{"name": "first purchase", "event": "purchase", "once_per_player": true,
		"destinations": []string{dst}}, http.StatusCreated)
	crit := e.admin("POST", e.path("/player-rules"), map[string]any{"name": "critical error", "event": "com.gamemetrics.error",
		"conditions": []map[string]any{{"field": "severity", "op": "eq", "value": "critical"}}, "destinations": []string{dst}}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	var evs []event.Event
	now := time.Now()
	for p := range 4 {
		player := fmt.Sprint("player-", p)
		for i := range 3 {
			evs = append(evs, g.Event(events.TypePurchase, player, "", now.Add(time.Duration(i)*time.Second), `{"item_id":"x","currency":"EUR","amount_minor":99}`))
		}
		evs = append(evs, g.Event(events.TypeError, player, "", now, `{"severity":"critical","message":"crash"}`),
			g.Event(events.TypeError, player, "", now, `{"severity":"warning","message":"hmm"}`))
	}
	simtest.Feed(t, e.n.Handle, g.Deliveries(evs, 4), 8)
	e.dispatchAll(e.n, 10*time.Second)
	per := map[string]int{}
	for _, c := range rcv.got() {
		_, data := c.event(t)
		rule := data["rule"].(map[string]any)["id"].(string)
		per[rule+"/"+data["player"].(string)]++
	}
	for p := range 4 {
		for _, r := range []string{first["id"].(string), crit["id"].(string)} {
			if k := fmt.Sprintf("%s/player-%d", r, p); per[k] != 1 {
				t.Errorf("%s: %d notifications, want 1", k, per[k])
			}
		}
	}
	if len(per) != 8 {
		t.Errorf("notifications for %v", per)
	}
}

// A rule's value is the report API's for the same window, for every
// window length: the last window each rule evaluated, read back from the
// rule, equals the API's point of that window.
func TestARulesValueIsTheReportAPIsForTheSameWindow(t *testing.T) {
	kol, _ := time.LoadLocation("Asia/Kolkata")
	day := time.Now().In(kol).AddDate(0, 0, -2)
	d0 := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, kol)
	e := newEnv(t, "Asia/Kolkata", d0.Add(10*time.Hour), nil)
	rcv := newReceiver(t)
	dst, _ := e.webhook(rcv.srv.URL)
	g := &simtest.Generator{Game: e.game.ID}
	var evs []event.Event
	last := d0.Add(24*time.Hour - time.Minute) // 23:59 local, the last minute of the day
	for i := range 40 {
		at := last.Add(-time.Duration(i*i) * 17 * time.Second)
		p := fmt.Sprint("p", i%7)
		evs = append(evs, g.Event(events.TypeError, p, "", at, map[bool]string{true: `{"severity":"critical","message":"x"}`, false: `{"severity":"error","message":"x"}`}[i%3 == 0]),
			g.Event(events.TypePurchase, p, "", at, fmt.Sprintf(`{"item_id":"x","currency":"USD","amount_minor":%d}`, 100+i)))
		evs = append(evs, g.Session(p+fmt.Sprint("s", i), at.Add(-10*time.Minute))...)
	}
	e.seed(evs)
	type rule struct{ metric, currency, severity, window string }
	rules := []rule{{"events", "", "", "1m"}, {"events", "", "", "5m"}, {"errors", "", "critical", "15m"}, {"transactions", "USD", "", "15m"},
		{"revenue", "USD", "", "1h"}, {"revenue", "USD", "", "1d"}, {"dau", "", "", "1d"}, {"arpdau", "USD", "", "1h"}, {"sessions", "", "", "5m"},
		{"session_length_avg", "", "", "1h"}, {"new_players", "", "", "1d"}}
	ids := map[string]rule{}
	for _, r := range rules {
		a := e.admin("POST", e.path("/alerts"), map[string]any{"name": r.metric + " " + r.window, "metric": r.metric, "currency": r.currency,
			"severity": r.severity, "window": r.window, "condition": map[string]any{"type": "above", "value": 1e12}, "destinations": []string{dst}}, http.StatusCreated)
		ids[a["id"].(string)] = r
	}
	e.clock.set(d0.Add(24*time.Hour + 30*time.Second)) // every window of the day closed
	if _, err := e.n.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := report.New(report.DefaultConfig(), e.pool, e.rdb, nil, testLogger(), prometheus.NewRegistry(), e.clock.now)
	srv := httptest.NewServer(rep)
	defer srv.Close()
	nonZero := 0
	for id, r := range ids {
		a := e.admin("GET", e.path("/alerts/"+id), nil, http.StatusOK)
		if a["last_error"] != nil {
			t.Fatalf("%v: %v", r, a["last_error"])
		}
		w, _ := parseWindow(r.window)
		until := e.clock.now().Add(-e.cfg.EvaluationDelay)
		p := w.periodOf(until, kol) // the last window closed by then
		if p.End(kol).After(until) {
			p = w.back(p, 1, kol)
		}
		q := url.Values{"from": {p.From.Format(time.DateOnly)}, "to": {p.To.Format(time.DateOnly)}, "interval": {string(p.Interval)}}
		if p.Minutes > 0 {
			q.Set("minutes", fmt.Sprint(p.Minutes))
		}
		for k, v := range map[string]string{"currency": r.currency, "severity": r.severity} {
			if v != "" {
				q.Set(k, v)
			}
		}
		req, _ := http.NewRequest("GET", srv.URL+"/v1/games/"+e.game.ID+"/metrics/"+r.metric+"?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+e.keys.Read)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var s report.Series
		json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		var api *float64
		for _, pt := range s.Points {
			if pt.T == p.Label {
				v := pt.Value
				api = &v
			}
		}
		evaluated, _ := time.Parse(time.RFC3339Nano, a["evaluated_until"].(string))
		switch {
		case api == nil:
			t.Errorf("%v: no API point %s in %d points", r, p.Label, len(s.Points))
		case !evaluated.Equal(p.End(kol)):
			t.Errorf("%v: evaluated until %s, want %s", r, evaluated, p.End(kol))
		case a["last_value"] != *api:
			t.Errorf("%v window %s: rule value %v, report API %v", r, p.Label, a["last_value"], *api)
		}
		if api != nil && *api != 0 {
			nonZero++
		}
	}
	if nonZero < len(rules)-1 {
		t.Errorf("only %d of %d compared values are not zero", nonZero, len(rules))
	}
}

// The SNS destination goes through the real aws-sdk-go-v2 SNS client. No
// SNS server runs here, so the endpoint is a local HTTP server answering
// the SNS Publish action of the Query protocol, as AWS does.
func TestSNSDestinationsPublishThroughTheSDK(t *testing.T) {
	var mu sync.Mutex
	var got []url.Values
	sns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		mu.Lock()
		got = append(got, form)
		mu.Unlock()
		if form.Get("Action") != "Publish" || !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>m-%d</MessageId></PublishResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></PublishResponse>`, len(got))
	}))
	defer sns.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	e := newEnv(t, "UTC", time.Now(), func(c *Config) { c.SNSEndpoint = sns.URL })
	fifo := e.admin("POST", e.path("/destinations"), map[string]any{"name": "ops", "kind": "sns", "topic_arn": "arn:aws:sns:eu-west-1:123456789012:alerts.fifo"}, http.StatusCreated)
	std := e.admin("POST", e.path("/destinations"), map[string]any{"name": "ops2", "kind": "sns", "topic_arn": "arn:aws:sns:us-east-1:123456789012:alerts"}, http.StatusCreated)
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "first purchase", "event": "purchase", "once_per_player": true,
		"destinations": []string{fifo["id"].(string), std["id"].(string)}}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	if _, err := e.n.Handle(context.Background(), g.Event(events.TypePurchase, "p1", "", time.Now(), `{"item_id":"x","currency":"USD","amount_minor":99}`)); err != nil {
		t.Fatal(err)
	}
	e.dispatchAll(e.n, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("SNS got %d requests", len(got))
	}
	for _, f := range got {
		var ev struct{ ID, Type string }
		json.Unmarshal([]byte(f.Get("Message")), &ev)
		if ev.Type != TypePlayer {
			t.Errorf("message %s", f.Get("Message"))
		}
		switch f.Get("TopicArn") {
		case fifo["topic_arn"]:
			if f.Get("MessageDeduplicationId") != ev.ID || f.Get("MessageGroupId") != e.game.ID {
				t.Errorf("FIFO publish: dedup %q group %q, want %s and %s", f.Get("MessageDeduplicationId"), f.Get("MessageGroupId"), ev.ID, e.game.ID)
			}
		case std["topic_arn"]:
			if f.Has("MessageDeduplicationId") || f.Has("MessageGroupId") {
				t.Errorf("standard topic publish with FIFO fields: %v", f)
			}
		default:
			t.Errorf("publish to %s", f.Get("TopicArn"))
		}
	}
}

// What a receiver answers decides: 410 disables the destination, another
// 4xx fails at once, 429 waits its Retry-After, 5xx is retried until the
// attempts run out; failed deliveries are listed and can be retried.
func TestReceiversAnswersDecideRetriesDisablingAndFailure(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), func(c *Config) { c.MaxAttempts = 3 })
	gone, bad, limited, broken := newReceiver(t, 410), newReceiver(t, 400), newReceiver(t, 429), newReceiver(t, 500, 500, 500, 500)
	limited.header.Set("Retry-After", "120")
	var dests []string
	for _, r := range []*receiver{gone, bad, limited, broken} {
		id, _ := e.webhook(r.srv.URL)
		dests = append(dests, id)
	}
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "any purchase", "event": "purchase", "destinations": dests}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	if _, err := e.n.Handle(context.Background(), g.Event(events.TypePurchase, "p1", "", time.Now(), `{"item_id":"x","currency":"USD","amount_minor":99}`)); err != nil {
		t.Fatal(err)
	}
	start := e.clock.now()
	if err := e.n.DispatchDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The dispatcher the event woke may hold the delivery: wait for its outcome.
	var due time.Time
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var status *int
		e.pool.QueryRow(context.Background(), `SELECT due_at, last_status FROM notify_deliveries WHERE destination_id = $1`, dests[2]).Scan(&due, &status)
		if status != nil {
			break
		}
	}
	if due.Sub(start) < 119*time.Second {
		t.Errorf("429 with Retry-After 120: due again after %s", due.Sub(start))
	}
	limited.answer = nil
	e.dispatchAll(e.n, 20*time.Second)
	if n := len(gone.got()); n != 1 {
		t.Errorf("410: %d attempts", n)
	}
	if n := len(bad.got()); n != 1 {
		t.Errorf("400: %d attempts, want 1", n)
	}
	if n := len(broken.got()); n != 3 {
		t.Errorf("500: %d attempts, want MaxAttempts (3)", n)
	}
	d := e.admin("GET", e.path("/destinations/"+dests[0]), nil, http.StatusOK)
	if d["disabled_at"] == nil {
		t.Errorf("a destination answering 410 is not disabled: %v", d)
	}
	failed := e.admin("GET", e.path("/notifications?state=failed"), nil, http.StatusOK)["notifications"].([]any)
	if len(failed) != 1 {
		t.Fatalf("%d failed notifications", len(failed))
	}
	nid := failed[0].(map[string]any)["id"].(string)
	broken.answer = nil
	out := e.admin("POST", e.path("/notifications/"+nid+"/retry"), nil, http.StatusOK)
	if out["retried"] != 2.0 { // the 400 and the 500 one; the disabled one is not retried
		t.Errorf("retried %v", out["retried"])
	}
	e.dispatchAll(e.n, 10*time.Second)
	if n := len(broken.got()); n != 4 {
		t.Errorf("after retry: %d attempts at the broken receiver", n)
	}
}

// Slack gets text and blocks, at most one message per second per
// incoming webhook.
func TestSlackMessagesHaveTextAndBlocksAtMostOnePerSecond(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), func(c *Config) { c.DashboardURL = "http://127.0.0.1:8086/" })
	var mu sync.Mutex
	var msgs []map[string]any
	var at []time.Time
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		msgs, at = append(msgs, m), append(at, time.Now())
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	defer slack.Close()
	d := e.admin("POST", e.path("/destinations"), map[string]any{"name": "#alerts", "kind": "slack", "url": slack.URL + "/services/T000/B000/XXXXXXXX"}, http.StatusCreated)
	listed := e.admin("GET", e.path("/destinations"), nil, http.StatusOK)["destinations"].([]any)[0].(map[string]any)
	if strings.Contains(listed["url"].(string), "XXXXXXXX") {
		t.Errorf("the Slack URL (a secret) is listed whole: %v", listed["url"])
	}
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "any purchase", "event": "purchase", "destinations": []string{d["id"].(string)}}, http.StatusCreated)
	// Pacing is about real seconds: this replica reads the real clock.
	real := New(e.cfg, e.pool, testLogger(), prometheus.NewRegistry(), time.Now)
	defer real.Stop(context.Background())
	g := &simtest.Generator{Game: e.game.ID}
	for i := range 3 {
		if _, err := real.Handle(context.Background(), g.Event(events.TypePurchase, fmt.Sprint("p", i), "", time.Now(), `{"item_id":"x","currency":"USD","amount_minor":99}`)); err != nil {
			t.Fatal(err)
		}
	}
	for range 100 {
		real.DispatchDue(context.Background())
		mu.Lock()
		n := len(msgs)
		mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(msgs) != 3 {
		t.Fatalf("Slack got %d messages", len(msgs))
	}
	for i, m := range msgs {
		if m["text"] == "" || len(m["blocks"].([]any)) < 3 {
			t.Errorf("message %d: %v", i, m)
		}
	}
	// The sends start a second apart (when they arrive also depends on
	// the network and, here, the machine's load).
	rows, err := e.pool.Query(context.Background(), `SELECT at FROM notify_attempts WHERE destination_id = $1 ORDER BY at`, d["id"])
	if err != nil {
		t.Fatal(err)
	}
	starts, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil || len(starts) != 3 {
		t.Fatalf("%d attempts recorded, %v", len(starts), err)
	}
	for i := 1; i < len(starts); i++ {
		if gap := starts[i].Sub(starts[i-1]); gap < 990*time.Millisecond {
			t.Errorf("sends %d and %d started %s apart", i-1, i, gap)
		}
	}
}

// Old notifications go after Keep, except the keys that make a
// once-per-player rule once: a player who bought months ago is still not
// notified again.
func TestOldNotificationsArePrunedButOncePerPlayerKeysStay(t *testing.T) {
	start := time.Now()
	e := newEnv(t, "UTC", start, nil)
	rcv := newReceiver(t)
	dst, _ := e.webhook(rcv.srv.URL)
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "first purchase", "event": "purchase", "once_per_player": true, "destinations": []string{dst}}, http.StatusCreated)
	e.admin("POST", e.path("/player-rules"), map[string]any{"name": "every purchase", "event": "purchase", "destinations": []string{dst}}, http.StatusCreated)
	g := &simtest.Generator{Game: e.game.ID}
	buy := func() {
		if _, err := e.n.Handle(context.Background(), g.Event(events.TypePurchase, "p1", "", time.Now(), `{"item_id":"x","currency":"USD","amount_minor":99}`)); err != nil {
			t.Fatal(err)
		}
		e.dispatchAll(e.n, 10*time.Second)
	}
	buy()
	e.clock.set(start.Add(e.cfg.Keep + time.Hour))
	if _, err := e.n.Prune(context.Background()); err != nil {
		t.Fatal(err)
	}
	var left int
	e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_notifications WHERE gameid = $1`, e.game.ID).Scan(&left)
	if left != 1 {
		t.Fatalf("%d notifications left, want the first-purchase one", left)
	}
	buy()
	var once, every int
	for _, c := range rcv.got() {
		_, data := c.event(t)
		if data["rule"].(map[string]any)["once_per_player"] == true {
			once++
		} else {
			every++
		}
	}
	if once != 1 || every != 2 {
		t.Errorf("%d first-purchase and %d every-purchase notifications, want 1 and 2", once, every)
	}
}
