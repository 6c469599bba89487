package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gamemetrics/gamemetrics/functions/notify"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/store"
)

// An operator manages destinations, alert rules, player rules and failed
// notifications with the CLI, against a notify serving its API; with no
// --key the CLI uses the dev demo game's admin key.
func TestNotifyCommandsManageRulesAndRetryFailedNotifications(t *testing.T) {
	ctx := migrated(t)
	pool := devstacktest.Connect(t, stack).Pool
	g, keys, err := store.NewGames(pool).Create(ctx, "cli notify", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	cfg := notify.DefaultConfig()
	cfg.AllowPrivate, cfg.PollInterval, cfg.RetryBase, cfg.MaxAttempts = true, 20*time.Millisecond, time.Millisecond, 2
	n := notify.New(cfg, pool, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), time.Now)
	defer n.Stop(context.Background())
	srv := httptest.NewServer(n)
	defer srv.Close()
	var mu sync.Mutex
	fail := true
	var got []string
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, string(b))
		if fail && strings.Contains(string(b), "player.notification") {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer rcv.Close()

	// The demo game's file stands in for `gamemetrics dev`'s.
	dir := t.TempDir()
	b, _ := json.Marshal(demoGame{ID: g.ID, AdminKey: keys.Admin})
	os.WriteFile(filepath.Join(dir, "demo-game.json"), b, 0o600)
	getenv := func(k string) string {
		switch k {
		case "NOTIFY_URL":
			return srv.URL
		case "GAMEMETRICS_DEV_DIR":
			return dir
		}
		return stack.Getenv(k)
	}
	cli := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := run(ctx, args, getenv, &out, &errb); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		return out.String()
	}
	created := cli("destinations", "create", "--name", "ops", "--kind", "webhook", "--url", rcv.URL)
	dst := regexp.MustCompile(`"id": "(dst_[a-z0-9]+)"`).FindStringSubmatch(created)
	if dst == nil || !strings.Contains(created, "whsec_") {
		t.Fatalf("destinations create printed %s", created)
	}
	if out := cli("destinations", "test", dst[1]); !strings.Contains(out, `"state": "delivered"`) {
		t.Errorf("destinations test: %s", out)
	}
	if out := cli("destinations", "list"); !strings.Contains(out, dst[1]) {
		t.Errorf("destinations list: %s", out)
	}
	alert := cli("alerts", "create", "--name", "revenue drop", "--metric", "revenue", "--currency", "USD", "--window", "1h",
		"--change-below", "-30", "--against", "same_hour_last_week", "--destination", dst[1])
	aid := regexp.MustCompile(`"id": "(alr_[a-z0-9]+)"`).FindStringSubmatch(alert)
	if aid == nil {
		t.Fatalf("alerts create printed %s", alert)
	}
	if out := cli("alerts", "snooze", aid[1], "--for", "2h"); !strings.Contains(out, "snoozed until") {
		t.Errorf("alerts snooze: %s", out)
	}
	if out := cli("alerts", "list"); !strings.Contains(out, "revenue drop") || !strings.Contains(out, "same_hour_last_week") {
		t.Errorf("alerts list: %s", out)
	}
	var errb bytes.Buffer
	if err := run(ctx, []string{"alerts", "create", "--name", "x", "--metric", "whales", "--above", "1", "--destination", dst[1]}, getenv, io.Discard, &errb); err == nil || !strings.Contains(err.Error(), "metric") {
		t.Errorf("an unknown metric: %v", err)
	}
	if err := run(ctx, []string{"alerts", "list", "--key", keys.Read}, getenv, io.Discard, &errb); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("the read key: %v", err)
	}
	rule := cli("player-rules", "create", "--name", "big spender", "--event", "purchase", "--where", "amount_minor gte 1000",
		"--where", "currency in [\"USD\",\"EUR\"]", "--destination", dst[1])
	if !strings.Contains(rule, `"op": "gte"`) {
		t.Fatalf("player-rules create printed %s", rule)
	}
	e := event.New()
	e.SetID("p-1")
	e.SetType("com.gamemetrics.purchase")
	e.SetSource("/test")
	e.SetSubject("whale")
	e.SetExtension("gameid", g.ID)
	e.SetData(event.ApplicationJSON, []byte(`{"item_id":"x","currency":"USD","amount_minor":4999}`))
	if _, err := n.Handle(ctx, e); err != nil {
		t.Fatal(err)
	}
	var failed string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if failed = cli("notifications", "list", "--failed"); strings.Contains(failed, "failed") {
			break
		}
	}
	nid := regexp.MustCompile(`(ntf_[a-z0-9]+)\s.*player.notification`).FindStringSubmatch(failed)
	if nid == nil {
		t.Fatalf("notifications list --failed: %s", failed)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if out := cli("notifications", "retry", nid[1]); !strings.Contains(out, "1 failed deliveries due again") {
		t.Errorf("notifications retry: %s", out)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if !strings.Contains(cli("notifications", "list", "--failed"), nid[1]) {
			break
		}
	}
	if out := cli("notifications", "list"); !strings.Contains(out, "delivered") {
		t.Errorf("after the retry: %s", out)
	}
	cli("alerts", "delete", aid[1])
	pr := regexp.MustCompile(`"id": "(plr_[a-z0-9]+)"`).FindStringSubmatch(rule)
	cli("player-rules", "delete", pr[1])
	if out := cli("destinations", "delete", dst[1]); !strings.Contains(out, dst[1]) {
		t.Errorf("destinations delete: %s", out)
	}
}
