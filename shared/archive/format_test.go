package archive_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/klauspost/compress/gzip"

	"github.com/gamemetrics/gamemetrics/shared/archive"
)

func sampleEvents(n int) []event.Event {
	base := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	out := make([]event.Event, n)
	for i := range out {
		e := event.New()
		e.SetID("ev-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + time.Duration(i).String())
		e.SetSource("/test")
		e.SetType("com.gamemetrics.purchase")
		e.SetSubject("player-1")
		e.SetTime(base.Add(time.Duration(i) * time.Microsecond * 1234567))
		e.SetExtension("gameid", "g1")
		e.SetExtension("sessionid", "s1")
		e.SetExtension("receivedtime", base)
		if i%4 != 0 {
			e.SetData(event.ApplicationJSON, []byte(`{"item_id":"sword","currency":"USD","amount_minor":199,"note":"line\nbreak \u2028 ü"}`))
		}
		out[i] = e
	}
	return out
}

func TestPartRoundTripDecodesToTheSameEvents(t *testing.T) {
	in := sampleEvents(100)
	b, part, err := archive.EncodePart(in)
	if err != nil {
		t.Fatal(err)
	}
	if part.Events != 100 || part.Bytes != int64(len(b)) || part.SHA256 != archive.Checksum(b) {
		t.Fatalf("part %+v does not describe its %d bytes", part, len(b))
	}
	if n, err := archive.CountLines(b); err != nil || n != 100 {
		t.Fatalf("CountLines = %d, %v", n, err)
	}
	out, err := archive.DecodePart(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d events, want %d", len(out), len(in))
	}
	for i := range in {
		assertSameEvent(t, in[i], out[i])
	}
}

func assertSameEvent(t *testing.T, want, got event.Event) {
	t.Helper()
	if got.ID() != want.ID() || got.Type() != want.Type() || got.Source() != want.Source() ||
		got.Subject() != want.Subject() || !got.Time().Equal(want.Time()) {
		t.Errorf("event %s: attributes differ:\n got %v\nwant %v", want.ID(), got, want)
	}
	for k, v := range want.Extensions() {
		ws, _ := types.Format(v)
		gs, err := types.Format(got.Extensions()[k])
		if err != nil || ws != gs {
			t.Errorf("event %s: extension %s = %q, want %q", want.ID(), k, gs, ws)
		}
	}
	if len(got.Extensions()) != len(want.Extensions()) {
		t.Errorf("event %s: %d extensions, want %d", want.ID(), len(got.Extensions()), len(want.Extensions()))
	}
	if !jsonEqual(got.Data(), want.Data()) {
		t.Errorf("event %s: data %s, want %s", want.ID(), got.Data(), want.Data())
	}
}

func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func TestChecksumChangesWithOneByte(t *testing.T) {
	b, part, err := archive.EncodePart(sampleEvents(3))
	if err != nil {
		t.Fatal(err)
	}
	c := bytes.Clone(b)
	c[len(c)/2] ^= 1
	if archive.Checksum(c) == part.SHA256 {
		t.Error("a flipped byte kept the checksum")
	}
	if archive.Checksum(b) != part.SHA256 {
		t.Error("checksum not stable")
	}
}

func TestDecoderRejectsWhatIsNotAnArchive(t *testing.T) {
	gz := func(s string) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write([]byte(s))
		w.Close()
		return buf.Bytes()
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"plain text that is not gzip", []byte("hello")},
		{"a line that is not JSON", gz("{not json}\n")},
		{"a CloudEvent without an id", gz(`{"specversion":"1.0","source":"/x","type":"t"}` + "\n")},
		{"an unknown specversion", gz(`{"specversion":"9","id":"1","source":"/x","type":"t"}` + "\n")},
		{"a line longer than the limit", gz(`{"specversion":"1.0","id":"1","source":"/x","type":"t","data":"` + strings.Repeat("a", archive.MaxLineBytes) + `"}` + "\n")},
		{"a truncated gzip stream", gz(`{"specversion":"1.0","id":"1","source":"/x","type":"t"}` + "\n")[:20]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if evs, err := archive.DecodePart(c.in); err == nil {
				t.Errorf("decoded %d events, want an error", len(evs))
			}
		})
	}
	// Empty lines are allowed.
	evs, err := archive.DecodePart(gz("\n" + `{"specversion":"1.0","id":"1","source":"/x","type":"t"}` + "\n\n"))
	if err != nil || len(evs) != 1 {
		t.Errorf("empty lines: %d events, %v", len(evs), err)
	}
}

