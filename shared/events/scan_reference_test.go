package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The data validation as it was before the one-pass scanner: json.Valid,
// then one scan of the object per catalogue field. Kept as the reference
// the validator is fuzzed against (FuzzValidateData).

// member returns the raw value of key in the JSON object obj, which must
// already be known to be valid JSON starting with '{'. As with
// encoding/json, the last of duplicate keys wins.
func member(obj []byte, key string) (raw []byte, found bool) {
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] != '}' {
		kend := endOfString(obj, i)
		k := obj[i+1 : kend-1]
		i = skipSpace(obj, kend) + 1 // past ':'
		i = skipSpace(obj, i)
		vend := endOfValue(obj, i)
		if keyEquals(k, key) {
			raw, found = obj[i:vend], true
		}
		i = skipSpace(obj, vend)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return raw, found
}

// endOfString returns the index just past the string starting at b[i] == '"'.
func endOfString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// endOfValue returns the index just past the value starting at b[i].
func endOfValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = endOfString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return len(b)
	}
}

func refCurrencies() map[string]struct{} {
	m := map[string]struct{}{}
	for _, c := range strings.Fields(iso4217) {
		m[c] = struct{}{}
	}
	return m
}

func refClip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func refValidateData(spec Spec, data []byte) *Rejection {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		if len(spec.fields) == 0 {
			return nil
		}
		data = []byte("{}") // report the first missing required field
	}
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
		if r := refCheckField(f, raw); r != nil {
			return r
		}
	}
	return nil
}

func refCheckField(f field, raw json.RawMessage) *Rejection {
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
		return refCheckString(f, name, s)
	case kindPositiveInt, kindNonNegativeInt:
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return reject(name, "must be an integer, got %s", refClip(string(raw)))
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
			return reject(name, "must be a number, got %s", refClip(string(raw)))
		}
		x, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return reject(name, "must be a number, got %s", refClip(string(raw)))
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

func refCheckString(f field, name, s string) *Rejection {
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
		return reject(name, "must be one of %s, got %q", strings.Join(f.enum, "|"), refClip(s))
	case kindCountry:
		if len(s) != 2 || !isUpper([]byte(s)) {
			return reject(name, "must be an ISO 3166-1 alpha-2 code such as \"US\", got %q", refClip(s))
		}
	case kindCurrency:
		if _, ok := refCurrencySet()[s]; !ok {
			return reject(name, "must be an ISO 4217 code such as \"USD\", got %q", refClip(s))
		}
	case kindLevel:
		return refCheckParts(name, s, "/", 3, "world/stage/level")
	case kindDesignEvent:
		return refCheckParts(name, s, ":", 5, "category:action:label")
	}
	return nil
}

func refCheckParts(name, s, sep string, max int, example string) *Rejection {
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
