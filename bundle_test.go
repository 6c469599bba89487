package gamemetrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	fnhttp "knative.dev/func-go/http"

	"github.com/gamemetrics/gamemetrics"
	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/devstack"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

var stack *devstack.Stack

func TestMain(m *testing.M) { os.Exit(devstacktest.Main(m, &stack)) }

// request is the CloudEvent a test sends to one function.
type request func(t *testing.T, url string, game store.Game, keys store.Keys) *http.Request

func binaryEvent(url, id, typ, body string, headers map[string]string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Source", "/bundle-test")
	req.Header.Set("Ce-Type", typ)
	req.Header.Set("Ce-Time", time.Now().UTC().Format(time.RFC3339))
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// requests holds, per function, a CloudEvent that function accepts.
func requests() map[string]request {
	return map[string]request{
		serving.Ingest: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-ingest-1", "com.gamemetrics.heartbeat", "{}", map[string]string{
				"Authorization": "Bearer " + k.Write, "Ce-Subject": "player-1", "Ce-Sessionid": "s-1"})
		},
		serving.Process: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-process-1", "com.gamemetrics.heartbeat", "{}", map[string]string{
				"Ce-Subject": "player-1", "Ce-Sessionid": "s-1", "Ce-Gameid": g.ID,
				"Ce-Knativekafkapartition": "0", "Ce-Knativekafkaoffset": "1"})
		},
		serving.Report: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-report-1", "dev.knative.sources.ping", `{"report":"daily"}`,
				map[string]string{"Ce-Source": "/apis/v1/namespaces/gamemetrics/pingsources/report-daily"})
		},
		// recommend's request/reply: a player the game never saw gets the
		// popular fallback, which is still a 2xx with the generated event.
		serving.Recommend: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-recommend-1", "com.gamemetrics.recommendation.requested",
				`{"player":"player-1","limit":5}`, map[string]string{"Ce-Gameid": g.ID})
		},
		serving.Notify: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-notify-1", "dev.knative.sources.ping", `{"task":"evaluate"}`,
				map[string]string{"Ce-Source": "/apis/v1/namespaces/gamemetrics/pingsources/notify-evaluate"})
		},
		serving.Retain: func(t *testing.T, url string, g store.Game, k store.Keys) *http.Request {
			return binaryEvent(url, "bundle-retain-1", "com.gamemetrics.player.erasure.requested",
				`{"game":"`+g.ID+`","player":"player-1","requested_by":"bundle-test"}`, nil)
		},
	}
}

// The image func builds runs func-go's HTTP runtime around New(); this test
// does the same for every FUNCTION value: start, probes, one CloudEvent, stop.
func TestBundleServesEveryFunctionThroughTheFuncRuntime(t *testing.T) {
	ctx := context.Background()
	pool, err := store.Open(ctx, stack.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	game, keys, err := store.NewGames(pool).Create(ctx, "bundle", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	reqs := requests()
	for _, name := range serving.Names() {
		t.Run(name, func(t *testing.T) {
			cfg := map[string]string{"FUNCTION": name, "LOG_LEVEL": "warn"}
			for _, kv := range stack.Env() {
				k, v, _ := strings.Cut(kv, "=")
				cfg[k] = v
			}
			if !slices.Contains(functions.Implemented(), name) {
				err := gamemetrics.New().Start(ctx, cfg)
				if err == nil || !strings.Contains(err.Error(), "not part of this build") {
					t.Fatalf("Start(%s) = %v, want a clear 'not part of this build' error", name, err)
				}
				return
			}
			url := serveBundle(t, cfg)
			for _, probe := range []string{"/health/readiness", "/health/liveness"} {
				if status, body := do(t, mustRequest(http.NewRequest(http.MethodGet, url+probe, nil))); status != http.StatusOK {
					t.Errorf("GET %s = %d %s", probe, status, body)
				}
			}
			build, ok := reqs[name]
			if !ok {
				t.Fatalf("no CloudEvent defined for %s in this test: add one to requests()", name)
			}
			if status, body := do(t, build(t, url+"/", game, keys)); status < 200 || status > 299 {
				t.Errorf("CloudEvent to %s = %d %s, want 2xx", name, status, body)
			}
		})
	}
}

// serveBundle runs New() under func-go's runtime the way func's scaffolding
// main does, with cfg as the instance configuration.
func serveBundle(t *testing.T, cfg map[string]string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("LISTEN_ADDRESS", addr)
	for k, v := range cfg {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fnhttp.New(gamemetrics.New()).Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runtime stopped with %v", err)
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url + "/health/readiness"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("bundle for %s did not come up on %s", cfg["FUNCTION"], addr)
	return ""
}

func mustRequest(r *http.Request, err error) *http.Request {
	if err != nil {
		panic(err)
	}
	return r
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, fmt.Sprint(string(bytes.TrimSpace(b)))
}
