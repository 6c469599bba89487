package eventing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/gamemetrics/gamemetrics/shared/kafka"
)

// maxErrorData is how much of a failed response body goes into the
// knativeerrordata extension of a dead letter, as Knative caps it.
const maxErrorData = 1024

// target is a resolved sink: where one attempt of one event goes.
type target interface {
	send(ctx context.Context, m *message) attempt
	// String is the address put in knativeerrordest.
	String() string
}

// message is one event on its way to a target: a CloudEvent, or the HTTP
// binary-mode form of a Kafka record that already is one, built straight
// from its headers (envelope.passThrough), which HTTP targets send as is.
// Event decodes that form only where the event itself is needed: a
// dead-letter copy, a Kafka target.
type message struct {
	ev     *event.Event
	wire   *wire
	decode func() *event.Event // the event of wire (the SDK path)
}

func eventMessage(e *event.Event) *message { return &message{ev: e} }

// Event returns the message's event, decoding it once if need be.
func (m *message) Event() *event.Event {
	if m.ev == nil {
		m.ev = m.decode()
	}
	return m.ev
}

// id is the event id, for logs.
func (m *message) id() string {
	if m.ev == nil && m.wire != nil {
		return m.wire.header.Get("Ce-Id")
	}
	return m.Event().ID()
}

// extension is an extension's value as text, for logs.
func (m *message) extension(name string) string {
	if m.ev == nil && m.wire != nil {
		return m.wire.header.Get(extensionHeader(name))
	}
	v, _ := m.Event().Extensions()[name].(string)
	return v
}

// attempt is the outcome of one send.
type attempt struct {
	status int
	body   []byte // up to maxErrorData bytes of a non-2xx response
	err    error  // transport failure: no status
}

func (a attempt) ok() bool { return a.err == nil && a.status >= 200 && a.status < 300 }

// retryable reports whether Knative's Kafka data plane would try again:
// transport errors and timeouts, 5xx, 404, 408, 409 and 429.
func (a attempt) retryable() bool {
	if a.err != nil {
		return true
	}
	switch a.status {
	case http.StatusNotFound, http.StatusRequestTimeout, http.StatusConflict, http.StatusTooManyRequests:
		return true
	}
	return a.status >= 500
}

func (a attempt) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("HTTP %d", a.status)
}

// httpTarget POSTs events in binary content mode, as Knative dispatchers do.
type httpTarget struct {
	url       string
	namespace string
	client    *http.Client
}

func (t *httpTarget) String() string { return t.url }

func (t *httpTarget) send(ctx context.Context, m *message) attempt {
	req, err := t.request(ctx, m)
	if err != nil {
		return attempt{err: err}
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return attempt{err: err}
	}
	defer resp.Body.Close()
	a := attempt{status: resp.StatusCode}
	if !a.ok() {
		a.body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorData))
	}
	// Replies are discarded; reading a bounded amount lets the connection
	// be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return a
}

// request is the POST that delivers m: m's binary-mode form when it has
// one, else its event encoded by the SDK.
func (t *httpTarget) request(ctx context.Context, m *message) (*http.Request, error) {
	var req *http.Request
	var err error
	if m.ev == nil && m.wire != nil {
		var body io.Reader
		if len(m.wire.body) > 0 {
			body = bytes.NewReader(m.wire.body)
		}
		if req, err = http.NewRequestWithContext(ctx, http.MethodPost, t.url, body); err != nil {
			return nil, err
		}
		for k, v := range m.wire.header {
			req.Header[k] = v
		}
	} else {
		if req, err = http.NewRequestWithContext(ctx, http.MethodPost, t.url, nil); err != nil {
			return nil, err
		}
		if err := cehttp.WriteRequest(binding.WithForceBinary(ctx), binding.ToMessage(m.Event()), req); err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
	}
	req.Header.Set("Prefer", "reply")
	req.Header.Set("Kn-Namespace", t.namespace)
	return req, nil
}

// kafkaTarget writes events to a topic, as a KafkaSink's receiver does.
type kafkaTarget struct {
	name, namespace, topic string
	structured             bool
	producer               func() (*kgo.Client, error)
}

func (t *kafkaTarget) String() string {
	return "http://kafka-sink-ingress.knative-eventing.svc.cluster.local/" + t.namespace + "/" + t.name
}

func (t *kafkaTarget) send(ctx context.Context, m *message) attempt {
	e := m.Event()
	cl, err := t.producer()
	if err != nil {
		return attempt{err: err}
	}
	// The KafkaSink keys records by the partitionkey extension, if any.
	var key string
	if v, ok := e.Extensions()["partitionkey"]; ok {
		key = fmt.Sprint(v)
	}
	var rec *kgo.Record
	if t.structured {
		b, err := json.Marshal(e)
		if err != nil {
			return attempt{err: fmt.Errorf("encode event: %w", err)}
		}
		rec = &kgo.Record{Topic: t.topic, Key: []byte(key), Value: b,
			Headers: []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}}
	} else if rec, err = kafka.Record(ctx, e, t.topic, key); err != nil {
		return attempt{err: err}
	}
	if key == "" {
		rec.Key = nil
	}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return attempt{err: fmt.Errorf("produce to %s: %w", t.topic, err)}
	}
	return attempt{status: http.StatusAccepted}
}

// defaultBackoffDelay is the backoffDelay of a delivery spec that sets none.
const defaultBackoffDelay = time.Second

// policy is a delivery's retry schedule.
type policy struct {
	retries int
	// backoff is the wait before retry n (n from 1).
	backoff func(n int) time.Duration
	// timeout bounds each attempt.
	timeout time.Duration
}

// knativeBackoff returns Knative's delay for retry n: delay·2^n
// (exponential) or delay·n (linear).
func knativeBackoff(linear bool, delay time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		if linear {
			return delay * time.Duration(n)
		}
		if n > 30 {
			n = 30
		}
		return delay * time.Duration(int64(1)<<n)
	}
}

func policyFor(d *DeliverySpec) policy {
	p := policy{timeout: 600 * time.Second, backoff: knativeBackoff(false, defaultBackoffDelay)}
	if d == nil {
		return p
	}
	if d.Retry != nil {
		p.retries = int(*d.Retry)
	}
	// The reference does not say what the data plane waits when
	// backoffDelay is unset; one second keeps a failing sink from being
	// hammered. A set value was validated at load.
	delay := defaultBackoffDelay
	if d.BackoffDelay != "" {
		delay, _ = ParseDuration(d.BackoffDelay)
	}
	p.backoff = knativeBackoff(d.BackoffPolicy == "linear", delay)
	if d.Timeout != "" {
		p.timeout, _ = ParseDuration(d.Timeout)
	}
	return p
}

// deliver sends e to t, retrying as p says, and returns the last attempt.
// onRetry runs before every retry. A canceled ctx ends it early with the
// context's error.
func (p policy) deliver(ctx context.Context, t target, e *message, onRetry func(n int, last attempt)) attempt {
	var a attempt
	for n := 0; ; n++ {
		if n > 0 {
			if onRetry != nil {
				onRetry(n, a)
			}
			if err := sleep(ctx, p.backoff(n)); err != nil {
				return attempt{err: err}
			}
		}
		actx, cancel := context.WithTimeout(ctx, p.timeout)
		a = t.send(actx, e)
		cancel()
		if ctx.Err() != nil {
			return attempt{err: ctx.Err()}
		}
		if a.ok() || !a.retryable() || n >= p.retries {
			return a
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
