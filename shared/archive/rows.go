package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// Row is one raw event as the events table stores it (see
// shared/store/migrations/0002_process.sql): what the archive is written
// from and restored into. Scan it with RowColumns and ScanTargets.
type Row struct {
	ID        string
	Type      string
	Source    string
	Subject   string
	Time      time.Time
	SessionID pgtype.Text
	Received  pgtype.Timestamptz
	Data      []byte // jsonb text, nil for NULL
	Ext       []byte // jsonb object of other extensions (string values), nil for NULL
}

// RowColumns are the columns ScanTargets scans, in order.
const RowColumns = `id, type, source, subject, time, sessionid, receivedtime, data, extensions`

// ScanTargets are the destinations of RowColumns in r.
func (r *Row) ScanTargets() []any {
	return []any{&r.ID, &r.Type, &r.Source, &r.Subject, &r.Time, &r.SessionID, &r.Received, &r.Data, &r.Ext}
}

// Event rebuilds, with the CloudEvents SDK, the CloudEvent a row was
// stored from; it is the reference AppendJSON (the export's fast path) is
// tested against. It restores the attributes, the
// gameid, sessionid and receivedtime extensions, any other extensions, and
// the JSON data. (jsonb normalises the data's whitespace and key order; its
// meaning is unchanged. Delivery extensions of the KafkaSource were never
// stored.)
func (r *Row) Event(game string) (event.Event, error) {
	e := event.New()
	e.SetID(r.ID)
	e.SetType(r.Type)
	e.SetSource(r.Source)
	e.SetSubject(r.Subject)
	e.SetTime(r.Time.UTC())
	e.SetExtension(events.ExtGameID, game)
	if r.SessionID.Valid {
		e.SetExtension(events.ExtSessionID, r.SessionID.String)
	}
	if r.Received.Valid {
		e.SetExtension(events.ExtReceivedTime, types.Timestamp{Time: r.Received.Time.UTC()})
	}
	if len(r.Ext) > 0 {
		var ext map[string]string
		if err := json.Unmarshal(r.Ext, &ext); err != nil {
			return e, fmt.Errorf("event %q: extensions: %w", r.ID, err)
		}
		for k, v := range ext {
			if err := e.Context.SetExtension(k, v); err != nil {
				return e, fmt.Errorf("event %q: extension %s: %w", r.ID, k, err)
			}
		}
	}
	if r.Data != nil {
		if err := e.SetData(event.ApplicationJSON, r.Data); err != nil {
			return e, fmt.Errorf("event %q: data: %w", r.ID, err)
		}
		// Inline JSON ("data": {...}), not data_base64, so the archive
		// reads as plain JSON (jq, data lake engines).
		e.DataBase64 = false
	}
	return e, nil
}

// RowFromEvent flattens an archived event back into a row, the inverse of
// Event. The event's gameid must be game.
func RowFromEvent(game string, e *event.Event) (Row, error) {
	r := Row{ID: e.ID(), Type: e.Type(), Source: e.Source(), Subject: e.Subject(), Time: e.Time().UTC().Truncate(time.Microsecond)}
	if r.ID == "" || r.Subject == "" || e.Time().IsZero() {
		return r, fmt.Errorf("event %q lacks an id, subject or time", r.ID)
	}
	other := map[string]string{}
	for name, v := range e.Extensions() {
		switch name {
		case events.ExtGameID:
			if g, _ := types.ToString(v); g != game {
				return r, fmt.Errorf("event %q belongs to game %q, not %q", r.ID, g, game)
			}
		case events.ExtSessionID:
			s, _ := types.ToString(v)
			r.SessionID = pgtype.Text{String: s, Valid: s != ""}
		case events.ExtReceivedTime:
			t, err := types.ToTime(v)
			if err != nil {
				return r, fmt.Errorf("event %q: receivedtime: %w", r.ID, err)
			}
			r.Received = pgtype.Timestamptz{Time: t.UTC(), Valid: true}
		default:
			s, err := types.Format(v)
			if err != nil {
				return r, fmt.Errorf("event %q: extension %s: %w", r.ID, name, err)
			}
			other[name] = s
		}
	}
	if len(other) > 0 {
		r.Ext, _ = json.Marshal(other)
	}
	if d := bytes.TrimSpace(e.Data()); len(d) > 0 {
		if !json.Valid(d) {
			return r, fmt.Errorf("event %q: data is not JSON", r.ID)
		}
		r.Data = d
	}
	return r, nil
}

// AppendJSON appends the row as one structured CloudEvent in JSON (one
// archive line, without the newline), the same event Event builds, written directly: exporting millions of rows spends
// most of its CPU here, and building an event.Event only to serialise it
// doubles that. The archive tests decode these lines with the CloudEvents
// SDK and compare them with the events sent.
func (r *Row) AppendJSON(b []byte, game string) ([]byte, error) {
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendJSONString(b, r.ID)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, r.Source)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, r.Type)
	b = append(b, `,"subject":`...)
	b = appendJSONString(b, r.Subject)
	b = append(b, `,"time":"`...)
	b = r.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","`+events.ExtGameID+`":`...)
	b = appendJSONString(b, game)
	if r.SessionID.Valid {
		b = append(b, `,"`+events.ExtSessionID+`":`...)
		b = appendJSONString(b, r.SessionID.String)
	}
	if r.Received.Valid {
		b = append(b, `,"`+events.ExtReceivedTime+`":"`...)
		b = r.Received.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if len(r.Ext) > 0 {
		var ext map[string]string
		if err := json.Unmarshal(r.Ext, &ext); err != nil {
			return b, fmt.Errorf("event %q: extensions: %w", r.ID, err)
		}
		names := make([]string, 0, len(ext))
		for k := range ext {
			if !validExtensionName(k) {
				return b, fmt.Errorf("event %q: extension name %q", r.ID, k)
			}
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			b = append(b, ',', '"')
			b = append(b, k...)
			b = append(b, '"', ':')
			b = appendJSONString(b, ext[k])
		}
	}
	if r.Data != nil {
		// jsonb's text form: valid JSON on one line.
		b = append(b, `,"datacontenttype":"application/json","data":`...)
		b = append(b, r.Data...)
	}
	return append(b, '}'), nil
}

// validExtensionName is the CloudEvents rule: lower-case letters and digits,
// and not a context attribute of the event itself.
func validExtensionName(k string) bool {
	if k == "" || len(k) > 20 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	switch k {
	case "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema", "data", "data_base64",
		events.ExtGameID, events.ExtSessionID, events.ExtReceivedTime:
		return false
	}
	return true
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
