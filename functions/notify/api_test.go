package notify

import (
	"net/http"
	"testing"
	"time"
)

// Only the game's admin key manages its notifications; read and write
// keys get 401 saying so, another game's id 404.
func TestOnlyTheAdminKeyManagesNotifications(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), nil)
	other := newEnv(t, "UTC", time.Now(), nil)
	for _, tc := range []struct {
		name, key, path string
		status          int
	}{
		{"no key", "", e.path("/alerts"), http.StatusUnauthorized},
		{"the read key", e.keys.Read, e.path("/alerts"), http.StatusUnauthorized},
		{"the write key", e.keys.Write, e.path("/destinations"), http.StatusUnauthorized},
		{"an unknown admin key", "gma_nope", e.path("/player-rules"), http.StatusUnauthorized},
		{"another game's admin key", other.keys.Admin, e.path("/alerts"), http.StatusNotFound},
		{"the admin key", e.keys.Admin, e.path("/alerts"), http.StatusOK},
	} {
		if got, out := e.call("GET", tc.path, tc.key, nil); got != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, got, out, tc.status)
		}
	}
}

// Invalid rules are refused naming the field, and nothing is created.
func TestInvalidRulesGet400Or404NamingTheFieldAndNothingIsCreated(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), nil)
	rcv := newReceiver(t)
	dst, _ := e.webhook(rcv.srv.URL)
	good := func() map[string]any {
		return map[string]any{"name": "drop", "metric": "events", "window": "5m", "condition": map[string]any{"type": "below", "value": 10}, "destinations": []string{dst}}
	}
	with := func(k string, v any) map[string]any { b := good(); b[k] = v; return b }
	for _, tc := range []struct {
		name   string
		path   string
		body   any
		status int
		field  string
	}{
		{"an unknown metric", "/alerts", with("metric", "whales"), 400, "metric"},
		{"a bad window", "/alerts", with("window", "10m"), 400, "window"},
		{"a missing destination", "/alerts", with("destinations", []string{"dst_nope"}), 404, "destinations"},
		{"no destination", "/alerts", with("destinations", []string{}), 400, "destinations"},
		{"an unknown field", "/alerts", with("treshold", 3), 400, "treshold"},
		{"a string for a number", "/alerts", with("for", "two"), 400, "for"},
		{"a condition without its value", "/alerts", with("condition", map[string]any{"type": "above"}), 400, "condition.value"},
		{"a player rule on an unknown event", "/player-rules", map[string]any{"name": "x", "event": "levelup", "destinations": []string{dst}}, 400, "event"},
		{"a player rule to a missing destination", "/player-rules", map[string]any{"name": "x", "event": "purchase", "destinations": []string{"dst_nope"}}, 404, "destinations"},
		{"a webhook that is not a URL", "/destinations", map[string]any{"name": "x", "kind": "webhook", "url": "hooks"}, 400, "url"},
		{"an unknown kind", "/destinations", map[string]any{"name": "x", "kind": "pager"}, 400, "kind"},
		{"a bad topic ARN", "/destinations", map[string]any{"name": "x", "kind": "sns", "topic_arn": "alerts"}, 400, "topic_arn"},
	} {
		got, out := e.call("POST", e.path(tc.path), e.keys.Admin, tc.body)
		if got != tc.status || out["field"] != tc.field {
			t.Errorf("%s: %d %v, want %d naming %s", tc.name, got, out, tc.status, tc.field)
		}
	}
	if n := len(e.admin("GET", e.path("/alerts"), nil, 200)["alerts"].([]any)); n != 0 {
		t.Errorf("%d alerts exist after refusals", n)
	}
	if n := len(e.admin("GET", e.path("/player-rules"), nil, 200)["player_rules"].([]any)); n != 0 {
		t.Errorf("%d player rules exist after refusals", n)
	}
	if n := len(e.admin("GET", e.path("/destinations"), nil, 200)["destinations"].([]any)); n != 1 {
		t.Errorf("%d destinations exist, want the one good one", n)
	}
	// Production refuses plain http and private addresses (SSRF).
	strict := newEnv(t, "UTC", time.Now(), func(c *Config) { c.AllowPrivate = false })
	for _, u := range []string{"http://hooks.example.com/x", "https://127.0.0.1/x", "https://10.1.2.3/x", "https://metadata.google.internal/x", "https://[::1]/x"} {
		if got, out := strict.call("POST", strict.path("/destinations"), strict.keys.Admin, map[string]any{"name": "x", "kind": "webhook", "url": u}); got != 400 || out["field"] != "url" {
			t.Errorf("%s: %d %v", u, got, out)
		}
	}
}

// Snoozing mutes a rule's notifications until the time given; PATCH
// cannot change what the rule's state is about.
func TestAlertsCanBeSnoozedAndPatched(t *testing.T) {
	e := newEnv(t, "UTC", time.Now(), nil)
	rcv := newReceiver(t)
	dst, _ := e.webhook(rcv.srv.URL)
	a := e.admin("POST", e.path("/alerts"), map[string]any{"name": "drop", "metric": "events", "window": "1h",
		"condition": map[string]any{"type": "change", "against": "same_hour_last_week", "below": -30}, "destinations": []string{dst}}, http.StatusCreated)
	id := a["id"].(string)
	p := e.admin("PATCH", e.path("/alerts/"+id), map[string]any{"snooze": "2h", "for": 3}, http.StatusOK)
	until, _ := time.Parse(time.RFC3339Nano, p["snoozed_until"].(string))
	if d := until.Sub(e.clock.now()); d < 119*time.Minute || d > 121*time.Minute || p["for"] != 3.0 {
		t.Errorf("after PATCH: %v", p)
	}
	if got, out := e.call("PATCH", e.path("/alerts/"+id), e.keys.Admin, map[string]any{"window": "1d"}); got != 400 || out["field"] != "window" {
		t.Errorf("changing the window: %d %v", got, out)
	}
	e.admin("PATCH", e.path("/alerts/"+id), map[string]any{"snoozed_until": nil}, http.StatusOK)
	e.admin("DELETE", e.path("/destinations/"+dst), nil, http.StatusOK)
	if got := e.admin("GET", e.path("/alerts/"+id), nil, http.StatusOK)["destinations"].([]any); len(got) != 0 {
		t.Errorf("a deleted destination is still on the rule: %v", got)
	}
	e.admin("DELETE", e.path("/alerts/"+id), nil, http.StatusNoContent)
	e.admin("GET", e.path("/alerts/"+id), nil, http.StatusNotFound)
}
