package events

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newEvent(typ, data string, mutate ...func(*event.Event)) *event.Event {
	e := event.New()
	e.SetID("evt-1")
	e.SetSource("/game/client")
	e.SetType(typ)
	e.SetSubject("player-1")
	e.SetTime(now.Add(-time.Minute))
	e.SetExtension(ExtSessionID, "s-1")
	if data != "" {
		e.SetData(event.ApplicationJSON, []byte(data))
	}
	for _, m := range mutate {
		m(&e)
	}
	return &e
}

func TestValidateAcceptsEveryCatalogueTypeWithItsRequiredFields(t *testing.T) {
	valid := map[string]string{
		TypeSessionStart: `{"platform":"ios","app_version":"1.2.3","country":"DE"}`,
		TypeSessionEnd:   `{"length_s":12.5}`,
		TypePurchase:     `{"item_id":"gems_100","currency":"USD","amount_minor":499,"transaction_id":"t1","extra":"kept"}`,
		TypeResource:     `{"flow":"sink","currency":"gold","amount":25,"item_type":"weapon","item_id":"sword"}`,
		TypeProgression:  `{"status":"fail","level":"world1/stage2/boss","attempt":3,"score":-5}`,
		TypeDesign:       `{"event":"ui:shop:open:tab:gems","value":1}`,
		TypeAd:           `{"action":"show","ad_type":"rewarded","network":"admob","revenue_micros":0}`,
		TypeError:        `{"severity":"critical","message":"NullReferenceException"}`,
		TypeHeartbeat:    ``,
	}
	v := NewValidator()
	for _, typ := range Types() {
		t.Run(typ, func(t *testing.T) {
			if r := v.Validate(newEvent(typ, valid[typ]), now); r != nil {
				t.Fatalf("rejected a valid %s: %v", typ, r)
			}
		})
	}
}

func TestValidateRejectsWithAReasonNamingTheField(t *testing.T) {
	tests := []struct {
		name      string
		event     *event.Event
		wantField string
		wantIn    string
	}{
		{"unknown type", newEvent("com.gamemetrics.nope", `{}`), "type", "not in the event catalogue"},
		{"empty subject", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetSubject("") }), "subject", "player id"},
		{"long subject", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetSubject(strings.Repeat("p", 129)) }), "subject", "1–128"},
		{"long id", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetID(strings.Repeat("i", 129)) }), "id", "1–128"},
		{"no time", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetTime(time.Time{}) }), "time", "required"},
		{"time too old", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetTime(now.Add(-31 * 24 * time.Hour)) }), "time", "30 days"},
		{"time ahead", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetTime(now.Add(61 * time.Minute)) }), "time", "1 hour ahead"},
		{"session type without sessionid", newEvent(TypeSessionEnd, `{}`, func(e *event.Event) { e.SetExtension(ExtSessionID, nil) }), "sessionid", "required"},
		{"data not an object", newEvent(TypeSessionEnd, `[1]`), "data", "JSON object"},
		{"missing platform", newEvent(TypeSessionStart, `{"app_version":"1"}`), "data.platform", "required"},
		{"bad platform", newEvent(TypeSessionStart, `{"platform":"amiga","app_version":"1"}`), "data.platform", "one of"},
		{"platform wrong type", newEvent(TypeSessionStart, `{"platform":1,"app_version":"1"}`), "data.platform", "string"},
		{"bad country", newEvent(TypeSessionStart, `{"platform":"ios","app_version":"1","country":"usa"}`), "data.country", "ISO 3166"},
		{"negative length", newEvent(TypeSessionEnd, `{"length_s":-1}`), "data.length_s", ">= 0"},
		{"unknown currency", newEvent(TypePurchase, `{"item_id":"a","currency":"XYZ","amount_minor":1}`), "data.currency", "ISO 4217"},
		{"fractional amount", newEvent(TypePurchase, `{"item_id":"a","currency":"EUR","amount_minor":1.5}`), "data.amount_minor", "integer"},
		{"zero amount", newEvent(TypePurchase, `{"item_id":"a","currency":"EUR","amount_minor":0}`), "data.amount_minor", "> 0"},
		{"amount as string", newEvent(TypePurchase, `{"item_id":"a","currency":"EUR","amount_minor":"5"}`), "data.amount_minor", "integer"},
		{"bad flow", newEvent(TypeResource, `{"flow":"in","currency":"g","amount":1,"item_type":"a","item_id":"b"}`), "data.flow", "source|sink"},
		{"zero resource amount", newEvent(TypeResource, `{"flow":"source","currency":"g","amount":0,"item_type":"a","item_id":"b"}`), "data.amount", "> 0"},
		{"four-part level", newEvent(TypeProgression, `{"status":"start","level":"a/b/c/d"}`), "data.level", "1–3 parts"},
		{"empty level part", newEvent(TypeProgression, `{"status":"start","level":"a//c"}`), "data.level", "non-empty"},
		{"attempt zero", newEvent(TypeProgression, `{"status":"start","level":"1","attempt":0}`), "data.attempt", "> 0"},
		{"six-part design", newEvent(TypeDesign, `{"event":"a:b:c:d:e:f"}`), "data.event", "1–5 parts"},
		{"design value not number", newEvent(TypeDesign, `{"event":"a","value":"x"}`), "data.value", "number"},
		{"bad ad type", newEvent(TypeAd, `{"action":"show","ad_type":"popup","network":"n"}`), "data.ad_type", "one of"},
		{"negative ad revenue", newEvent(TypeAd, `{"action":"show","ad_type":"banner","network":"n","revenue_micros":-1}`), "data.revenue_micros", ">= 0"},
		{"long error message", newEvent(TypeError, `{"severity":"error","message":"`+strings.Repeat("x", 8193)+`"}`), "data.message", "8192"},
		{"bad severity", newEvent(TypeError, `{"severity":"fatal","message":"m"}`), "data.severity", "one of"},
		{"not json content type", newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetDataContentType("text/plain") }), "datacontenttype", "application/json"},
	}
	v := NewValidator()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := v.Validate(tt.event, now)
			if r == nil {
				t.Fatal("accepted an invalid event")
			}
			if r.Field != tt.wantField || !strings.Contains(r.Error(), tt.wantIn) {
				t.Errorf("rejection = %q (field %q); want field %q mentioning %q", r.Error(), r.Field, tt.wantField, tt.wantIn)
			}
		})
	}
}

