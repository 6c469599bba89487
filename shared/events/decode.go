package events

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"unsafe"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Structured-mode decoding. Ingest decodes every event of every request, and
// with the SDK's decoder (an iterator per event, each attribute its own
// allocation, then json.Unmarshal again to split batches) decoding cost more
// than anything else ingest does with a batch. The decoder here reads the
// body once: the scan that validates it (as json.Valid does) also collects
// each event's attributes, which become the same event.Event the SDK would
// build. It takes only the shape game clients send (specversion 1.0,
// attributes and extensions as plain strings, JSON data); anything else, or
// anything the SDK would refuse, is decoded by the SDK itself, so the result
// is always the SDK's: the same event, or the same error. FuzzDecodeJSON and
// FuzzDecodeBatch hold it to that.

// DecodeJSON decodes one structured-mode CloudEvent
// (application/cloudevents+json): what event.New() followed by
// UnmarshalJSON(raw) gives, as binding.ToEvent does for a structured
// message. The event shares raw's memory: raw must not change afterwards.
func DecodeJSON(raw []byte) (*event.Event, error) {
	d := decoder{b: raw}
	if eachMember(raw, d.member) {
		if e, ok := d.event(); ok {
			return e, nil
		}
	}
	return sdkDecode(raw)
}

// A BatchElement is one element of a batch of structured-mode CloudEvents.
type BatchElement struct {
	// Raw is the element as sent, as json.RawMessage would hold it.
	Raw []byte
	// decoded is the event when the fast path could build it.
	decoded *event.Event
}

// Event decodes the element: what DecodeJSON(el.Raw) returns.
func (el BatchElement) Event() (*event.Event, error) {
	if el.decoded != nil {
		return el.decoded, nil
	}
	return sdkDecode(el.Raw)
}

// DecodeBatch splits a batch (application/cloudevents-batch+json, a JSON
// array) into its elements, the same ones json.Unmarshal into
// []json.RawMessage finds, with the same error when there is none, and
// decodes their events in the same pass. Elements and events share body's
// memory: body must not change afterwards.
func DecodeBatch(body []byte) ([]BatchElement, error) {
	d := decoder{b: body}
	out := make([]BatchElement, 0, 16)
	ok := eachElement(body, d.member, func(e0, e1 int) {
		el := BatchElement{Raw: body[e0:e1:e1]}
		if body[e0] == '{' {
			el.decoded, _ = d.event()
		}
		d.next()
		out = append(out, el)
	})
	if ok {
		return out, nil
	}
	// What the scanner does not take as an array is an error for
	// encoding/json too, except a null body (no elements): let it say so.
	var raws []json.RawMessage
	if err := json.Unmarshal(body, &raws); err != nil {
		return nil, err
	}
	out = make([]BatchElement, len(raws))
	for i, r := range raws {
		out[i].Raw = r
	}
	return out, nil
}

func sdkDecode(raw []byte) (*event.Event, error) {
	e := event.New()
	if err := e.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return &e, nil
}

// Attributes the fast path reads, as bits of decoder.seen.
const (
	attrSpecVersion = 1 << iota
	attrID
	attrType
	attrSource
	attrSubject
	attrTime
	attrDataContentType
	attrData
)

// maxExtensions is how many extensions the fast path collects; an event
// with more is left to the SDK (16: the six dimensions, sessionid, gameid,
// receivedtime and tracing leave room).
const maxExtensions = 16

// decoder collects one object's members as bounds in b, then builds the
// event. For a batch it is reused for every element.
type decoder struct {
	b []byte
	// str is string(b), made once for the whole body, so that every
	// attribute of every event is a substring of one allocation.
	str string
	// fall means the object has something the fast path does not take.
	fall bool
	seen uint16
	attr [8][2]int // contents of the string attributes, by bit index
	data [2]int
	ext  [maxExtensions][4]int // name, value
	exts int
	// lastSource is the source last parsed: the events of a batch
	// usually share theirs, and url.Parse allocates.
	lastSource    string
	lastSourceURL url.URL
}

// next readies the decoder for the next object.
func (d *decoder) next() {
	d.fall, d.seen, d.exts = false, 0, 0
}

// member takes one member of the object.
func (d *decoder) member(k0, k1, v0, v1 int) {
	if d.fall {
		return
	}
	var bit uint16
	switch string(d.b[k0:k1]) {
	case "specversion":
		bit = attrSpecVersion
		if string(d.b[skipSpace(d.b, v0):v1]) != `"1.0"` {
			d.fall = true
		}
	case "id":
		bit = attrID
	case "type":
		bit = attrType
	case "source":
		bit = attrSource
	case "subject":
		bit = attrSubject
	case "time":
		bit = attrTime
	case "datacontenttype":
		bit = attrDataContentType
	case "data":
		// The SDK keeps the data as its iterator skips it: with any space
		// between the colon and the value.
		bit, d.data = attrData, [2]int{v0, v1}
	case "", "data_base64", "dataschema", "schemaurl", "datacontentencoding":
		// The SDK's iterator ends an object at an empty key; the others
		// are base64 data and attributes no game client sends.
		d.fall = true
		return
	default:
		d.extension(k0, k1, v0, v1)
		return
	}
	if d.seen&bit != 0 {
		d.fall = true // duplicates: the SDK's answer depends on their order
		return
	}
	d.seen |= bit
	if bit != attrSpecVersion && bit != attrData {
		d.attr[bitIndex(bit)] = d.plainString(v0, v1)
	}
}

