package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names of the CloudEvents Kafka protocol binding (binary mode).
const (
	headerPrefix      = "ce_"
	headerContentType = "content-type"
)

// Stamp is an extension attribute set on a record in place of any the
// event carries under the same name (ingest stamps gameid and receivedtime),
// its value already in canonical string form (types.Format).
type Stamp struct{ Name, Value string }

// Record encodes e as a Kafka record in binary content mode: every
// attribute and extension becomes a "ce_" header, datacontenttype becomes
// "content-type", and the value is the event data as is. Stamps are added
// as extensions, replacing the event's own of the same name.
func Record(ctx context.Context, e *event.Event, topic, key string, stamps ...Stamp) (*kgo.Record, error) {
	var enc Encoder
	return enc.Record(ctx, e, topic, key, stamps...)
}

// An Encoder encodes events as records, as Record does. It runs once per
// accepted event, so it writes the headers directly rather than through the
// SDK's generic binding writer, and it allocates records, their headers and
// their bytes in blocks shared by every record it encodes: use one per
// request (the zero value is ready), not one per event. Not safe for
// concurrent use.
type Encoder struct {
	records []encoded
	buf     []byte
	// The last source formatted: a batch's events share theirs, and
	// formatting a URL allocates.
	source    url.URL
	sourceStr string
}

// encoded is a record with room for the headers a GameMetrics event has:
// seven attributes, sessionid, gameid and receivedtime (more go to the heap).
type encoded struct {
	rec     kgo.Record
	headers [10]kgo.RecordHeader
}

// Grow makes room for n more records in one allocation.
func (enc *Encoder) Grow(n int) {
	if len(enc.records) < n {
		enc.records = make([]encoded, n)
	}
}

// alloc returns n bytes of the current block, starting a new one when it
// is full: big enough for the records still to come if they are like this
// one, up to 16 KiB.
func (enc *Encoder) alloc(n int) []byte {
	if cap(enc.buf)-len(enc.buf) < n {
		enc.buf = make([]byte, 0, max(n, min(n*(len(enc.records)+1), 16<<10)))
	}
	start := len(enc.buf)
	enc.buf = enc.buf[:start+n]
	return enc.buf[start : start+n : start+n]
}

// Record encodes e like the package's Record.
func (enc *Encoder) Record(ctx context.Context, e *event.Event, topic, key string, stamps ...Stamp) (*kgo.Record, error) {
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return nil, fmt.Errorf("encode event %q: specversion %q is not 1.0", e.ID(), e.SpecVersion())
	}
	// The V1 context's own map, not e.Extensions(), which copies it.
	var exts map[string]any
	var source string
	switch ec := e.Context.(type) {
	case *event.EventContextV1:
		exts = ec.Extensions
		if ec.Source.URL != enc.source || enc.sourceStr == "" {
			enc.source, enc.sourceStr = ec.Source.URL, ec.Source.String()
		}
		source = enc.sourceStr
	default:
		exts, source = e.Extensions(), e.Source()
	}
	t := e.Time()
	// Size the bytes first, so key and values share one slice of a block.
	size := len(key) + len(event.CloudEventsVersionV1) + len(e.ID()) + len(source) + len(e.Type()) + len(e.Subject()) +
		len(e.DataSchema()) + len(e.DataContentType()) + len(time.RFC3339Nano) + 8
	for name, v := range exts {
		if stamped(stamps, name) {
			continue
		}
		s, err := types.Format(v)
		if err != nil {
			return nil, fmt.Errorf("encode event %q: extension %s: %w", e.ID(), name, err)
		}
		size += len(s)
	}
	for _, st := range stamps {
		size += len(st.Value)
	}
	buf := enc.alloc(size)[:0]
	if len(enc.records) == 0 {
		enc.records = make([]encoded, 1)
	}
	x := &enc.records[0]
	enc.records = enc.records[1:]
	rec := &x.rec
	h := x.headers[:0]
	buf = append(buf, key...)
	rec.Topic, rec.Key, rec.Value = topic, buf[:len(key):len(key)], e.Data()
	add := func(name, value string) {
		if value != "" {
			start := len(buf)
			buf = append(buf, value...)
			h = append(h, kgo.RecordHeader{Key: name, Value: buf[start:len(buf):len(buf)]})
		}
	}
	add(headerPrefix+"specversion", event.CloudEventsVersionV1)
	add(headerPrefix+"id", e.ID())
	add(headerPrefix+"source", source)
	add(headerPrefix+"type", e.Type())
	add(headerPrefix+"subject", e.Subject())
	if !t.IsZero() {
		start := len(buf)
		buf = t.UTC().AppendFormat(buf, time.RFC3339Nano) // types.FormatTime
		h = append(h, kgo.RecordHeader{Key: headerPrefix + "time", Value: buf[start:len(buf):len(buf)]})
	}
	add(headerPrefix+"dataschema", e.DataSchema())
	add(headerContentType, e.DataContentType())
	for name, v := range exts {
		if !stamped(stamps, name) {
			s, _ := types.Format(v)
			add(extensionHeader(name), s)
		}
	}
	for _, st := range stamps {
		add(extensionHeader(st.Name), st.Value)
	}
	rec.Headers = h
	return rec, nil
}

