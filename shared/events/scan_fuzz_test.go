package events

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzMember checks the allocation-free object scan against encoding/json:
// for any valid JSON object, every key encoding/json sees is found with the
// same raw value (the last of duplicates), and absent keys are not found.
func FuzzMember(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, ` { "a" : "x\"y" , "b":[1,{"c":"}"}],"a":null } `, `{"k\u0065y":true,"n":-1.5e3}`,
		`{"platform":"ios","app_version":"1.0","nested":{"platform":"web"}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		data = bytes.TrimSpace(data)
		if !json.Valid(data) || len(data) == 0 || data[0] != '{' {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("valid object does not decode: %v", err)
		}
		for k, want := range m {
			// Catalogue field names are ASCII; encoding/json rewrites invalid
			// UTF-8 in keys to U+FFFD, which no ASCII name can equal.
			if !isASCII(k) {
				continue
			}
			got, ok := member(data, k)
			if !ok {
				t.Fatalf("key %q not found in %s", k, data)
			}
			var a, b bytes.Buffer
			json.Compact(&a, got)
			json.Compact(&b, want)
			if a.String() != b.String() {
				t.Fatalf("key %q: got %s, want %s", k, got, want)
			}
		}
		if _, ok := member(data, "\x00absent-key\x00"); ok {
			if _, in := m["\x00absent-key\x00"]; !in {
				t.Fatalf("found a key that is not there in %s", data)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
