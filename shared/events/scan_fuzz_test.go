package events

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

// FuzzScan checks the one-pass scanner against encoding/json: it accepts
// exactly the documents json.Valid accepts, and for a valid object it
// reports every member encoding/json sees, with the same raw value (the
// last of duplicates).
func FuzzScan(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, ` { "a" : "x\"y" , "b":[1,{"c":"}"}],"a":null } `, `{"k\u0065y":true,"n":-1.5e3}`,
		`{"platform":"ios","app_version":"1.0","nested":{"platform":"web"}}`, `[1,2.5e-3,"\ud83d\ude00",false,null]`,
		`{"a":01}`, `{"a":1.}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}", `{"a":tru}`, `{"a":1,}`, `[` + strings.Repeat(`[`, 10001),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := valid(data), json.Valid(data); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid = %v", data, got, want)
		}
		got := map[string][]byte{}
		isObject := eachMember(data, func(k0, k1, v0, v1 int) {
			key, value := data[k0:k1], data[skipSpace(data, v0):v1]
			var k string
			if err := json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k); err != nil {
				t.Fatalf("key %q does not decode: %v", key, err)
			}
			got[k] = value
		})
		trimmed := bytes.TrimLeft(data, " \t\r\n")
		if want := json.Valid(data) && len(trimmed) > 0 && trimmed[0] == '{'; isObject != want {
			t.Fatalf("eachMember(%q) = %v, want %v", data, isObject, want)
		}
		if !isObject {
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
			var a, b bytes.Buffer
			json.Compact(&a, got[k])
			json.Compact(&b, want)
			if a.String() != b.String() {
				t.Fatalf("key %q: got %s, want %s", k, got[k], want)
			}
		}
	})
}

// FuzzValidateData checks the one-pass data validation against the
// validation it replaced (json.Valid, then one scan per field): the same
// data gets the same answer, refusal and reason, for every catalogue type.
func FuzzValidateData(f *testing.F) {
	for _, seed := range []string{
		`{"platform":"ios","app_version":"1.2.3","country":"DE"}`, `{"length_s":12.5}`, `{"length_s":-0}`,
		`{"item_id":"gems_100","currency":"USD","amount_minor":499,"transaction_id":"t1","extra":"kept"}`,
		`{"item_id":"g","currency":"usd","amount_minor":9223372036854775808}`, `{"item_id":"\u0067","currency":"EU\u0052","amount_minor":-0}`,
		`{"flow":"sink","currency":"gold","amount":25,"item_type":"weapon","item_id":"sword"}`, `{"flow":"source","amount":1e400}`,
		`{"status":"fail","level":"world1/stage2/boss","attempt":3,"score":-5}`, `{"status":"start","level":"a//b"}`,
		`{"event":"ui:shop:open:tab:gems","value":1}`, `{"event":"a:b:c:d:e:f"}`, `{"event":""}`,
		`{"action":"show","ad_type":"rewarded","network":"admob","revenue_micros":0}`, `{"action":"show","action":"nope"}`,
		`{"severity":"critical","message":"NullReferenceException"}`, ` null `, ``, `[]`, `{"a":}`, "\v{}",
	} {
		for i := range Types() {
			f.Add(uint8(i), []byte(seed))
		}
	}
	v := NewValidator()
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		spec := v.specs[Types()[int(typ)%len(Types())]]
		got, want := v.validateData(spec, data), refValidateData(spec, data)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("%s data %q: got %v, want %v", spec.Type, data, got, want)
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

var refCurrencySet = sync.OnceValue(refCurrencies)
