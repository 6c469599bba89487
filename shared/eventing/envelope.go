package eventing

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
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
