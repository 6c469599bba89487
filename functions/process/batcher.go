package process

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errStopping answers deliveries that arrive while the function stops.
var errStopping = errors.New("process is stopping")

// pending is one delivery waiting for its batch to commit.
type pending struct {
	rec  *record
	done chan error // receives exactly one result
}

// batcher groups concurrent deliveries into batches: a batch is handed to
// flush when it has maxBatch records, or linger after its first record, or
// as soon as a flusher is free if that is later (so batches grow while the
// database is busy). Up to flushers transactions run at once.
type batcher struct {
	maxBatch int
	linger   time.Duration
	flushers int
	flush    func([]*pending)

	in   chan *pending
	quit chan struct{}
	done chan struct{}

	mu     sync.RWMutex
	closed bool
}

func newBatcher(maxBatch, flushers int, linger time.Duration, flush func([]*pending)) *batcher {
	b := &batcher{maxBatch: maxBatch, flushers: max(1, flushers), linger: linger, flush: flush,
		in: make(chan *pending, maxBatch), quit: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// submit queues rec and waits for the result of its batch, or for ctx.
func (b *batcher) submit(ctx context.Context, rec *record) error {
	p := &pending{rec: rec, done: make(chan error, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return errStopping
	}
	select {
	case b.in <- p:
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		// The record may still be written; redelivery is harmless.
		return ctx.Err()
	}
}

// stop refuses new deliveries, flushes what is queued and waits for it.
func (b *batcher) stop(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.quit)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *batcher) run() {
	defer close(b.done)
	flushes := make(chan []*pending)
	flusherDone := make(chan struct{})
	var flushers sync.WaitGroup
	for range b.flushers {
		flushers.Add(1)
		go func() {
			defer flushers.Done()
			for batch := range flushes {
				b.flush(batch)
			}
		}()
	}
	go func() { flushers.Wait(); close(flusherDone) }()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var (
		batch []*pending
		due   bool // linger has passed for the current batch
	)
	for {
		in := b.in
		if len(batch) >= b.maxBatch {
			in = nil // full: wait for the flusher (back-pressure on deliveries)
		}
		var out chan []*pending
		if len(batch) > 0 && (due || len(batch) >= b.maxBatch) {
			out = flushes
		}
		select {
		case p := <-in:
			batch = append(batch, p)
			if len(batch) == 1 {
				due = false
				timer.Reset(b.linger)
			}
		case <-timer.C:
			due = true
		case out <- batch:
			batch, due = nil, false
			timer.Stop()
		case <-b.quit:
			// No submit can be sending any more (stop holds the lock while
			// closing); drain what is buffered.
			for {
				select {
				case p := <-b.in:
					batch = append(batch, p)
					if len(batch) >= b.maxBatch {
						flushes <- batch
						batch = nil
					}
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				flushes <- batch
			}
			close(flushes)
			<-flusherDone
			return
		}
	}
}
