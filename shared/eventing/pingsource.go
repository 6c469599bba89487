package eventing

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
)

const pingEventType = "dev.knative.sources.ping"

// pingPolicy is how Knative's ping adapter delivers: 5 retries with
// exponential backoff from 50 ms, then the event is dropped.
func pingPolicy() policy {
	return policy{
		retries: 5,
		backoff: func(n int) time.Duration { return 50 * time.Millisecond << (n - 1) },
		timeout: 60 * time.Second,
	}
}

// pingSource runs one PingSource.
type pingSource struct {
	name, namespace string
	source          string
	schedule        Schedule
	contentType     string
	data            []byte
	overrides       map[string]string
	sink            target
	jitter          time.Duration
	metrics         *metrics
	log             *slog.Logger
}

func newPingSource(s PingSource, sink target) *pingSource {
	sched, _ := parseSchedule(s.Spec.Schedule, s.Spec.Timezone) // validated at load
	p := &pingSource{
		name:        s.Metadata.Name,
		namespace:   s.Metadata.Namespace,
		source:      fmt.Sprintf("/apis/v1/namespaces/%s/pingsources/%s", s.Metadata.Namespace, s.Metadata.Name),
		schedule:    sched,
		contentType: s.Spec.ContentType,
		sink:        sink,
	}
	switch {
	case s.Spec.DataBase64 != "":
		p.data, _ = base64.StdEncoding.DecodeString(s.Spec.DataBase64) // validated at load
	case s.Spec.Data != "":
		p.data = []byte(s.Spec.Data)
	}
	if s.Spec.CEOverrides != nil {
		p.overrides = s.Spec.CEOverrides.Extensions
	}
	return p
}

// event is the event of one tick at t.
func (p *pingSource) event(t time.Time) *event.Event {
	e := event.New()
	e.SetID(uuid.NewString())
	e.SetType(pingEventType)
	e.SetSource(p.source)
	e.SetTime(t.UTC())
	if p.contentType != "" {
		e.SetDataContentType(p.contentType)
	}
	if p.data != nil {
		e.DataEncoded = p.data
	}
	for name, val := range p.overrides {
		e.SetExtension(name, val)
	}
	return &e
}

// fire sends one event now and returns an error when it was dropped.
func (p *pingSource) fire(ctx context.Context) error {
	labels := []string{kindPingSource, p.name}
	start := time.Now()
	e := p.event(start)
	a := pingPolicy().deliver(ctx, p.sink, eventMessage(e), func(int, attempt) {
		p.metrics.retries.WithLabelValues(labels...).Inc()
	})
	p.metrics.duration.WithLabelValues(labels...).Observe(time.Since(start).Seconds())
	if a.ok() {
		p.metrics.deliveries.WithLabelValues(kindPingSource, p.name, "delivered").Inc()
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("PingSource %s: %w", p.name, ctx.Err())
	}
	p.metrics.deliveries.WithLabelValues(kindPingSource, p.name, "dropped").Inc()
	p.log.Error("ping delivery failed after 5 retries: event dropped", "eventid", e.ID(), "sink", p.sink.String(), "last", a.String())
	return fmt.Errorf("PingSource %s: delivery to %s failed after 5 retries (%s): event dropped", p.name, p.sink, a)
}

// run fires on every tick of the schedule until ctx ends; deliveries use
// dctx so a tick in flight can finish while the runtime stops.
func (p *pingSource) run(ctx, dctx context.Context, now func() time.Time) {
	for {
		next := p.schedule.Next(now())
		wait := time.Until(next)
		if p.jitter > 0 {
			wait += rand.N(p.jitter)
		}
		if err := sleep(ctx, wait); err != nil {
			return
		}
		_ = p.fire(dctx) // logged in fire
	}
}