func TestValidateStoredIgnoresTheTimeWindow(t *testing.T) {
	v := NewValidator()
	old := newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetTime(now.Add(-400 * 24 * time.Hour)) })
	if r := v.Validate(old, now); r == nil {
		t.Fatal("Validate accepted a 400-day-old event")
	}
	if r := v.ValidateStored(old); r != nil {
		t.Fatalf("ValidateStored rejected an archived event: %v", r)
	}
}

func TestCatalogueCopiesAreIndependent(t *testing.T) {
	a := Catalogue()
	delete(a, TypePurchase)
	if _, ok := Catalogue()[TypePurchase]; !ok {
		t.Fatal("changing one catalogue copy changed another")
	}
}

func BenchmarkValidatePurchase(b *testing.B) {
	v := NewValidator()
	e := newEvent(TypePurchase, `{"item_id":"gems_100","currency":"USD","amount_minor":499,"transaction_id":"t1"}`)
	b.ReportAllocs()
	for b.Loop() {
		if r := v.Validate(e, now); r != nil {
			b.Fatal(r)
		}
	}
}

func TestNullDataIsNoData(t *testing.T) {
	v := NewValidator()
	if r := v.Validate(newEvent(TypeHeartbeat, "null"), now); r != nil {
		t.Errorf("heartbeat with null data rejected: %v", r)
	}
	if r := v.Validate(newEvent(TypePurchase, "null"), now); r == nil || r.Field != "data.item_id" {
		t.Errorf("purchase with null data: %v, want data.item_id is required", r)
	}
	if r := v.Validate(newEvent(TypePurchase, `{"item_id":"a","currency":"USD","amount_minor":5,"pl\u0061tform":1}`), now); r != nil {
		t.Errorf("escaped unknown key: %v", r)
	}
	if r := v.Validate(newEvent(TypeSessionStart, `{"pl\u0061tform":"ios","app_version":"1"}`), now); r != nil {
		t.Errorf("escaped catalogue key not recognised: %v", r)
	}
}

// The scanner stops where encoding/json stops: 10,000 nested arrays or
// objects are valid, one more is not.
func TestScanDepthLimitIsEncodingJSONs(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		doc := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + "}")
		if got, want := eachMember(doc, func(k0, k1, v0, v1 int) {}), json.Valid(doc); got != want {
			t.Errorf("depth %d: eachMember %v, json.Valid %v", depth, got, want)
		}
	}
}

// The data check alone, one pass, against the one it replaced (json.Valid
// and a scan per field): `go test -bench ValidateData ./shared/events/`.
func BenchmarkValidateData(b *testing.B) {
	v := NewValidator()
	spec := v.specs[TypePurchase]
	data := []byte(`{"item_id":"gems_100","item_type":"currency_pack","currency":"USD","amount_minor":499,"transaction_id":"t1"}`)
	for _, bc := range []struct {
		name     string
		validate func(Spec, []byte) *Rejection
	}{{"one-pass", v.validateData}, {"reference", refValidateData}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := bc.validate(spec, data); r != nil {
					b.Fatal(r)
				}
			}
		})
	}
}
