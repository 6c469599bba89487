// Package ingest is the GameMetrics write path: game clients POST
// CloudEvents (binary, structured or batch mode) with their game's write key;
// ingest validates each against the event catalogue and answers 202 only once
// every accepted event is acknowledged by all in-sync Kafka replicas.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gamemetrics/gamemetrics/shared/settings"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/gamemetrics/gamemetrics/shared/cache"
	"github.com/gamemetrics/gamemetrics/shared/events"
	"github.com/gamemetrics/gamemetrics/shared/kafka"
	"github.com/gamemetrics/gamemetrics/shared/serving"
	"github.com/gamemetrics/gamemetrics/shared/store"
	"github.com/gamemetrics/gamemetrics/shared/telemetry"
)

// Config tunes ingest. The zero value is not useful; start from DefaultConfig.
type Config struct {
	// RateLimit is the default events per second per game (a game's own
	// rate_limit overrides it); 0 disables limiting.
	RateLimit int64
	// ProduceTimeout bounds the wait for Kafka acknowledgements. Past it the
	// client gets 503 and should retry with the same event ids.
	ProduceTimeout time.Duration
	// RetryAfter is what a 503 tells clients to wait.
	RetryAfter time.Duration
	// KeyCacheTTL is how long a write key lookup is remembered.
	KeyCacheTTL time.Duration
}

// DefaultConfig is what `gamemetrics serve ingest` uses unless told otherwise.
func DefaultConfig() Config {
	return Config{RateLimit: 100_000, ProduceTimeout: 10 * time.Second, RetryAfter: 5 * time.Second, KeyCacheTTL: 30 * time.Second}
}

// ConfigFromEnv reads INGEST_RATE_LIMIT and INGEST_PRODUCE_TIMEOUT over the defaults.
// INGEST_RATE_LIMIT is events per second per game (0 = unlimited).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c, env := DefaultConfig(), settings.From(getenv)
	c.RateLimit = env.Int64("INGEST_RATE_LIMIT", c.RateLimit, 0)
	c.ProduceTimeout = env.Duration("INGEST_PRODUCE_TIMEOUT", c.ProduceTimeout, time.Millisecond)
	return c, env.Err()
}

// Ingest serves the ingest contract. Build it with New.
type Ingest struct {
	cfg       Config
	keys      *store.KeyCache
	producer  *kgo.Client
	limiter   *cache.RateLimiter
	validator *events.Validator
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
	// producerTimesOut: the producer fails records itself within the
	// produce timeout (kafka.NewProducer's delivery timeout), so a request
	// needs no timer of its own.
	producerTimesOut bool
	// tracer is nil when tracing is off: then no span is started, and the
	// hot path allocates nothing for it.
	tracer trace.Tracer
}

// Option adds an optional dependency to New.
type Option func(*Ingest)

// WithTracerProvider traces every request through tp: a server span per
// request (continuing the client's traceparent header, if any), a child
// span per Kafka produce and per PostgreSQL query, and the request span's
// context on every event written, as the CloudEvents distributed-tracing
// extension (traceparent, tracestate). A nil tp leaves tracing off.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(in *Ingest) {
		if tp != nil {
			in.tracer = telemetry.Tracer(tp)
		}
	}
}

// New builds ingest from its dependencies. The producer must be built with
// kafka.NewProducer (acks=all, idempotent) for 202 to mean durable, with
// cfg.ProduceTimeout as its delivery timeout.
func New(cfg Config, games *store.Games, producer *kgo.Client, rdb *redis.Client, log *slog.Logger, reg prometheus.Registerer, opts ...Option) *Ingest {
	timeout, _ := producer.OptValue(kgo.RecordDeliveryTimeout).(time.Duration)
	in := &Ingest{
		producerTimesOut: timeout > 0 && timeout <= cfg.ProduceTimeout,
		cfg:              cfg,
		keys:             store.NewKeyCache(games.ByWriteKey, cfg.KeyCacheTTL),
		producer:         producer,
		limiter:          cache.NewRateLimiter(rdb),
		validator:        events.NewValidator(),
		log:              log,
		metrics:          newMetrics(reg),
		now:              time.Now,
	}
	for _, o := range opts {
		o(in)
	}
	return in
}

// startSpan starts the span of one request or event, a child of the W3C
// trace context in header (the client's, or the delivering broker's).
func (in *Ingest) startSpan(ctx context.Context, name string, header http.Header) (context.Context, trace.Span) {
	ctx = telemetry.WithRemoteParent(ctx, header.Get("traceparent"), header.Get("tracestate"))
	return in.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
}

