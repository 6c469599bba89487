package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gamemetrics/gamemetrics/functions/process"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/simulation/simtest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return slog.New(slog.DiscardHandler)
}

// clock is a settable clock shared by a test's replicas.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// env is one test's game with notify serving its API.
type env struct {
	t     *testing.T
	pool  *pgxpool.Pool
	rdb   *redis.Client
	game  store.Game
	keys  store.Keys
	clock *clock
	cfg   Config
	n     *Notify
	url   string
	reg   *prometheus.Registry
}

// testConfig sends at once and retries within milliseconds.
func testConfig() Config {
	c := DefaultConfig()
	c.AllowPrivate = true
	c.RetryBase = 5 * time.Millisecond
	c.EvaluationDelay = 10 * time.Second
	c.PollInterval = time.Hour // tests dispatch explicitly
	c.DispatchBudget = 0
	c.SendTimeout = 3 * time.Second
	return c
}

func newEnv(t *testing.T, tz string, at time.Time, mut func(*Config)) *env {
	t.Helper()
	c := devstacktest.Connect(t, stack)
	g, keys, err := store.NewGames(c.Pool).Create(context.Background(), "notify "+t.Name(), tz)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	if mut != nil {
		mut(&cfg)
	}
	e := &env{t: t, pool: c.Pool, rdb: c.Redis, game: g, keys: keys, clock: &clock{t: at}, cfg: cfg}
	e.n, e.reg = e.replica()
	srv := httptest.NewServer(e.n)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// replica is another notify on the same database and clock.
func (e *env) replica() (*Notify, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	n := New(e.cfg, e.pool, testLogger(), reg, e.clock.now)
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		n.Stop(ctx)
	})
	return n, reg
}

// call sends an admin API request with key and decodes the JSON answer.
func (e *env) call(method, path, key string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

// admin calls the API with the game's admin key and wants status.
func (e *env) admin(method, path string, body any, status int) map[string]any {
	e.t.Helper()
	got, out := e.call(method, path, e.keys.Admin, body)
	if got != status {
		e.t.Fatalf("%s %s = %d %v, want %d", method, path, got, out, status)
	}
	return out
}

func (e *env) path(rest string) string { return "/v1/games/" + e.game.ID + rest }

// destination creates a webhook destination to url and returns its id and
// signing secret.
func (e *env) webhook(url string) (string, string) {
	e.t.Helper()
	d := e.admin("POST", e.path("/destinations"), map[string]any{"name": "hook", "kind": "webhook", "url": url}, http.StatusCreated)
	return d["id"].(string), d["secret"].(string)
}

// seed delivers evs through process, as the KafkaSource does.
func (e *env) seed(evs []event.Event) {
	e.t.Helper()
	p := process.New(process.DefaultConfig(), e.pool, e.rdb, testLogger(), prometheus.NewRegistry())
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			e.t.Errorf("stop process: %v", err)
		}
	}()
	simtest.Feed(e.t, p.Handle, evs, 8)
}

// dispatchAll sends until nothing is due, letting retries fall due.
func (e *env) dispatchAll(n *Notify, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if err := n.DispatchDue(context.Background()); err != nil {
			e.t.Fatal(err)
		}
		var pending int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM notify_deliveries WHERE gameid = $1 AND state = 'pending'`, e.game.ID).Scan(&pending); err != nil {
			e.t.Fatal(err)
		}
		if pending == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
		e.clock.set(e.clock.now().Add(time.Second)) // retries fall due
	}
	e.t.Fatalf("deliveries still pending after %s", within)
}

// receiver is a webhook receiver that verifies every request with the
// Standard Webhooks reference library (independent of notify's signing)
// and answers with the statuses of answer in turn (then 200).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	answer []int
	header http.Header // extra answer headers

	mu    sync.Mutex
	calls []received
}

type received struct {
	id, ts   string
	body     []byte
	status   int
	verified error
	at       time.Time
}

func newReceiver(t *testing.T, answer ...int) *receiver {
	r := &receiver{t: t, answer: answer, header: http.Header{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		c := received{id: req.Header.Get("webhook-id"), ts: req.Header.Get("webhook-timestamp"), body: body, status: 200, at: time.Now()}
		if r.secret != "" {
			wh, err := standardwebhooks.NewWebhook(r.secret)
			if err == nil {
				err = wh.VerifyIgnoringTimestamp(body, req.Header)
			}
			c.verified = err
		}
		if len(r.calls) < len(r.answer) {
			c.status = r.answer[len(r.calls)]
		}
		r.calls = append(r.calls, c)
		for k, v := range r.header {
			w.Header()[k] = v
		}
		w.WriteHeader(c.status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.calls...)
}

// data is a received CloudEvent's type and data.
func (c received) event(t *testing.T) (string, map[string]any) {
	t.Helper()
	var e struct {
		Type string         `json:"type"`
		ID   string         `json:"id"`
		Data map[string]any `json:"data"`
	}
	if err := json.Unmarshal(c.body, &e); err != nil {
		t.Fatalf("body %s: %v", c.body, err)
	}
	if e.ID != c.id {
		t.Errorf("webhook-id %s, CloudEvent id %s", c.id, e.ID)
	}
	return e.Type, e.Data
}
