package eventing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// These tests need no server: they compare the requests two paths build.

var testEnvelope = envelope{source: "/apis/v1/namespaces/ns/kafkasources/src", overrides: map[string]string{"env": "local", "Region": "eu"}}

// sdkRequest is the request the SDK path makes for rec: the record
// decoded and annotated (envelope.event), then encoded by cehttp.
func sdkRequest(t testing.TB, rec *kgo.Record) *http.Request {
	t.Helper()
	target := &httpTarget{url: "http://sink.example/", namespace: "ns"}
	req, err := target.request(context.Background(), eventMessage(testEnvelope.event(context.Background(), rec)))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// passThroughRequest is the request of the pass-through, if rec takes it.
func passThroughRequest(t testing.TB, rec *kgo.Record) (*http.Request, bool) {
	t.Helper()
	w, ok := testEnvelope.passThrough(rec)
	if !ok {
		return nil, false
	}
	target := &httpTarget{url: "http://sink.example/", namespace: "ns"}
	req, err := target.request(context.Background(), &message{wire: w})
	if err != nil {
		t.Fatal(err)
	}
	return req, true
}

// sameRequest says how two requests differ, "" when they are the same
// request on the wire: method, URL, headers, length and body.
func sameRequest(a, b *http.Request) string {
	if a.Method != b.Method || a.URL.String() != b.URL.String() {
		return fmt.Sprintf("%s %s vs %s %s", a.Method, a.URL, b.Method, b.URL)
	}
	if !reflect.DeepEqual(a.Header, b.Header) {
		return fmt.Sprintf("headers\n%v\nvs\n%v", a.Header, b.Header)
	}
	if a.ContentLength != b.ContentLength {
		return fmt.Sprintf("content length %d vs %d", a.ContentLength, b.ContentLength)
	}
	body := func(r *http.Request) []byte {
		if r.Body == nil {
			return nil
		}
		b, _ := io.ReadAll(r.Body)
		if r.GetBody != nil { // a retry resends the same body
			again, _ := r.GetBody()
			if c, _ := io.ReadAll(again); !bytes.Equal(b, c) {
				return append([]byte("GetBody differs: "), c...)
			}
		}
		return b
	}
	if ba, bb := body(a), body(b); !bytes.Equal(ba, bb) {
		return fmt.Sprintf("body %q vs %q", ba, bb)
	}
	return ""
}

// Every record ingest writes (the simulator's events, encoded as ingest
// encodes them) takes the pass-through, and it makes the very request the
// SDK path makes.
func TestPassThroughMakesTheSDKsRequestForWhatIngestWrites(t *testing.T) {
	evs := simulation.Generate(simulation.Config{Players: 20, Days: 2, End: time.Now().UTC(), Seed: 5, RunID: "pt-"})
	for i, fact := range evs {
		e := event.New()
		if err := e.UnmarshalJSON(fact.JSON()); err != nil {
			t.Fatal(err)
		}
		e.SetExtension("gameid", "g1")
		e.SetExtension("receivedtime", time.Now().UTC())
		rec, err := kafka.Record(context.Background(), &e, "gamemetrics.events", "g1/"+e.Subject())
		if err != nil {
			t.Fatal(err)
		}
		rec.Partition, rec.Offset = int32(i%12), int64(i)
		fast, ok := passThroughRequest(t, rec)
		if !ok {
			t.Fatalf("event %d (%s) did not take the pass-through: %v", i, e.Type(), rec.Headers)
		}
		if d := sameRequest(fast, sdkRequest(t, rec)); d != "" {
			t.Fatalf("event %d: the pass-through's request differs from the SDK's: %s", i, d)
		}
	}
}

func TestPassThroughLeavesWhatItIsNotSureOfToTheSDK(t *testing.T) {
	base := func() []kgo.RecordHeader {
		return []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("e1")},
			{Key: "ce_source", Value: []byte("/g")}, {Key: "ce_type", Value: []byte("t")}}
	}
	with := func(hs ...kgo.RecordHeader) []kgo.RecordHeader { return append(base(), hs...) }
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
	}{
		{"spec version 0.3", []kgo.RecordHeader{h("ce_specversion", "0.3"), h("ce_id", "e1"), h("ce_source", "/g"), h("ce_type", "t")}},
		{"no id", []kgo.RecordHeader{h("ce_specversion", "1.0"), h("ce_source", "/g"), h("ce_type", "t")}},
		{"an id with spaces the SDK trims", with(h("ce_id", " e2 "))[1:]},
		{"a header twice", with(h("ce_gameid", "a"), h("ce_gameid", "b"))},
		{"an upper-case ce_ header", with(h("CE_GAMEID", "a"))},
		{"an upper-case content type", with(h("Content-Type", "application/json"))},
		{"an invalid media type", with(h("content-type", "json;;"))},
		{"a source the SDK rewrites", with(h("ce_source", "/a b"))[1:]},
		{"a time that is not RFC 3339", with(h("ce_time", "yesterday"))},
		{"the zero time (the SDK drops it)", with(h("ce_time", "0001-01-01T00:00:00Z"))},
		{"a data schema", with(h("ce_dataschema", "https://example.com/s"))},
		{"an extension name the SDK refuses", with(h("ce_game_id", "a"))},
		{"an empty extension name", with(h("ce_", "a"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &kgo.Record{Topic: "t", Headers: tc.headers, Value: []byte(`{}`)}
			if _, ok := passThroughRequest(t, rec); ok {
				t.Errorf("took the pass-through")
			}
			sdkRequest(t, rec) // and the SDK path still delivers it, as it did before
		})
	}
}

