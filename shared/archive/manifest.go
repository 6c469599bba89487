package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Object layout of raw-event archives, one directory per game and UTC day:
//
//	raw/game=<gameid>/date=YYYY-MM-DD/part-NNNNN.ndjson.gz
//	raw/game=<gameid>/date=YYYY-MM-DD/manifest.json
//
// The manifest is the commit point: a day's archive is exactly the parts its
// manifest lists, checked against their event counts and SHA-256 sums. Parts
// are never overwritten: a rewrite (merging late events, erasing a player)
// writes parts with numbers after every existing one, verifies them, then
// replaces the manifest (one PUT, atomic in S3), and only then deletes the
// parts the old manifest listed. A part no manifest lists is debris of an
// interrupted run and is deleted by the next one.

// ManifestVersion is the version of the manifest format written.
const ManifestVersion = 1

// Manifest describes one game's archived events of one UTC day.
type Manifest struct {
	Version int    `json:"version"`
	Game    string `json:"game"`
	// Date is the UTC day, YYYY-MM-DD.
	Date string `json:"date"`
	// Events is the sum of the parts' events.
	Events int64  `json:"events"`
	Parts  []Part `json:"parts"`
	// Written is when this manifest (this generation of the archive) was
	// committed.
	Written time.Time `json:"written"`
	// Format describes the parts for readers that find the bucket without
	// GameMetrics.
	Format string `json:"format"`
}

// Part is one object of a day's archive.
type Part struct {
	Key    string `json:"key"`
	Events int64  `json:"events"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// PartFormat is the Format of manifests written by this package.
const PartFormat = "gzip NDJSON, one structured CloudEvent 1.0 (application/cloudevents+json) per line"

// NewManifest describes parts as the archive of game's events of day.
func NewManifest(game string, day time.Time, parts []Part, written time.Time) Manifest {
	m := Manifest{Version: ManifestVersion, Game: game, Date: FormatDay(day), Parts: parts, Written: written.UTC(), Format: PartFormat}
	for _, p := range parts {
		m.Events += p.Events
	}
	if m.Parts == nil {
		m.Parts = []Part{}
	}
	return m
}

// Encode is the manifest's stored form.
func (m Manifest) Encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// DecodeManifest parses and checks a stored manifest.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("archive: manifest: %w", err)
	}
	if m.Version != ManifestVersion {
		return Manifest{}, fmt.Errorf("archive: manifest version %d, want %d", m.Version, ManifestVersion)
	}
	if _, err := ParseDay(m.Date); err != nil {
		return Manifest{}, fmt.Errorf("archive: manifest: %w", err)
	}
	var sum int64
	for _, p := range m.Parts {
		if p.Key == "" || len(p.SHA256) != 64 || p.Events < 0 {
			return Manifest{}, fmt.Errorf("archive: manifest: bad part %+v", p)
		}
		sum += p.Events
	}
	if sum != m.Events {
		return Manifest{}, fmt.Errorf("archive: manifest says %d events but its parts hold %d", m.Events, sum)
	}
	return m, nil
}

// Keys lists the part keys of m.
func (m Manifest) Keys() map[string]bool {
	keys := make(map[string]bool, len(m.Parts))
	for _, p := range m.Parts {
		keys[p.Key] = true
	}
	return keys
}

// FormatDay formats the UTC day of t as YYYY-MM-DD.
func FormatDay(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// ParseDay parses YYYY-MM-DD as midnight UTC.
func ParseDay(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("day %q: want YYYY-MM-DD", s)
	}
	return t, nil
}

// GamePrefix is the key prefix of every archive object of game.
func GamePrefix(game string) string { return "raw/game=" + game + "/" }

// DayPrefix is the key prefix of game's archive of the UTC day of day.
func DayPrefix(game string, day time.Time) string {
	return GamePrefix(game) + "date=" + FormatDay(day) + "/"
}

// ManifestKey is where the manifest of game's day is stored.
func ManifestKey(game string, day time.Time) string { return DayPrefix(game, day) + "manifest.json" }

// PartKey is the key of part n of game's day.
func PartKey(game string, day time.Time, n int) string {
	return fmt.Sprintf("%spart-%05d.ndjson.gz", DayPrefix(game, day), n)
}

// ValidGame reports whether a game id can be used in keys.
func ValidGame(game string) error {
	if game == "" || len(game) > 128 || strings.ContainsAny(game, "/=\\ \t\r\n") {
		return fmt.Errorf("archive: game id %q cannot be used in an object key", game)
	}
	return nil
}

// Key is a parsed archive object key.
type Key struct {
	Game string
	Day  time.Time
	// Part is the part number, or -1 for the manifest or an unknown name.
	Part int
	// Manifest is true for a day's manifest.
	Manifest bool
}

// ParseKey parses an archive object key.
func ParseKey(key string) (Key, error) {
	rest, ok := strings.CutPrefix(key, "raw/game=")
	if !ok {
		return Key{}, errors.New("archive: not a raw archive key: " + key)
	}
	game, rest, ok := strings.Cut(rest, "/date=")
	if !ok || ValidGame(game) != nil {
		return Key{}, errors.New("archive: bad game in key: " + key)
	}
	date, name, ok := strings.Cut(rest, "/")
	if !ok {
		return Key{}, errors.New("archive: no object name in key: " + key)
	}
	day, err := ParseDay(date)
	if err != nil {
		return Key{}, fmt.Errorf("archive: key %s: %w", key, err)
	}
	k := Key{Game: game, Day: day, Part: -1}
	if name == "manifest.json" {
		k.Manifest = true
		return k, nil
	}
	if num, ok := strings.CutPrefix(name, "part-"); ok {
		if num, ok := strings.CutSuffix(num, ".ndjson.gz"); ok {
			if n, err := strconv.Atoi(num); err == nil && n >= 0 {
				k.Part = n
			}
		}
	}
	return k, nil
}
