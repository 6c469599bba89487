package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/gamemetrics/gamemetrics/functions/ingest"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// env is one test's ingest server and game.
type env struct {
	t      testing.TB
	url    string
	game   store.Game
	keys   store.Keys
	ingest *ingest.Ingest
}

func newEnv(t testing.TB, mutate ...func(*ingest.Config)) *env {
	t.Helper()
	ctx := context.Background()
	clients := devstacktest.Connect(t, stack)
	rdb := clients.Redis
	games := store.NewGames(clients.Pool)
	game, keys, err := games.Create(ctx, t.Name(), "UTC")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingest.DefaultConfig()
	cfg.ProduceTimeout = 3 * time.Second
	for _, m := range mutate {
		m(&cfg)
	}
	prod, err := kafka.NewProducer(kafka.Config{Brokers: stack.KafkaBrokers}, cfg.ProduceTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	in := ingest.New(cfg, games, prod, rdb, log, reg)
	srv := httptest.NewServer(serving.Mux(in, reg, log))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, game: game, keys: keys, ingest: in}
}

// post sends body with headers and decodes the JSON answer.
func (e *env) post(headers map[string]string, body []byte) (int, ingest.Response, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+"/", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.keys.Write)
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		e.t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var out ingest.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, out, resp.Header
}

func binaryHeaders(id, typ string) map[string]string {
	return map[string]string{
		"Content-Type":   "application/json",
		"Ce-Specversion": "1.0",
		"Ce-Id":          id,
		"Ce-Source":      "/test/client",
		"Ce-Type":        typ,
		"Ce-Subject":     "player-1",
		"Ce-Sessionid":   "s-1",
		"Ce-Time":        time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
	}
}

