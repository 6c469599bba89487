package eventing

import (
	"context"
	"encoding/base64"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxQueuedPerPartition bounds the records an ordered source holds for one
// partition before it pauses fetching that partition.
const maxQueuedPerPartition = 1000

// kafkaSource runs one KafkaSource: spec.consumers group members sharing
// a consumer group, each fetching records and delivering them to the sink.
type kafkaSource struct {
	name, namespace string
	group           string
	topics          []string
	atStart         bool
	ordered         bool
	maxInFlight     int
	commitEvery     time.Duration
	consumers       int
	sink, dls       target
	policy          policy
	envelope        envelope
	metrics         *metrics
	log             *slog.Logger
	members         []*member
}

// process delivers one event to the sink, or to the dead-letter sink when
// the sink refuses it for good, and reports whether the record is finished
// (whatever the outcome: Knative commits even lost events). It reports false
// only when ctx ended first, so the record is delivered again later.
func (s *kafkaSource) process(ctx context.Context, e *message) bool {
	labels := []string{kindKafkaSource, s.name}
	s.metrics.inFlight.WithLabelValues(labels...).Inc()
	defer s.metrics.inFlight.WithLabelValues(labels...).Dec()
	start := time.Now()
	// The logger is built only for the rare failure, not per event.
	log := func() *slog.Logger {
		return s.log.With("eventid", e.id(), extPartition, e.extension(extPartition), extOffset, e.extension(extOffset))
	}
	onRetry := func(n int, last attempt) {
		s.metrics.retries.WithLabelValues(labels...).Inc()
		log().Debug("retrying delivery", "retry", n, "after", last.String())
	}
	a := s.policy.deliver(ctx, s.sink, e, onRetry)
	if ctx.Err() != nil {
		return false
	}
	defer func() { s.metrics.duration.WithLabelValues(labels...).Observe(time.Since(start).Seconds()) }()
	if a.ok() {
		s.metrics.deliveries.WithLabelValues(kindKafkaSource, s.name, "delivered").Inc()
		return true
	}
	if s.dls == nil {
		s.metrics.deliveries.WithLabelValues(kindKafkaSource, s.name, "dropped").Inc()
		log().Error("delivery failed and there is no dead-letter sink: event lost", "sink", s.sink.String(), "last", a.String())
		return true
	}
	dl := e.Event().Clone()
	dl.SetExtension(extErrorDestination, s.sink.String())
	if a.err == nil {
		dl.SetExtension(extErrorCode, strconv.Itoa(a.status))
	}
	if len(a.body) > 0 {
		dl.SetExtension(extErrorData, base64.StdEncoding.EncodeToString(a.body))
	}
	d := s.policy.deliver(ctx, s.dls, eventMessage(&dl), onRetry)
	if ctx.Err() != nil {
		return false
	}
	if d.ok() {
		s.metrics.deadLetters.WithLabelValues(kindKafkaSource, s.name, "ok").Inc()
		s.metrics.deliveries.WithLabelValues(kindKafkaSource, s.name, "dead_lettered").Inc()
		log().Warn("delivery failed: event sent to the dead-letter sink", "sink", s.sink.String(), "last", a.String(), "dls", s.dls.String())
		return true
	}
	s.metrics.deadLetters.WithLabelValues(kindKafkaSource, s.name, "failed").Inc()
	s.metrics.deliveries.WithLabelValues(kindKafkaSource, s.name, "dead_letter_failed").Inc()
	log().Error("delivery and dead-lettering failed: event lost", "sink", s.sink.String(), "last", a.String(),
		"dls", s.dls.String(), "dls_last", d.String())
	return true
}

// start creates the group members; they join and consume in the background.
func (s *kafkaSource) start(opts []kgo.Opt) error {
	for i := 0; i < s.consumers; i++ {
		m := newMember(s)
		reset := kgo.NewOffset().AtEnd()
		if s.atStart {
			reset = kgo.NewOffset().AtStart()
		}
		all := append(append([]kgo.Opt{
			kgo.SessionTimeout(10 * time.Second),
			kgo.FetchMaxWait(500 * time.Millisecond),
		}, opts...),
			kgo.ConsumerGroup(s.group),
			kgo.ConsumeTopics(s.topics...),
			kgo.ConsumeResetOffset(reset),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsRevoked(m.onRevoked),
			kgo.OnPartitionsLost(m.onLost),
		)
		cl, err := kgo.NewClient(all...)
		if err != nil {
			s.stop(context.Background())
			return err
		}
		m.cl = cl
		s.members = append(s.members, m)
		m.run()
	}
	return nil
}

// stop stops every member: see member.stop.
func (s *kafkaSource) stop(ctx context.Context) {
	var wg sync.WaitGroup
	for _, m := range s.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop(ctx)
		}()
	}
	wg.Wait()
	s.members = nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// partition tracks the records of one assigned partition between fetch
