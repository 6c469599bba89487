package events

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

func TestValidateRejectsABadDimensionNamingIt(t *testing.T) {
	v := NewValidator()
	tests := []struct {
		name, ext string
		value     any
		field     string
	}{
		{"a platform not in the catalogue", DimPlatform, "amiga", DimPlatform},
		{"a country in lower case", DimCountry, "de", DimCountry},
		{"a country of three letters", DimCountry, "DEU", DimCountry},
		{"an app version too long", DimAppVersion, strings.Repeat("1", 65), DimAppVersion},
		{"an empty custom dimension", Dim1, "", Dim1},
		{"a custom dimension with a unit separator", Dim2, "a\x1fb", Dim2},
		{"a custom dimension of 65 characters", Dim3, strings.Repeat("x", 65), Dim3},
		{"a dimension that is not a string", Dim1, 7, Dim1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEvent(TypeHeartbeat, "", func(e *event.Event) { e.SetExtension(tc.ext, tc.value) })
			rej := v.Validate(e, now)
			if rej == nil || rej.Field != tc.field {
				t.Fatalf("Validate = %v, want a rejection naming %s", rej, tc.field)
			}
		})
	}
	ok := newEvent(TypeHeartbeat, "", func(e *event.Event) {
		e.SetExtension(DimPlatform, "ios")
		e.SetExtension(DimCountry, "JP")
		e.SetExtension(DimAppVersion, "2.0.1")
		e.SetExtension(Dim1, "whale")
		e.SetExtension(Dim2, strings.Repeat("é", 32))
		e.SetExtension(Dim3, "b")
	})
	if rej := v.Validate(ok, now); rej != nil {
		t.Fatalf("valid dimensions rejected: %v", rej)
	}
}

func TestDimsOfFillsASessionStartFromItsDataAndTheRestWithUnknown(t *testing.T) {
	tests := []struct {
		name string
		e    *event.Event
		want Dims
	}{
		{"a heartbeat without dimensions", newEvent(TypeHeartbeat, ""), Dims{"unknown", "unknown", "unknown", "unknown", "unknown", "unknown"}},
		{"a session.start fills from its data", newEvent(TypeSessionStart, `{"platform":"ios","app_version":"1.2","country":"DE"}`),
			Dims{"ios", "DE", "1.2", "unknown", "unknown", "unknown"}},
		{"an extension wins over the data", newEvent(TypeSessionStart, `{"platform":"ios","app_version":"1.2"}`, func(e *event.Event) {
			e.SetExtension(DimPlatform, "android")
			e.SetExtension(Dim1, "a")
		}), Dims{"android", "unknown", "1.2", "a", "unknown", "unknown"}},
		{"other types do not read their data", newEvent(TypePurchase, `{"item_id":"x","currency":"USD","amount_minor":1}`, func(e *event.Event) {
			e.SetExtension(DimCountry, "US")
		}), Dims{"unknown", "US", "unknown", "unknown", "unknown", "unknown"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := DimsOf(tc.e); got != tc.want {
				t.Fatalf("DimsOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCurrencyExponentsFollowISO4217(t *testing.T) {
	for code, want := range map[string]int{"JPY": 0, "USD": 2, "EUR": 2, "BHD": 3, "KWD": 3, "KRW": 0, "CLF": 4} {
		if got := CurrencyExponent(code); got != want {
			t.Errorf("%s: exponent %d, want %d", code, got, want)
		}
	}
	for _, c := range strings.Fields(iso4217) {
		if e := CurrencyExponent(c); e < 0 || e > 4 {
			t.Errorf("%s: exponent %d", c, e)
		}
	}
}

func TestDimsIDIsStableAndTellsTuplesApart(t *testing.T) {
	a := Dims{"ios", "US", "1", "a", "b", "c"}
	b := Dims{"ios", "US", "1", "a", "bc", ""}
	if a.ID() != a.ID() || a.ID() == b.ID() || a.ID() < 0 {
		t.Fatalf("ids %d %d", a.ID(), b.ID())
	}
}
