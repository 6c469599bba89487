package events

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// The differential tests of the structured-mode decoder: for every input it
// must give what the SDK gives (event.New, then UnmarshalJSON), the same
// event or the same error, and for batches the elements and the error
// json.Unmarshal into []json.RawMessage gives, each decoded as the SDK does.

// sameDecoding checks one input. What the fast path declines the SDK
// decodes, so that part is the SDK's by construction (and not even stable
// for some inputs: the SDK applies extensions met before specversion in map
// order); what the fast path takes must be exactly the SDK's event, and
// nothing the SDK refuses.
func sameDecoding(t *testing.T, raw []byte) {
	t.Helper()
	d := decoder{b: raw}
	if !eachMember(raw, d.member) {
		return
	}
	got, ok := d.event()
	if !ok {
		return
	}
	want, err := sdkDecode(raw)
	if err != nil {
		t.Fatalf("%q: the fast path decodes what the SDK refuses (%v)", raw, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", raw, got, want)
	}
}

var decodeSeeds = []string{
	`{"specversion":"1.0","id":"1","source":"s","type":"com.gamemetrics.purchase","subject":"p","time":"2026-11-25T10:00:00Z","data":{"item_id":"a","currency":"USD","amount_minor":5}}`,
	`{"data": {"a":1} ,"sessionid":"s-1","specversion":"1.0","id":"x","source":"/ios","type":"t","datacontenttype":"application/json; charset=utf-8"}`,
	`{"specversion":"1.0","id":"","source":"","type":"t"}`,
	`{"specversion":"0.3","id":"1","source":"s","type":"t"}`,
	`{"specversion":"1.0","specversion":"1.0"}`,
	`{"id":"1","source":"s","type":"t"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","time":""}`,
	`{"specversion":"1.0","id":1,"source":"s","type":"t"}`,
	`{"specversion":"1.0","id":"1","source":":x","type":"t"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"text/plain","data":"hi\n"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"","data":{}}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"aGk="}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","Level":"x","level":"y"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","n":5,"b":true,"z":null}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","ext-x":"v","":"e"}`,
	`{"specversion":"1.0","id":"\u0031","source":"s","type":"t","subject":"caf\u00e9"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t","data":null}`,
	`{"specversion":"1.0","i\u0064":"1"}`,
	`{"specversion":"1.0","id":"1","source":"s","type":"t"} trailing`,
	`[{"specversion":"1.0"}]`, `null`, `{`, ``, `{"specversion":"1.0","dataschema":"http://x"}`,
}

// FuzzDecodeJSON: arbitrary bytes as one structured-mode event.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { sameDecoding(t, raw) })
}

