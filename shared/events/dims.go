package events

import (
	"encoding/json"
	"hash/fnv"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Dimensions: CloudEvent extensions every event may carry, by which the
// report API breaks every number down and filters it. An event counts
// under the values it carries (missing = Unknown), so a breakdown never
// depends on delivery order. A session.start without an extension takes
// the value from its data (platform, app_version, country), as SDKs send
// them there.
const (
	DimPlatform   = "platform"
	DimCountry    = "country"
	DimAppVersion = "appversion"
	Dim1          = "dim1"
	Dim2          = "dim2"
	Dim3          = "dim3"
)

const (
	// Unknown is the value of a dimension an event does not carry.
	Unknown = "unknown"
	// Other is the value of a custom dimension beyond a game's
	// MaxCustomValues distinct values.
	Other = "other"
	// MaxCustomValues bounds the distinct values a game keeps per custom
	// dimension (dim1..dim3): the first ones registered win, so a client
	// bug cannot explode the rollups.
	MaxCustomValues = 100
	// MaxDimLen bounds appversion and custom dimension values.
	MaxDimLen = 64
)

// DimensionNames lists the dimensions in the order of a Dims tuple.
func DimensionNames() []string {
	return []string{DimPlatform, DimCountry, DimAppVersion, Dim1, Dim2, Dim3}
}

// DimIndex is name's index in a Dims tuple, -1 if it is not a dimension.
func DimIndex(name string) int { return slices.Index(DimensionNames(), name) }

// IsCustomDim says whether dimension index i is dim1, dim2 or dim3.
func IsCustomDim(i int) bool { return i >= 3 }

// Platforms lists the catalogue's platforms.
func Platforms() []string { return slices.Clone(platforms) }

// Dims is the dimension tuple of one event, in DimensionNames order.
type Dims [6]string

// Key is the tuple as one string (values joined by a unit separator).
func (d Dims) Key() string { return strings.Join(d[:], "\x1f") }

// ID is the tuple's stable 63-bit id (FNV-1a of Key): process keys the
// breakdown rollups by it without a round trip to intern tuples.
func (d Dims) ID() int64 {
	h := fnv.New64a()
	h.Write([]byte(d.Key()))
	return int64(h.Sum64() >> 1)
}

// CheckDim checks one dimension value as a client or a report filter
// sends it; the rejection names the dimension.
func CheckDim(name, v string) *Rejection {
	switch name {
	case DimPlatform:
		if !slices.Contains(platforms, v) {
			return reject(name, "must be one of %s, got %q", strings.Join(platforms, ", "), clip([]byte(v)))
		}
	case DimCountry:
		if len(v) != 2 || !isUpper([]byte(v)) {
			return reject(name, "must be an ISO 3166-1 alpha-2 code such as \"US\", got %q", clip([]byte(v)))
		}
	case DimAppVersion, Dim1, Dim2, Dim3:
		if v == "" || len(v) > MaxDimLen || !utf8.ValidString(v) || strings.ContainsAny(v, "\x1f\x00") {
			return reject(name, "must be 1–%d characters of UTF-8, got %d bytes", MaxDimLen, len(v))
		}
	default:
		return reject(name, "is not a dimension")
	}
	return nil
}

// checkDims validates the dimension extensions e carries.
func checkDims(e *event.Event) *Rejection {
	for _, name := range DimensionNames() {
		x := extension(e, name)
		if x == nil {
			continue
		}
		s, ok := x.(string)
		if !ok {
			return reject(name, "extension must be a string")
		}
		if rej := CheckDim(name, s); rej != nil {
			return rej
		}
	}
	return nil
}

// DimsOf is the dimension tuple of an event that passed validation:
// its extensions, for a session.start the data's platform, app_version
// and country where an extension is missing, Unknown for the rest.
// Custom values are not capped here (process caps them per game).
func DimsOf(e *event.Event) Dims {
	var d Dims
	for i, name := range DimensionNames() {
		if s, ok := extension(e, name).(string); ok && s != "" {
			d[i] = s
		}
	}
	if e.Type() == TypeSessionStart && (d[0] == "" || d[1] == "" || d[2] == "") {
		var p struct {
			Platform   string `json:"platform"`
			AppVersion string `json:"app_version"`
			Country    string `json:"country"`
		}
		_ = json.Unmarshal(e.Data(), &p)
		d.FillFromStart(p.Platform, p.AppVersion, p.Country)
	}
	d.FillUnknown()
	return d
}

// FillFromStart sets missing platform, appversion and country from a
// session.start's data.
func (d *Dims) FillFromStart(platform, version, country string) {
	for i, v := range [3]string{platform, country, version} {
		if d[i] == "" && v != "" {
			d[i] = v
		}
	}
}

// FillUnknown sets every missing value to Unknown.
func (d *Dims) FillUnknown() {
	for i := range d {
		if d[i] == "" {
			d[i] = Unknown
		}
	}
}

// exponents are the ISO 4217 minor-unit exponents that are not 2.
var exponents = map[string]int{
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
	"UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	"CLF": 4, "UYW": 4,
	// Funds and metals have no minor unit; shown as whole units.
	"XAG": 0, "XAU": 0, "XDR": 0, "XPD": 0, "XPT": 0, "XSU": 0, "XUA": 0, "BOV": 2, "CHE": 2, "CHW": 2, "COU": 2,
	"MXV": 2, "USN": 2,
}

// CurrencyExponent is the ISO 4217 minor-unit exponent of code (JPY 0,
// USD 2, BHD 3): an amount in minor units divided by 10^exponent is in
// major units. Codes outside the list have 2.
func CurrencyExponent(code string) int {
	if e, ok := exponents[code]; ok {
		return e
	}
	return 2
}