// Response is the body of every ingest answer.
type Response struct {
	Accepted int        `json:"accepted"`
	Rejected []Rejected `json:"rejected"`
	// Error explains a refusal of the whole request (401, 413, 415, 429, 503).
	Error string `json:"error,omitempty"`
}

// Rejected names one refused event of a request.
type Rejected struct {
	Index  int    `json:"index"`
	ID     string `json:"id,omitempty"`
	Reason string `json:"reason"`
}

func (in *Ingest) answer(w http.ResponseWriter, status int, resp Response) {
	in.metrics.request(status).Inc()
	if len(resp.Rejected) == 0 && resp.Error == "" {
		// Nearly every answer: {"accepted":N,"rejected":[]}, written
		// without reflection.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		b := make([]byte, 0, 40)
		b = strconv.AppendInt(append(b, `{"accepted":`...), int64(resp.Accepted), 10)
		w.Write(append(b, `,"rejected":[]}`+"\n"...))
		return
	}
	if resp.Rejected == nil {
		resp.Rejected = []Rejected{}
	}
	serving.WriteJSON(w, status, resp)
}

// corsHeaders are allowed in a preflight that does not list what it wants.
const corsHeaders = "Authorization, Content-Type, Content-Encoding, ce-specversion, ce-id, ce-source, ce-type, ce-subject, ce-time, ce-sessionid, ce-dataschema"

// preflight answers a browser's CORS preflight for a POST: browsers send one
// before every cross-origin POST with an Authorization header or a
// CloudEvents content type.
func (in *Ingest) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Allow", "POST, OPTIONS")
	h.Set("Access-Control-Allow-Methods", "POST")
	allowed := corsHeaders
	if asked := r.Header.Get("Access-Control-Request-Headers"); asked != "" && headerList(asked) {
		allowed = asked // binary mode sends any ce-<extension> header
	}
	h.Set("Access-Control-Allow-Headers", allowed)
	h.Set("Access-Control-Max-Age", "86400")
	h.Add("Vary", "Access-Control-Request-Headers")
	in.metrics.request(http.StatusNoContent).Inc()
	w.WriteHeader(http.StatusNoContent)
}

// headerList reports whether s is a comma-separated list of header names.
func headerList(s string) bool {
	if len(s) > 2048 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == ',', c == ' ':
		default:
			return false
		}
	}
	return true
}

