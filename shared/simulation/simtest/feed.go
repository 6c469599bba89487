package simtest

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Handler is a function's CloudEvents entry point, such as
// (*process.Process).Handle.
type Handler func(context.Context, event.Event) (*event.Event, error)

// shownRefusals is how many refusals Feed describes one by one.
const shownRefusals = 10

// Feed hands evs to handle from workers goroutines at once, taking them in
// order (so the deliveries are as duplicated and unordered as evs is), the
// way a KafkaSource with unordered delivery calls a function, and returns
// once every call has returned. Every refusal is a test error (the first
// few are described); Feed returns how many there were. It may be called
// from any goroutine.
func Feed(tb testing.TB, handle Handler, evs []event.Event, workers int) (refused int) {
	tb.Helper()
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	next := make(chan event.Event)
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range next {
				if _, err := handle(context.Background(), e); err != nil {
					mu.Lock()
					refused++
					if refused <= shownRefusals {
						tb.Errorf("event %s: %v", e.ID(), err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, e := range evs {
		next <- e
	}
	close(next)
	wg.Wait()
	if refused > shownRefusals {
		tb.Errorf("… %d of %d deliveries refused in all", refused, len(evs))
	}
	return refused
}

// must panics on err: the generator's own data is always valid.
func must(err error) {
	if err != nil {
		panic(fmt.Sprintf("simtest: %v", err))
	}
}
