// Package ingest batches records on their way into a Store and acknowledges
// each submission only once the batch holding it is durably stored.
//
// Submissions wait in a bounded queue; a single writer takes them in batches.
// Queued records (Enqueue) flush on size or deadline; a waiting caller
// (Commit) gets a group commit: the writer writes as soon as it is free,
// taking every submission queued by then into the same store append, so
// concurrent callers share one commit and a lone caller waits for one
// append, not for a deadline. When the store falls behind, the queue fills
// and Submit, Commit and Enqueue block (backpressure): nothing is ever
// dropped. Callers that must not block ask Saturated first and answer
// ThrottlingException.
package ingest

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Appender is the part of audit.Store the pipeline writes to.
type Appender interface {
	Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error)
}

// Config configures a Pipeline. The zero value of every field but Store works.
type Config struct {
	Store Appender
	// MaxBatch is the number of records that triggers a flush (default 2000).
	MaxBatch int
	// MaxDelay is how long the first record of a batch may wait (default 50ms).
	MaxDelay time.Duration
	// QueueSize bounds the submissions waiting for the writer (default 1024).
	QueueSize int
	// MaxAttempts bounds the tries of one batch's Append (default 5), with
	// capped exponential backoff and jitter between them.
	MaxAttempts int
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// ErrClosed is returned by Submit once the pipeline has stopped.
var ErrClosed = errors.New("ingest: pipeline closed")

type submission struct {
	records []audit.Record
	done    chan result
	// exact submissions (Submit) are written alone so that their counts
	// are exact; queued ones (Enqueue) and waiting ones (Commit) share
	// batches.
	exact bool
	// wait marks a caller waiting for the write (Commit): its batch is
	// written as soon as the writer has taken what is queued.
	wait bool
}

type result struct {
	res audit.AppendResult
	err error
}

// Pipeline is a batching writer in front of a Store. Create it with New,
// run it with Run, submit with Submit.
type Pipeline struct {
	cfg     Config
	queue   chan submission
	stopped chan struct{} // closed when Run starts its final drain
	drained chan struct{} // closed when Run has returned
	once    sync.Once

	batches  prometheus.Counter
	records  prometheus.Counter
	failures prometheus.Counter
	latency  prometheus.Histogram
	depth    prometheus.GaugeFunc
}

// New returns a Pipeline writing to cfg.Store.
func New(cfg Config) *Pipeline {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2000
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 50 * time.Millisecond
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg:     cfg,
		queue:   make(chan submission, cfg.QueueSize),
		stopped: make(chan struct{}),
		drained: make(chan struct{}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_ingest_batches_total", Help: "Batches written to the store.",
		}),
		records: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_ingest_records_total", Help: "Records submitted and durably written (duplicates included).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_ingest_append_failures_total", Help: "Store appends that failed (each attempt).",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cairn_ingest_append_duration_seconds", Help: "Duration of one store append of a batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	p.depth = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_ingest_queue_depth", Help: "Submissions waiting for the writer.",
	}, func() float64 { return float64(len(p.queue)) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.batches, p.records, p.failures, p.latency, p.depth} {
			cfg.Registerer.MustRegister(c)
		}
	}
	return p
}

// Saturated reports whether the queue is full, so that a Submit now would
// block until the writer catches up.
func (p *Pipeline) Saturated() bool { return len(p.queue) == cap(p.queue) }

// Submit hands records to the writer and waits until they are durably
// stored. It blocks while the queue is full. It returns ctx's error if ctx
// ends first (the records may still be stored later: Append is idempotent,
// so a retry is safe), and ErrClosed once the pipeline has stopped.
func (p *Pipeline) Submit(ctx context.Context, records ...audit.Record) (audit.AppendResult, error) {
	if len(records) == 0 {
		return audit.AppendResult{}, nil
	}
	s := submission{records: records, done: make(chan result, 1), exact: true}
	r := p.wait(ctx, s)
	return r.res, r.err
}

// Commit hands records to the writer and waits until they are durably
// stored, like Submit, but shares the store append with whatever else is
// queued (group commit) and reports no counts. The writer appends as soon
// as it is free: a lone call waits for one append, concurrent calls share
// one. It blocks while the queue is full, returns ctx's error if ctx ends
// first (the records may still be stored later) and ErrClosed once the
// pipeline has stopped.
func (p *Pipeline) Commit(ctx context.Context, records ...audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	return p.wait(ctx, submission{records: records, done: make(chan result, 1), wait: true}).err
}

