package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Time window an event's time must fall in, relative to the server clock.
const (
	MaxEventAge    = 30 * 24 * time.Hour
	MaxClockAhead  = time.Hour
	specVersion1_0 = "1.0"
)

// Rejection says why an event was refused, naming the attribute or data
// field at fault so a game developer can fix the client.
type Rejection struct {
	Field  string // "id", "time", "data.amount_minor", ...
	Reason string
}

func (r *Rejection) Error() string { return r.Field + ": " + r.Reason }

func reject(field, format string, args ...any) *Rejection {
	return &Rejection{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validator checks events against the catalogue. Build one with NewValidator
// and share it: it is read-only after construction and safe for concurrent use.
type Validator struct {
	specs      map[string]Spec
	currencies *currencySet
}

// NewValidator returns a Validator for the catalogue.
func NewValidator() *Validator {
	specs := Catalogue()
	for _, s := range specs {
		if len(s.fields) > maxFields {
			panic("events: " + s.Type + " has more data fields than the validator scans for")
		}
	}
	return &Validator{specs: specs, currencies: newCurrencySet()}
}

// maxFields bounds the data fields of one catalogue type, so their values
// can be collected in one pass into an array on the stack.
const maxFields = 8

// Spec returns the catalogue entry for a type.
func (v *Validator) Spec(typ string) (Spec, bool) {
	s, ok := v.specs[typ]
	return s, ok
}

// Validate checks one event as a game client sent it, with now as the
// server's clock. It returns nil or a *Rejection.
func (v *Validator) Validate(e *event.Event, now time.Time) *Rejection {
	return v.validate(e, now, true)
}

// ValidateStored checks an event read back from Kafka or an archive: the
// same rules as Validate except the time window, since a stored event may
// be processed or restored long after it was accepted.
func (v *Validator) ValidateStored(e *event.Event) *Rejection {
	return v.validate(e, time.Time{}, false)
}

func (v *Validator) validate(e *event.Event, now time.Time, window bool) *Rejection {
	if e.SpecVersion() != specVersion1_0 {
		return reject("specversion", "must be 1.0, got %q", e.SpecVersion())
	}
	if id := e.ID(); id == "" || len(id) > MaxIDLen {
		return reject("id", "must be 1–%d characters, got %d", MaxIDLen, len(id))
	}
	if !hasSource(e) {
		return reject("source", "is required")
	}
	spec, ok := v.specs[e.Type()]
	if !ok {
		return reject("type", "%q is not in the event catalogue", e.Type())
	}
	if s := e.Subject(); s == "" || len(s) > MaxSubjectLen {
		return reject("subject", "must be the player id, 1–%d characters, got %d", MaxSubjectLen, len(s))
	}
	t := e.Time()
	switch {
	case t.IsZero():
		return reject("time", "is required (RFC 3339)")
	case !window:
	case t.Before(now.Add(-MaxEventAge)):
		return reject("time", "%s is more than 30 days old", t.UTC().Format(time.RFC3339))
	case t.After(now.Add(MaxClockAhead)):
		return reject("time", "%s is more than 1 hour ahead of server time", t.UTC().Format(time.RFC3339))
	}
	if spec.SessionScoped {
		sid, _ := extension(e, ExtSessionID).(string)
		if sid == "" || len(sid) > MaxIDLen {
			return reject(ExtSessionID, "extension is required on %s (1–%d characters)", spec.Type, MaxIDLen)
		}
	}
	if rej := checkDims(e); rej != nil {
		return rej
	}
	if ct := e.DataContentType(); ct != "" && !isJSON(ct) {
		return reject("datacontenttype", "must be application/json, got %q", ct)
	}
	return v.validateData(spec, e.Data())
}

// hasSource is e.Source() != "" without formatting the URL for the common
// sources, whose scheme, host or path alone make it non-empty.
func hasSource(e *event.Event) bool {
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		if u := &ec.Source.URL; u.Scheme != "" || u.Opaque != "" || u.Host != "" || u.Path != "" {
			return true
		}
	}
	return e.Source() != ""
}

// extension reads one extension without e.Extensions(), which copies the
// whole map on every call.
func extension(e *event.Event, name string) any {
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		return ec.Extensions[name]
	}
	return e.Extensions()[name]
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || mt == "text/json"
}

