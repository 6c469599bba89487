package main

// Commands of the notify function, through its admin API ($NOTIFY_URL,
// default http://127.0.0.1:8084/ where `gamemetrics dev` serves it) with
// a game's admin key (--key or $GAMEMETRICS_ADMIN_KEY; by default the
// `gamemetrics dev` demo game's):
//
//	gamemetrics destinations create --name N --kind webhook|slack|sns (--url U | --topic-arn ARN)
//	gamemetrics destinations list | delete ID | test ID
//	gamemetrics alerts create --name N --metric M --window 5m (--above X | --below X |
//	        --change-below P | --change-above P [--against previous_window] | --anomaly [--sensitivity 4])
//	        --destination ID [--for N] [--keep-firing-for N] [--min-volume N] [--renotify 1h]
//	gamemetrics alerts list | delete ID | snooze ID --for 2h | snooze ID --off
//	gamemetrics player-rules create --name N --event purchase [--where 'amount_minor gte 1000']... [--once-per-player] --destination ID
//	gamemetrics player-rules list | delete ID
//	gamemetrics notifications list [--failed] | retry ID
//	gamemetrics webhook-receiver [--addr 127.0.0.1:9000] [--secret whsec_...]

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/gamemetrics/gamemetrics/shared/settings"
)

const defaultNotifyURL = "http://127.0.0.1:8084/"

// notifyClient calls notify's admin API for one game.
type notifyClient struct {
	base, key, game string
	out             io.Writer
}

// parseWithArgs parses flags that may come before or after positional
// arguments (`alerts delete ID --key K` and `alerts delete --key K ID`).
func parseWithArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
}

// newNotifyClient reads --key/--url from fs after parsing and finds the
// key's game.
func newNotifyClient(ctx context.Context, getenv func(string) string, key, base string, stdout io.Writer) (*notifyClient, error) {
	if key == "" {
		b, err := os.ReadFile(filepath.Join(settings.From(getenv).String("GAMEMETRICS_DEV_DIR", ".gamemetrics"), "demo-game.json"))
		var demo demoGame
		if err != nil || json.Unmarshal(b, &demo) != nil || demo.AdminKey == "" {
			return nil, errors.New("give --key (a gma_… admin key, or $GAMEMETRICS_ADMIN_KEY), or run `make dev` first, whose demo game is used by default")
		}
		key = demo.AdminKey
	}
	c := &notifyClient{base: strings.TrimRight(base, "/"), key: key, out: stdout}
	var g struct{ ID string }
	if err := c.do(ctx, http.MethodGet, "/v1/game", nil, &g, http.StatusOK); err != nil {
		return nil, err
	}
	c.game = g.ID
	return c, nil
}

