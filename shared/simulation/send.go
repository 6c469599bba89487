package simulation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// SendConfig says how to deliver generated events to ingest.
type SendConfig struct {
	URL      string
	WriteKey string
	// Batch is events per request (default 100, at most 500).
	Batch int
	// Rate caps events per second (0 = as fast as ingest answers).
	Rate float64
	// Concurrency is requests in flight (default 4).
	Concurrency int
	// Duplicates is the share of events sent a second time later on.
	Duplicates float64
	// Late is the share of events held back and sent after everything else.
	Late float64
	// Malformed is the share of extra invalid events mixed in (they must
	// be rejected and never counted).
	Malformed float64
	// Shuffle sends each batch in random order.
	Shuffle bool
	Seed    uint64
	Client  *http.Client
	// Retries per request on 429, 5xx and network errors (default 20).
	Retries int
}

// Stats counts what Send did.
type Stats struct {
	Requests   int64 `json:"requests"`
	Sent       int64 `json:"sent"`
	Accepted   int64 `json:"accepted"`
	Rejected   int64 `json:"rejected"`
	Duplicates int64 `json:"duplicates"`
	Malformed  int64 `json:"malformed"`
	Retries    int64 `json:"retries"`
}

// Plan orders the events as they will be sent: late events moved to the
// end, duplicates and malformed events inserted, batches shuffled.
func Plan(evs []Event, cfg SendConfig) (stream []json.RawMessage, malformed, duplicates int) {
	r := rand.New(rand.NewPCG(cfg.Seed+1, 7))
	var onTime, late []json.RawMessage
	for _, e := range evs {
		raw := e.JSON()
		if r.Float64() < cfg.Late {
			late = append(late, raw)
		} else {
			onTime = append(onTime, raw)
		}
		if r.Float64() < cfg.Duplicates {
			duplicates++
			late = append(late, raw) // a resend arrives after the original
		}
		if r.Float64() < cfg.Malformed {
			malformed++
			onTime = append(onTime, malformedEvent(e, malformed))
		}
	}
	r.Shuffle(len(late), func(i, j int) { late[i], late[j] = late[j], late[i] })
	stream = append(onTime, late...)
	if cfg.Shuffle {
		batch := batchSize(cfg)
		for i := 0; i < len(stream); i += batch {
			b := stream[i:min(i+batch, len(stream))]
			r.Shuffle(len(b), func(x, y int) { b[x], b[y] = b[y], b[x] })
		}
	}
	return stream, malformed, duplicates
}

// malformedEvent breaks a copy of e in one of the ways real clients do.
func malformedEvent(e Event, n int) json.RawMessage {
	e.ID = fmt.Sprintf("malformed-%d-%s", n, e.ID)
	switch n % 4 {
	case 0:
		e.Type = "com.gamemetrics.unknown"
	case 1:
		e.Type = "com.gamemetrics.purchase"
		e.Data = map[string]any{"item_id": "x", "currency": "usd", "amount_minor": 1.5}
	case 2:
		e.Subject = ""
	case 3:
		e.Time = e.Time.Add(-60 * 24 * time.Hour)
	}
	return e.JSON()
}

func batchSize(cfg SendConfig) int {
	if cfg.Batch <= 0 {
		return 100
	}
	return min(cfg.Batch, 500)
}

// Send delivers the planned stream to ingest in batches, retrying what
// ingest asks to be retried, and returns what happened.
func Send(ctx context.Context, stream []json.RawMessage, cfg SendConfig) (Stats, error) {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 20
	}
	batch := batchSize(cfg)
	var st Stats
	jobs := make(chan []json.RawMessage)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if err := sendBatch(ctx, cfg, b, &st); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	start := time.Now()
	var sent int
	for i := 0; i < len(stream) && ctx.Err() == nil; i += batch {
		b := stream[i:min(i+batch, len(stream))]
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(sent) / cfg.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
				}
			}
		}
		select {
		case jobs <- b:
			sent += len(b)
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return st, err
	}
	return st, ctx.Err()
}

type ingestAnswer struct {
	Accepted int               `json:"accepted"`
	Rejected []json.RawMessage `json:"rejected"`
	Error    string            `json:"error"`
}

func sendBatch(ctx context.Context, cfg SendConfig, batch []json.RawMessage, st *Stats) error {
	body, _ := json.Marshal(batch)
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cfg.WriteKey)
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		atomic.AddInt64(&st.Requests, 1)
		resp, err := cfg.Client.Do(req)
		var ans ingestAnswer
		status := 0
		wait := backoff
		if err == nil {
			status = resp.StatusCode
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			json.Unmarshal(b, &ans)
			if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil {
				wait = time.Duration(s) * time.Second
			}
			switch {
			case status == http.StatusAccepted || status == http.StatusBadRequest && ans.Error == "":
				atomic.AddInt64(&st.Sent, int64(len(batch)))
				atomic.AddInt64(&st.Accepted, int64(ans.Accepted))
				atomic.AddInt64(&st.Rejected, int64(len(ans.Rejected)))
				return nil
			case status == http.StatusTooManyRequests || status >= 500:
			default:
				return fmt.Errorf("ingest answered %d: %s", status, ans.Error)
			}
		}
		if attempt >= cfg.Retries {
			if err != nil {
				return fmt.Errorf("giving up after %d attempts: %w", attempt+1, err)
			}
			return fmt.Errorf("giving up after %d attempts: ingest answered %d: %s", attempt+1, status, ans.Error)
		}
		atomic.AddInt64(&st.Retries, 1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
