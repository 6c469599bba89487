// Package events holds the GameMetrics event catalogue: the CloudEvent types a
// game may send, the data fields each requires, the validation that decides
// whether an event is accepted, and the session rules (when a session is
// over) that process and the metric queries share. It does no I/O, so
// ingest, process, the queries, the simulator and tests all share exactly
// the same rules.
package events

import "strings"

// CloudEvent types in the catalogue.
const (
	TypeSessionStart = "com.gamemetrics.session.start"
	TypeSessionEnd   = "com.gamemetrics.session.end"
	TypePurchase     = "com.gamemetrics.purchase"
	TypeResource     = "com.gamemetrics.resource"
	TypeProgression  = "com.gamemetrics.progression"
	TypeDesign       = "com.gamemetrics.design"
	TypeAd           = "com.gamemetrics.ad"
	TypeError        = "com.gamemetrics.error"
	TypeHeartbeat    = "com.gamemetrics.heartbeat"
)

// CloudEvent extension attributes GameMetrics reads or writes.
const (
	// ExtSessionID ties an event to a play session; required on session-scoped types.
	ExtSessionID = "sessionid"
	// ExtGameID is set by ingest from the write key; a client's own value is replaced.
	ExtGameID = "gameid"
	// ExtReceivedTime is set by ingest to the time the event was accepted.
	ExtReceivedTime = "receivedtime"
)

// Limits on what ingest accepts. They are part of the public contract.
const (
	MaxIDLen      = 128
	MaxSubjectLen = 128
	MaxStringLen  = 256      // any catalogue string field not listed otherwise
	MaxMessageLen = 8 << 10  // error.message
	MaxPartLen    = 64       // one part of a level or design event name
	MaxEventBytes = 32 << 10 // one event, as encoded by the client
)

// kind is how one data field is checked.
type kind int

const (
	kindString         kind = iota // non-empty string, at most MaxStringLen
	kindEnum                       // one of field.enum
	kindCountry                    // ISO 3166-1 alpha-2, upper case
	kindCurrency                   // ISO 4217 code
	kindPositiveInt                // JSON integer > 0
	kindNonNegativeInt             // JSON integer >= 0
	kindNumber                     // any JSON number
	kindNonNegativeNum             // JSON number >= 0
	kindPositiveNum                // JSON number > 0
	kindLevel                      // 1–3 parts joined by "/"
	kindDesignEvent                // 1–5 parts joined by ":"
	kindMessage                    // string, at most MaxMessageLen
)

// field describes one data field of a catalogue type.
type field struct {
	name     string
	kind     kind
	optional bool
	enum     []string
}

// Spec is the definition of one catalogue type.
type Spec struct {
	Type string
	// SessionScoped types must carry the sessionid extension.
	SessionScoped bool
	fields        []field
}

// Fields returns the data field names of the type, required ones first,
// for documentation and generators.
func (s Spec) Fields() (required, optional []string) {
	for _, f := range s.fields {
		if f.optional {
			optional = append(optional, f.name)
		} else {
			required = append(required, f.name)
		}
	}
	return required, optional
}

// Platforms a session may start on.
var platforms = []string{"ios", "android", "web", "windows", "mac", "linux", "console"}

// Catalogue is the set of accepted event types. It is a value, not a global
// registry: callers get a fresh copy and cannot change each other's.
func Catalogue() map[string]Spec {
	specs := []Spec{
		{Type: TypeSessionStart, SessionScoped: true, fields: []field{
			{name: "platform", kind: kindEnum, enum: platforms},
			{name: "app_version", kind: kindString},
			{name: "country", kind: kindCountry, optional: true},
		}},
		{Type: TypeSessionEnd, SessionScoped: true, fields: []field{
			{name: "length_s", kind: kindNonNegativeNum, optional: true},
		}},
		{Type: TypePurchase, fields: []field{
			{name: "item_id", kind: kindString},
			{name: "item_type", kind: kindString, optional: true},
			{name: "currency", kind: kindCurrency},
			{name: "amount_minor", kind: kindPositiveInt},
			{name: "transaction_id", kind: kindString, optional: true},
		}},
		{Type: TypeResource, fields: []field{
			{name: "flow", kind: kindEnum, enum: []string{"source", "sink"}},
			{name: "currency", kind: kindString},
			{name: "amount", kind: kindPositiveNum},
			{name: "item_type", kind: kindString},
			{name: "item_id", kind: kindString},
		}},
		{Type: TypeProgression, fields: []field{
			{name: "status", kind: kindEnum, enum: []string{"start", "complete", "fail"}},
			{name: "level", kind: kindLevel},
			{name: "attempt", kind: kindPositiveInt, optional: true},
			{name: "score", kind: kindNumber, optional: true},
		}},
		{Type: TypeDesign, fields: []field{
			{name: "event", kind: kindDesignEvent},
			{name: "value", kind: kindNumber, optional: true},
		}},
		{Type: TypeAd, fields: []field{
			{name: "action", kind: kindEnum, enum: []string{"show", "click", "reward", "fail"}},
			{name: "ad_type", kind: kindEnum, enum: []string{"video", "rewarded", "interstitial", "banner", "offerwall"}},
			{name: "network", kind: kindString},
			{name: "placement", kind: kindString, optional: true},
			{name: "revenue_micros", kind: kindNonNegativeInt, optional: true},
		}},
		{Type: TypeError, fields: []field{
			{name: "severity", kind: kindEnum, enum: []string{"debug", "info", "warning", "error", "critical"}},
			{name: "message", kind: kindMessage},
		}},
		{Type: TypeHeartbeat, SessionScoped: true},
	}
	m := make(map[string]Spec, len(specs))
	for _, s := range specs {
		m[s.Type] = s
	}
	return m
}

// Types returns the catalogue's type names in a stable order.
func Types() []string {
	return []string{TypeSessionStart, TypeSessionEnd, TypePurchase, TypeResource,
		TypeProgression, TypeDesign, TypeAd, TypeError, TypeHeartbeat}
}

// iso4217 lists the active ISO 4217 currency codes (2024 list). Kept as one
// string so the lookup table is built once per Validator, not per event.
const iso4217 = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD " +
	"CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP " +
	"GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR " +
	"LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP " +
	"PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP " +
	"TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XCD XCG XDR XOF XPD XPF XPT XSU XUA " +
	"YER ZAR ZMW ZWG ZWL"

// currencySet holds the ISO 4217 codes as one bit per three-letter code,
// so the check of every purchase's currency is an index, not a map lookup.
type currencySet [26*26*26/64 + 1]uint64

func newCurrencySet() *currencySet {
	var set currencySet
	for _, c := range strings.Fields(iso4217) {
		i, _ := currencyIndex([]byte(c))
		set[i/64] |= 1 << (i % 64)
	}
	return &set
}

func currencyIndex(s []byte) (int, bool) {
	if len(s) != 3 || !isUpper(s) {
		return 0, false
	}
	return (int(s[0]-'A')*26+int(s[1]-'A'))*26 + int(s[2]-'A'), true
}

func (set *currencySet) has(s []byte) bool {
	i, ok := currencyIndex(s)
	return ok && set[i/64]&(1<<(i%64)) != 0
}
