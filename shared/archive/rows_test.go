package archive_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/archive"
)

// The direct encoder (AppendJSON) must write exactly the event Event
// builds, as the CloudEvents SDK reads it back.
func TestDirectEncoderWritesTheSameEventAsTheSDK(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	strs := []string{"plain", `quo"te`, `back\slash`, "new\nline", "tab\t", "<html>&amp;", "ünïcödé 🎮", "\u2028sep", ""}
	// Framed, because the SDK's setters trim surrounding whitespace.
	pick := func() string { return "[" + strs[rng.IntN(len(strs))] + "]" }
	for i := range 2000 {
		r := archive.Row{
			ID:      fmt.Sprintf("id-%d-%s", i, pick()),
			Type:    "com.gamemetrics.design",
			Source:  fmt.Sprintf("/src/%d", rng.IntN(9)),
			Subject: "player " + pick(),
			Time:    time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(int64(48 * time.Hour)))).Truncate(time.Microsecond),
		}
		if rng.IntN(2) == 0 {
			r.SessionID = pgtype.Text{String: "s-" + pick(), Valid: true}
		}
		if rng.IntN(2) == 0 {
			r.Received = pgtype.Timestamptz{Time: r.Time.Add(time.Duration(rng.IntN(5000)) * time.Millisecond), Valid: true}
		}
		if rng.IntN(3) == 0 {
			r.Ext, _ = json.Marshal(map[string]string{"traceparent": pick(), "clientseq": fmt.Sprint(i)})
		}
		if rng.IntN(4) != 0 {
			r.Data, _ = json.Marshal(map[string]any{"event": pick(), "value": rng.Float64(), "n": []int{1, 2}})
		}
		line, err := r.AppendJSON(nil, "g1")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.IndexByte(line, '\n') >= 0 {
			t.Fatalf("line with a newline: %s", line)
		}
		got, err := archive.DecodeEvent(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		want, err := r.Event("g1")
		if err != nil {
			t.Fatal(err)
		}
		assertSame(t, want, got)
	}
}

func assertSame(t *testing.T, want, got event.Event) {
	t.Helper()
	if got.ID() != want.ID() || got.Type() != want.Type() || got.Source() != want.Source() || got.Subject() != want.Subject() ||
		!got.Time().Equal(want.Time()) || got.DataContentType() != want.DataContentType() {
		t.Fatalf("attributes differ: id %q/%q type %q/%q source %q/%q subject %q/%q time %v/%v ct %q/%q", got.ID(), want.ID(), got.Type(), want.Type(), got.Source(), want.Source(), got.Subject(), want.Subject(), got.Time(), want.Time(), got.DataContentType(), want.DataContentType())
	}
	if len(got.Extensions()) != len(want.Extensions()) {
		t.Fatalf("extensions %v, want %v", got.Extensions(), want.Extensions())
	}
	for k, v := range want.Extensions() {
		ws, _ := types.Format(v)
		gs, _ := types.Format(got.Extensions()[k])
		if ws != gs {
			t.Fatalf("extension %s = %q, want %q", k, gs, ws)
		}
	}
	if !bytes.Equal(got.Data(), want.Data()) {
		t.Fatalf("data %s, want %s", got.Data(), want.Data())
	}
}

func TestDirectEncoderRefusesBadExtensionNames(t *testing.T) {
	for _, name := range []string{"Upper", "with-dash", "id", "data", "gameid", ""} {
		r := archive.Row{ID: "x", Type: "t", Source: "/s", Subject: "p", Time: time.Now()}
		r.Ext, _ = json.Marshal(map[string]string{name: "v"})
		if _, err := r.AppendJSON(nil, "g"); err == nil {
			t.Errorf("extension name %q accepted", name)
		}
	}
}
