package process

import (
	"context"
	"errors"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Write stores evs as one stage-1 batch, bypassing the HTTP delivery path
// and the batcher: for bulk loads (backfills, benchmarks that seed
// millions of events). It has the same exactness as deliveries (events
// already counted are ignored) and returns the first event's error if any
// event could not be stored; the others of the batch are stored. The
// aggregator counts them after (Drain waits for it). Calls may run
// concurrently.
func (p *Process) Write(ctx context.Context, evs []event.Event) error {
	recs := make([]*record, 0, len(evs))
	var errs []error
	for i := range evs {
		rec, err := p.decode(ctx, &evs[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, rec)
	}
	if len(recs) > 0 {
		for _, err := range p.apply(ctx, recs) {
			if err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}