// validateData checks the event data against the type's fields. It runs for
// every event of every request, so it reads the document once: one scan
// both validates it (as json.Valid would) and collects the values of the
// catalogue's fields, which are then checked in catalogue order. Nothing is
// decoded into maps and nothing is allocated unless the event is refused.
func (v *Validator) validateData(spec Spec, data []byte) *Rejection {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		if len(spec.fields) == 0 {
			return nil
		}
		data = []byte("{}") // report the first missing required field
	}
	var values [maxFields][]byte
	fields := spec.fields
	ok := data[0] == '{' && eachMember(data, func(k0, k1, v0, v1 int) {
		key := data[k0:k1]
		escaped := bytes.IndexByte(key, '\\') >= 0
		for i := range fields {
			if !escaped && string(key) == fields[i].name || escaped && keyEquals(key, fields[i].name) {
				// As with encoding/json, the last of duplicates wins.
				values[i] = data[skipSpace(data, v0):v1]
			}
		}
	})
	if !ok {
		return reject("data", "must be a JSON object")
	}
	for i, f := range fields {
		raw := values[i]
		if raw == nil || string(raw) == "null" {
			if f.optional {
				continue
			}
			return reject("data."+f.name, "is required")
		}
		if r := v.checkField(f, raw); r != nil {
			return r
		}
	}
	return nil
}

func (v *Validator) checkField(f field, raw []byte) *Rejection {
	switch f.kind {
	case kindString, kindEnum, kindCountry, kindCurrency, kindLevel, kindDesignEvent, kindMessage:
		if raw[0] != '"' {
			return reject("data."+f.name, "must be a string")
		}
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return reject("data."+f.name, "must be a string")
			}
			s = []byte(str)
		}
		return v.checkString(f, s)
	case kindPositiveInt, kindNonNegativeInt:
		n, ok := parseInt(raw)
		if !ok {
			return reject("data."+f.name, "must be an integer, got %s", clip(raw))
		}
		if f.kind == kindPositiveInt && n <= 0 {
			return reject("data."+f.name, "must be > 0, got %d", n)
		}
		if n < 0 {
			return reject("data."+f.name, "must be >= 0, got %d", n)
		}
	case kindNumber, kindNonNegativeNum, kindPositiveNum:
		// A valid JSON token starting with '-' or a digit is a JSON number,
		// whose grammar strconv accepts.
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return reject("data."+f.name, "must be a number, got %s", clip(raw))
		}
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return reject("data."+f.name, "must be a number, got %s", clip(raw))
		}
		if f.kind == kindPositiveNum && !(x > 0) {
			return reject("data."+f.name, "must be > 0, got %v", x)
		}
		if f.kind == kindNonNegativeNum && !(x >= 0) {
			return reject("data."+f.name, "must be >= 0, got %v", x)
		}
	}
	return nil
}

func (v *Validator) checkString(f field, s []byte) *Rejection {
	switch f.kind {
	case kindString:
		if len(s) == 0 || utf8.RuneCount(s) > MaxStringLen {
			return reject("data."+f.name, "must be 1–%d characters", MaxStringLen)
		}
	case kindMessage:
		if len(s) > MaxMessageLen {
			return reject("data."+f.name, "must be at most %d bytes, got %d", MaxMessageLen, len(s))
		}
	case kindEnum:
		for _, ok := range f.enum {
			if string(s) == ok {
				return nil
			}
		}
		return reject("data."+f.name, "must be one of %s, got %q", strings.Join(f.enum, "|"), clip(s))
	case kindCountry:
		if len(s) != 2 || !isUpper(s) {
			return reject("data."+f.name, "must be an ISO 3166-1 alpha-2 code such as \"US\", got %q", clip(s))
		}
	case kindCurrency:
		if !v.currencies.has(s) {
			return reject("data."+f.name, "must be an ISO 4217 code such as \"USD\", got %q", clip(s))
		}
	case kindLevel:
		return checkParts(f, s, '/', 3, "world/stage/level")
	case kindDesignEvent:
		return checkParts(f, s, ':', 5, "category:action:label")
	}
	return nil
}

// checkParts checks s as strings.Split(s, sep) would be checked: at most
// max parts, each non-empty and at most MaxPartLen characters.
func checkParts(f field, s []byte, sep byte, max int, example string) *Rejection {
	if n := bytes.Count(s, []byte{sep}) + 1; n > max {
		return reject("data."+f.name, "must have 1–%d parts joined by %q (e.g. %q), got %d", max, string(sep), example, n)
	}
	for {
		part, rest, more := bytes.Cut(s, []byte{sep})
		if len(part) == 0 || utf8.RuneCount(part) > MaxPartLen {
			return reject("data."+f.name, "must have 1–%d non-empty parts of at most %d characters joined by %q (e.g. %q)", max, MaxPartLen, string(sep), example)
		}
		if !more {
			return nil
		}
		s = rest
	}
}

func isUpper(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func clip(raw []byte) string {
	if len(raw) > 40 {
		return string(raw[:40]) + "…"
	}
	return string(raw)
}