func stamped(stamps []Stamp, name string) bool {
	for _, st := range stamps {
		if st.Name == name {
			return true
		}
	}
	return false
}

// extensionHeader is the header name of an extension; the ones every
// GameMetrics record carries are constants, so they cost no allocation.
func extensionHeader(name string) string {
	switch name {
	case "gameid":
		return headerPrefix + "gameid"
	case "receivedtime":
		return headerPrefix + "receivedtime"
	case "sessionid":
		return headerPrefix + "sessionid"
	}
	return headerPrefix + name
}

// ErrNotCloudEvent means a record carries neither binary-mode ce_ headers
// nor a structured-mode content type.
var ErrNotCloudEvent = errors.New("record is not a CloudEvent")

// Event decodes a record written in binary or structured content mode.
func Event(ctx context.Context, r *kgo.Record) (*event.Event, error) {
	m := recordMessage{r}
	if m.ReadEncoding() == binding.EncodingUnknown {
		return nil, ErrNotCloudEvent
	}
	return binding.ToEvent(ctx, m)
}

// IsCloudEvent reports whether a record is a CloudEvent in either mode.
func IsCloudEvent(r *kgo.Record) bool {
	return recordMessage{r}.ReadEncoding() != binding.EncodingUnknown
}

// recordMessage is a binding.MessageReader over a kgo.Record.
type recordMessage struct{ rec *kgo.Record }

func (m recordMessage) header(name string) (string, bool) {
	for _, h := range m.rec.Headers {
		if strings.EqualFold(h.Key, name) {
			return string(h.Value), true
		}
	}
	return "", false
}

func (m recordMessage) ReadEncoding() binding.Encoding {
	if _, ok := m.header(headerPrefix + "specversion"); ok {
		return binding.EncodingBinary
	}
	if ct, ok := m.header(headerContentType); ok && format.Lookup(ct) != nil {
		return binding.EncodingStructured
	}
	return binding.EncodingUnknown
}

func (m recordMessage) ReadStructured(ctx context.Context, w binding.StructuredWriter) error {
	ct, _ := m.header(headerContentType)
	f := format.Lookup(ct)
	if f == nil {
		return binding.ErrNotStructured
	}
	return w.SetStructuredEvent(ctx, f, bytes.NewReader(m.rec.Value))
}

func (m recordMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	sv, ok := m.header(headerPrefix + "specversion")
	if !ok {
		return binding.ErrNotBinary
	}
	version := spec.VS.Version(sv)
	if version == nil {
		return fmt.Errorf("unknown specversion %q", sv)
	}
	if err := w.Start(ctx); err != nil {
		return err
	}
	for _, h := range m.rec.Headers {
		key := strings.ToLower(h.Key)
		switch {
		case key == headerContentType:
			if err := w.SetAttribute(version.AttributeFromKind(spec.DataContentType), string(h.Value)); err != nil {
				return err
			}
		case strings.HasPrefix(key, headerPrefix):
			name := key[len(headerPrefix):]
			if a := version.Attribute(name); a != nil {
				if err := w.SetAttribute(a, string(h.Value)); err != nil {
					return err
				}
			} else if err := w.SetExtension(name, string(h.Value)); err != nil {
				return err
			}
		}
	}
	if m.rec.Value != nil {
		if err := w.SetData(bytes.NewReader(m.rec.Value)); err != nil {
			return err
		}
	}
	return w.End(ctx)
}

func (m recordMessage) Finish(error) error { return nil }

// GetAttribute implements binding.MessageMetadataReader.
func (m recordMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	sv, ok := m.header(headerPrefix + "specversion")
	if !ok {
		return nil, nil
	}
	version := spec.VS.Version(sv)
	if version == nil {
		return nil, nil
	}
	a := version.AttributeFromKind(k)
	if a == nil {
		return nil, nil
	}
	name := headerPrefix + a.Name()
	if k == spec.DataContentType {
		name = headerContentType
	}
	if v, ok := m.header(name); ok {
		return a, v
	}
	return a, nil
}

// GetExtension implements binding.MessageMetadataReader.
func (m recordMessage) GetExtension(name string) any {
	if v, ok := m.header(headerPrefix + name); ok {
		return v
	}
	return nil
}