// and commit.
type partition struct {
	tp topicPartition
	// pending are the fetched records from the commit point on, in offset
	// order; the head is the lowest record not finished yet.
	pending []*entry
	// lastDone ends the finished prefix: committing it commits
	// lastDone.Offset+1.
	lastDone  *kgo.Record
	committed int64
	inFlight  int
	// queue holds, in ordered mode, the records not started yet.
	queue   []*entry
	working bool
	paused  bool
	// gone is set once the partition is revoked or lost.
	gone bool
}

type entry struct {
	rec  *kgo.Record
	p    *partition
	done bool
}

// member is one consumer of a KafkaSource's group.
type member struct {
	src *kafkaSource
	cl  *kgo.Client
	sem chan struct{} // unordered: one token per delivery in flight

	mu       sync.Mutex
	parts    map[topicPartition]*partition
	changed  chan struct{} // closed and replaced on every finished delivery
	stopping bool          // no new deliveries start
	closing  bool          // offsets are final; revokes need no commit

	commitMu sync.Mutex // one commit at a time, so commits never go backwards

	pollCtx    context.Context
	pollCancel context.CancelFunc
	// dctx is the deliveries' context, canceled only when stopping takes
	// longer than allowed.
	dctx       context.Context
	dcancel    context.CancelFunc
	deliveries sync.WaitGroup
	loopDone   chan struct{}
	commitDone chan struct{}
	commitStop chan struct{}
}

func newMember(s *kafkaSource) *member {
	m := &member{
		src:        s,
		parts:      map[topicPartition]*partition{},
		changed:    make(chan struct{}),
		loopDone:   make(chan struct{}),
		commitDone: make(chan struct{}),
		commitStop: make(chan struct{}),
	}
	if !s.ordered {
		m.sem = make(chan struct{}, s.maxInFlight)
	}
	m.pollCtx, m.pollCancel = context.WithCancel(context.Background())
	m.dctx, m.dcancel = context.WithCancel(context.Background())
	return m
}

func (m *member) run() {
	go m.pollLoop()
	go m.commitLoop()
}

func (m *member) pollLoop() {
	defer close(m.loopDone)
	for {
		fetches := m.cl.PollRecords(m.pollCtx, 500)
		if fetches.IsClientClosed() || m.pollCtx.Err() != nil {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			m.src.log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		})
		stopped := false
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if stopped || len(fp.Records) == 0 {
				return
			}
			last := fp.Records[len(fp.Records)-1]
			m.src.metrics.lag.WithLabelValues(kindKafkaSource, m.src.name, fp.Topic, strconv.Itoa(int(fp.Partition))).
				Set(float64(max(fp.HighWatermark-last.Offset-1, 0)))
			for _, rec := range fp.Records {
				if !m.dispatch(rec) {
					stopped = true
					return
				}
			}
		})
		if stopped {
			return
		}
		m.cl.AllowRebalance()
	}
}

// dispatch tracks rec and starts (unordered) or queues (ordered) its
// delivery. It reports false when the member is stopping and rec was not
// started: rec stays pending, so the commit never passes it.
func (m *member) dispatch(rec *kgo.Record) bool {
	tp := topicPartition{rec.Topic, rec.Partition}
	m.mu.Lock()
	p := m.parts[tp]
	if p == nil {
		p = &partition{tp: tp, committed: -1}
		m.parts[tp] = p
	}
	e := &entry{rec: rec, p: p}
	p.pending = append(p.pending, e)
	if m.src.ordered {
		p.queue = append(p.queue, e)
		if !p.working {
			p.working = true
			m.deliveries.Add(1)
			go m.work(p)
		}
		if len(p.queue) >= maxQueuedPerPartition && !p.paused {
			p.paused = true
			m.cl.PauseFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
		}
		m.mu.Unlock()
		return true
	}
	m.mu.Unlock()
	select {
	case m.sem <- struct{}{}:
	case <-m.pollCtx.Done():
		return false
	}
	m.mu.Lock()
	p.inFlight++
	m.mu.Unlock()
	m.deliveries.Add(1)
	go func() {
		defer m.deliveries.Done()
		defer func() { <-m.sem }()
		m.deliver(e)
	}()
	return true
}

// work delivers one partition's queue in order, one record at a time.
func (m *member) work(p *partition) {
	defer m.deliveries.Done()
	for {
		m.mu.Lock()
		if len(p.queue) == 0 || p.gone || m.stopping {
			p.working = false
			m.mu.Unlock()
			return
		}
		e := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.inFlight++
		if p.paused && len(p.queue) <= maxQueuedPerPartition/2 {
			p.paused = false
			m.cl.ResumeFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.partition}})
		}
		m.mu.Unlock()
		m.deliver(e)
	}
}

