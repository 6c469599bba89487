package retain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/gamemetrics/gamemetrics/shared/events"
)

// row is one raw event as the events table stores it (see
// shared/store/migrations/0002_process.sql and functions/process).
type row struct {
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

// rowColumns are the columns scanned into a row, in order.
const rowColumns = `id, type, source, subject, time, sessionid, receivedtime, data, extensions`

func (r *row) scanTargets() []any {
	return []any{&r.ID, &r.Type, &r.Source, &r.Subject, &r.Time, &r.SessionID, &r.Received, &r.Data, &r.Ext}
}

// toEvent rebuilds the CloudEvent a row was stored from: the attributes, the
// gameid, sessionid and receivedtime extensions, any other extensions, and
// the JSON data. (jsonb normalises the data's whitespace and key order; its
// meaning is unchanged. Delivery extensions of the KafkaSource were never
// stored.)
func (r *row) toEvent(game string) (event.Event, error) {
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

// rowFromEvent flattens an archived event back into a row, the inverse of
// toEvent. The event's gameid must be game.
func rowFromEvent(game string, e *event.Event) (row, error) {
	r := row{ID: e.ID(), Type: e.Type(), Source: e.Source(), Subject: e.Subject(), Time: e.Time().UTC().Truncate(time.Microsecond)}
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

// utcDay is the UTC calendar day of t (an events partition).
func utcDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// Cutoffs says which days have expired on the UTC day today: raw event
// partitions of days before exportBefore are archived and dropped (every
// event in them is at least hotDays×24 h old), archives of days before
// deleteBefore are deleted.
func Cutoffs(now time.Time, hotDays, archiveDays int) (exportBefore, deleteBefore time.Time) {
	today := utcDay(now)
	return today.AddDate(0, 0, -hotDays), today.AddDate(0, 0, -archiveDays)
}