// ServeHTTP implements the ingest contract on POST / (and the CORS
// preflight on OPTIONS /).
func (in *Ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := in.now()
	defer func() { in.metrics.duration.Observe(time.Since(start).Seconds()) }()
	// Games on the web platform read the answer (and Retry-After on 429
	// and 503) from their own origin.
	serving.AllowAnyOrigin(w.Header(), "Retry-After")
	if r.Method == http.MethodOptions {
		in.preflight(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		in.answerEarly(w, r, http.StatusMethodNotAllowed, "POST CloudEvents to /")
		return
	}
	ctx := r.Context()
	if in.tracer != nil {
		var span trace.Span
		ctx, span = in.startSpan(ctx, "ingest POST /", r.Header)
		sw := &statusWriter{ResponseWriter: w}
		w = sw
		defer func() { telemetry.EndHTTPSpan(span, sw.status) }()
	}
	game, err := in.authenticate(ctx, r.Header.Get("Authorization"))
	if err != nil {
		var fe *serving.Error
		if errors.As(err, &fe) && fe.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="gamemetrics ingest"`)
			in.answerEarly(w, r, http.StatusUnauthorized, fe.Reason)
			return
		}
		in.log.ErrorContext(ctx, "write key lookup failed", "err", err)
		w.Header().Set("Retry-After", retryAfter(in.cfg.RetryAfter))
		in.answerEarly(w, r, http.StatusServiceUnavailable, "cannot check the write key right now; retry later")
		return
	}
	body, rerr := readBody(r)
	if rerr != nil {
		if rerr.unread {
			in.answerEarly(w, r, rerr.status, rerr.reason)
		} else {
			in.answer(w, rerr.status, Response{Error: rerr.reason})
		}
		return
	}
	items, rerr := parseEvents(ctx, r.Header, body)
	if rerr != nil {
		if rerr.status == http.StatusBadRequest {
			// Unparseable bodies are data-quality problems too; keep them.
			in.keepRejected(ctx, game.ID, []item{{raw: body, reject: &events.Rejection{Field: "body", Reason: rerr.reason}}})
		}
		in.answer(w, rerr.status, Response{Error: rerr.reason})
		return
	}
	status, resp, retry := in.ingest(ctx, game, items)
	if retry > 0 {
		w.Header().Set("Retry-After", retryAfter(retry))
	}
	in.answer(w, status, resp)
}

// statusWriter keeps the status of the answer, for the request's span.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (answerEarly) reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Bounds on reading the rest of a body that was refused before it was read.
const (
	drainBytes   = 16 << 20
	drainTimeout = 10 * time.Second
)

// answerEarly refuses a request whose body may still be on its way. net/http
// would close the connection with that body unread, and the kernel answers
// the client's next bytes with a reset: a client that sends the whole body
// before reading (Python's urllib and requests, many game engines) then sees
// ECONNRESET instead of the answer. So the answer goes out first, then up to
// drainBytes of the body are read and dropped, for at most drainTimeout, and
// the connection is closed cleanly. A client that asked for 100-continue has
// sent no body yet and is told not to.
func (in *Ingest) answerEarly(w http.ResponseWriter, r *http.Request, status int, reason string) {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody || r.ProtoMajor != 1 {
		in.answer(w, status, Response{Error: reason})
		return
	}
	w.Header().Set("Connection", "close")
	rc := http.NewResponseController(w)
	drain := !strings.EqualFold(r.Header.Get("Expect"), "100-continue")
	if drain {
		// Lets the handler read the body after the answer (HTTP/1.x).
		drain = rc.EnableFullDuplex() == nil
	}
	in.answer(w, status, Response{Error: reason})
	if !drain {
		return
	}
	rc.Flush()
	rc.SetReadDeadline(time.Now().Add(drainTimeout))
	io.CopyN(io.Discard, r.Body, drainBytes)
}

// authenticate maps "Bearer <write key>" to its game.
func (in *Ingest) authenticate(ctx context.Context, header string) (store.Game, error) {
	key, ok := strings.CutPrefix(header, "Bearer ")
	if !ok || strings.TrimSpace(key) == "" {
		return store.Game{}, &serving.Error{Status: http.StatusUnauthorized, Reason: "missing write key: send Authorization: Bearer <write key>"}
	}
	game, err := in.keys.Game(ctx, strings.TrimSpace(key))
	if errors.Is(err, store.ErrNotFound) {
		return store.Game{}, &serving.Error{Status: http.StatusUnauthorized, Reason: "unknown write key"}
	}
	return game, err
}

// ingest validates, rate-limits and writes a request's events. It returns the
// status, the body and, for 429 and 503, how long the client should wait.
func (in *Ingest) ingest(ctx context.Context, game store.Game, items []item) (int, Response, time.Duration) {
	now := in.now().UTC()
	// Every accepted event is stamped with its game and the receive time,
	// formatted once per request.
	stamps := []kafka.Stamp{
		{Name: events.ExtGameID, Value: game.ID},
		{Name: events.ExtReceivedTime, Value: types.FormatTime(now)},
	}
	// Each event names the request's span as the one that produced it, so
	// process continues the trace (this replaces a traceparent the client
	// put on its events).
	if tp, ts := telemetry.TraceParent(ctx); tp != "" {
		stamps = append(stamps, kafka.Stamp{Name: telemetry.ExtTraceParent, Value: tp})
		if ts != "" {
			stamps = append(stamps, kafka.Stamp{Name: telemetry.ExtTraceState, Value: ts})
		}
	}
	var resp Response
	var enc kafka.Encoder // the request's records share its allocations
	enc.Grow(len(items))
	accepted := make([]*kgo.Record, 0, len(items))
	var rejected []item
	anyTooLarge := false
	for i := range items {
		it := &items[i]
		if it.reject == nil {
			if rej := in.validator.Validate(it.event, now); rej != nil {
				it.reject = rej
			}
		}
		if it.reject != nil {
			anyTooLarge = anyTooLarge || it.tooLarge
			id := ""
			if it.event != nil {
				id = it.event.ID()
			}
			resp.Rejected = append(resp.Rejected, Rejected{Index: i, ID: id, Reason: it.reject.Error()})
			rejected = append(rejected, *it)
			continue
		}
		rec, err := record(ctx, &enc, game.ID, it.event, stamps)
		if err != nil {
			resp.Rejected = append(resp.Rejected, Rejected{Index: i, ID: it.event.ID(), Reason: err.Error()})
			continue
		}
		accepted = append(accepted, rec)
	}

	limit := in.cfg.RateLimit
	if game.RateLimit != nil {
		limit = int64(*game.RateLimit)
	}
	ok, wait, err := in.limiter.Allow(ctx, game.ID, int64(len(items)), limit)
	if err != nil {
		// Failing open: a cache outage must not turn into lost game data.
		in.metrics.limiterErrors.Inc()
		in.log.WarnContext(ctx, "rate limiter unavailable, admitting request", "gameid", game.ID, "err", err)
	} else if !ok {
		return http.StatusTooManyRequests, Response{Error: fmt.Sprintf("game %s is over its rate limit of %d events/s", game.ID, limit)}, max(wait, time.Second)
	}

	recs := accepted
	for _, it := range rejected {
		recs = append(recs, rejectedRecord(game.ID, it, now))
	}
	if len(recs) > 0 {
		start := time.Now()
		err := in.produce(ctx, recs)
		in.metrics.produceDuration.Observe(time.Since(start).Seconds())
		if err != nil && ctx.Err() != nil {
			// The client went away; it never reads an answer, and whatever
			// Kafka stored of its events it will send again.
			in.log.DebugContext(ctx, "client left before Kafka acknowledged", "gameid", game.ID, "events", len(recs), "err", err)
			return statusClientClosed, Response{Error: "the client closed the request"}, 0
		}
		if err != nil {
			in.metrics.produceErrors.Inc()
			in.log.ErrorContext(ctx, "kafka did not acknowledge events", "gameid", game.ID, "events", len(recs), "err", err)
			return http.StatusServiceUnavailable, Response{Error: "events could not be stored; none were accepted, retry with the same ids"}, in.cfg.RetryAfter
		}
	}
	resp.Accepted = len(accepted)
	if in.tracer != nil {
		trace.SpanFromContext(ctx).SetAttributes(attribute.String("gamemetrics.gameid", game.ID),
			attribute.Int("gamemetrics.accepted", resp.Accepted), attribute.Int("gamemetrics.rejected", len(resp.Rejected)))
	}
	in.metrics.accepted.Add(float64(len(accepted)))
	if len(resp.Rejected) > 0 {
		in.metrics.rejected.Add(float64(len(resp.Rejected)))
	}
	switch {
	case resp.Accepted > 0:
		return http.StatusAccepted, resp, 0
	case anyTooLarge && len(items) == 1:
		return http.StatusRequestEntityTooLarge, resp, 0
	default:
		return http.StatusBadRequest, resp, 0
	}
}

// statusClientClosed counts requests whose client left before the answer
// (nginx's 499), so they are not taken for ingest's own 5xx.
const statusClientClosed = 499

// record encodes an accepted event for Kafka with its stamps (its game and
// receive time), keyed so one player's events share a partition.
func record(ctx context.Context, enc *kafka.Encoder, gameID string, e *event.Event, stamps []kafka.Stamp) (*kgo.Record, error) {
	if e.DataContentType() == "" && len(e.Data()) > 0 {
		e.SetDataContentType(event.ApplicationJSON)
	}
	return enc.Record(ctx, e, kafka.TopicEvents, gameID+"/"+e.Subject(), stamps...)
}

// produce writes recs and waits for Kafka to acknowledge them, for at most
// the produce timeout.
func (in *Ingest) produce(ctx context.Context, recs []*kgo.Record) (err error) {
	if in.tracer != nil {
		var span trace.Span
		ctx, span = in.tracer.Start(ctx, "kafka produce", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.operation.type", "send"),
				attribute.String("messaging.destination.name", recs[0].Topic), attribute.Int("messaging.batch.message_count", len(recs))))
		defer func() { telemetry.EndSpan(span, err) }()
	}
	if !in.producerTimesOut {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, in.cfg.ProduceTimeout)
		defer cancel()
	}
	return in.producer.ProduceSync(ctx, recs...).FirstErr()
}

// Header names on records of the rejected-events topic.
const (
	HeaderReason = "gamemetrics_reason"
	HeaderGameID = "gamemetrics_gameid"
	HeaderTime   = "gamemetrics_receivedtime"
)

func rejectedRecord(gameID string, it item, now time.Time) *kgo.Record {
	raw := it.raw
	if len(raw) > events.MaxEventBytes {
		raw = raw[:events.MaxEventBytes]
	}
	return &kgo.Record{
		Topic: kafka.TopicRejected,
		Key:   []byte(gameID),
		Value: raw,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(it.reject.Error())},
			{Key: HeaderGameID, Value: []byte(gameID)},
			{Key: HeaderTime, Value: []byte(now.Format(time.RFC3339Nano))},
		},
	}
}

// keepRejected writes refused input to the rejected topic without holding
// up the answer on it beyond the produce timeout.
func (in *Ingest) keepRejected(ctx context.Context, gameID string, items []item) {
	now := in.now().UTC()
	recs := make([]*kgo.Record, len(items))
	for i, it := range items {
		recs[i] = rejectedRecord(gameID, it, now)
	}
	pctx, cancel := context.WithTimeout(ctx, in.cfg.ProduceTimeout)
	defer cancel()
	if err := in.producer.ProduceSync(pctx, recs...).FirstErr(); err != nil {
		in.log.WarnContext(ctx, "could not record rejected input", "gameid", gameID, "err", err)
	}
}

// Handle ingests one CloudEvent: the Knative func face of ingest. The game
// comes from the Authorization header of the HTTP request that carried it.
func (in *Ingest) Handle(ctx context.Context, e event.Event) (_ *event.Event, err error) {
	var header string
	if rd := cehttp.RequestDataFromContext(ctx); rd != nil {
		header = rd.Header.Get("Authorization")
	}
	if in.tracer != nil {
		var h http.Header
		if rd := cehttp.RequestDataFromContext(ctx); rd != nil {
			h = rd.Header
		}
		var span trace.Span
		ctx, span = in.startSpan(ctx, "ingest event", h)
		defer func() {
			status := http.StatusAccepted // what CloudEventHandler answers a nil reply
			if err != nil {
				status = serving.StatusOf(err)
			}
			telemetry.EndHTTPSpan(span, status)
		}()
	}
	game, err := in.authenticate(ctx, header)
	if err != nil {
		return nil, err
	}
	status, resp, _ := in.ingest(ctx, game, []item{{event: &e}})
	if status >= 300 {
		reason := resp.Error
		if len(resp.Rejected) > 0 {
			reason = resp.Rejected[0].Reason
		}
		return nil, &serving.Error{Status: status, Reason: reason}
	}
	return nil, nil
}

// Ready reports whether Kafka answers.
func (in *Ingest) Ready(ctx context.Context) (bool, error) {
	if err := in.producer.Ping(ctx); err != nil {
		return false, fmt.Errorf("kafka: %w", err)
	}
	// Not Redis: without it the rate limiter admits every request (and
	// counts the failure), which beats taking ingest out of service.
	return true, nil
}

// Stop flushes records still buffered in the producer.
func (in *Ingest) Stop(ctx context.Context) error { return in.producer.Flush(ctx) }

// request is the requests counter of status.
func (m *metrics) request(status int) prometheus.Counter {
	if c, ok := m.byStatus[status]; ok {
		return c
	}
	return m.requests.WithLabelValues(strconv.Itoa(status))
}

func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(max(1, (d+time.Second-1)/time.Second)))
}

type metrics struct {
	requests *prometheus.CounterVec
	// byStatus are the requests counters of the statuses ingest answers,
	// looked up once rather than hashed on every request.
	byStatus           map[int]prometheus.Counter
	events             *prometheus.CounterVec
	accepted, rejected prometheus.Counter
	duration           prometheus.Histogram
	produceDuration    prometheus.Histogram
	produceErrors      prometheus.Counter
	limiterErrors      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_ingest_requests_total", Help: "Ingest HTTP requests by response status."}, []string{"code"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gamemetrics_ingest_events_total", Help: "Events received, by outcome (accepted, rejected)."}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_ingest_request_duration_seconds", Help: "Time to answer an ingest request.", Buckets: telemetry.LatencyBuckets()}),
		produceDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gamemetrics_ingest_produce_duration_seconds", Help: "Time for Kafka to acknowledge a request's records.", Buckets: telemetry.LatencyBuckets()}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_ingest_produce_errors_total", Help: "Requests answered 503 because Kafka did not acknowledge."}),
		limiterErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gamemetrics_ingest_ratelimit_errors_total", Help: "Requests admitted without a rate-limit check because Redis failed."}),
	}
	// Zero series from the start, so rate() and alerts see them before the first event.
	m.accepted = m.events.WithLabelValues("accepted")
	m.rejected = m.events.WithLabelValues("rejected")
	m.byStatus = map[int]prometheus.Counter{}
	for _, code := range []int{http.StatusAccepted, http.StatusNoContent, http.StatusBadRequest, http.StatusUnauthorized,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusTooManyRequests, http.StatusServiceUnavailable} {
		m.byStatus[code] = m.requests.WithLabelValues(strconv.Itoa(code))
	}
	reg.MustRegister(m.requests, m.events, m.duration, m.produceDuration, m.produceErrors, m.limiterErrors)
	return m
}
