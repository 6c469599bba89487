package eventing

import (
	"context"
	"encoding/binary"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// Attributes and extensions of the events a KafkaSource sends.
const (
	kafkaEventType      = "dev.knative.kafka.event"
	extPartition        = "knativekafkapartition"
	extOffset           = "knativekafkaoffset"
	extKey              = "key"
	extPartitionKey     = "partitionkey"
	extHeaderPrefix     = "kafkaheader"
	extErrorDestination = "knativeerrordest"
	extErrorCode        = "knativeerrorcode"
	extErrorData        = "knativeerrordata"
)

// envelope turns Kafka records into the CloudEvents a KafkaSource sends.
type envelope struct {
	// source is /apis/v1/namespaces/<ns>/kafkasources/<name>.
	source string
	// keyType is the key-type label: "", string, int, float or byte-array.
	keyType   string
	overrides map[string]string
}

// event builds the event for rec. A record that already is a CloudEvent
// (binary ce_ headers or structured content type) passes through with
// only the partition, offset and override extensions added; any other
// record becomes a dev.knative.kafka.event.
func (v envelope) event(ctx context.Context, rec *kgo.Record) *event.Event {
	if kafka.IsCloudEvent(rec) {
		if e, err := kafka.Event(ctx, rec); err == nil && e.Validate() == nil {
			v.annotate(e, rec)
			return e
		}
	}
	e := event.New()
	p, o := strconv.Itoa(int(rec.Partition)), strconv.FormatInt(rec.Offset, 10)
	e.SetID("partition:" + p + "/offset:" + o)
	e.SetType(kafkaEventType)
	e.SetSource(v.source + "#" + rec.Topic)
	e.SetSubject("partition:" + p + "#" + o)
	e.SetTime(rec.Timestamp.UTC())
	if len(rec.Key) > 0 {
		k := v.key(rec.Key)
		e.SetExtension(extKey, k)
		e.SetExtension(extPartitionKey, k)
	}
	for _, h := range rec.Headers {
		if strings.EqualFold(h.Key, "content-type") {
			e.SetDataContentType(string(h.Value))
		}
		e.SetExtension(extHeaderPrefix+headerExtension(h.Key), strings.ToValidUTF8(string(h.Value), "\uFFFD"))
	}
	if rec.Value != nil {
		e.DataEncoded = rec.Value
	}
	v.annotate(&e, rec)
	return &e
}

// message is the message for rec: its pass-through binary form when it
// has one, else its event.
func (v envelope) message(ctx context.Context, rec *kgo.Record) *message {
	if w, ok := v.passThrough(rec); ok {
		return &message{wire: w, decode: func() *event.Event { return v.event(ctx, rec) }}
	}
	return eventMessage(v.event(ctx, rec))
}

// wire is an event in HTTP binary content mode, ready to send: the ce-
// and Content-Type headers, and the body.
type wire struct {
	header http.Header
	body   []byte
}

// passThrough builds, for a record that is a binary-mode CloudEvent 1.0
// (the form ingest writes), the headers and body of the HTTP request the
// SDK path would make (event decodes the record and annotates it,
// cehttp.WriteRequest encodes it), straight from the record's headers: a
// delivery then decodes and encodes no event. It only takes records whose
// attributes the SDK would pass on unchanged (or, for time, reformat) and
// reports false for anything else (another spec version, an attribute
// with surrounding spaces, a header twice, a name it would refuse...):
// those take the SDK path. TestPassThroughMakesTheSDKsRequest and
// FuzzPassThroughMakesTheSDKsRequest check the two paths against each
// other.
func (v envelope) passThrough(rec *kgo.Record) (*wire, bool) {
	h := make(http.Header, len(rec.Headers)+2+len(v.overrides))
	var version, id, source, typ bool
	for _, hd := range rec.Headers {
		key, val := hd.Key, string(hd.Value)
		name, isCE := strings.CutPrefix(key, "ce_")
		switch {
		case key == "content-type":
			if trimmed(val) || !validMediaType(val) {
				return nil, false
			}
			if !setOnce(h, "Content-Type", val) {
				return nil, false
			}
			continue
		case !isCE:
			if low := strings.ToLower(key); low != key && (low == "content-type" || strings.HasPrefix(low, "ce_")) {
				return nil, false // the SDK reads it; take its path
			}
			continue // other headers are not part of the event
		case strings.ToLower(name) != name:
			return nil, false
		}
		switch name {
		case "specversion":
			if val != event.CloudEventsVersionV1 {
				return nil, false
			}
			version = true
		case "id", "type", "subject":
			if trimmed(val) {
				return nil, false
			}
			id, typ = id || name == "id", typ || name == "type"
		case "source":
			u, err := url.Parse(val)
			if trimmed(val) || err != nil || u.String() != val {
				return nil, false
			}
			source = true
		case "time":
			t, err := types.ParseTime(val)
			if err != nil || t.IsZero() {
				return nil, false
			}
			val = types.FormatTime(t)
		default:
			if spec.V1.Attribute(name) != nil || !event.IsExtensionNameValid(name) {
				return nil, false // datacontenttype, dataschema, or a name the SDK refuses
			}
		}
		if !setOnce(h, extensionHeader(name), val) {
			return nil, false
		}
	}
	if !version || !id || !source || !typ {
		return nil, false
	}
	// annotate, as the SDK path does it.
	h[extensionHeader(extPartition)] = []string{strconv.Itoa(int(rec.Partition))}
	h[extensionHeader(extOffset)] = []string{strconv.FormatInt(rec.Offset, 10)}
	for name, val := range v.overrides {
		low := strings.ToLower(name)
		if event.IsExtensionNameValid(name) && spec.V1.Attribute(low) == nil {
			h[extensionHeader(low)] = []string{val}
		}
	}
	w := &wire{header: h}
	if len(rec.Value) > 0 {
		w.body = rec.Value
	}
	return w, true
}

// trimmed reports whether the SDK would trim s, or find it empty.
func trimmed(s string) bool { return s == "" || strings.TrimSpace(s) != s }

func validMediaType(s string) bool {
	_, _, err := mime.ParseMediaType(s)
	return err == nil
}

// setOnce sets a header that must not be there already.
func setOnce(h http.Header, key, val string) bool {
	if _, dup := h[key]; dup {
		return false
	}
	h[key] = []string{val}
	return true
}

// extensionHeader is the HTTP header of an attribute or extension, as the
// SDK's HTTP binding names it: "Ce-" and the name with its first letter
// upper-cased.
func extensionHeader(name string) string {
	if h, ok := knownHeaders[name]; ok {
		return h
	}
	if name == "" {
		return "Ce-"
	}
	return "Ce-" + strings.ToUpper(name[:1]) + name[1:]
}

// knownHeaders are the header names of the attributes and extensions
// every event has, made once.
var knownHeaders = map[string]string{
	"specversion": "Ce-Specversion", "id": "Ce-Id", "source": "Ce-Source", "type": "Ce-Type", "subject": "Ce-Subject",
	"time": "Ce-Time", extPartition: "Ce-Knativekafkapartition", extOffset: "Ce-Knativekafkaoffset",
	"gameid": "Ce-Gameid", "receivedtime": "Ce-Receivedtime", "sessionid": "Ce-Sessionid",
}

func (v envelope) annotate(e *event.Event, rec *kgo.Record) {
	e.SetExtension(extPartition, strconv.Itoa(int(rec.Partition)))
	e.SetExtension(extOffset, strconv.FormatInt(rec.Offset, 10))
	for name, val := range v.overrides {
		e.SetExtension(name, val)
	}
}

// headerExtension lower-cases a header name and drops every character
// that is not a letter or digit, as the Kafka data plane does.
func headerExtension(name string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(name) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// key decodes a record key by the source's key-type label. A key that
// does not have the width its type needs is passed on as a string.
func (v envelope) key(k []byte) any {
	switch v.keyType {
	case "int":
		switch len(k) {
		case 4:
			return strconv.FormatInt(int64(int32(binary.BigEndian.Uint32(k))), 10)
		case 8:
			return strconv.FormatInt(int64(binary.BigEndian.Uint64(k)), 10)
		}
	case "float":
		switch len(k) {
		case 4:
			return strconv.FormatFloat(float64(math.Float32frombits(binary.BigEndian.Uint32(k))), 'g', -1, 32)
		case 8:
			return strconv.FormatFloat(math.Float64frombits(binary.BigEndian.Uint64(k)), 'g', -1, 64)
		}
	case "byte-array":
		return append([]byte(nil), k...)
	}
	return strings.ToValidUTF8(string(k), "\uFFFD")
}
