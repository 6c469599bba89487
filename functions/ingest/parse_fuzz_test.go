package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

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
