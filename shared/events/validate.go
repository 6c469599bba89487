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
	currencies map[string]struct{}
}

// NewValidator returns a Validator for the catalogue.
func NewValidator() *Validator {
	return &Validator{specs: Catalogue(), currencies: currencySet()}
}

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
	if e.Source() == "" {
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
		sid, _ := e.Extensions()[ExtSessionID].(string)
		if sid == "" || len(sid) > MaxIDLen {
			return reject(ExtSessionID, "extension is required on %s (1–%d characters)", spec.Type, MaxIDLen)
		}
	}
	if ct := e.DataContentType(); ct != "" && !isJSON(ct) {
		return reject("datacontenttype", "must be application/json, got %q", ct)
	}
	return v.validateData(spec, e.Data())
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || mt == "text/json"
}

func (v *Validator) validateData(spec Spec, data []byte) *Rejection {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		if len(spec.fields) == 0 {
			return nil
		}
		data = []byte("{}") // report the first missing required field
	}
	// A hot path (every event of every request): check the document once,
	// then find the catalogue fields with a scan that allocates nothing,
	// instead of decoding the object into a map.
	if !json.Valid(data) || data[0] != '{' {
		return reject("data", "must be a JSON object")
	}
	for _, f := range spec.fields {
		raw, ok := member(data, f.name)
		if !ok || string(raw) == "null" {
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

func (v *Validator) checkField(f field, raw json.RawMessage) *Rejection {
	name := "data." + f.name
	switch f.kind {
	case kindString, kindEnum, kindCountry, kindCurrency, kindLevel, kindDesignEvent, kindMessage:
		if raw[0] != '"' {
			return reject(name, "must be a string")
		}
		s := string(raw[1 : len(raw)-1])
		if bytes.IndexByte(raw, '\\') >= 0 {
			if err := json.Unmarshal(raw, &s); err != nil {
				return reject(name, "must be a string")
			}
		}
		return v.checkString(f, name, s)
	case kindPositiveInt, kindNonNegativeInt:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return reject(name, "must be an integer, got %s", clip(raw))
		}
		if f.kind == kindPositiveInt && n <= 0 {
			return reject(name, "must be > 0, got %d", n)
		}
		if n < 0 {
			return reject(name, "must be >= 0, got %d", n)
		}
	case kindNumber, kindNonNegativeNum, kindPositiveNum:
		// A valid JSON token starting with '-' or a digit is a JSON number,
		// whose grammar strconv accepts.
		if c := raw[0]; c != '-' && (c < '0' || c > '9') {
			return reject(name, "must be a number, got %s", clip(raw))
		}
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return reject(name, "must be a number, got %s", clip(raw))
		}
		if f.kind == kindPositiveNum && !(x > 0) {
			return reject(name, "must be > 0, got %v", x)
		}
		if f.kind == kindNonNegativeNum && !(x >= 0) {
			return reject(name, "must be >= 0, got %v", x)
		}
	}
	return nil
}

func (v *Validator) checkString(f field, name, s string) *Rejection {
	switch f.kind {
	case kindString:
		if s == "" || utf8.RuneCountInString(s) > MaxStringLen {
			return reject(name, "must be 1–%d characters", MaxStringLen)
		}
	case kindMessage:
		if len(s) > MaxMessageLen {
			return reject(name, "must be at most %d bytes, got %d", MaxMessageLen, len(s))
		}
	case kindEnum:
		for _, ok := range f.enum {
			if s == ok {
				return nil
			}
		}
		return reject(name, "must be one of %s, got %q", strings.Join(f.enum, "|"), clipString(s))
	case kindCountry:
		if len(s) != 2 || !isUpper(s) {
			return reject(name, "must be an ISO 3166-1 alpha-2 code such as \"US\", got %q", clipString(s))
		}
	case kindCurrency:
		if _, ok := v.currencies[s]; !ok {
			return reject(name, "must be an ISO 4217 code such as \"USD\", got %q", clipString(s))
		}
	case kindLevel:
		return checkParts(name, s, "/", 3, "world/stage/level")
	case kindDesignEvent:
		return checkParts(name, s, ":", 5, "category:action:label")
	}
	return nil
}

func checkParts(name, s, sep string, max int, example string) *Rejection {
	parts := strings.Split(s, sep)
	if len(parts) > max {
		return reject(name, "must have 1–%d parts joined by %q (e.g. %q), got %d", max, sep, example, len(parts))
	}
	for _, p := range parts {
		if p == "" || utf8.RuneCountInString(p) > MaxPartLen {
			return reject(name, "must have 1–%d non-empty parts of at most %d characters joined by %q (e.g. %q)", max, MaxPartLen, sep, example)
		}
	}
	return nil
}

func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func clip(raw []byte) string { return clipString(string(raw)) }

func clipString(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
