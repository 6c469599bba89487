package kafka

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// A record written by Record decodes back to the same event, and its
// headers are the CloudEvents Kafka binding's names.
func TestRecordRoundTripsThroughBinaryContentMode(t *testing.T) {
	e := event.New()
	e.SetID("e-1")
	e.SetSource("/game")
	e.SetType("com.gamemetrics.purchase")
	e.SetSubject("player-1")
	e.SetTime(time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC))
	e.SetExtension("gameid", "g1")
	e.SetExtension("sessionid", "s-1")
	e.SetExtension("receivedtime", time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC))
	if err := e.SetData(event.ApplicationJSON, []byte(`{"item_id":"a","currency":"USD","amount_minor":5}`)); err != nil {
		t.Fatal(err)
	}
	rec, err := Record(context.Background(), &e, TopicEvents, "g1/player-1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "e-1", "ce_source": "/game", "ce_type": "com.gamemetrics.purchase",
		"ce_subject": "player-1", "ce_time": "2026-11-25T10:00:00.123456Z", "ce_gameid": "g1", "ce_sessionid": "s-1",
		"ce_receivedtime": "2026-11-25T10:00:01Z", "content-type": "application/json",
	}
	got := map[string]string{}
	for _, h := range rec.Headers {
		got[h.Key] = string(h.Value)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("headers = %v\nwant      %v", got, want)
	}
	back, err := Event(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID() != e.ID() || back.Type() != e.Type() || !back.Time().Equal(e.Time()) || string(back.Data()) != string(e.Data()) ||
		back.Extensions()["sessionid"] != "s-1" || back.Subject() != "player-1" {
		t.Errorf("decoded %v\nwant %v", back, e)
	}
}

// Stamps replace the event's own extension of the same name (a client
// cannot choose its gameid) and are otherwise added.
func TestRecordStampsReplaceTheEventsExtensions(t *testing.T) {
	e := event.New()
	e.SetID("e-2")
	e.SetSource("/game")
	e.SetType("com.gamemetrics.heartbeat")
	e.SetSubject("player-2")
	e.SetExtension("gameid", "someone-elses")
	e.SetExtension("sessionid", "s-2")
	rec, err := Record(context.Background(), &e, TopicEvents, "g2/player-2",
		Stamp{Name: "gameid", Value: "g2"}, Stamp{Name: "receivedtime", Value: "2026-11-25T10:00:01Z"})
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != "g2/player-2" {
		t.Errorf("key = %q", rec.Key)
	}
	count := map[string]int{}
	for _, h := range rec.Headers {
		count[h.Key]++
	}
	if count["ce_gameid"] != 1 || count["ce_receivedtime"] != 1 || count["ce_sessionid"] != 1 {
		t.Errorf("headers %v: want one ce_gameid, ce_receivedtime and ce_sessionid", rec.Headers)
	}
	back, err := Event(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	want := e.Clone()
	want.SetExtension("gameid", "g2")
	want.SetExtension("receivedtime", time.Date(2026, 11, 25, 10, 0, 1, 0, time.UTC))
	for name, v := range want.Extensions() {
		got, _ := types.Format(back.Extensions()[name])
		if s, _ := types.Format(v); got != s {
			t.Errorf("extension %s = %q, want %q", name, got, s)
		}
	}
	if back.ID() != "e-2" || back.Subject() != "player-2" || back.Source() != "/game" {
		t.Errorf("decoded %v", back)
	}
}
