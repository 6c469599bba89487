package simtest

import (
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/simulation"
)

// Recount is the ground truth of evs (duplicates included, as delivered or
// not) for a game in loc as of now: simulation.NewRecount over their
// facts. Data that is not a JSON object fails tb.
func Recount(tb testing.TB, evs []event.Event, loc *time.Location, now time.Time) *simulation.Recount {
	tb.Helper()
	facts := make([]simulation.Fact, len(evs))
	for i, e := range evs {
		session, _ := e.Extensions()[events.ExtSessionID].(string)
		data, err := simulation.DecodeData(e.Data())
		if err != nil {
			tb.Fatalf("event %s: %v", e.ID(), err)
		}
		facts[i] = simulation.Fact{ID: e.ID(), Type: e.Type(), Subject: e.Subject(), Session: session, Time: e.Time(), Data: data}
		for j, name := range events.DimensionNames() {
			facts[i].Dims[j], _ = e.Extensions()[name].(string)
		}
	}
	return simulation.NewRecount(facts, loc, now)
}