func (m *member) deliver(e *entry) {
	finished := m.src.process(m.dctx, m.src.envelope.message(m.dctx, e.rec))
	m.mu.Lock()
	defer m.mu.Unlock()
	p := e.p
	p.inFlight--
	if finished {
		e.done = true
		for len(p.pending) > 0 && p.pending[0].done {
			p.lastDone = p.pending[0].rec
			p.pending[0] = nil
			p.pending = p.pending[1:]
		}
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

// waitIdle waits until no delivery is in flight on the partitions match
// selects, or ctx ends.
func (m *member) waitIdle(ctx context.Context, match func(*partition) bool) error {
	for {
		m.mu.Lock()
		busy := false
		for _, p := range m.parts {
			if match(p) && (p.inFlight > 0 || (p.working && !p.gone && !m.stopping)) {
				busy = true
				break
			}
		}
		ch := m.changed
		m.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// commit commits, for the partitions match selects, the end of the
// finished prefix of records.
func (m *member) commit(ctx context.Context, match func(*partition) bool) {
	m.commitMu.Lock()
	defer m.commitMu.Unlock()
	type point struct {
		p   *partition
		rec *kgo.Record
	}
	var points []point
	var recs []*kgo.Record
	m.mu.Lock()
	for _, p := range m.parts {
		if match(p) && p.lastDone != nil && p.lastDone.Offset+1 > p.committed {
			points = append(points, point{p, p.lastDone})
			recs = append(recs, p.lastDone)
		}
	}
	m.mu.Unlock()
	if len(recs) == 0 {
		return
	}
	if err := m.cl.CommitRecords(ctx, recs...); err != nil {
		m.src.metrics.commits.WithLabelValues(kindKafkaSource, m.src.name, "failed").Inc()
		m.src.log.Warn("offset commit failed; retried at the next commit", "group", m.src.group, "err", err)
		return
	}
	m.src.metrics.commits.WithLabelValues(kindKafkaSource, m.src.name, "ok").Inc()
	m.mu.Lock()
	for _, pt := range points {
		pt.p.committed = pt.rec.Offset + 1
	}
	m.mu.Unlock()
}

func (m *member) commitLoop() {
	defer close(m.commitDone)
	t := time.NewTicker(m.src.commitEvery)
	defer t.Stop()
	for {
		select {
		case <-m.commitStop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m.commit(ctx, func(p *partition) bool { return !p.gone })
			cancel()
		}
	}
}

func selectPartitions(set map[string][]int32) func(*partition) bool {
	return func(p *partition) bool {
		for _, q := range set[p.tp.topic] {
			if q == p.tp.partition {
				return true
			}
		}
		return false
	}
}

// onRevoked lets the deliveries in flight on the revoked partitions finish,
// commits them and forgets the partitions. Records queued but not started
// are left to the next owner, which starts from the committed offset.
func (m *member) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	match := selectPartitions(revoked)
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return
	}
	for _, p := range m.parts {
		if match(p) {
			p.gone = true
			p.queue = nil
		}
	}
	m.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := m.waitIdle(wctx, match); err != nil {
		m.src.log.Warn("partitions revoked with deliveries still in flight; they will be delivered again", "err", err)
	}
	cancel()
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	m.commit(cctx, match)
	cancel()
	m.forget(match)
}

// onLost forgets partitions that were taken away without a chance to
// commit; their uncommitted records are delivered again by the next owner.
func (m *member) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	match := selectPartitions(lost)
	m.mu.Lock()
	for _, p := range m.parts {
		if match(p) {
			p.gone = true
			p.queue = nil
		}
	}
	m.mu.Unlock()
	m.forget(match)
}

func (m *member) forget(match func(*partition) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp, p := range m.parts {
		if !match(p) {
			continue
		}
		if p.paused {
			p.paused = false
			m.cl.ResumeFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
		}
		delete(m.parts, tp)
	}
}

// stop stops fetching, lets the deliveries in flight finish until ctx ends
// (then cancels them: they are delivered again after a restart), commits
// what finished, and leaves the group.
func (m *member) stop(ctx context.Context) {
	m.pollCancel()
	<-m.loopDone
	m.mu.Lock()
	m.stopping = true
	for _, p := range m.parts {
		p.queue = nil
	}
	m.mu.Unlock()
	if err := m.waitIdle(ctx, func(*partition) bool { return true }); err != nil {
		m.src.log.Warn("stopping with deliveries in flight; they will be delivered again", "err", err)
		m.dcancel()
	}
	m.deliveries.Wait()
	m.dcancel()
	close(m.commitStop)
	<-m.commitDone
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	m.commit(cctx, func(*partition) bool { return true })
	cancel()
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
	m.cl.CloseAllowingRebalance()
}
