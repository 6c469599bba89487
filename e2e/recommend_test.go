package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gamemetrics/gamemetrics/functions/functionstest"
	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/shared/devstack/devstacktest"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// A studio's path through recommend as production wires it: players with
// tastes send through ingest (duplicates, shuffled batches), recommend's
// own KafkaSource feeds it while it is restarted mid-stream, the catalogue
// is imported, the training ping promotes a model, and the recommendations
// API answers from it with the player's current items.
func TestRecommendationsFromTheEventStreamThroughTraining(t *testing.T) {
	p := newPlatform(t, "UTC")
	now := time.Now().UTC()
	const items = 200
	evs := simulation.Generate(simulation.Config{Players: 400, Days: 14, End: now, Seed: 31, Items: items, RunID: "e2e-rec-"})
	cfg := simulation.SendConfig{URL: p.url(serving.Ingest), WriteKey: p.keys.Write, Batch: 100, Concurrency: 4,
		Duplicates: 0.05, Shuffle: true, Seed: 31, Rate: 5000}
	stream, _, _ := simulation.Plan(evs, cfg)
	half := len(stream) / 2
	ctx := context.Background()
	if _, err := simulation.Send(ctx, stream[:half], cfg); err != nil {
		t.Fatal(err)
	}
	p.servers.Restart(serving.Recommend)
	if _, err := simulation.Send(ctx, stream[half:], cfg); err != nil {
		t.Fatal(err)
	}

	// The distinct (player, item) pairs and purchases of the simulation.
	pairs, purchases := map[string]bool{}, 0
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		switch {
		case e.Type == events.TypePurchase:
			purchases++
			pairs[e.Subject+"/"+e.Data["item_id"].(string)] = true
		case e.Type == events.TypeResource && e.Data["flow"] == "sink":
			pairs[e.Subject+"/"+e.Data["item_id"].(string)] = true
		}
	}
	pool := devstacktest.Connect(t, stack).Pool
	deadline := time.Now().Add(90 * time.Second)
	for {
		var n, bought int
		if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(purchases), 0) FROM recommend_interactions WHERE gameid = $1`,
			p.game.ID).Scan(&n, &bought); err != nil {
			t.Fatal(err)
		}
		if n == len(pairs) && bought == purchases {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recommend holds %d interactions and %d purchases, the simulation has %d and %d", n, bought, len(pairs), purchases)
		}
		time.Sleep(200 * time.Millisecond)
	}

	base := strings.TrimSuffix(p.url(serving.Recommend), "/")
	var csv bytes.Buffer
	simulation.NewCatalogue(items, 31).WriteCSV(&csv)
	if code, body := functionstest.Call(t, http.MethodPut, base+"/v1/games/"+p.game.ID+"/items", p.keys.Admin, "text/csv", csv.Bytes()); code != 200 {
		t.Fatalf("PUT items: %d %s", code, body)
	}
	ping := fmt.Sprintf(`{"specversion":"1.0","id":"ping-1","source":"/apis/v1/namespaces/gamemetrics/pingsources/recommend-daily",
		"type":"dev.knative.sources.ping","datacontenttype":"application/json","data":{"task":"train","game":%q}}`, p.game.ID)
	code, body := functionstest.Call(t, http.MethodPost, base+"/", "", "application/cloudevents+json", []byte(ping))
	training := body
	var trained struct {
		Games []recommend.TrainOutcome `json:"games"`
	}
	if code != 200 || json.Unmarshal(body, &trained) != nil || len(trained.Games) != 1 || !trained.Games[0].Promoted || trained.Games[0].Kind == recommend.KindPopular {
		t.Fatalf("training ping: %d %s", code, body)
	}
	var a recommend.Answer
	for player := 0; player < 400; player++ {
		code, body = functionstest.Call(t, http.MethodGet, fmt.Sprintf("%s/v1/games/%s/players/player-%05d/recommendations?limit=5", base, p.game.ID, player), p.keys.Read, "", nil)
		if code != 200 {
			t.Fatalf("recommendations: %d %s", code, body)
		}
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		if !a.Fallback {
			break
		}
	}
	if a.Fallback || a.ModelVersion == "" || len(a.Items) != 5 || a.Items[0].Reason == "" {
		t.Errorf("no player got personal recommendations from the trained model: last answer %+v; training: %s", a, training)
	}
}
