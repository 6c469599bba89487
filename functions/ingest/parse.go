package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Request limits of the ingest contract.
const (
	MaxBodyBytes         = 1 << 20 // as sent
	MaxDecompressedBytes = 4 << 20
	MaxBatchEvents       = 500
)

// Content types of the three CloudEvents HTTP modes.
const (
	contentTypeJSON       = "application/json"
	contentTypeStructured = "application/cloudevents+json"
	contentTypeBatch      = "application/cloudevents-batch+json"
)

// requestError refuses a whole request.
type requestError struct {
	status int
	reason string
	// unread means the refusal came before the body was read to its end.
	unread bool
}

func (e *requestError) Error() string { return e.reason }

func unread(e *requestError) *requestError {
	e.unread = true
	return e
}

// item is one event of a request, parsed or refused.
type item struct {
	event *event.Event
	// raw is the event as sent (the body in binary mode), kept for the
	// rejected-events topic.
	raw    []byte
	reject *events.Rejection
	// tooLarge marks an event over events.MaxEventBytes.
	tooLarge bool
}

// readBody reads at most MaxBodyBytes and, for Content-Encoding gzip, at
// most MaxDecompressedBytes after decompression.
func readBody(r *http.Request) ([]byte, *requestError) {
	if r.ContentLength > MaxBodyBytes {
		return nil, unread(&requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("body is %d bytes; the limit is %d", r.ContentLength, MaxBodyBytes)})
	}
	body, err := readAll(r.Body, r.ContentLength)
	if err != nil {
		return nil, &requestError{status: http.StatusBadRequest, reason: "reading body: " + err.Error()}
	}
	if len(body) > MaxBodyBytes {
		return nil, unread(&requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("body is over %d bytes", MaxBodyBytes)})
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, nil
	case "gzip":
		return gunzip(body)
	default:
		return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("Content-Encoding %q is not supported; use gzip or none", enc)}
	}
}

// readAll reads at most MaxBodyBytes+1 bytes of a body, into one buffer of
// the declared length when there is one (io.ReadAll would grow it from 512
// bytes, copying a batch several times).
func readAll(body io.Reader, declared int64) ([]byte, error) {
	if declared < 0 || declared > MaxBodyBytes {
		return io.ReadAll(io.LimitReader(body, MaxBodyBytes+1))
	}
	// One byte more than declared, to see the end without another read.
	buf := make([]byte, 0, declared+1)
	for {
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
		if len(buf) == cap(buf) { // more than declared: net/http refuses that
			rest, err := io.ReadAll(io.LimitReader(body, MaxBodyBytes+1-int64(len(buf))))
			return append(buf, rest...), err
		}
	}
}

func gunzip(body []byte) ([]byte, *requestError) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, &requestError{status: http.StatusBadRequest, reason: "body is not valid gzip: " + err.Error()}
	}
	out, err := io.ReadAll(io.LimitReader(zr, MaxDecompressedBytes+1))
	if err != nil {
		return nil, &requestError{status: http.StatusBadRequest, reason: "body is not valid gzip: " + err.Error()}
	}
	if len(out) > MaxDecompressedBytes {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("body decompresses to over %d bytes", MaxDecompressedBytes)}
	}
	return out, nil
}

// parseEvents splits a request body into events according to its mode:
// binary (ce-* headers), structured, or batch. Whole-request problems are a
// *requestError; problems with one event are recorded on its item.
func parseEvents(ctx context.Context, h http.Header, body []byte) ([]item, *requestError) {
	mt := ""
	if ct := h.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("Content-Type %q cannot be parsed", ct)}
		}
	}
	switch {
	case mt == contentTypeBatch:
		return parseBatch(body)
	case mt == contentTypeStructured:
		it := parseStructured(body)
		return []item{it}, nil
	case h.Get("Ce-Specversion") != "":
		if mt != contentTypeJSON {
			return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf("binary-mode events must have Content-Type %s, got %q", contentTypeJSON, mt)}
		}
		return []item{parseBinary(ctx, h, body)}, nil
	default:
		return nil, &requestError{status: http.StatusUnsupportedMediaType, reason: fmt.Sprintf(
			"Content-Type %q is not a CloudEvents mode: send %s with ce-* headers, %s, or %s", mt, contentTypeJSON, contentTypeStructured, contentTypeBatch)}
	}
}

func parseBinary(ctx context.Context, h http.Header, body []byte) item {
	it := item{raw: body}
	if len(body) > events.MaxEventBytes {
		it.tooLarge = true
		it.reject = tooLarge(len(body))
		return it
	}
	if _, ok := h[cePrefix]; ok {
		// The SDK panics on it (an extension with no name).
		it.reject = &events.Rejection{Field: "event", Reason: "not a valid CloudEvent: header Ce- names no attribute"}
		return it
	}
	it.decoded(decodeBinary(ctx, h, body))
	return it
}