func TestManifestRoundTripAndChecks(t *testing.T) {
	day := time.Date(2026, 10, 3, 0, 0, 0, 0, time.UTC)
	parts := []archive.Part{
		{Key: archive.PartKey("g1", day, 0), Events: 10, Bytes: 100, SHA256: strings.Repeat("a", 64)},
		{Key: archive.PartKey("g1", day, 1), Events: 5, Bytes: 50, SHA256: strings.Repeat("b", 64)},
	}
	m := archive.NewManifest("g1", day, parts, time.Unix(0, 0))
	if m.Events != 15 || m.Date != "2026-10-03" {
		t.Fatalf("manifest %+v", m)
	}
	got, err := archive.DecodeManifest(m.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.Events != 15 || len(got.Parts) != 2 || got.Parts[1] != parts[1] || got.Game != "g1" {
		t.Errorf("round trip: %+v", got)
	}
	m.Events = 16
	if _, err := archive.DecodeManifest(m.Encode()); err == nil {
		t.Error("a manifest whose total disagrees with its parts was accepted")
	}
	if _, err := archive.DecodeManifest([]byte(`{"version":2}`)); err == nil {
		t.Error("an unknown version was accepted")
	}
}

func TestKeysFollowTheLayout(t *testing.T) {
	day := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	if k := archive.PartKey("gabc", day, 7); k != "raw/game=gabc/date=2026-01-02/part-00007.ndjson.gz" {
		t.Errorf("PartKey = %s", k)
	}
	if k := archive.ManifestKey("gabc", day); k != "raw/game=gabc/date=2026-01-02/manifest.json" {
		t.Errorf("ManifestKey = %s", k)
	}
	k, err := archive.ParseKey(archive.PartKey("gabc", day, 12))
	if err != nil || k.Game != "gabc" || k.Part != 12 || k.Manifest || !k.Day.Equal(time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ParseKey(part) = %+v, %v", k, err)
	}
	k, err = archive.ParseKey(archive.ManifestKey("gabc", day))
	if err != nil || !k.Manifest || k.Part != -1 {
		t.Errorf("ParseKey(manifest) = %+v, %v", k, err)
	}
	for _, bad := range []string{"digests/x", "raw/game=a/b", "raw/game=g/date=2026-13-01/manifest.json"} {
		if _, err := archive.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
}

func TestPartWriterKeepsOneEventPerLine(t *testing.T) {
	e := event.New()
	e.SetID("multi")
	e.SetSource("/x")
	e.SetType("t")
	e.SetData(event.ApplicationJSON, []byte("{\n  \"a\": [1,\n 2]\n}"))
	e.DataBase64 = false // inline JSON, as retain writes it
	b, part, err := archive.EncodePart([]event.Event{e, e})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := archive.CountLines(b); n != 2 || part.Events != 2 {
		t.Fatalf("%d lines for 2 events with multi-line data", n)
	}
	out, err := archive.DecodePart(b)
	if err != nil || len(out) != 2 || !jsonEqual(out[0].Data(), e.Data()) {
		t.Fatalf("decoded %v, %v", out, err)
	}
	bad := event.New()
	bad.SetID("bad")
	bad.SetSource("/x")
	bad.SetType("t")
	bad.SetData(event.ApplicationJSON, []byte("{not json"))
	bad.DataBase64 = false // claims inline JSON data
	if _, _, err := archive.EncodePart([]event.Event{bad}); err == nil {
		t.Error("an event whose JSON data is invalid was encoded")
	}
}