// do sends a request and decodes the answer into out, unless its status
// is not want: then the API's error (with the field it names) is returned.
func (c *notifyClient) do(ctx context.Context, method, path string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("notify at %s: %w (is `gamemetrics dev` running, or $NOTIFY_URL set?)", c.base, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (c *notifyClient) path(rest string) string { return "/v1/games/" + c.game + rest }

// printJSON prints v indented.
func printJSON(w io.Writer, v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintln(w, string(b))
}

// notifyFlags adds the connection flags every notify command takes.
func notifyFlags(fs *flag.FlagSet, getenv func(string) string) (key, url *string) {
	key = fs.String("key", getenv("GAMEMETRICS_ADMIN_KEY"), "the game's admin key ($GAMEMETRICS_ADMIN_KEY; default: the `gamemetrics dev` demo game's)")
	url = fs.String("notify-url", settings.From(getenv).String("NOTIFY_URL", defaultNotifyURL), "notify's URL ($NOTIFY_URL)")
	return key, url
}

// notifyFlagSet starts `gamemetrics GROUP SUB ...`: the subcommand must
// be one of subs; the flag set has the connection flags.
func notifyFlagSet(group string, subs []string, args []string, getenv func(string) string, stderr io.Writer) (*flag.FlagSet, *string, *string, error) {
	if len(args) == 0 || !slices.Contains(subs, args[0]) {
		return nil, nil, nil, fmt.Errorf("%s: want a subcommand: %s", group, strings.Join(subs, ", "))
	}
	fs := newFlags(group+" "+args[0], stderr)
	key, url := notifyFlags(fs, getenv)
	return fs, key, url, nil
}

// notifyCall is a parsed notify command: its positional arguments, the
// flags given, and the client.
type notifyCall struct {
	pos []string
	set map[string]bool
	c   *notifyClient
}

// connect parses the command's flags and connects to notify.
func connect(ctx context.Context, fs *flag.FlagSet, args []string, key, url *string, getenv func(string) string, stdout io.Writer) (*notifyCall, error) {
	pos, err := parseWithArgs(fs, args[1:])
	if err != nil {
		return nil, err
	}
	c, err := newNotifyClient(ctx, getenv, *key, *url, stdout)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return &notifyCall{pos: pos, set: set, c: c}, nil
}

// one is the one id a command names.
func (nc *notifyCall) one(what string) (string, error) {
	if len(nc.pos) != 1 {
		return "", fmt.Errorf("name one %s id", what)
	}
	return nc.pos[0], nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, strings.Split(v, ",")...); return nil }

func runDestinations(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, key, url, err := notifyFlagSet("destinations", []string{"create", "list", "delete", "test"}, args, getenv, stderr)
	if err != nil {
		return err
	}
	name := fs.String("name", "", "create: a name people recognise")
	kind := fs.String("kind", "webhook", "create: webhook, slack or sns")
	target := fs.String("url", "", "create: the webhook or Slack incoming-webhook URL")
	arn := fs.String("topic-arn", "", "create: the SNS topic ARN")
	nc, err := connect(ctx, fs, args, key, url, getenv, stdout)
	if err != nil {
		return err
	}
	c := nc.c
	switch args[0] {
	case "create":
		var out map[string]any
		if err := c.do(ctx, http.MethodPost, c.path("/destinations"), map[string]string{"name": *name, "kind": *kind, "url": *target, "topic_arn": *arn}, &out, http.StatusCreated); err != nil {
			return fmt.Errorf("destinations create: %w", err)
		}
		printJSON(stdout, out)
		if s, ok := out["secret"].(string); ok {
			fmt.Fprintf(stdout, "Verify webhooks with the secret %s (Standard Webhooks); it is shown only now.\n", s)
		}
		return nil
	case "list":
		var out struct{ Destinations []map[string]any }
		if err := c.do(ctx, http.MethodGet, c.path("/destinations"), nil, &out, http.StatusOK); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tNAME\tTARGET\tDISABLED")
		for _, d := range out.Destinations {
			target := d["url"]
			if target == nil {
				target = d["topic_arn"]
			}
			dis := ""
			if d["disabled_at"] != nil {
				dis = fmt.Sprint(d["disabled_at"], " ", d["disabled_reason"])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d["id"], d["kind"], d["name"], target, dis)
		}
		return tw.Flush()
	}
	id, err := nc.one("destination")
	if err != nil {
		return fmt.Errorf("destinations %s: %w", args[0], err)
	}
	var out map[string]any
	if args[0] == "delete" {
		err = c.do(ctx, http.MethodDelete, c.path("/destinations/"+id), nil, &out, http.StatusOK)
	} else {
		err = c.do(ctx, http.MethodPost, c.path("/destinations/"+id+"/test"), nil, &out, http.StatusOK)
	}
	if err != nil {
		return fmt.Errorf("destinations %s: %w", args[0], err)
	}
	printJSON(stdout, out)
	return nil
}

func runAlerts(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, key, url, err := notifyFlagSet("alerts", []string{"create", "list", "delete", "snooze"}, args, getenv, stderr)
	if err != nil {
		return err
	}
	name := fs.String("name", "", "create: the rule's name")
	metric := fs.String("metric", "", "create: a report metric (events, revenue, errors, dau...)")
	currency := fs.String("currency", "", "create: the currency of revenue, arpdau, arppu, transactions")
	severity := fs.String("severity", "", "create: errors of one severity")
	window := fs.String("window", "5m", "create: 1m, 5m, 15m, 1h or 1d (days in the game's time zone)")
	above := fs.Float64("above", 0, "create: fire when the value is above this")
	below := fs.Float64("below", 0, "create: fire when the value is below this")
	chAbove := fs.Float64("change-above", 0, "create: fire when the value rose by more than this many percent")
	chBelow := fs.Float64("change-below", 0, "create: fire when the value changed by less than this percent (e.g. -30)")
	against := fs.String("against", "previous_window", "create: what a change compares with: previous_window, same_hour_last_week, same_day_last_week")
	anomaly := fs.Bool("anomaly", false, "create: fire on anomalies against the seasonal baseline")
	sens := fs.Float64("sensitivity", 4, "create: anomaly threshold in robust deviations")
	direction := fs.String("direction", "both", "create: anomaly direction: both, up, down")
	forN := fs.Int("for", 1, "create: breaching windows in a row before firing")
	keep := fs.Int("keep-firing-for", 0, "create: clear windows a firing rule outlasts before resolving")
	minVol := fs.Float64("min-volume", 0, "create: the fewest events a window needs to count")
	renotify := fs.String("renotify", "", "create: repeat while firing, e.g. 1h")
	var dests listFlag
	fs.Var(&dests, "destination", "create: destination id (repeat or comma-separate)")
	snoozeFor := fs.Duration("for-duration", 0, "snooze: how long (also --snooze-for)")
	fs.DurationVar(snoozeFor, "snooze-for", 0, "snooze: how long, e.g. 2h")
	off := fs.Bool("off", false, "snooze: end the snooze")
	// `alerts snooze ID --for 2h` reads naturally: --for takes a duration there.
	if args[0] == "snooze" {
		for i, a := range args {
			if a == "--for" || a == "-for" {
				args[i] = "--snooze-for"
			} else if strings.HasPrefix(a, "--for=") {
				args[i] = "--snooze-for=" + strings.TrimPrefix(a, "--for=")
			}
		}
	}
	nc, err := connect(ctx, fs, args, key, url, getenv, stdout)
	if err != nil {
		return err
	}
	c, set, pos := nc.c, nc.set, nc.pos
	switch args[0] {
	case "create":
		cond := map[string]any{}
		switch {
		case set["above"]:
			cond = map[string]any{"type": "above", "value": *above}
		case set["below"]:
			cond = map[string]any{"type": "below", "value": *below}
		case set["change-above"]:
			cond = map[string]any{"type": "change", "against": *against, "above": *chAbove}
		case set["change-below"]:
			cond = map[string]any{"type": "change", "against": *against, "below": *chBelow}
		case *anomaly:
			cond = map[string]any{"type": "anomaly", "sensitivity": *sens, "direction": *direction}
		default:
			return errors.New("alerts create: give a condition: --above, --below, --change-above, --change-below or --anomaly")
		}
		body := map[string]any{"name": *name, "metric": *metric, "currency": *currency, "severity": *severity, "window": *window,
			"condition": cond, "for": *forN, "keep_firing_for": *keep, "min_volume": *minVol, "renotify": *renotify, "destinations": []string(dests)}
		var out map[string]any
		if err := c.do(ctx, http.MethodPost, c.path("/alerts"), body, &out, http.StatusCreated); err != nil {
			return fmt.Errorf("alerts create: %w", err)
		}
		printJSON(stdout, out)
		return nil
	case "list":
		var out struct{ Alerts []map[string]any }
		if err := c.do(ctx, http.MethodGet, c.path("/alerts"), nil, &out, http.StatusOK); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tMETRIC\tWINDOW\tCONDITION\tSTATE\tLAST VALUE\tSNOOZED UNTIL\tERROR")
		for _, a := range out.Alerts {
			cond, _ := json.Marshal(a["condition"])
			snoozed := ""
			if a["snoozed_until"] != nil {
				snoozed = fmt.Sprint(a["snoozed_until"])
			}
			last := ""
			if a["last_value"] != nil {
				last = fmt.Sprint(a["last_value"])
			}
			errText := ""
			if a["last_error"] != nil {
				errText = fmt.Sprint(a["last_error"])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a["id"], a["name"], a["metric"], a["window"], cond, a["state"], last, snoozed, errText)
		}
		return tw.Flush()
	case "delete":
		return c.deleteOne(ctx, nc, "alert", "/alerts/")
	case "snooze":
		if len(pos) != 1 || (*snoozeFor <= 0) == !*off {
			return errors.New("alerts snooze: name one alert id and --for DURATION (e.g. 2h) or --off")
		}
		body := map[string]any{"snoozed_until": nil}
		if !*off {
			body = map[string]any{"snooze": snoozeFor.String()}
		}
		var out map[string]any
		if err := c.do(ctx, http.MethodPatch, c.path("/alerts/"+pos[0]), body, &out, http.StatusOK); err != nil {
			return err
		}
		if out["snoozed_until"] == nil {
			fmt.Fprintf(stdout, "%s is no longer snoozed\n", pos[0])
		} else {
			fmt.Fprintf(stdout, "%s snoozed until %v\n", pos[0], out["snoozed_until"])
		}
		return nil
	}
	return nil
}

func runPlayerRules(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, key, url, err := notifyFlagSet("player-rules", []string{"create", "list", "delete"}, args, getenv, stderr)
	if err != nil {
		return err
	}
	name := fs.String("name", "", "create: the rule's name")
	ev := fs.String("event", "", "create: the event type (purchase, progression, error... or com.gamemetrics.*)")
	once := fs.Bool("once-per-player", false, "create: notify once per player, not on every matching event")
	var where, dests listFlag
	fs.Func("where", "create: a condition 'FIELD OP VALUE' (ops eq ne gt gte lt lte in; VALUE is JSON or a bare word); repeatable", func(v string) error {
		where = append(where, v)
		return nil
	})
	fs.Var(&dests, "destination", "create: destination id (repeat or comma-separate)")
	nc, err := connect(ctx, fs, args, key, url, getenv, stdout)
	if err != nil {
		return err
	}
	c := nc.c
	switch args[0] {
	case "create":
		var conds []map[string]any
		for _, w := range where {
			parts := strings.SplitN(strings.TrimSpace(w), " ", 3)
			if len(parts) != 3 {
				return fmt.Errorf("player-rules create: --where %q: want FIELD OP VALUE, e.g. 'status eq complete'", w)
			}
			var v json.RawMessage
			if json.Valid([]byte(parts[2])) {
				v = json.RawMessage(parts[2])
			} else {
				v, _ = json.Marshal(parts[2])
			}
			conds = append(conds, map[string]any{"field": parts[0], "op": parts[1], "value": v})
		}
		var out map[string]any
		if err := c.do(ctx, http.MethodPost, c.path("/player-rules"), map[string]any{"name": *name, "event": *ev, "conditions": conds,
			"once_per_player": *once, "destinations": []string(dests)}, &out, http.StatusCreated); err != nil {
			return fmt.Errorf("player-rules create: %w", err)
		}
		printJSON(stdout, out)
		return nil
	case "list":
		var out struct {
			PlayerRules []map[string]any `json:"player_rules"`
		}
		if err := c.do(ctx, http.MethodGet, c.path("/player-rules"), nil, &out, http.StatusOK); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tEVENT\tCONDITIONS\tONCE PER PLAYER\tDESTINATIONS")
		for _, r := range out.PlayerRules {
			conds, _ := json.Marshal(r["conditions"])
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%v\n", r["id"], r["name"], r["event"], conds, r["once_per_player"], r["destinations"])
		}
		return tw.Flush()
	}
	return c.deleteOne(ctx, nc, "player rule", "/player-rules/")
}

// deleteOne deletes the one resource the command names.
func (c *notifyClient) deleteOne(ctx context.Context, nc *notifyCall, what, path string) error {
	id, err := nc.one(what)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, c.path(path+id), nil, nil, http.StatusNoContent); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "deleted", id)
	return nil
}