// FuzzDecodeJSONFields builds events from attribute values, in any order
// and spacing, so that most inputs are events the fast path takes.
func FuzzDecodeJSONFields(f *testing.F) {
	f.Add("1.0", "e-1", "/ios", "com.gamemetrics.purchase", "player-1", "2026-11-25T10:00:00.5+01:00", "application/json", "sessionid", "s-1", `{"item_id":"a"}`, uint16(0), uint8(0))
	f.Add("1.0", "e-2", "https://x/y?z#w", "t", "", "", "", "level", "3", `[1,2]`, uint16(7), uint8(3))
	f.Add("1.0", " e-3 ", "mailto:a@b", "t", " ", "2026-02-30T10:00:00Z", "text/json;x", "Gameid", "g", `"s"`, uint16(0x155), uint8(1))
	f.Fuzz(func(t *testing.T, spec, id, source, typ, subject, when, dct, extName, extValue, data string, omit uint16, spacing uint8) {
		members := [][2]string{
			{"specversion", quote(spec)}, {"id", quote(id)}, {"source", quote(source)}, {"type", quote(typ)},
			{"subject", quote(subject)}, {"time", quote(when)}, {"datacontenttype", quote(dct)},
			{extName, quote(extValue)}, {"data", data},
		}
		var b strings.Builder
		space := []string{"", " ", "\n\t", "  "}[spacing%4]
		b.WriteString("{" + space)
		n := 0
		// Rotate the order by the spacing, leave out the members omit names.
		for i := range members {
			m := members[(i+int(spacing))%len(members)]
			if omit&(1<<((i+int(spacing))%len(members))) != 0 {
				continue
			}
			if n > 0 {
				b.WriteString("," + space)
			}
			fmt.Fprintf(&b, "%s%s:%s%s", quote(m[0]), space, space, m[1])
			n++
		}
		b.WriteString(space + "}")
		sameDecoding(t, []byte(b.String()))
	})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzDecodeBatch: arbitrary bytes as a batch.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`[` + strings.Join(decodeSeeds[:3], ", ") + `]`))
	f.Add([]byte(` [ null, 1, "x", [], {} , ` + decodeSeeds[0] + ` ] `))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`[{"a":}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gerr := DecodeBatch(body)
		var raws []json.RawMessage
		werr := json.Unmarshal(body, &raws)
		if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
			t.Fatalf("%q: error %v, json.Unmarshal's %v", body, gerr, werr)
		}
		if gerr != nil {
			return
		}
		if len(got) != len(raws) {
			t.Fatalf("%q: %d elements, json.Unmarshal finds %d", body, len(got), len(raws))
		}
		for i, el := range got {
			if string(el.Raw) != string(raws[i]) {
				t.Fatalf("%q: element %d is %q, json.Unmarshal's %q", body, i, el.Raw, raws[i])
			}
			if el.decoded == nil {
				continue // the SDK's, as above
			}
			want, err := sdkDecode(raws[i])
			if err != nil {
				t.Fatalf("%q: element %d decoded, the SDK refuses it (%v)", body, i, err)
			}
			if !reflect.DeepEqual(el.decoded, want) {
				t.Fatalf("%q: element %d:\n got %#v\nwant %#v", body, i, el.decoded, want)
			}
		}
	})
}

// The fast path must actually take what game clients send, or the fuzz
// tests above would only be comparing the SDK with itself.
func TestTheFastPathDecodesWhatClientsSend(t *testing.T) {
	for _, raw := range []string{
		decodeSeeds[0], decodeSeeds[1],
		`{"specversion":"1.0","id":"b-1","source":"/bench","type":"com.gamemetrics.purchase","subject":"player-1","time":"2026-11-25T10:00:00Z","datacontenttype":"application/json","sessionid":"s-1","data":{"item_id":"gems_100"}}`,
		`{"specversion":"1.0","id":"h","source":"/web","type":"com.gamemetrics.heartbeat","subject":"p","time":"2026-11-25T10:00:00.123456789Z","sessionid":"s"}`,
	} {
		d := decoder{b: []byte(raw)}
		if !eachMember(d.b, d.member) {
			t.Fatalf("%s: not valid", raw)
		}
		if _, ok := d.event(); !ok {
			t.Errorf("the fast path leaves %s to the SDK", raw)
		}
		sameDecoding(t, []byte(raw))
	}
	els, err := DecodeBatch([]byte("[" + decodeSeeds[0] + "," + decodeSeeds[1] + "]"))
	if err != nil || len(els) != 2 || els[0].decoded == nil || els[1].decoded == nil {
		t.Errorf("batch: %v %v", els, err)
	}
}

// `go test -run '^$' -bench Decode ./shared/events/`: the decoder against
// the SDK's, for a batch of 100 purchases.
func BenchmarkDecodeBatch(b *testing.B) {
	var evs []string
	for i := range 100 {
		evs = append(evs, fmt.Sprintf(`{"specversion":"1.0","id":"b-%d","source":"/bench","type":"com.gamemetrics.purchase","subject":"player-%d","time":"2026-11-25T10:00:00Z","datacontenttype":"application/json","data":{"item_id":"gems_100","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"t-1"}}`, i, i%20))
	}
	body := []byte("[" + strings.Join(evs, ",") + "]")
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			els, err := DecodeBatch(body)
			if err != nil {
				b.Fatal(err)
			}
			for _, el := range els {
				if _, err := el.Event(); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("sdk", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var raws []json.RawMessage
			if err := json.Unmarshal(body, &raws); err != nil {
				b.Fatal(err)
			}
			for _, r := range raws {
				if _, err := sdkDecode(r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}
