package recommend_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/jackc/pgx/v5"

	"github.com/gamemetrics/gamemetrics/functions/recommend"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// trainedGame is a simulated game fed through a replica, its catalogue
// imported as CSV, and a model trained and promoted.
type trainedGame struct {
	testGame
	r       *replica
	evs     []event.Event
	cat     *simulation.Catalogue
	outcome recommend.TrainOutcome
}

func newTrainedGame(t *testing.T, players, items int) *trainedGame {
	t.Helper()
	g := newGame(t)
	r := newReplica(t)
	evs, cat := simulatedGame(g, players, items, 5)
	var csv bytes.Buffer
	if err := cat.WriteCSV(&csv); err != nil {
		t.Fatal(err)
	}
	var put map[string]int
	if code := call(t, http.MethodPut, r.url+"/v1/games/"+g.ID+"/items", g.keys.Admin, "text/csv", csv.Bytes(), &put); code != http.StatusOK || put["created"] != items {
		t.Fatalf("PUT items (CSV): %d %v", code, put)
	}
	deliver(t, r.Recommend, evs)
	out, err := r.TrainGame(context.Background(), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !out.Promoted || out.Kind == recommend.KindPopular {
		t.Fatalf("training did not promote a learned model: %+v", out)
	}
	return &trainedGame{testGame: g, r: r, evs: evs, cat: cat, outcome: out}
}

// owned returns what each player acquired (bought or sank), from the
// stored interactions.
func owned(t *testing.T, game string) map[string][]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT subject, item_id FROM recommend_interactions
		WHERE gameid = $1 AND purchases + sinks > 0 ORDER BY subject, item_id`, game)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var p, it string
	if _, err := pgx.ForEachRow(rows, []any{&p, &it}, func() error { out[p] = append(out[p], it); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// A non-consumable the player owns and an unavailable item are never
// recommended: not by the learned model, not by the popular fallback, not
// for a game without a model.
func TestOwnedNonConsumablesAndUnavailableItemsAreNeverRecommended(t *testing.T) {
	tg := newTrainedGame(t, 400, 150)
	consumable := map[string]bool{}
	for _, it := range tg.cat.Items {
		consumable[it.ID] = it.Consumable
	}
	// Make the most recommended items unavailable.
	counts := map[string]int{}
	has := owned(t, tg.ID)
	var players []string
	for p := range has {
		players = append(players, p)
	}
	slices.Sort(players)
	players = players[:min(len(players), 120)]
	for _, p := range players {
		for _, id := range ids(tg.r.recommendations(t, tg.testGame, p, 10)) {
			counts[id]++
		}
	}
	var unavailable []recommend.Item
	for id, n := range counts {
		if n >= 10 && len(unavailable) < 5 {
			unavailable = append(unavailable, recommend.Item{ID: id, Available: false, Consumable: &[]bool{consumable[id]}[0]})
		}
	}
	if len(unavailable) == 0 {
		t.Fatal("no item was recommended often enough to test with")
	}
	tg.r.putItems(t, tg.testGame, unavailable)
	gone := map[string]bool{}
	for _, it := range unavailable {
		gone[it.ID] = true
	}
	check := func(who string, a recommend.Answer, player string) {
		t.Helper()
		for _, it := range a.Items {
			if gone[it.ItemID] {
				t.Errorf("%s: unavailable item %s recommended", who, it.ItemID)
			}
			if slices.Contains(has[player], it.ItemID) && !consumable[it.ItemID] {
				t.Errorf("%s: %s owns non-consumable %s, which was recommended", who, player, it.ItemID)
			}
		}
	}
	personal := 0
	for _, p := range players {
		a := tg.r.recommendations(t, tg.testGame, p, 100)
		if !a.Fallback {
			personal++
		}
		check("model", a, p)
	}
	if personal < len(players)/2 {
		t.Errorf("only %d of %d players with history got personal recommendations", personal, len(players))
	}
	check("fallback", tg.r.recommendations(t, tg.testGame, "never-seen", 100), "never-seen")

	// A game without a model serves live popularity under the same rules.
	g := newGame(t)
	now := time.Now().UTC()
	deliver(t, tg.r.Recommend, []event.Event{
		purchase(g.ID, "a1", "ann", "skin", 499, now), purchase(g.ID, "a2", "bob", "skin", 499, now),
		purchase(g.ID, "a3", "bob", "gems", 99, now), purchase(g.ID, "a4", "cid", "gems", 99, now), purchase(g.ID, "a5", "cid", "gems", 99, now),
		purchase(g.ID, "a6", "dan", "crown", 999, now),
	})
	tg.r.putItems(t, g, []recommend.Item{{ID: "skin", Available: true, Consumable: new(bool)}, {ID: "crown", Available: false}})
	a := tg.r.recommendations(t, g, "ann", 10)
	if got := strings.Join(ids(a), ","); got != "gems" || !a.Fallback || a.ModelVersion != "" {
		t.Errorf("ann (owns skin, crown unavailable) got %s (fallback %v, model %q), want gems from live popularity", got, a.Fallback, a.ModelVersion)
	}
	if got := strings.Join(ids(tg.r.recommendations(t, g, "cid", 10)), ","); got != "gems,skin" {
		t.Errorf("cid (bought gems twice: consumable) got %s, want gems,skin", got)
	}
}

// Players with too little history get their segment's popular items; a
// player the game never saw is not an error.
func TestColdStartFallsBackToPopularItems(t *testing.T) {
	tg := newTrainedGame(t, 300, 100)
	a := tg.r.recommendations(t, tg.testGame, "a-brand-new-player", 10)
	if !a.Fallback || len(a.Items) != 10 || a.ModelVersion != tg.outcome.Version || a.RecommendationID == "" {
		t.Fatalf("new player: %+v", a)
	}
	for _, it := range a.Items {
		if it.Reason != recommend.ReasonPopular {
			t.Errorf("new player got %s for reason %q", it.ItemID, it.Reason)
		}
	}
	// With min_history 3, a player with two items falls back too.
	has := owned(t, tg.ID)
	var two string
	for p, items := range has {
		if len(items) == 2 {
			two = p
			break
		}
	}
	if two == "" {
		t.Fatal("no player with exactly two items")
	}
	if a := tg.r.recommendations(t, tg.testGame, two, 10); a.Fallback {
		t.Errorf("%s with two items fell back with min_history 1", two)
	}
	b, _ := json.Marshal(map[string]any{"min_history": 3})
	if code := call(t, http.MethodPut, tg.r.url+"/v1/games/"+tg.ID+"/recommend/settings", tg.keys.Admin, "application/json", b, nil); code != http.StatusOK {
		t.Fatalf("PUT settings: %d", code)
	}
	if a := tg.r.recommendations(t, tg.testGame, two, 10); !a.Fallback {
		t.Errorf("%s with two items got personal recommendations with min_history 3", two)
	}
}

// The player's interactions are read at request time: an item bought a
// moment ago is owned at once and changes the answer without retraining.
func TestANewPurchaseChangesTheAnswerWithoutRetraining(t *testing.T) {
	tg := newTrainedGame(t, 300, 100)
	consumable := map[string]bool{}
	for _, it := range tg.cat.Items {
		consumable[it.ID] = it.Consumable
	}
	has := owned(t, tg.ID)
	for p := range has {
		before := tg.r.recommendations(t, tg.testGame, p, 10)
		if before.Fallback {
			continue
		}
		var buy string
		for _, it := range before.Items {
			if !consumable[it.ItemID] {
				buy = it.ItemID
				break
			}
		}
		if buy == "" {
			continue
		}
		deliver(t, tg.r.Recommend, []event.Event{sink(tg.ID, "just-now-"+p, p, buy, time.Now().UTC())})
		after := tg.r.recommendations(t, tg.testGame, p, 10)
		if slices.Contains(ids(after), buy) {
			t.Errorf("%s just bought %s (non-consumable) and still gets it recommended: %v", p, buy, ids(after))
		}
		if after.ModelVersion != before.ModelVersion {
			t.Errorf("model changed from %s to %s: the test wants the same model", before.ModelVersion, after.ModelVersion)
		}
		return
	}
	t.Fatal("no player with a recommended non-consumable to buy")
}

// A model trained on simulated data is loaded by a replica started after
// it (as a scaled-from-zero pod would be), which then answers exactly as
// the replica that trained it.
func TestATrainedModelLoadsInAFreshReplica(t *testing.T) {
	tg := newTrainedGame(t, 300, 100)
	fresh := newReplica(t)
	n := 0
	for p := range owned(t, tg.ID) {
		if n++; n > 30 {
			break
		}
		a, b := tg.r.recommendations(t, tg.testGame, p, 10), fresh.recommendations(t, tg.testGame, p, 10)
		if a.ModelVersion != tg.outcome.Version || b.ModelVersion != a.ModelVersion || !slices.Equal(ids(a), ids(b)) {
			t.Fatalf("%s: trained replica %s %v, fresh replica %s %v", p, a.ModelVersion, ids(a), b.ModelVersion, ids(b))
		}
	}
	// A later model reaches the running replica within its poll interval.
	out, err := tg.r.TrainGame(context.Background(), tg.ID)
	if err != nil || !out.Promoted {
		t.Fatalf("retrain: %+v %v", out, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for fresh.recommendations(t, tg.testGame, "anyone", 1).ModelVersion != out.Version {
		if time.Now().After(deadline) {
			t.Fatalf("the fresh replica still serves the old model after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// com.gamemetrics.recommendation.requested on POST / is answered with
// com.gamemetrics.recommendation.generated, and every served
// recommendation (HTTP or CloudEvent) is written to
// gamemetrics.recommendations with its recommendation_id.
func TestRequestReplyCloudEventAndImpressionLog(t *testing.T) {
	tg := newTrainedGame(t, 300, 100)
	player := "player-00007"
	req, _ := http.NewRequest(http.MethodPost, tg.r.url+"/", strings.NewReader(`{"player":"`+player+`","limit":5}`))
	for k, v := range map[string]string{"ce-specversion": "1.0", "ce-id": "req-1", "ce-source": "/studio/backend",
		"ce-type": recommend.TypeRequested, "ce-gameid": tg.ID, "Content-Type": "application/json"} {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("ce-type") != recommend.TypeGenerated || resp.Header.Get("ce-subject") != player {
		t.Fatalf("reply %d %v %s", resp.StatusCode, resp.Header, body)
	}
	var got struct {
		Game   string `json:"game"`
		Player string `json:"player"`
		recommend.Answer
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Game != tg.ID || len(got.Items) != 5 || got.RecommendationID != resp.Header.Get("ce-id") {
		t.Fatalf("reply data %s (%v)", body, err)
	}
	viaHTTP := tg.r.recommendations(t, tg.testGame, player, 5)
	if !slices.Equal(ids(viaHTTP), ids(got.Answer)) {
		t.Errorf("CloudEvent answer %v, HTTP answer %v", ids(got.Answer), ids(viaHTTP))
	}
	recs := readTopic(t, kafka.TopicRecommendations, tg.ID+"/"+player, 2)
	seen := map[string]bool{}
	for _, rec := range recs {
		e, err := kafka.Event(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type() != recommend.TypeGenerated || e.Subject() != player {
			t.Errorf("impression %s %s", e.Type(), e.Subject())
		}
		seen[e.ID()] = true
	}
	if !seen[got.RecommendationID] || !seen[viaHTTP.RecommendationID] {
		t.Errorf("impressions %v lack %s or %s", seen, got.RecommendationID, viaHTTP.RecommendationID)
	}

	for _, bad := range []string{`{"limit":5}`, `{"player":"p","limit":0}`, `not json`} {
		e := event.New()
		e.SetID("bad")
		e.SetSource("/t")
		e.SetType(recommend.TypeRequested)
		e.SetExtension("gameid", tg.ID)
		e.SetData(event.ApplicationJSON, []byte(bad))
		if _, err := tg.r.Handle(context.Background(), e); statusOf(err) != http.StatusBadRequest {
			t.Errorf("request %s: %v, want 400", bad, err)
		}
	}
}

// Bad input is told apart: an unknown player is a cold start (200), an
// unknown game 404, a bad limit 400 naming it, a key of the wrong kind 401.
func TestBadInputGetsAnAnswerAGameDeveloperCanActOn(t *testing.T) {
	tg := newTrainedGame(t, 200, 60)
	other := newGame(t)
	base := tg.r.url + "/v1/games/" + tg.ID
	for _, tc := range []struct {
		name, method, url, key string
		body                   string
		status                 int
		errorHas               string
	}{
		{"unknown player", "GET", base + "/players/nobody/recommendations", tg.keys.Read, "", 200, ""},
		{"unknown game", "GET", tg.r.url + "/v1/games/g-nope/players/p/recommendations", tg.keys.Read, "", 404, "game not found"},
		{"another game's id", "GET", tg.r.url + "/v1/games/" + other.ID + "/players/p/recommendations", tg.keys.Read, "", 404, "game not found"},
		{"limit 0", "GET", base + "/players/p/recommendations?limit=0", tg.keys.Read, "", 400, "limit"},
		{"limit 101", "GET", base + "/players/p/recommendations?limit=101", tg.keys.Read, "", 400, "limit"},
		{"limit not a number", "GET", base + "/players/p/recommendations?limit=ten", tg.keys.Read, "", 400, "limit"},
		{"limit 100", "GET", base + "/players/p/recommendations?limit=100", tg.keys.Read, "", 200, ""},
		{"no key", "GET", base + "/players/p/recommendations", "", "", 401, "missing key"},
		{"write key", "GET", base + "/players/p/recommendations", tg.keys.Write, "", 401, "write key"},
		{"admin key", "GET", base + "/players/p/recommendations", tg.keys.Admin, "", 401, "admin key"},
		{"unknown key", "GET", base + "/players/p/recommendations", "gmr_nope", "", 401, "unknown read key"},
		{"read key on items", "PUT", base + "/items", tg.keys.Read, `[]`, 401, "read key"},
		{"read key on settings", "GET", base + "/recommend/settings", tg.keys.Read, "", 401, "read key"},
		{"similar, unknown item", "GET", base + "/items/no-such-item/similar", tg.keys.Read, "", 404, "unknown item"},
		{"similar, bad limit", "GET", base + "/items/item-0001/similar?limit=-1", tg.keys.Read, "", 400, "limit"},
		{"bad items", "PUT", base + "/items", tg.keys.Admin, `[{"item_id":""}]`, 400, "item_id"},
		{"bad settings", "PUT", base + "/recommend/settings", tg.keys.Admin, `{"sink_weight":-1}`, 400, "sink_weight"},
		{"unknown setting", "PUT", base + "/recommend/settings", tg.keys.Admin, `{"sink_wieght":1}`, 400, "sink_wieght"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out map[string]any
			code := call(t, tc.method, tc.url, tc.key, "application/json", []byte(tc.body), &out)
			if code != tc.status {
				t.Fatalf("%d %v, want %d", code, out, tc.status)
			}
			if tc.errorHas != "" && !strings.Contains(fmt.Sprint(out["error"]), tc.errorHas) {
				t.Errorf("error %q does not mention %q", out["error"], tc.errorHas)
			}
			if tc.errorHas == "limit" && out["parameter"] != "limit" {
				t.Errorf("parameter = %v, want limit", out["parameter"])
			}
		})
	}
}

// Similar items come from the item-item neighbours of the promoted model.
func TestSimilarItemsAndTheCatalogueAPI(t *testing.T) {
	tg := newTrainedGame(t, 300, 100)
	var sim struct {
		ItemID string                     `json:"item_id"`
		Items  []recommend.Recommendation `json:"items"`
	}
	if code := call(t, "GET", tg.r.url+"/v1/games/"+tg.ID+"/items/item-0000/similar?limit=5", tg.keys.Read, "", nil, &sim); code != 200 ||
		len(sim.Items) != 5 || sim.Items[0].Reason != recommend.ReasonSimilar || slices.Contains(ids(recommend.Answer{Items: sim.Items}), "item-0000") {
		t.Fatalf("similar: %d %+v", code, sim)
	}
	// Items seen only in events are listed too, flagged as such.
	deliver(t, tg.r.Recommend, []event.Event{purchase(tg.ID, "new-item-1", "p", "limited-edition", 999, time.Now().UTC())})
	var list struct {
		Items []recommend.Item `json:"items"`
	}
	if code := call(t, "GET", tg.r.url+"/v1/games/"+tg.ID+"/items", tg.keys.Admin, "", nil, &list); code != 200 || len(list.Items) != 101 {
		t.Fatalf("items: %d, %d items", code, len(list.Items))
	}
	for _, it := range list.Items {
		if it.ID == "limited-edition" && (it.FromCatalogue || it.Consumable != nil || !it.Available) {
			t.Errorf("an item seen in events: %+v", it)
		}
		if it.ID == "item-0000" && (!it.FromCatalogue || it.Consumable == nil || it.PriceMinor == nil || len(it.Tags) == 0) {
			t.Errorf("an imported item: %+v", it)
		}
	}
}

// The OpenAPI document is served and describes every API route.
func TestOpenAPIDocumentDescribesEveryRoute(t *testing.T) {
	r := newReplica(t)
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if code := call(t, "GET", r.url+"/v1/openapi.json", "", "", nil, &doc); code != 200 || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("GET /v1/openapi.json: %d %q", code, doc.OpenAPI)
	}
	for _, route := range []struct{ method, path, key string }{
		{"get", "/v1/games/{game}/players/{player}/recommendations", "readKey"},
		{"get", "/v1/games/{game}/items/{item}/similar", "readKey"},
		{"get", "/v1/games/{game}/items", "adminKey"},
		{"put", "/v1/games/{game}/items", "adminKey"},
		{"get", "/v1/games/{game}/recommend/settings", "adminKey"},
		{"put", "/v1/games/{game}/recommend/settings", "adminKey"},
	} {
		op, ok := doc.Paths[route.path][route.method]
		if !ok {
			t.Errorf("%s %s is not documented", route.method, route.path)
			continue
		}
		if sec := fmt.Sprint(op["security"]); !strings.Contains(sec, route.key) {
			t.Errorf("%s %s: security %s, want %s", route.method, route.path, sec, route.key)
		}
	}
}

// One training per game at a time, across replicas and the CLI: the
// lease refuses a second holder until the first gives it back.
func TestOneTrainingOfAGameAtATime(t *testing.T) {
	g := newGame(t)
	a, b := newReplica(t), newReplica(t)
	ctx := context.Background()
	release, ok, err := recommend.TryLock(a.Recommend, ctx, g.ID)
	if err != nil || !ok {
		t.Fatalf("first lease: %v %v", ok, err)
	}
	if _, ok, err := recommend.TryLock(b.Recommend, ctx, g.ID); err != nil || ok {
		t.Fatalf("second lease while the first is held: %v %v", ok, err)
	}
	out, err := b.TrainGame(ctx, g.ID)
	if err != nil || out.Version != "" || !strings.Contains(out.Reason, "another training") {
		t.Errorf("training while the lease is held: %+v %v", out, err)
	}
	release()
	release2, ok, err := recommend.TryLock(b.Recommend, ctx, g.ID)
	if err != nil || !ok {
		t.Fatalf("lease after release: %v %v", ok, err)
	}
	release2()
}