// For every record the fuzzer makes, the pass-through either declines it
// or makes exactly the request the SDK path makes.
func FuzzPassThroughMakesTheSDKsRequest(f *testing.F) {
	f.Add("e-1", "/test/client/p1", "com.gamemetrics.heartbeat", "p1", "2026-03-01T12:00:00.123456Z", "application/json", "sessionid", "s-1", []byte(`{"a":1}`), uint8(0))
	f.Add("e-2", "https://example.com/x?y=1", "t", "", "2026-03-01T12:00:00+02:00", "", "gameid", "g", []byte(nil), uint8(3))
	f.Add(" e ", "/a b", "", " s", "0001-01-01T00:00:00Z", "text/plain; charset=utf-8", "Bad_Name", "v", []byte{}, uint8(255))
	f.Fuzz(func(t *testing.T, id, source, typ, subject, tm, ct, ext, extVal string, value []byte, flags uint8) {
		hs := []kgo.RecordHeader{{Key: "ce_specversion", Value: []byte("1.0")}}
		add := func(k, v string) { hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
		add("ce_id", id)
		add("ce_source", source)
		add("ce_type", typ)
		if flags&1 != 0 {
			add("ce_subject", subject)
		}
		if flags&2 != 0 {
			add("ce_time", tm)
		}
		if flags&4 != 0 {
			add("content-type", ct)
		}
		if flags&8 != 0 {
			add("ce_"+ext, extVal)
		}
		if flags&16 != 0 {
			add("x-other", extVal) // not part of the event
		}
		if flags&32 != 0 {
			add("ce_knativekafkaoffset", "7") // overwritten by the annotation
		}
		if flags&64 != 0 {
			hs[0].Value = []byte(ext)
		}
		rec := &kgo.Record{Topic: "t", Partition: int32(flags % 7), Offset: int64(len(value)), Headers: hs, Value: value}
		if flags&128 != 0 {
			rec.Value = nil
		}
		fast, ok := passThroughRequest(t, rec)
		if !ok {
			return
		}
		if d := sameRequest(fast, sdkRequest(t, rec)); d != "" {
			t.Fatalf("the pass-through's request differs from the SDK's: %s", d)
		}
	})
}
