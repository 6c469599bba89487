package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// FuzzParseRequest feeds arbitrary bodies, content types, CloudEvents
// headers and encodings through the whole request parser and validator: it
// must never panic, and every item must end either parsed or rejected.
func FuzzParseRequest(f *testing.F) {
	event := `{"specversion":"1.0","id":"1","source":"s","type":"com.gamemetrics.purchase","subject":"p","time":"2026-11-25T10:00:00Z","data":{"item_id":"a","currency":"USD","amount_minor":5}}`
	f.Add(contentTypeStructured, "", "", []byte(event), false)
	f.Add(contentTypeBatch, "", "", []byte("["+event+`,{"id":2}]`), false)
	f.Add(contentTypeBatch, "", "", []byte("["+event+"]"), true)
	f.Add(contentTypeJSON, "1.0", "com.gamemetrics.heartbeat", []byte(`{}`), false)
	f.Add(contentTypeJSON, "0.3", "com.gamemetrics.session.start", []byte(`{"platform":"ios"}`), true)
	f.Add("text/plain; charset=\x00", "", "", []byte("x"), false)
	f.Add(contentTypeBatch, "", "", []byte(`[null, 1, "x", [], {}]`), false)
	v := events.NewValidator()
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, contentType, specVersion, typ string, body []byte, zipped bool) {
		if zipped {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write(body)
			zw.Close()
			body = b.Bytes()
		}
		r, _ := http.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader(body)))
		r.Header.Set("Content-Type", contentType)
		if zipped {
			r.Header.Set("Content-Encoding", "gzip")
		}
		if specVersion != "" {
			r.Header.Set("Ce-Specversion", specVersion)
			r.Header.Set("Ce-Id", "id")
			r.Header.Set("Ce-Source", "src")
			r.Header.Set("Ce-Type", typ)
			r.Header.Set("Ce-Subject", "p")
			r.Header.Set("Ce-Time", "2026-11-25T09:59:00Z")
		}
		raw, rerr := readBody(r)
		if rerr != nil {
			if rerr.status < 400 || rerr.status > 499 {
				t.Fatalf("request error with status %d", rerr.status)
			}
			return
		}
		items, rerr := parseEvents(context.Background(), r.Header, raw)
		if rerr != nil {
			if rerr.status < 400 || rerr.status > 499 || rerr.reason == "" {
				t.Fatalf("request error %d %q", rerr.status, rerr.reason)
			}
			return
		}
		if len(items) == 0 || len(items) > MaxBatchEvents {
			t.Fatalf("%d items", len(items))
		}
		for i, it := range items {
			if (it.event == nil) == (it.reject == nil) {
				t.Fatalf("item %d is neither parsed nor rejected (or both)", i)
			}
			if it.event != nil {
				if rej := v.Validate(it.event, now); rej != nil && rej.Reason == "" {
					t.Fatalf("item %d rejected without a reason", i)
				}
			}
		}
	})
}

// FuzzDecodeBinary holds the binary-mode fast path to the SDK: for any
// headers and body it takes, it gives exactly the event binding.ToEvent
// gives for the same message, and it takes nothing the SDK refuses, so
// decodeBinary always answers what the SDK answers.
func FuzzDecodeBinary(f *testing.F) {
	f.Add("1.0", "e-1", "/ios", "com.gamemetrics.purchase", "player-1", "2026-11-25T10:00:00Z", "", "application/json", "Sessionid", "s-1", []byte(`{"a":1}`), false)
	f.Add("1.0", " ", "::", "t", "", "yesterday", "http://x", "", "level", "", []byte(nil), true)
	f.Add("0.3", "e", "s", "t", "p", "", "", "text/plain", "gameid", "g", []byte("x"), false)
	f.Add("1.0", "e", "s", "t", "p", "2026-11-25T10:00:00.123+01:00", "%zz", " application/json ", "Datacontenttype", "x", []byte("{}"), true)
	f.Add("1.0", "e", "s", "t", "p", "", "", "", "Session-Id", "x", []byte("{}"), false)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, spec, id, source, typ, subject, when, schema, ct, ext, extValue string, body []byte, twice bool) {
		h := http.Header{}
		for name, v := range map[string]string{"Ce-Specversion": spec, "Ce-Id": id, "Ce-Source": source, "Ce-Type": typ,
			"Ce-Subject": subject, "Ce-Time": when, "Ce-Dataschema": schema, "Content-Type": ct, "Ce-" + ext: extValue} {
			if v != "" && textproto.CanonicalMIMEHeaderKey(name) != cePrefix {
				h.Set(name, v)
				if twice {
					h.Add(name, "second")
				}
			}
		}
		h.Set("Authorization", "Bearer k")
		// What the fast path declines the SDK decodes, so only what it
		// takes needs comparing. (The SDK's own answer to some inputs it
		// gets is not even stable: it meets the headers in map order.)
		got, ok := fastBinary(h, body)
		if !ok {
			return
		}
		want, err := binding.ToEvent(ctx, cehttp.NewMessage(h.Clone(), io.NopCloser(bytes.NewReader(body))))
		if err != nil {
			t.Fatalf("headers %v body %q: the fast path decodes what the SDK refuses (%v)", h, body, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("headers %v body %q:\n got %#v\nwant %#v", h, body, got, want)
		}
	})
}

// The fast path takes what game clients send, or FuzzDecodeBinary would
// compare the SDK with itself.
func TestTheBinaryFastPathDecodesWhatClientsSend(t *testing.T) {
	h := http.Header{}
	for k, v := range map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "b-1",
		"Ce-Source": "/bench", "Ce-Type": "com.gamemetrics.purchase", "Ce-Subject": "player-1", "Ce-Time": "2026-11-25T10:00:00Z",
		"Ce-Sessionid": "s-1", "Authorization": "Bearer k"} {
		h.Set(k, v)
	}
	if _, ok := fastBinary(h, []byte(`{"item_id":"a"}`)); !ok {
		t.Errorf("the fast path leaves %v to the SDK", h)
	}
}
