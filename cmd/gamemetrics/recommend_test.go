package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/functions"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// The recommend commands as a studio uses them: import the catalogue,
// train through the running function and in this process, evaluate.
func TestRecommendCommandsAgainstTheLocalStack(t *testing.T) {
	ctx := migrated(t)
	pool, err := store.Open(ctx, stack.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	g, keys, err := store.NewGames(pool).Create(ctx, "cli recommend", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	deps := functions.NewDeps(stack.Getenv, slog.New(slog.DiscardHandler))
	defer deps.Close()
	reg := telemetry.NewRegistry()
	r, err := functions.BuildRecommend(ctx, deps, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(context.Background())
	srv := httptest.NewServer(serving.Mux(r, reg, slog.New(slog.DiscardHandler)))
	defer srv.Close()

	sim := simulation.Generate(simulation.Config{Players: 400, Days: 14, Items: 200, Seed: 9, End: time.Now().UTC(), RunID: g.ID + "-"})
	for _, se := range sim {
		var e event.Event
		if err := json.Unmarshal(se.JSON(), &e); err != nil {
			t.Fatal(err)
		}
		e.SetExtension(events.ExtGameID, g.ID)
		if _, err := r.Handle(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	csv := filepath.Join(dir, "items.csv")
	var b bytes.Buffer
	simulation.NewCatalogue(200, 9).WriteCSV(&b)
	if err := os.WriteFile(csv, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("item_id,consumable\nsword,maybe\n"), 0o644)

	for _, tc := range []struct {
		name string
		args []string
		want []string // in stdout, or in the error if fails
		fail bool
	}{
		{"import", []string{"items", "import", "--game", g.ID, "--key", keys.Admin, "--url", srv.URL, csv}, []string{"imported 200 items"}, false},
		{"import again", []string{"items", "import", "--game", g.ID, "--key", keys.Admin, "--url", srv.URL, csv}, []string{"0 new, 200 already known"}, false},
		{"import a bad file", []string{"items", "import", "--game", g.ID, "--key", keys.Admin, "--url", srv.URL, bad}, []string{"line 2", "consumable"}, true},
		{"import with the read key", []string{"items", "import", "--game", g.ID, "--key", keys.Read, "--url", srv.URL, csv}, []string{"401", "admin key"}, true},
		{"train through the function", []string{"recommend", "train", "--game", g.ID, "--url", srv.URL + "/"}, []string{"NDCG@10", "promoted", "EASE"}, false},
		{"train in this process", []string{"recommend", "train", "--game", g.ID, "--local"}, []string{"NDCG@10", "item-kNN"}, false},
		{"eval", []string{"recommend", "eval", "--game", g.ID}, []string{"HR@10", "NDCG@10", "coverage", "popularity", "× popularity"}, false},
		{"eval of an unknown game", []string{"recommend", "eval", "--game", "g-nope"}, []string{"unknown game"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(ctx, tc.args, stack.Getenv, &out, &errb)
			got := out.String()
			if err != nil {
				got += err.Error()
			}
			if (err != nil) != tc.fail {
				t.Fatalf("err = %v, want failure %v\n%s%s", err, tc.fail, out.String(), errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}