const cePrefix = "Ce-"

// decodeBinary decodes a binary-mode event: what binding.ToEvent gives for
// cehttp.NewMessage(h, body), the same event or the same error. The SDK's
// generic binding (a message, a writer, a map lookup and an interface
// conversion per header) was the largest part of ingest's own cost for a
// single event, so the shape game clients send (specversion 1.0, canonical
// header names) is decoded here by calling the same setters of the same
// context the SDK's binding calls; anything else goes to the SDK.
// FuzzDecodeBinary holds the two to the same results.
func decodeBinary(ctx context.Context, h http.Header, body []byte) (*event.Event, error) {
	if e, ok := fastBinary(h, body); ok {
		return e, nil
	}
	return binding.ToEvent(ctx, cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body))))
}

// binaryEvent is an event and its context in one allocation.
type binaryEvent struct {
	event   event.Event
	context event.EventContextV1
}

func fastBinary(h http.Header, body []byte) (*event.Event, bool) {
	if sv := h["Ce-Specversion"]; len(sv) == 0 || sv[0] != event.CloudEventsVersionV1 {
		return nil, false
	}
	x := &binaryEvent{}
	ec := &x.context
	for k, v := range h {
		if len(v) == 0 {
			return nil, false
		}
		var err error
		switch k {
		case "Ce-Specversion":
		case "Ce-Id":
			err = ec.SetID(v[0])
		case "Ce-Source":
			err = ec.SetSource(v[0])
		case "Ce-Type":
			err = ec.SetType(v[0])
		case "Ce-Subject":
			err = ec.SetSubject(v[0])
		case "Ce-Dataschema":
			err = ec.SetDataSchema(v[0])
		case "Content-Type":
			err = ec.SetDataContentType(v[0])
		case "Ce-Time":
			var t time.Time
			if t, err = time.Parse(time.RFC3339Nano, v[0]); err == nil { // types.ToTime
				err = ec.SetTime(t)
			}
		default:
			if !strings.HasPrefix(k, cePrefix) {
				continue
			}
			// The SDK names an extension by the header with the prefix
			// cut and the first letter lowered; other spellings of a
			// header name could meet under one extension name, in an
			// order the SDK leaves to map iteration.
			if len(k) == len(cePrefix) || k[len(cePrefix)] >= 0x80 || textproto.CanonicalMIMEHeaderKey(k) != k {
				return nil, false
			}
			err = ec.SetExtension(strings.ToLower(k[len(cePrefix):len(cePrefix)+1])+k[len(cePrefix)+1:], v[0])
		}
		if err != nil {
			return nil, false // the SDK's error
		}
	}
	if len(body) > 0 {
		x.event.DataEncoded = body
	}
	x.event.Context = ec
	return &x.event, true
}

func parseStructured(raw []byte) item {
	it := item{raw: raw}
	if len(raw) > events.MaxEventBytes {
		it.tooLarge = true
		it.reject = tooLarge(len(raw))
		return it
	}
	e, err := events.DecodeJSON(raw)
	it.decoded(e, err)
	return it
}

// decoded records the outcome of decoding the item's event.
func (it *item) decoded(e *event.Event, err error) {
	if err != nil {
		it.reject = &events.Rejection{Field: "event", Reason: "not a valid CloudEvent: " + strings.TrimSpace(err.Error())}
		return
	}
	it.event = e
}

func parseBatch(body []byte) ([]item, *requestError) {
	els, err := events.DecodeBatch(body)
	if err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return nil, &requestError{status: http.StatusBadRequest, reason: "a batch must be a JSON array of CloudEvents"}
		}
		return nil, &requestError{status: http.StatusBadRequest, reason: "body is not valid JSON: " + err.Error()}
	}
	if len(els) > MaxBatchEvents {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge, reason: fmt.Sprintf("batch has %d events; the limit is %d", len(els), MaxBatchEvents)}
	}
	if len(els) == 0 {
		return nil, &requestError{status: http.StatusBadRequest, reason: "batch is empty"}
	}
	items := make([]item, len(els))
	for i, el := range els {
		it := &items[i]
		it.raw = el.Raw
		if len(el.Raw) > events.MaxEventBytes {
			it.tooLarge = true
			it.reject = tooLarge(len(el.Raw))
			continue
		}
		it.decoded(el.Event())
	}
	return items, nil
}

func tooLarge(n int) *events.Rejection {
	return &events.Rejection{Field: "event", Reason: fmt.Sprintf("event is %d bytes; the limit is %d", n, events.MaxEventBytes)}
}