// extension takes a member that is not an attribute: an extension whose
// name the SDK accepts as it is and whose value is a plain string.
func (d *decoder) extension(k0, k1, v0, v1 int) {
	name := d.b[k0:k1]
	if d.exts == maxExtensions || event.MaxExtensionNameLength > 0 && len(name) > event.MaxExtensionNameLength {
		d.fall = true
		return
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			d.fall = true // upper case (the SDK lowers it, so names may merge) or not a name
			return
		}
	}
	for _, x := range d.ext[:d.exts] {
		if string(d.b[x[0]:x[1]]) == string(name) {
			d.fall = true
			return
		}
	}
	v := d.plainString(v0, v1)
	d.ext[d.exts] = [4]int{k0, k1, v[0], v[1]}
	d.exts++
}

// plainString returns the bounds of the contents of the string value at
// b[v0:v1], which must have no escapes (the SDK's decoder unescapes them;
// such values are left to it).
func (d *decoder) plainString(v0, v1 int) [2]int {
	v0 = skipSpace(d.b, v0)
	if d.b[v0] != '"' || bytes.IndexByte(d.b[v0:v1], '\\') >= 0 {
		d.fall = true
		return [2]int{}
	}
	return [2]int{v0 + 1, v1 - 1}
}

func bitIndex(bit uint16) int {
	i := 0
	for bit > 1 {
		bit >>= 1
		i++
	}
	return i
}

// decoded holds an event and everything its context points to, so the
// fast path allocates them at once.
type decoded struct {
	event   event.Event
	context event.EventContextV1
	subject string
	dct     string
	time    types.Timestamp
}

// event builds the event from the members collected, as the SDK's
// decoder would, or reports that the SDK must decode it.
func (d *decoder) event() (*event.Event, bool) {
	if d.fall || d.seen&attrSpecVersion == 0 {
		return nil, false
	}
	if d.str == "" {
		// The attributes are substrings of the body itself: it is not
		// changed once decoded (DecodeJSON and DecodeBatch say so), as the
		// events' data and the elements' Raw share it anyway, so a copy
		// of it would buy nothing but a second body per request.
		d.str = unsafe.String(unsafe.SliceData(d.b), len(d.b))
	}
	s := func(bit uint16) (string, bool) {
		if d.seen&bit == 0 {
			return "", false
		}
		a := d.attr[bitIndex(bit)]
		return d.str[a[0]:a[1]], true
	}
	h := &decoded{}
	ec := &h.context
	ec.ID, _ = s(attrID)
	ec.Type, _ = s(attrType)
	if src, ok := s(attrSource); ok {
		if src == "" {
			return nil, false // the SDK's error
		}
		if src != d.lastSource {
			u, err := url.Parse(src)
			if err != nil {
				return nil, false
			}
			d.lastSource, d.lastSourceURL = src, *u
		}
		ec.Source = types.URIRef{URL: d.lastSourceURL}
	}
	if sub, _ := s(attrSubject); sub != "" {
		h.subject = sub
		ec.Subject = &h.subject
	}
	if t, _ := s(attrTime); t != "" {
		tt, err := types.ParseTime(t)
		if err != nil {
			return nil, false
		}
		h.time = types.Timestamp{Time: tt}
		ec.Time = &h.time
	}
	if dct, ok := s(attrDataContentType); ok {
		if dct == "" {
			return nil, false // the SDK's result depends on where specversion is
		}
		h.dct = dct
		ec.DataContentType = &h.dct
	}
	if d.seen&attrData != 0 {
		if !sdkJSONMediaType(ec.DataContentType) {
			return nil, false // the SDK wants a JSON string and decodes it
		}
		h.event.DataEncoded = d.b[d.data[0]:d.data[1]:d.data[1]]
	}
	if d.exts > 0 {
		ec.Extensions = make(map[string]any, d.exts)
		for _, x := range d.ext[:d.exts] {
			ec.Extensions[d.str[x[0]:x[1]]] = d.str[x[2]:x[3]]
		}
	}
	h.event.Context = ec
	return &h.event, true
}

// sdkJSONMediaType is the SDK's test of whether data of this
// datacontenttype is kept as JSON (event.GetDataMediaType, then isJSON).
func sdkJSONMediaType(dct *string) bool {
	if dct == nil {
		return true
	}
	mt := *dct
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = strings.TrimSpace(mt[:i])
	}
	switch mt {
	case event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON, "":
		return true
	}
	return false
}