// structured returns one event in structured JSON form.
func structured(id, typ, subject string, data any) map[string]any {
	return map[string]any{
		"specversion": "1.0", "id": id, "source": "/test/client", "type": typ,
		"subject": subject, "time": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339Nano),
		"sessionid": "s-1", "datacontenttype": "application/json", "data": data,
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

var purchase = map[string]any{"item_id": "gems", "currency": "USD", "amount_minor": 499}

// records reads every record of topic whose key starts with prefix, waiting
// (up to 20 s, for a loaded machine) until want have arrived.
func records(t *testing.T, topic, prefix string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(stack.KafkaBrokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []*kgo.Record
	for ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if strings.HasPrefix(string(r.Key), prefix) {
				got = append(got, r)
			}
		})
		if want > 0 && len(got) >= want {
			// Keep polling briefly to catch records beyond want (duplicates).
			cctx, ccancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			cl.PollFetches(cctx).EachRecord(func(r *kgo.Record) {
				if strings.HasPrefix(string(r.Key), prefix) {
					got = append(got, r)
				}
			})
			ccancel()
			break
		}
	}
	return got
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func TestBinaryEventIsWrittenToKafkaInBinaryContentMode(t *testing.T) {
	e := newEnv(t)
	h := binaryHeaders("evt-binary-1", "com.gamemetrics.session.start")
	h["Ce-Gameid"] = "someone-elses-game" // must be replaced by the key's game
	status, resp, _ := e.post(h, []byte(`{"platform":"ios","app_version":"1.0","country":"US"}`))
	if status != http.StatusAccepted || resp.Accepted != 1 || len(resp.Rejected) != 0 {
		t.Fatalf("got %d %+v, want 202 with 1 accepted", status, resp)
	}
	recs := records(t, kafka.TopicEvents, e.game.ID+"/", 1)
	if len(recs) != 1 {
		t.Fatalf("found %d records for the game, want 1", len(recs))
	}
	r := recs[0]
	if string(r.Key) != e.game.ID+"/player-1" {
		t.Errorf("key = %q, want <gameid>/<subject>", r.Key)
	}
	for k, want := range map[string]string{
		"ce_specversion": "1.0", "ce_id": "evt-binary-1", "ce_type": "com.gamemetrics.session.start",
		"ce_source": "/test/client", "ce_subject": "player-1", "ce_sessionid": "s-1",
		"ce_gameid": e.game.ID, "content-type": "application/json",
	} {
		if got := header(r, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, header(r, "ce_receivedtime")); err != nil {
		t.Errorf("ce_receivedtime %q: %v", header(r, "ce_receivedtime"), err)
	}
	if string(r.Value) != `{"platform":"ios","app_version":"1.0","country":"US"}` {
		t.Errorf("value = %s, want the event data unchanged", r.Value)
	}
	ev, err := kafka.Event(context.Background(), r)
	if err != nil {
		t.Fatalf("record does not decode as a CloudEvent: %v", err)
	}
	if ev.ID() != "evt-binary-1" || ev.Extensions()["gameid"] != e.game.ID {
		t.Errorf("decoded event = %v", ev)
	}
}

func TestStructuredAndGzippedEventsAreAccepted(t *testing.T) {
	e := newEnv(t)
	body := mustJSON(structured("evt-structured", "com.gamemetrics.purchase", "p1", purchase))
	status, resp, _ := e.post(map[string]string{"Content-Type": "application/cloudevents+json"}, body)
	if status != http.StatusAccepted || resp.Accepted != 1 {
		t.Fatalf("structured: got %d %+v", status, resp)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(mustJSON([]any{structured("evt-gz-1", "com.gamemetrics.purchase", "p2", purchase),
		structured("evt-gz-2", "com.gamemetrics.heartbeat", "p2", nil)}))
	zw.Close()
	status, resp, _ = e.post(map[string]string{"Content-Type": "application/cloudevents-batch+json", "Content-Encoding": "gzip"}, zipped.Bytes())
	if status != http.StatusAccepted || resp.Accepted != 2 {
		t.Fatalf("gzip batch: got %d %+v", status, resp)
	}
	if got := records(t, kafka.TopicEvents, e.game.ID+"/", 3); len(got) != 3 {
		t.Errorf("found %d records, want 3", len(got))
	}
}

func TestBatchIsPartiallyAcceptedAndRejectsAreKeptWithTheirReason(t *testing.T) {
	e := newEnv(t)
	batch := []any{
		structured("ok-1", "com.gamemetrics.purchase", "p1", purchase),
		structured("bad-currency", "com.gamemetrics.purchase", "p1", map[string]any{"item_id": "x", "currency": "usd", "amount_minor": 1}),
		map[string]any{"id": "no-specversion"},
		structured("bad-type", "com.gamemetrics.jump", "p1", map[string]any{}),
		structured("ok-2", "com.gamemetrics.error", "p1", map[string]any{"severity": "error", "message": "boom"}),
	}
	status, resp, _ := e.post(map[string]string{"Content-Type": "application/cloudevents-batch+json"}, mustJSON(batch))
	if status != http.StatusAccepted || resp.Accepted != 2 {
		t.Fatalf("got %d %+v, want 202 with 2 accepted", status, resp)
	}
	want := []struct {
		index  int
		id     string
		reason string
	}{{1, "bad-currency", "data.currency"}, {2, "", "specversion"}, {3, "bad-type", "type"}}
	if len(resp.Rejected) != len(want) {
		t.Fatalf("rejected = %+v, want %d entries", resp.Rejected, len(want))
	}
	for i, w := range want {
		r := resp.Rejected[i]
		if r.Index != w.index || r.ID != w.id || !strings.Contains(r.Reason, w.reason) {
			t.Errorf("rejected[%d] = %+v, want index %d id %q reason mentioning %q", i, r, w.index, w.id, w.reason)
		}
	}
	if got := records(t, kafka.TopicEvents, e.game.ID+"/", 2); len(got) != 2 {
		t.Errorf("accepted records in Kafka = %d, want 2", len(got))
	}
	rejected := records(t, kafka.TopicRejected, e.game.ID, 3)
	if len(rejected) != 3 {
		t.Fatalf("rejected records in Kafka = %d, want 3", len(rejected))
	}
	for _, r := range rejected {
		if header(r, ingest.HeaderReason) == "" || header(r, ingest.HeaderGameID) != e.game.ID {
			t.Errorf("rejected record lacks reason or game: %v", r.Headers)
		}
	}
}

func TestAllRejectedIs400WithTheSameBody(t *testing.T) {
	e := newEnv(t)
	h := binaryHeaders("old", "com.gamemetrics.heartbeat")
	h["Ce-Time"] = time.Now().Add(-40 * 24 * time.Hour).UTC().Format(time.RFC3339)
	status, resp, _ := e.post(h, nil)
	if status != http.StatusBadRequest || resp.Accepted != 0 || len(resp.Rejected) != 1 || !strings.Contains(resp.Rejected[0].Reason, "30 days") {
		t.Fatalf("got %d %+v, want 400 naming the time window", status, resp)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	body := mustJSON(structured("a", "com.gamemetrics.heartbeat", "p", nil))
	tests := []struct {
		name string
		auth string
	}{
		{"missing key", ""},
		{"not bearer", "Basic " + e.keys.Write},
		{"unknown key", "Bearer gmw_doesnotexist"},
		{"read key cannot write", "Bearer " + e.keys.Read},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp, h := e.post(map[string]string{"Content-Type": "application/cloudevents+json", "Authorization": tt.auth}, body)
			if status != http.StatusUnauthorized || resp.Accepted != 0 || resp.Error == "" {
				t.Errorf("got %d %+v, want 401 with a reason", status, resp)
			}
			if h.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// A rotated write key keeps working for its grace period; a revoked one
// stops once ingest's key cache has expired it.
func TestRotatedWriteKeysWorkUntilTheyExpire(t *testing.T) {
	e := newEnv(t, func(c *ingest.Config) { c.KeyCacheTTL = 50 * time.Millisecond })
	ctx := context.Background()
	games := store.NewGames(devstacktest.Connect(t, stack).Pool)
	send := func(key, id string) int {
		t.Helper()
		h := binaryHeaders(id, "com.gamemetrics.heartbeat")
		h["Authorization"] = "Bearer " + key
		status, _, _ := e.post(h, nil)
		return status
	}
	old := e.keys.Write
	rot, err := games.RotateKey(ctx, e.game.ID, store.WriteKey, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := send(old, "rot-1"), send(rot.Key, "rot-2"); a != http.StatusAccepted || b != http.StatusAccepted {
		t.Fatalf("during the grace period: old key %d, new key %d; want 202 for both", a, b)
	}
	revoked, err := games.RotateKey(ctx, e.game.ID, store.WriteKey, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the key cache's TTL
	for _, key := range []string{old, rot.Key} {
		if s := send(key, "rot-3"); s != http.StatusUnauthorized {
			t.Errorf("revoked key %.8s…: %d, want 401", key, s)
		}
	}
	if s := send(revoked.Key, "rot-4"); s != http.StatusAccepted {
		t.Errorf("current key: %d, want 202", s)
	}
}

func TestRequestLimitsAndModes(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("x", 33<<10)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte(" "), 5<<20))
	zw.Close()
	many := make([]any, 501)
	for i := range many {
		many[i] = structured(fmt.Sprint("m", i), "com.gamemetrics.heartbeat", "p", nil)
	}
	tests := []struct {
		name    string
		headers map[string]string
		body    []byte
		want    int
		reason  string
	}{
		{"body over 1 MiB", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, bytes.Repeat([]byte(" "), 1<<20+1), 413, "limit"},
		{"decompressed over 4 MiB", map[string]string{"Content-Type": "application/cloudevents-batch+json", "Content-Encoding": "gzip"}, bomb.Bytes(), 413, "decompresses"},
		{"batch over 500 events", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, mustJSON(many), 413, "500"},
		{"event over 32 KiB", map[string]string{"Content-Type": "application/cloudevents+json"},
			mustJSON(structured("big", "com.gamemetrics.error", "p", map[string]any{"severity": "info", "message": "m", "pad": big})), 413, "32768"},
		{"unknown content type", map[string]string{"Content-Type": "text/plain"}, []byte("hi"), 415, "not a CloudEvents mode"},
		{"binary mode with a non-JSON body", map[string]string{"Content-Type": "text/plain", "Ce-Specversion": "1.0"}, []byte("hi"), 415, "application/json"},
		{"unknown content encoding", map[string]string{"Content-Type": "application/cloudevents+json", "Content-Encoding": "br"}, []byte("{}"), 415, "gzip"},
		{"batch that is not JSON", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, []byte("[{"), 400, "not valid JSON"},
		{"batch that is not an array", map[string]string{"Content-Type": "application/cloudevents-batch+json"}, []byte(`{"a":1}`), 400, "JSON array"},
		{"gzip header on plain body", map[string]string{"Content-Type": "application/cloudevents+json", "Content-Encoding": "gzip"}, []byte("{}"), 400, "gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, resp, _ := e.post(tt.headers, tt.body)
			reason := resp.Error
			for _, r := range resp.Rejected {
				reason += " " + r.Reason
			}
			if status != tt.want || resp.Accepted != 0 || !strings.Contains(reason, tt.reason) {
				t.Errorf("got %d %+v, want %d mentioning %q", status, resp, tt.want, tt.reason)
			}
		})
	}
}

func TestWrongMethodIs405(t *testing.T) {
	e := newEnv(t)
	resp, err := http.Get(e.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET / = %d, want 405", resp.StatusCode)
	}
}

// Games on the web platform post from a browser, cross-origin: the
// preflight must pass and the answers must be readable by the page.
func TestBrowsersMayPostFromAnyOrigin(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, asked, wantHeaders string
	}{
		{"binary mode with an extension", "authorization, content-type, ce-id, ce-source, ce-type, ce-subject, ce-time, ce-specversion, ce-sessionid, ce-level",
			"authorization, content-type, ce-id, ce-source, ce-type, ce-subject, ce-time, ce-specversion, ce-sessionid, ce-level"},
		{"no list asked", "", "Authorization, Content-Type, Content-Encoding, ce-specversion"},
		{"a list that is not header names", "authorization; x=y", "Authorization, Content-Type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodOptions, e.url+"/", nil)
			req.Header.Set("Origin", "https://play.example.com")
			req.Header.Set("Access-Control-Request-Method", "POST")
			if tc.asked != "" {
				req.Header.Set("Access-Control-Request-Headers", tc.asked)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
				!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
				!strings.HasPrefix(h.Get("Access-Control-Allow-Headers"), tc.wantHeaders) || h.Get("Access-Control-Max-Age") == "" {
				t.Errorf("preflight = %d %v", resp.StatusCode, h)
			}
		})
	}
	// The POST itself: accepted, and its answer readable cross-origin.
	hdr := binaryHeaders("cors-1", "com.gamemetrics.heartbeat")
	hdr["Origin"] = "https://play.example.com"
	status, resp, h := e.post(hdr, nil)
	if status != http.StatusAccepted || resp.Accepted != 1 {
		t.Fatalf("POST = %d %+v", status, resp)
	}
	if h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("POST answer headers %v", h)
	}
}

func TestRateLimitIs429WithRetryAfter(t *testing.T) {
	e := newEnv(t, func(c *ingest.Config) { c.RateLimit = 5 })
	batch := func(n int) []byte {
		evs := make([]any, n)
		for i := range evs {
			evs[i] = structured(fmt.Sprint("rl", i), "com.gamemetrics.heartbeat", "p", nil)
		}
		return mustJSON(evs)
	}
	ct := map[string]string{"Content-Type": "application/cloudevents-batch+json"}
	// More events than the limit in one request is refused whatever the clock.
	if status, resp, h := e.post(ct, batch(6)); status != http.StatusTooManyRequests || resp.Accepted != 0 || h.Get("Retry-After") == "" {
		t.Fatalf("6 events against a limit of 5: got %d %+v Retry-After=%q, want 429 with Retry-After", status, resp, h.Get("Retry-After"))
	}
	// Two requests in one second share the budget. A loaded machine may let
	// the second second start between them; then the check is repeated.
	for attempt := 1; ; attempt++ {
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
		window := time.Now().Unix()
		if status, resp, _ := e.post(ct, batch(4)); status != http.StatusAccepted {
			t.Fatalf("first batch within the limit: got %d %+v", status, resp)
		}
		status, resp, h := e.post(ct, batch(4))
		if status == http.StatusTooManyRequests && resp.Accepted == 0 && h.Get("Retry-After") != "" {
			return
		}
		if time.Now().Unix() == window || attempt == 3 {
			t.Fatalf("second batch in the same second: got %d %+v Retry-After=%q, want 429 with Retry-After", status, resp, h.Get("Retry-After"))
		}
	}
}

func TestKafkaDownGives503AndTheRetryLosesNothing(t *testing.T) {
	if stack.Kafka == nil {
		t.Fatal("this test injects broker faults and needs the in-process kfake cluster; unset KAFKA_BROKERS")
	}
	e := newEnv(t, func(c *ingest.Config) { c.ProduceTimeout = 1500 * time.Millisecond })
	body := mustJSON([]any{
		structured("down-1", "com.gamemetrics.purchase", "p-down", purchase),
		structured("down-2", "com.gamemetrics.heartbeat", "p-down", nil),
	})
	ct := map[string]string{"Content-Type": "application/cloudevents-batch+json"}

	var failing atomic.Bool
	failing.Store(true)
	stack.Kafka.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		stack.Kafka.KeepControl()
		if !failing.Load() {
			stack.Kafka.DropControl()
			return nil, nil, false
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	status, resp, h := e.post(ct, body)
	failing.Store(false)
	if status != http.StatusServiceUnavailable || resp.Accepted != 0 || h.Get("Retry-After") == "" {
		t.Fatalf("with Kafka refusing writes: got %d %+v Retry-After=%q, want 503 with Retry-After and nothing accepted", status, resp, h.Get("Retry-After"))
	}
	status, resp, _ = e.post(ct, body)
	if status != http.StatusAccepted || resp.Accepted != 2 {
		t.Fatalf("retry after recovery: got %d %+v, want 202 with 2 accepted", status, resp)
	}
	ids := map[string]bool{}
	for _, r := range records(t, kafka.TopicEvents, e.game.ID+"/", 2) {
		ids[header(r, "ce_id")] = true
	}
	if !ids["down-1"] || !ids["down-2"] {
		t.Errorf("events in Kafka after the retry = %v, want down-1 and down-2", ids)
	}
}

func TestHealthAndMetricsEndpoints(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/healthz", "/readyz", "/health/liveness", "/health/readiness", "/metrics"} {
		resp, err := http.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		if path == "/metrics" && !bytes.Contains(b, []byte(`gamemetrics_ingest_events_total{outcome="accepted"}`)) {
			t.Errorf("/metrics lacks gamemetrics_ingest_events_total")
		}
	}
}
