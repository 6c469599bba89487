package archive_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/archive"
)

// FuzzDecodeNDJSON feeds arbitrary stored input to the archive decoder: it
// must never panic, and whatever it accepts must be valid CloudEvents that
// re-encode and decode to the same events.
func FuzzDecodeNDJSON(f *testing.F) {
	b, _, _ := archive.EncodePart(sampleEvents(3))
	evs, _ := archive.DecodePart(b)
	var plain bytes.Buffer
	for _, e := range evs {
		line, _ := json.Marshal(e)
		plain.Write(append(line, '\n'))
	}
	f.Add(plain.Bytes())
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/x","type":"t","data":{"a":1}}` + "\n\n"))
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"/x","type":"t","data_base64":"AAEC"}`))
	f.Add([]byte("{}\n[]\nnull\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var got []event.Event
		err := archive.DecodeNDJSON(bytes.NewReader(in), func(e event.Event) error {
			got = append(got, e)
			return nil
		})
		if err != nil {
			return
		}
		for _, e := range got {
			if err := e.Validate(); err != nil {
				t.Fatalf("decoder accepted an invalid event: %v", err)
			}
		}
		part, _, err := archive.EncodePart(got)
		if err != nil {
			t.Fatalf("re-encode an accepted event: %v", err)
		}
		again, err := archive.DecodePart(part)
		if err != nil {
			t.Fatalf("decode what was re-encoded: %v", err)
		}
		if len(again) != len(got) {
			t.Fatalf("re-decoded %d events, want %d", len(again), len(got))
		}
		for i := range got {
			if again[i].ID() != got[i].ID() || again[i].Type() != got[i].Type() || !(bytes.Equal(again[i].Data(), got[i].Data()) || jsonEqual(again[i].Data(), got[i].Data())) {
				t.Fatalf("event %d changed in a round trip: %v vs %v", i, again[i], got[i])
			}
		}
	})
}
