package process

import (
	"context"
	"errors"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Write processes evs as one batch of the batch writer, bypassing the HTTP
// delivery path and the batcher: for bulk loads (backfills, benchmarks that
// seed millions of events). It has the same exactness as deliveries (events
// already counted are ignored) and returns the first event's error if any
// event could not be processed; the others of the batch are committed.
// Calls may run concurrently.
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
		results, fresh := p.apply(ctx, recs)
		for _, err := range results {
			if err != nil {
				errs = append(errs, err)
				break
			}
		}
		p.recordLive(fresh)
	}
	return errors.Join(errs...)
}
