package notify

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The admin API's bodies are outside input: whatever they hold, decoding
// and checking a rule never panics, and a rule that passes the checks
// encodes and checks again to the same rule (what is stored is what
// evaluates). Matching player conditions never panics on any event data.
func FuzzRuleBodies(f *testing.F) {
	f.Add([]byte(`{"name":"drop","metric":"events","window":"5m","condition":{"type":"below","value":10},"destinations":["dst_a"]}`),
		[]byte(`{"name":"w","event":"purchase","conditions":[{"field":"amount_minor","op":"gte","value":1000}],"destinations":["d"]}`),
		[]byte(`{"amount_minor":4999,"meta":{"vip":true}}`))
	f.Add([]byte(`{"name":"a","metric":"revenue","currency":"USD","window":"1h","condition":{"type":"change","against":"same_hour_last_week","below":-30},"for":2,"destinations":["x"]}`),
		[]byte(`{"name":"l","event":"progression","conditions":[{"field":"level","op":"in","value":["w1/l10"]}],"once_per_player":true,"destinations":["d"]}`),
		[]byte(`{"level":"w1/l10","status":"complete"}`))
	f.Add([]byte(`{"name":"z","metric":"errors","severity":"critical","window":"1d","condition":{"type":"anomaly","sensitivity":3,"direction":"up"},"destinations":["x"]}`),
		[]byte(`{"conditions":[{"field":"a.b.c","op":"eq","value":null}]}`), []byte(`[1,2]`))
	f.Fuzz(func(t *testing.T, alert, rule, data []byte) {
		var s AlertSpec
		if json.Unmarshal(alert, &s) == nil && len(s.normalize()) == 0 {
			b, _ := json.Marshal(s)
			var again AlertSpec
			if err := json.Unmarshal(b, &again); err != nil || len(again.normalize()) != 0 {
				t.Fatalf("a valid rule %s does not check again: %v", b, again.normalize())
			}
			b2, _ := json.Marshal(again)
			if !bytes.Equal(b, b2) {
				t.Fatalf("stored %s evaluates as %s", b, b2)
			}
		}
		var pr PlayerRuleSpec
		if json.Unmarshal(rule, &pr) == nil {
			pr.normalize()
			if d, err := decodeData(data); err == nil {
				matches(pr.Conditions, d)
			}
		}
	})
}