func runNotifications(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, key, url, err := notifyFlagSet("notifications", []string{"list", "retry"}, args, getenv, stderr)
	if err != nil {
		return err
	}
	failed := fs.Bool("failed", false, "list: only notifications with a failed delivery")
	limit := fs.Int("limit", 50, "list: how many, newest first")
	nc, err := connect(ctx, fs, args, key, url, getenv, stdout)
	if err != nil {
		return err
	}
	c := nc.c
	switch args[0] {
	case "list":
		q := fmt.Sprintf("?limit=%d", *limit)
		if *failed {
			q += "&state=failed"
		}
		var out struct {
			Notifications []struct {
				ID, Type, Summary string
				CreatedAt         time.Time `json:"created_at"`
				Deliveries        []struct {
					Destination, State, Kind string
					Attempts                 int
					LastStatus               *int   `json:"last_status"`
					LastError                string `json:"last_error"`
				}
			}
		}
		if err := c.do(ctx, http.MethodGet, c.path("/notifications"+q), nil, &out, http.StatusOK); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tTYPE\tDESTINATION\tSTATE\tATTEMPTS\tLAST\tSUMMARY")
		for _, nt := range out.Notifications {
			for _, d := range nt.Deliveries {
				last := d.LastError
				if d.LastStatus != nil && last == "" {
					last = fmt.Sprint(*d.LastStatus)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%s\t%d\t%s\t%s\n", nt.ID, nt.CreatedAt.UTC().Format(time.RFC3339), strings.TrimPrefix(nt.Type, "com.gamemetrics."),
					d.Destination, d.Kind, d.State, d.Attempts, truncate(last, 60), truncate(nt.Summary, 80))
			}
		}
		return tw.Flush()
	}
	id, err := nc.one("notification")
	if err != nil {
		return fmt.Errorf("notifications retry: %w", err)
	}
	var out map[string]any
	if err := c.do(ctx, http.MethodPost, c.path("/notifications/"+id+"/retry"), nil, &out, http.StatusOK); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %v failed deliveries due again now\n", id, out["retried"])
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// runWebhookReceiver is a local webhook receiver for trying notify out: it
// prints every notification it gets and, with --secret, verifies its
// Standard Webhooks signature with the specification's reference library.
func runWebhookReceiver(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("webhook-receiver", stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "where to listen")
	secret := fs.String("secret", getenv("WEBHOOK_SECRET"), "the destination's whsec_ secret ($WEBHOOK_SECRET), to verify signatures")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var wh *standardwebhooks.Webhook
	if *secret != "" {
		var err error
		if wh, err = standardwebhooks.NewWebhook(*secret); err != nil {
			return fmt.Errorf("--secret: %w", err)
		}
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "receiving webhooks on http://%s/ (Ctrl-C stops)\n", l.Addr())
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		check := "signature not checked (no --secret)"
		if wh != nil {
			if err := wh.Verify(body, r.Header); err != nil {
				check = "SIGNATURE INVALID: " + err.Error()
				w.WriteHeader(http.StatusUnauthorized)
			} else {
				check = "signature verified"
			}
		}
		var ev struct {
			Type string `json:"type"`
			Data struct {
				Summary string `json:"summary"`
			} `json:"data"`
		}
		json.Unmarshal(body, &ev)
		fmt.Fprintf(stdout, "%s %s %s (%s)\n  %s\n", time.Now().Format(time.TimeOnly), r.Header.Get("webhook-id"), ev.Type, check, ev.Data.Summary)
	})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
