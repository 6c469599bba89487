package events

import (
	"bytes"
	"encoding/json"
)

// maxDepth is encoding/json's limit on nested arrays and objects: deeper
// documents are not valid to json.Valid, so not to us either.
const maxDepth = 10000

// A memberFunc receives one member of an object by its bounds in the
// document: the key as written is b[k0:k1] (between its quotes), the value
// b[v0:v1], where b[v0-1] is the colon: v0 is before any space that
// precedes the value.
type memberFunc func(k0, k1, v0, v1 int)

// eachMember validates b as json.Valid does and, when it is one JSON object,
// calls visit with each of its members, in order: one pass over the
// document, no allocation. It returns false when b is not valid JSON or
// not an object.
func eachMember(b []byte, visit memberFunc) bool {
	s := scanner{b: b}
	s.space()
	if s.i >= len(b) || b[s.i] != '{' || !s.object(visit) {
		return false
	}
	s.space()
	return s.i == len(b)
}

// eachElement validates b as json.Valid does and, when it is one JSON
// array, calls elem with the bounds of each element, b[e0:e1]; before that,
// for an element that is an object, member with each of its members. It
// returns false when b is not valid JSON or not an array.
func eachElement(b []byte, member memberFunc, elem func(e0, e1 int)) bool {
	s := scanner{b: b}
	s.space()
	if s.i >= len(b) || b[s.i] != '[' || !s.array(member, elem) {
		return false
	}
	s.space()
	return s.i == len(b)
}

// valid is json.Valid by the same scanner, for testing it against
// encoding/json's.
func valid(b []byte) bool {
	s := scanner{b: b}
	s.space()
	if !s.value() {
		return false
	}
	s.space()
	return s.i == len(b)
}

type scanner struct {
	b     []byte
	i     int
	depth int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value() bool {
	if s.i >= len(s.b) {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(nil)
	case c == '[':
		return s.array(nil, nil)
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return false
}

// object scans the object at s.b[s.i] == '{', passing its members to visit
// when it is not nil.
func (s *scanner) object(visit memberFunc) bool {
	if empty, ok := s.open('}'); empty || !ok {
		return ok
	}
	for {
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return false
		}
		k := s.i
		if !s.str() {
			return false
		}
		k1 := s.i - 1
		s.space()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return false
		}
		s.i++
		v := s.i
		s.space()
		if !s.value() {
			return false
		}
		if visit != nil {
			visit(k+1, k1, v, s.i)
		}
		if more, ok := s.next('}'); !more || !ok {
			return ok
		}
	}
}

// array scans the array at s.b[s.i] == '['. With elem, it reports each
// element's bounds, and the members of those that are objects to member.
func (s *scanner) array(member memberFunc, elem func(e0, e1 int)) bool {
	if empty, ok := s.open(']'); empty || !ok {
		return ok
	}
	for {
		e := s.i
		if elem != nil && e < len(s.b) && s.b[e] == '{' {
			if !s.object(member) {
				return false
			}
		} else if !s.value() {
			return false
		}
		if elem != nil {
			elem(e, s.i)
		}
		if more, ok := s.next(']'); !more || !ok {
			return ok
		}
	}
}

// open enters the array or object at s.b[s.i], which ends with end; empty
// means it ended at once.
func (s *scanner) open(end byte) (empty, ok bool) {
	if s.depth++; s.depth > maxDepth {
		return false, false
	}
	s.i++
	s.space()
	if s.i < len(s.b) && s.b[s.i] == end {
		s.i++
		s.depth--
		return true, true
	}
	return false, true
}

// next reads what follows a member or an element: a comma (more follow)
// or end (the array or object is over).
func (s *scanner) next(end byte) (more, ok bool) {
	s.space()
	if s.i >= len(s.b) {
		return false, false
	}
	switch s.b[s.i] {
	case ',':
		s.i++
		s.space()
		return true, true
	case end:
		s.i++
		s.depth--
		return false, true
	}
	return false, false
}

// plainByte marks the bytes a string holds as they are: not the quote,
// not the backslash, not a control character.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str scans the string at s.b[s.i] == '"': control characters must be
// escaped, escapes must be JSON's; other bytes pass as encoding/json lets
// them (it does not check UTF-8 either).
func (s *scanner) str() bool {
	b := s.b
	for i := s.i + 1; i < len(b); i++ {
		for i < len(b) && plainByte[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch b[i] {
		case '"':
			s.i = i + 1
			return true
		case '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					return false
				}
				i += 4
			default:
				return false
			}
		default: // a control character
			return false
		}
	}
	return false
}

// number scans JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	b, i := s.b, s.i
	if b[i] == '-' {
		if i++; i >= len(b) {
			return false
		}
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = digits(b, i)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return false
		}
		i = digits(b, i)
	}
	s.i = i
	return true
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// keyEquals reports whether the key k, as written between its quotes,
// decodes to key.
func keyEquals(k []byte, key string) bool {
	if bytes.IndexByte(k, '\\') < 0 {
		return string(k) == key
	}
	var s string
	quoted := make([]byte, 0, len(k)+2)
	quoted = append(append(append(quoted, '"'), k...), '"')
	return json.Unmarshal(quoted, &s) == nil && s == key
}

// parseInt parses a JSON number token as strconv.ParseInt(string(raw), 10,
// 64) would, without its allocation: false for fractions, exponents and
// values outside int64.
func parseInt(raw []byte) (int64, bool) {
	neg := len(raw) > 0 && raw[0] == '-'
	d := raw
	if neg {
		d = raw[1:]
	}
	if len(d) == 0 || len(d) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range d {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	switch {
	case neg && n <= 1<<63:
		return int64(-n), true
	case !neg && n < 1<<63:
		return int64(n), true
	}
	return 0, false
}