// wait queues s and waits for its write.
func (p *Pipeline) wait(ctx context.Context, s submission) result {
	select {
	case <-p.stopped:
		return result{err: ErrClosed}
	default:
	}
	select {
	case p.queue <- s:
	case <-p.stopped:
		return result{err: ErrClosed}
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
	select {
	case r := <-s.done:
		return r
	case <-p.drained:
		// Queued after the final drain: never written.
		select {
		case r := <-s.done:
			return r
		default:
			return result{err: ErrClosed}
		}
	case <-ctx.Done():
		return result{err: ctx.Err()}
	}
}

// Enqueue hands records to the writer without waiting for the write. It
// blocks only while the queue is full (backpressure). Records enqueued
// before Run stops are written by Run's final drain.
func (p *Pipeline) Enqueue(ctx context.Context, records ...audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	s := submission{records: records, done: make(chan result, 1)}
	select {
	case <-p.stopped:
		return ErrClosed
	default:
	}
	select {
	case p.queue <- s:
		return nil
	case <-p.stopped:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append makes a Pipeline usable where an audit.Store's Append is expected.
func (p *Pipeline) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	return p.Submit(ctx, records...)
}

// Run is the writer. It returns after ctx ends and every submission queued
// by then has been written (or has failed), and refuses later submissions.
func (p *Pipeline) Run(ctx context.Context) error {
	defer close(p.drained)
	var (
		batch   []submission
		n       int
		timer   = time.NewTimer(time.Hour)
		pending bool
		waiting bool // a Commit caller is in the batch
	)
	timer.Stop()
	flush := func() {
		if len(batch) == 0 {
			return
		}
		p.write(batch, n)
		batch, n, pending, waiting = batch[:0], 0, false, false
		timer.Stop()
	}
	add := func(s submission) {
		if s.exact {
			// A submission waiting for its counts is written alone,
			// so that they are exact; queued records share batches.
			flush()
			batch, n = append(batch, s), len(s.records)
			flush()
			return
		}
		batch = append(batch, s)
		n += len(s.records)
		waiting = waiting || s.wait
		if !pending {
			pending = true
			timer.Reset(p.cfg.MaxDelay)
		}
		if n >= p.cfg.MaxBatch {
			flush()
		}
	}
	// groupCommit writes a batch holding a waiting caller together with
	// every submission queued by now (up to MaxBatch records): the group
	// commit. Those arriving during the write form the next group.
	groupCommit := func() {
		for waiting && n < p.cfg.MaxBatch {
			select {
			case s := <-p.queue:
				add(s)
				continue
			default:
			}
			break
		}
		if waiting {
			flush()
		}
	}
	for {
		select {
		case s := <-p.queue:
			add(s)
			groupCommit()
		case <-timer.C:
			pending = false
			flush()
		case <-ctx.Done():
			p.once.Do(func() { close(p.stopped) })
			// Drain what was queued before the stop.
			for {
				select {
				case s := <-p.queue:
					add(s)
				default:
					flush()
					return nil
				}
			}
		}
	}
}

// write appends one batch with retries and answers every submission in it.
func (p *Pipeline) write(batch []submission, n int) {
	records := make([]audit.Record, 0, n)
	for _, s := range batch {
		records = append(records, s.records...)
	}
	var (
		res audit.AppendResult
		err error
	)
	backoff := 20 * time.Millisecond
	for attempt := 1; attempt <= p.cfg.MaxAttempts; attempt++ {
		start := time.Now()
		// The batch is written even while shutting down: the context of
		// Run must not abort the final flush.
		res, err = p.cfg.Store.Append(context.Background(), records)
		p.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		p.failures.Inc()
		p.cfg.Logger.Error("ingest: append failed", "records", n, "attempt", attempt, "err", err)
		if attempt < p.cfg.MaxAttempts {
			time.Sleep(backoff/2 + rand.N(backoff/2+1))
			backoff = min(backoff*2, 2*time.Second)
		}
	}
	if err == nil {
		p.batches.Inc()
		p.records.Add(float64(n))
	}
	// The store reports totals: exact for a submission alone in its batch
	// (every Submit); queued submissions (Enqueue) read no counts.
	for _, s := range batch {
		r := result{err: err}
		if err == nil && len(batch) == 1 {
			r.res = res
		}
		s.done <- r
	}
}
