package process

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The events of one pending_events row (migration 0011), as stage 1 writes
// them and stage 2 reads them: what aggregation needs of each event and
// nothing more (the raw event is in the events table). Strings are
// length-prefixed, times are microseconds since the Unix epoch, as
// varints. The first byte is the format version: a process that reads a
// row written by another version must decode it or fail loudly.
const pendingVersion = 2

// pendingV1 rows (before dimensions) lack the dimensions and item fields:
// they decode with those empty (dimensions then from a session.start's
// data, else unknown).
const pendingV1 = 1

// minPendingEvent is the fewest bytes an encoded event takes: 20 strings
// and 2 times of at least a byte each.
const minPendingEvent = 22

// errPendingFormat means a pending row is not in a format this process knows.
var errPendingFormat = errors.New("pending batch: unknown format")

// encodePending appends the events of recs (one game's) to dst.
func encodePending(dst []byte, recs []*record) []byte {
	dst = append(dst, pendingVersion)
	dst = binary.AppendUvarint(dst, uint64(len(recs)))
	for _, r := range recs {
		p := &r.p
		for _, s := range [...]string{r.id, r.typ, r.subject, r.sessionID,
			p.Platform, p.AppVersion, p.Country, string(p.LengthS), p.Currency, string(p.AmountMinor), p.Flow,
			string(p.Amount), p.Status, p.Level, p.Event, string(p.Value), p.Action, p.AdType, string(p.RevenueMicros), p.Severity,
			p.ItemType, p.ItemID, r.raw[0], r.raw[1], r.raw[2], r.raw[3], r.raw[4], r.raw[5]} {
			dst = binary.AppendUvarint(dst, uint64(len(s)))
			dst = append(dst, s...)
		}
		dst = binary.AppendVarint(dst, r.time.UnixMicro())
		var received int64
		if !r.received.IsZero() {
			received = r.received.UnixMicro()
		}
		dst = binary.AppendVarint(dst, received)
	}
	return dst
}

// decodePending returns the events of a pending row of game. Their local
// day and hour are left for the caller, who knows the game's time zone.
func decodePending(game string, b []byte) ([]*record, error) {
	if len(b) == 0 || b[0] != pendingVersion && b[0] != pendingV1 {
		return nil, errPendingFormat
	}
	v2 := b[0] == pendingVersion
	// One string for the whole row: every field is a slice of it.
	s := string(b[1:])
	d := pendingDecoder{s: s}
	n := d.uvarint()
	if d.err != nil || n > uint64(len(s)/minPendingEvent) {
		return nil, fmt.Errorf("pending batch: bad event count")
	}
	recs := make([]*record, n)
	all := make([]record, n)
	for i := range recs {
		r := &all[i]
		r.game = game
		p := &r.p
		for _, f := range [...]*string{&r.id, &r.typ, &r.subject, &r.sessionID,
			&p.Platform, &p.AppVersion, &p.Country, (*string)(&p.LengthS), &p.Currency, (*string)(&p.AmountMinor), &p.Flow,
			(*string)(&p.Amount), &p.Status, &p.Level, &p.Event, (*string)(&p.Value), &p.Action, &p.AdType, (*string)(&p.RevenueMicros), &p.Severity} {
			*f = d.str()
		}
		if v2 {
			for _, f := range [...]*string{&p.ItemType, &p.ItemID, &r.raw[0], &r.raw[1], &r.raw[2], &r.raw[3], &r.raw[4], &r.raw[5]} {
				*f = d.str()
			}
		}
		r.fillDims()
		r.time = time.UnixMicro(d.varint()).UTC()
		if us := d.varint(); us != 0 {
			r.received = time.UnixMicro(us).UTC()
		}
		if d.err != nil {
			return nil, fmt.Errorf("pending batch: event %d: %w", i, d.err)
		}
		r.day = dayIn(r.time, time.UTC)
		r.hour = hourOf(r.time)
		recs[i] = r
	}
	if d.i != len(s) {
		return nil, fmt.Errorf("pending batch: %d bytes after the last event", len(s)-d.i)
	}
	return recs, nil
}

type pendingDecoder struct {
	s   string
	i   int
	err error
}

var errPendingShort = errors.New("truncated")

func (d *pendingDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var x uint64
	for shift := uint(0); ; shift += 7 {
		if d.i >= len(d.s) || shift > 63 {
			d.err = errPendingShort
			return 0
		}
		c := d.s[d.i]
		d.i++
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x
		}
	}
}

func (d *pendingDecoder) varint() int64 {
	u := d.uvarint()
	return int64(u>>1) ^ -int64(u&1)
}

func (d *pendingDecoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.i) {
		d.err = errPendingShort
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}
