// Package ingest batches records on their way into a Store and acknowledges
// each submission only once it is durably stored.
//
// Submissions wait in a bounded queue of one lane per account; a single
// writer takes them in batches, from the lanes in turn (round robin), so
// that one account's backlog does not delay another's calls by more than a
// batch. What each call guarantees when it returns nil:
//
//   - Submit: the records are durable, with exact counts. With a journal
//     and Config.Keys, they are in the journal, like Commit's below: the
//     counts are worked out before the journal write from the keys in
//     flight and the store's key check, and only new records are
//     journaled. Otherwise they are in the store: when the store reports
//     per-record outcomes (EachAppender), concurrent Submit calls share one
//     store append (group commit) and each gets the counts of its own
//     records; otherwise each is written alone.
//   - Commit: the records are durable. Without a journal, they are in the
//     store: the writer appends as soon as it is free, taking every
//     submission queued by then into the same store append (group commit),
//     so concurrent callers share one commit and a lone caller waits for
//     one append, not for a deadline. With a journal (Open with
//     Config.JournalDir), they are in the journal, fsynced: the caller
//     writes its records itself when no journal write is under way, and
//     callers arriving during one share the next write and fsync. They then
//     go through the queue to the writer, which stores them in batches on
//     size or deadline (JournalDelay); records left in the journal by a
//     crash are replayed into the store by the next Open.
//   - Enqueue: the records are queued, not yet durable; Run's final drain
//     stores those queued before it stops. Without a journal the writer
//     stores them within MaxDelay, and a crash loses the ones not yet
//     stored. With one, the writer journals them within MaxDelay (those
//     queued by then in one write and fsync) and stores them QueuedDelay
//     later, as journaled records: a crash loses at most the last
//     MaxDelay of them, and the store takes them in fewer, larger appends.
//
// Callers that must not queue ask Admit first and answer its error
// (ThrottlingException, or ServiceUnavailableException while the disk is
// full) instead of calling, and release the admission once answered: Admit
// refuses an account with AccountMaxCalls calls admitted and not yet
// answered, or AccountQueueRecords records queued, and, when QueueSize
// calls of all accounts are admitted, the accounts holding at least an
// equal share of them. Counting calls from admission (not from queueing)
// bounds the CPU one account's calls take before they reach the queue
// (decoding, validation), not only the queue. Past admission, a full lane
// makes Submit, Commit and Enqueue block (backpressure): nothing is ever
// dropped while the disk has room. With a journal the same holds: a
// journal write is answered only once its records are in the queue.
//
// A full disk (a write failing with ENOSPC, or free space below
// MinFreeBytes) makes Admit refuse writes at once, with a log line and the
// gauge cairn_ingest_disk_full; acknowledged records the store could not
// take stay in the journal and in the writer, which stores them once space
// is back. The pipeline checks the free space at most every
// DiskCheckInterval and resumes by itself.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/ingest/journal"
)

// Appender is the part of audit.Store the pipeline writes to.
type Appender interface {
	Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error)
}

// EachAppender is an Appender that also tells, per record, whether it was
// inserted: AppendEach is Append (same guarantees) returning inserted[i]
// true when records[i] was new, false when it was a duplicate. With it,
// concurrent Submit calls share one store append and each still gets its
// own exact counts.
type EachAppender interface {
	Appender
	AppendEach(ctx context.Context, records []audit.Record) (inserted []bool, err error)
}

// StagingAppender is an EachAppender that appends in stages (the DuckDB
// store with StagedAppends): StageEach prepares the records (their blocks
// compressed, on every core) and returns the function that reserves their
// place after the batches reserved before, which returns the function that
// appends them and commits them after those batches, returning what
// AppendEach would. With it the writer prepares, reserves and appends its
// next batch while the one before commits, and answers each batch once
// its stage has committed. A failed stage fails the stages reserved after
// it; the writer appends each failed batch again with AppendEach, after
// which the store takes stages again.
type StagingAppender interface {
	EachAppender
	StageEach(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error)
}

// CheckedStager is a StagingAppender that can leave out its own duplicate
// check for records the pipeline has checked: StageChecked is StageEach
// for records whose keys are distinct, not stored (Config.Keys said so
// after every append of them had returned) and in no other append until
// this one has returned, as the in-flight set makes those a writeSet
// marks checked. Every record is then new: inserted[i] is true for each.
type CheckedStager interface {
	StagingAppender
	StageChecked(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error)
}

// KeyChecker tells which records' keys a store holds, so that Submit can
// be answered once its records are in the journal, with exact counts,
// instead of after the store's append.
type KeyChecker interface {
	// StoredKeys reports, for each record, whether the store holds a
	// record of its account and event ID (stored[i] for records[i]). It
	// must see every append that has returned. It fails if the store is
	// closed or cannot be read; the caller then answers with the error.
	StoredKeys(ctx context.Context, records []audit.Record) (stored []bool, err error)
}

// Config configures a Pipeline. The zero value of every field but Store works.
type Config struct {
	Store Appender
	// Keys, with a journal (Open with JournalDir), makes Submit return
	// once its records are journaled, its counts worked out from Keys
	// and the records in flight (see Submit). Without it, Submit waits
	// for the store's append. A store shared by several processes (the
	// PostgreSQL store of a cluster) must not be given here: another
	// node's records in flight are not seen.
	Keys KeyChecker
	// MaxBatch is the number of records that triggers a flush (default 2000).
	MaxBatch int
	// MaxDelay is how long the first record of a batch may wait (default
	// 50ms): for its store append, or with a journal, for a queued
	// record (Enqueue), for its journal write.
	MaxDelay time.Duration
	// QueueSize is the number of admitted calls of all accounts beyond
	// which Admit refuses the accounts holding an equal share of them or
	// more; it also bounds each account's lane (a push waits while its
	// lane holds QueueSize submissions). Default 1024.
	QueueSize int
	// AccountMaxCalls is the number of one account's calls admitted and
	// not yet answered beyond which Admit refuses it (default 64).
	AccountMaxCalls int
	// AccountQueueRecords is the number of queued records of one account
	// beyond which Admit refuses it (default 20000: about a second of the
	// store's appends).
	AccountQueueRecords int
	// DiskDir is the directory whose file system holds the journal and the
	// store, watched for free space (default JournalDir; none: only write
	// errors tell a full disk).
	DiskDir string
	// MinFreeBytes is the free space of DiskDir's file system below which
	// Admit refuses writes (default 64 MiB; negative: none), so that the
	// store and the journal do not meet a full disk mid-write.
	MinFreeBytes int64
	// DiskCheckInterval is how often, at most, the free space is read
	// (default 100ms), and how often records a full disk refused are
	// tried again.
	DiskCheckInterval time.Duration
	// MaxAttempts bounds the tries of one batch's Append (default 5), with
	// capped exponential backoff and jitter between them.
	MaxAttempts int
	// JournalDir, when set, is the directory of the journal that Open
	// opens and replays and that Commit writes to (New ignores it).
	JournalDir string
	// JournalSegmentSize is the size at which a journal segment is sealed
	// (default journal.DefaultSegmentSize).
	JournalSegmentSize int64
	// JournalDelay is how long a journaled record may wait for its store
	// append (default 200ms), in place of MaxDelay: it is durable already,
	// so fewer, larger appends cost the calls in flight less CPU. The
	// store holds a journaled record within JournalDelay plus one append.
	JournalDelay time.Duration
	// QueuedDelay is how long a queued record (Enqueue), once journaled,
	// may wait for its store append (default 500ms), in place of
	// JournalDelay: the records of read calls trickle in, one a call,
	// and a store transaction costs the same for 20 of them as for 200.
	// The store holds a queued record within MaxDelay plus QueuedDelay
	// plus one append: LookupEvents finds a call's record within a
	// second (issue 19).
	QueuedDelay time.Duration
	// JournalBatch is the number of records that triggers a flush of a
	// batch holding journaled records only, in place of MaxBatch: the
	// store's cost is mostly per transaction (default 10000, or MaxBatch
	// when that is set).
	JournalBatch int
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// ErrClosed is returned by Submit once the pipeline has stopped.
var ErrClosed = errors.New("ingest: pipeline closed")

// ErrDiskFull is wrapped by the errors of writes refused or failed because
// the disk is full.
var ErrDiskFull = errors.New("ingest: the disk is full")

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
	// store marks a caller waiting for its records to be stored, not
	// journaled (SubmitStoredEach): its batch is written once the
	// stage before it has committed (at once when none is under way),
	// taking what is queued by then, so that the stages stay large.
	store bool
	// seg is the journal segment of journaled records (0: none). Their
	// callers have been answered; the writer tells the journal once they
	// are stored. done is nil.
	seg uint64
	// flight: the records' keys are in the in-flight set (Config.Keys),
	// released once they are stored or given up; durable: counted there
	// as journaled.
	flight, durable bool
	// checked: every record is new and held by this submission alone
	// (writeSet.checked), so the store need not look for its key, as
	// long as Pipeline.contested is still contested.
	checked   bool
	contested uint64
}

type result struct {
	res audit.AppendResult
	err error
}

// Pipeline is a batching writer in front of a Store. Create it with New,
// run it with Run, submit with Submit.
type Pipeline struct {
	cfg     Config
	queue   *lanes
	stopped chan struct{} // closed when Run starts its final drain
	written chan struct{} // closed when the writer has returned (after the final drain)
	drained chan struct{} // closed when Run has returned
	once    sync.Once

	batches  prometheus.Counter
	records  prometheus.Counter
	failures prometheus.Counter
	latency  prometheus.Histogram
	depth    prometheus.GaugeFunc
	refused  *prometheus.CounterVec
	dropped  prometheus.Counter

	// each is the store when it reports per-record outcomes: Submit
	// calls then share appends.
	each EachAppender
	// staging is the store when it appends in stages (nil: one append
	// after the other).
	staging StagingAppender
	// checker is staging when it takes checked batches (nil: not).
	checker CheckedStager
	disk    disk

	// Admission (Admit): calls admitted and not yet released, by
	// account and in all.
	amu      sync.Mutex
	calls    map[string]int
	allCalls int
	inFlight prometheus.GaugeFunc

	journal  *journal.Journal // nil: Commit waits for the store
	jBytes   prometheus.Counter
	jSyncs   prometheus.Counter
	jErrors  prometheus.Counter
	jPerSync prometheus.Histogram
	jLatency prometheus.Histogram
	jSegs    prometheus.GaugeFunc
	jPending prometheus.GaugeFunc

	// Group commit to the journal (commitJournaled): one caller at a time
	// leads, writing its group; callers arriving meanwhile join the next
	// group, which one of them leads once the write ends.
	jmu     sync.Mutex
	jcur    *group         // the group callers join
	jbusy   bool           // a leader is writing
	jready  chan struct{}  // closed when the current write ends
	jclosed bool           // Run has ended: no more writes
	jframes []byte         // the group's journal frames (a leader at a time)
	pushers sync.WaitGroup // goroutines queueing a journal group's records for a full lane, and stand-in leaders (leave); Run waits for them

	// The keys of the records queued and not yet stored (or given up),
	// when Submit is answered from the journal (Config.Keys): a record
	// whose key is in flight is a duplicate.
	fmu    sync.Mutex
	flight map[flightKey]flightCount
	dups   prometheus.Counter
	// classifyGen numbers the calls of classify (under fmu): a key it
	// finds with its own number was earlier in the same call.
	classifyGen uint32
	// contested counts the keys hold found in flight already: a record
	// queued (Enqueue) while a copy held by classify was in flight. A
	// checked submission is staged as checked only if it did not move
	// since classify put its keys in flight (submission.contested).
	contested atomic.Uint64
}

// flightKey is a record's key: its account and event ID.
type flightKey struct{ account, eventID string }

// flightCount counts the queued submissions holding a key, and how many
// of them are journaled (durable); gen is the number of the classify call
// that last met it.
type flightCount struct {
	n, durable int32
	gen        uint32
}

// group is the records of Commit calls written by one journal write.
type group struct {
	// parts are the members' records, each call's as it passed them (not
	// copied: SubmitRecorded's callers do not change them); n counts them.
	parts   [][]audit.Record
	n       int
	waiters int           // callers waiting to lead it or for its write
	done    chan struct{} // closed once written; err, dup and queued are then set
	err     error
	// dup[i] tells that the group's record i (in the order of parts) is
	// a duplicate (Config.Keys): stored already, in flight, or earlier in
	// the group. Nil without Keys.
	dup []bool
	// queued holds, for each account whose records could not be queued
	// at once (its lane was full), a channel closed once they are: its
	// callers wait for it, the others do not (backpressure on that
	// account only).
	queued map[string]chan struct{}
	// selfs are the own records of the members' calls (SubmitRecorded),
	// made by the leader once the counts are known and written with
	// the records.
	selfs []*selfRecord
	// journaled: a member needs its records in the journal (every call
	// but SubmitStoredEach's). A group of SubmitStoredEach calls alone
	// is not journaled: its records go to the writer, and stored (set
	// before done is closed) is closed once the store has them all or
	// failed (storeErr).
	journaled bool
	stored    chan struct{}
	storeErr  error
}

// selfRecord is the record a SubmitRecorded caller's call makes of
// itself, made from the counts of its records (off and n in the group's
// records) by the group's leader.
type selfRecord struct {
	off, n int
	make   func(audit.AppendResult) (audit.Record, error)
	// state: selfPending until the leader takes it (selfTaken: it is
	// written with the group) or the caller withdraws it (selfWithdrawn:
	// its context ended first) or make failed (selfFailed).
	state atomic.Int32
	// dup, once answered, tells for each of the caller's records whether
	// it was a duplicate (SubmitRecordedEach).
	dup []bool
}

const (
	selfPending int32 = iota
	selfTaken
	selfWithdrawn
	selfFailed
)

// counts returns the inserted and duplicate counts of dup.
func counts(dup []bool) audit.AppendResult {
	var res audit.AppendResult
	for _, d := range dup {
		if d {
			res.Duplicates++
		} else {
			res.Inserted++
		}
	}
	return res
}

// answer returns what a Commit caller of account in g gets once g is
// written: g's error, after waiting until the account's records are
// queued.
func (p *Pipeline) answer(ctx context.Context, g *group, account string) error {
	if g.err != nil {
		return g.err
	}
	if g.stored != nil {
		select {
		case <-g.stored:
			return g.storeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if ch := g.queued[account]; ch != nil {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// New returns a Pipeline writing to cfg.Store.
func New(cfg Config) *Pipeline {
	if cfg.JournalBatch <= 0 {
		cfg.JournalBatch = 10000
		if cfg.MaxBatch > 0 {
			cfg.JournalBatch = cfg.MaxBatch
		}
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 2000
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 50 * time.Millisecond
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 1024
	}
	if cfg.AccountMaxCalls <= 0 {
		cfg.AccountMaxCalls = min(64, cfg.QueueSize)
	}
	if cfg.AccountQueueRecords <= 0 {
		cfg.AccountQueueRecords = 20000
	}
	if cfg.DiskDir == "" {
		cfg.DiskDir = cfg.JournalDir
	}
	if cfg.MinFreeBytes == 0 {
		cfg.MinFreeBytes = 64 << 20
	}
	if cfg.DiskCheckInterval <= 0 {
		cfg.DiskCheckInterval = 100 * time.Millisecond
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.JournalDelay <= 0 {
		cfg.JournalDelay = 200 * time.Millisecond
	}
	if cfg.QueuedDelay <= 0 {
		cfg.QueuedDelay = 500 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg:     cfg,
		queue:   newLanes(cfg.QueueSize),
		stopped: make(chan struct{}),
		written: make(chan struct{}),
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
	}, func() float64 { return float64(p.queue.len()) })
	p.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_ingest_refused_total", Help: "Calls refused by admission, by reason (account_share, queue_full, disk_full).",
	}, []string{"reason"})
	p.dropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_ingest_dropped_records_total", Help: "Queued records of read calls (Enqueue) dropped because the disk stayed full.",
	})
	p.disk.init(&p.cfg)
	p.calls = map[string]int{}
	p.inFlight = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_ingest_admitted_calls", Help: "Calls admitted (Admit) and not yet answered.",
	}, func() float64 { p.amu.Lock(); defer p.amu.Unlock(); return float64(p.allCalls) })
	p.each, _ = cfg.Store.(EachAppender)
	p.staging, _ = cfg.Store.(StagingAppender)
	p.checker, _ = cfg.Store.(CheckedStager)
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.batches, p.records, p.failures, p.latency, p.depth, p.refused, p.dropped, p.disk.gauge, p.inFlight} {
			cfg.Registerer.MustRegister(c)
		}
	}
	return p
}

// Open returns a Pipeline writing to cfg.Store. With cfg.JournalDir set,
// it first replays into the store the records a previous run left in the
// journal (the store drops those it already holds), then Commit writes to
// the journal. It fails if the journal cannot be read or the store does
// not take its records (after MaxAttempts tries of each batch): records
// acknowledged by an earlier run are never skipped.
func Open(ctx context.Context, cfg Config) (*Pipeline, error) {
	p := New(cfg)
	if cfg.JournalDir == "" {
		return p, nil
	}
	j, err := journal.Open(cfg.JournalDir, journal.Options{SegmentSize: cfg.JournalSegmentSize})
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	start := time.Now()
	var total audit.AppendResult
	st, err := j.Replay(p.cfg.MaxBatch, func(recs []audit.Record) error {
		res, _, err := p.appendRetry(ctx, recs, false)
		total.Inserted += res.Inserted
		total.Duplicates += res.Duplicates
		return err
	})
	log := p.cfg.Logger
	if st.Torn > 0 {
		log.Warn("ingest: journal segments end in a torn or damaged frame; what follows it was not replayed (a write cut by a crash is never acknowledged)",
			"dir", cfg.JournalDir, "segments", st.Torn, "bytes", st.TornBytes)
	}
	if err != nil {
		return nil, fmt.Errorf("ingest: replaying the journal in %s: %w", cfg.JournalDir, err)
	}
	if st.Segments > 0 {
		log.Info("ingest: replayed the journal into the store", "dir", cfg.JournalDir, "segments", st.Segments,
			"records", st.Records, "bytes", st.Bytes, "inserted", total.Inserted, "already_stored", total.Duplicates,
			"duration", time.Since(start).Round(time.Millisecond))
	}
	p.journal = j
	p.jcur = &group{done: make(chan struct{})}
	if cfg.Keys != nil {
		p.flight = map[flightKey]flightCount{}
		p.dups = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_ingest_journal_duplicates_total", Help: "Records of journal writes found stored already or in flight, and so not journaled.",
		})
		if cfg.Registerer != nil {
			cfg.Registerer.MustRegister(p.dups)
		}
	}
	p.jBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_ingest_journal_bytes_total", Help: "Bytes written to the journal.",
	})
	p.jSyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_ingest_journal_fsyncs_total", Help: "Journal writes, each ended by an fsync (one per group of Commit calls).",
	})
	p.jErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_ingest_journal_errors_total", Help: "Journal writes that failed (their records were committed through the store instead, or refused for a full disk).",
	})
	p.jPerSync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cairn_ingest_journal_records_per_fsync", Help: "Records written to the journal by one write and fsync.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	p.jLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "cairn_ingest_journal_write_duration_seconds", Help: "Duration of one journal write and fsync.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
	p.jSegs = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_ingest_journal_segments", Help: "Journal segment files (each holds records not all in the store yet, or is being written).",
	}, func() float64 { return float64(j.Segments()) })
	p.jPending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_ingest_journal_pending_records", Help: "Records acknowledged from the journal and not yet in the store (LookupEvents does not see them yet).",
	}, func() float64 { return float64(j.Pending()) })
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{p.jBytes, p.jSyncs, p.jErrors, p.jPerSync, p.jLatency, p.jSegs, p.jPending} {
			cfg.Registerer.MustRegister(c)
		}
	}
	return p, nil
}

// Admit admits a call of account, or returns the error to answer instead
// of calling (an *audit.Error: Throttling when the account has
// AccountMaxCalls calls admitted or AccountQueueRecords records queued, or
// when QueueSize calls are admitted and the account holds at least an
// equal share of them; ServiceUnavailable, wrapping ErrDiskFull, for a
// write while the disk is full). write marks a call whose effect or record
// must be durable; read calls are refused only for their account's share.
// The caller calls release once the call is answered (and recorded).
func (p *Pipeline) Admit(account string, write bool) (release func(), err error) {
	if write && p.disk.full() {
		p.refused.WithLabelValues("disk_full").Inc()
		return nil, diskFullError(nil)
	}
	queued := p.queue.records(account)
	p.amu.Lock()
	calls := p.calls[account]
	switch {
	case calls >= p.cfg.AccountMaxCalls || queued >= p.cfg.AccountQueueRecords:
		p.amu.Unlock()
		p.refused.WithLabelValues("account_share").Inc()
		return nil, audit.Errorf(audit.CodeThrottling, "Rate exceeded")
	case p.allCalls >= p.cfg.QueueSize && calls > 0 && calls >= p.cfg.QueueSize/max(1, len(p.calls)):
		p.amu.Unlock()
		p.refused.WithLabelValues("queue_full").Inc()
		return nil, audit.Errorf(audit.CodeThrottling, "Rate exceeded")
	}
	p.calls[account] = calls + 1
	p.allCalls++
	p.amu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.amu.Lock()
			defer p.amu.Unlock()
			p.allCalls--
			if p.calls[account]--; p.calls[account] <= 0 {
				delete(p.calls, account)
			}
		})
	}, nil
}

// AdmitRecords refuses, with the ThrottlingException Admit answers, a
// call whose records belong to an account other than the caller's (a
// responder's import) while one of those accounts has AccountQueueRecords
// records queued. Admit counts the caller's account only, so a
// responder's ImportRecords calls queued without bound: acknowledged from
// the journal, up to 295,000 records held in memory waiting for the store
// in a 1M-record import through a server (issue 15, session 14), where the
// pipeline must push back. Records of the caller's own account are
// bounded by Admit already.
func (p *Pipeline) AdmitRecords(caller string, records []audit.Record) error {
	var last string
	for i := range records {
		acct := records[i].Account
		if acct == caller || acct == last {
			continue
		}
		last = acct
		if p.queue.records(acct) >= p.cfg.AccountQueueRecords {
			p.refused.WithLabelValues("account_share").Inc()
			return audit.Errorf(audit.CodeThrottling, "Rate exceeded")
		}
	}
	return nil
}

// WriteFailed marks the disk full when err is a write failing for a full
// disk (ENOSPC, EDQUOT) elsewhere than in the pipeline: the API's calls
// saving a trail's or a tag's state, whose errors wrap the system's. Other
// errors are ignored. Unlike isDiskFull it does not read messages: an API
// error's message may quote the caller ("S3 bucket no space left on device
// does not exist!"), and a caller's text must not refuse everyone's writes.
func (p *Pipeline) WriteFailed(err error) {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		p.disk.setFull(err)
	}
}

// diskFullError is the error a write refused or failed for a full disk
// answers; cause (if any) is for the log.
func diskFullError(cause error) error {
	err := ErrDiskFull
	if cause != nil {
		err = fmt.Errorf("%w: %w", ErrDiskFull, cause)
	}
	return &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
		Message: "cairn cannot store new events: the disk of its data directory is full. Retry once space has been freed."}
}

// key is the lane of a submission: the account of its records (the
// pipeline's callers submit one account's records at a time; a journal
// group is split by account before it is queued).
func key(records []audit.Record) string {
	if len(records) == 0 {
		return ""
	}
	return records[0].Account
}

// Submit hands records to the writer and waits until they are durable,
// with exact counts: a record is a duplicate when its key (account, event
// ID) is stored already, or was submitted earlier and is not stored yet
// (in flight), or comes earlier in the same call. Without Config.Keys or
// a journal, durable means in the store. With both, it means written to
// the journal and fsynced, like Commit (concurrent calls share one
// write): the counts are worked out before the write from the keys in
// flight and Keys (asked only about keys not in flight), and only the new
// records are journaled and stored. It blocks while the account's lane is
// full. It returns ctx's error if ctx ends first (the records may still be
// stored later: Append is idempotent, so a retry is safe), and ErrClosed
// once the pipeline has stopped.
func (p *Pipeline) Submit(ctx context.Context, records ...audit.Record) (audit.AppendResult, error) {
	if len(records) == 0 {
		return audit.AppendResult{}, nil
	}
	if p.flight != nil {
		return p.commitJournaled(ctx, records)
	}
	s := submission{records: records, done: make(chan result, 1), exact: true}
	r := p.wait(ctx, s)
	return r.res, r.err
}

// SubmitRecorded is Submit, and also writes the record the caller's call
// makes of itself (an API call's own record, which holds the counts) in
// the same journal write as records: self makes it from the counts, in
// the goroutine that writes the group. An ImportRecords call otherwise
// paid a second journal write and fsync for its own record (issue 15).
// recorded tells whether the record self made was written (durable)
// with the records; when it is false (no journal or Config.Keys, no
// records, self failed, ctx ended before the write took it, or the
// pipeline stopped) the caller records its call as it would without this
// method. self must not keep or change records, nor may the caller: the
// journal group reads them (not a copy) until it is written, which may be
// after SubmitRecorded returns (ctx ended).
func (p *Pipeline) SubmitRecorded(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (res audit.AppendResult, recorded bool, err error) {
	if len(records) == 0 || p.flight == nil || self == nil {
		res, err = p.Submit(ctx, records...)
		return res, false, err
	}
	sr := &selfRecord{n: len(records), make: self}
	res, err = p.commitJournaledSelf(ctx, records, sr, true)
	return res, sr.state.Load() == selfTaken, err
}

// SubmitRecordedEach is SubmitRecorded that also tells, for each record,
// whether it was a duplicate (dup[i] for records[i]): a caller counting
// records by account and region (ImportRecords with a log file's bytes,
// whose report has them) submits them all at once, in one journal write.
// ok is false, and nothing is submitted, when the pipeline cannot tell
// per record (no journal or Config.Keys) or there are no records. As for
// SubmitRecorded, the caller must not change records.
func (p *Pipeline) SubmitRecordedEach(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (dup []bool, recorded, ok bool, err error) {
	return p.submitEach(ctx, records, self, true)
}

// SubmitStoredEach is SubmitRecordedEach answered once the records (and
// the call's own record) are in the store, not in the journal: a
// file's records are durable once the stage holding them has committed
// (its sealed blocks fdatasynced before the COMMIT), so the journal's
// encoding, write and fsync of them are skipped (issue 15, session 35;
// docs/store.md). The counts are worked out as for SubmitRecordedEach,
// before the store's append, from the keys in flight and Config.Keys;
// the new records' keys are in flight as not durable until stored, so
// that a later copy of one (in any call) is written all the same: a
// record acknowledged is never lost with a copy that failed. The call
// waits for the writer's stage (tenths of a second where the journal's
// fsync takes milliseconds): a client gets through with more calls in
// flight. Calls of other kinds in the same journal group make it
// journaled, as SubmitRecordedEach.
func (p *Pipeline) SubmitStoredEach(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (dup []bool, recorded, ok bool, err error) {
	return p.submitEach(ctx, records, self, false)
}

// submitEach is SubmitRecordedEach (journaled) or SubmitStoredEach.
func (p *Pipeline) submitEach(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error), journaled bool) (dup []bool, recorded, ok bool, err error) {
	if len(records) == 0 || p.flight == nil || self == nil {
		return nil, false, false, nil
	}
	sr := &selfRecord{n: len(records), make: self}
	if _, err = p.commitJournaledSelf(ctx, records, sr, journaled); err != nil {
		return nil, sr.state.Load() == selfTaken, true, err
	}
	if len(sr.dup) != len(records) {
		return nil, sr.state.Load() == selfTaken, true, errors.New("ingest: no duplicate flags for the records submitted")
	}
	return sr.dup, sr.state.Load() == selfTaken, true, nil
}

// Commit hands records to the writer and waits until they are durable,
// sharing the write with whatever else is queued (group commit), and
// reports no counts. Without a journal, durable means in the store: the
// writer appends as soon as it is free, so a lone call waits for one store
// append and concurrent calls share one. With a journal, durable means
// written to the journal and fsynced (concurrent calls share one fsync);
// the writer stores the records within JournalDelay. If the journal write fails,
// Commit falls back to waiting for the store. It blocks while the queue is
// full, returns ctx's error if ctx ends first (the records may still be
// stored later) and ErrClosed once the pipeline has stopped.
func (p *Pipeline) Commit(ctx context.Context, records ...audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	if p.journal != nil {
		_, err := p.commitJournaled(ctx, records)
		return err
	}
	return p.wait(ctx, submission{records: records, done: make(chan result, 1), wait: true}).err
}

// commitJournaled is Commit (and, with Config.Keys, Submit) with a
// journal. The caller joins the current group; if no write is under way it
// leads the group itself (in its own goroutine: a lone caller pays one
// write and fsync, no hand-off), else it waits for the write under way to
// end and then leads its group, or finds that another member does. The
// counts are those of the caller's records (with Config.Keys; else zero).
func (p *Pipeline) commitJournaled(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	// The group reads them until it is written, which may be after ctx
	// ends: a copy, as Submit's and Commit's callers may reuse theirs.
	return p.commitJournaledSelf(ctx, slices.Clone(records), nil, true)
}

// commitJournaledSelf is commitJournaled with the caller's own record
// (SubmitRecorded), or without it (self nil). journaled false: the
// caller is answered once its records are in the store (SubmitStoredEach),
// unless another member of its group needs the journal.
func (p *Pipeline) commitJournaledSelf(ctx context.Context, records []audit.Record, self *selfRecord, journaled bool) (audit.AppendResult, error) {
	if p.stopping() {
		return audit.AppendResult{}, ErrClosed
	}
	acct := key(records)
	p.jmu.Lock()
	g := p.jcur
	off := g.n
	g.parts = append(g.parts, records)
	g.n += len(records)
	g.waiters++
	g.journaled = g.journaled || journaled
	if self != nil {
		self.off = off
		g.selfs = append(g.selfs, self)
	}
	answer := func() (audit.AppendResult, error) {
		var res audit.AppendResult
		if g.err != nil && self != nil {
			self.state.CompareAndSwap(selfTaken, selfFailed) // not written
		}
		if err := p.answer(ctx, g, acct); err != nil {
			if g.stored != nil && self != nil && ctx.Err() == nil {
				self.state.CompareAndSwap(selfTaken, selfFailed) // not stored
			}
			return res, err
		}
		if g.dup == nil {
			return res, nil
		}
		if self != nil {
			self.dup = g.dup[off : off+len(records) : off+len(records)]
		}
		return counts(g.dup[off : off+len(records)]), nil
	}
	// withdraw keeps the leader from making the caller's own record once
	// the caller stops waiting; if the leader took it already, it waits
	// for the write under way, so that the caller knows whether it was
	// written.
	withdraw := func() {
		if self != nil && !self.state.CompareAndSwap(selfPending, selfWithdrawn) {
			<-g.done
			if g.err != nil {
				self.state.CompareAndSwap(selfTaken, selfFailed)
			}
		}
	}
	for p.jbusy {
		ready := p.jready
		p.jmu.Unlock()
		select {
		case <-ready:
		case <-g.done:
			return answer()
		case <-ctx.Done():
			withdraw()
			p.leave(g) // the group is written all the same
			return audit.AppendResult{}, ctx.Err()
		}
		p.jmu.Lock()
		if g != p.jcur { // another member leads it
			p.jmu.Unlock()
			select {
			case <-g.done:
				return answer()
			case <-ctx.Done():
				withdraw()
				return audit.AppendResult{}, ctx.Err()
			}
		}
	}
	if g.n == 0 { // a stand-in (leave) with nothing left to write
		g.waiters--
		p.jmu.Unlock()
		return audit.AppendResult{}, nil
	}
	if p.jclosed {
		p.jcur = &group{done: make(chan struct{})} // g is answered below
		p.jmu.Unlock()
		g.err = ErrClosed
		close(g.done)
		return audit.AppendResult{}, ErrClosed
	}
	p.jbusy = true
	p.jcur = &group{done: make(chan struct{})}
	p.jready = make(chan struct{})
	p.jmu.Unlock()

	g.err = p.writeGroup(g)
	close(g.done)

	p.jmu.Lock()
	p.jbusy = false
	close(p.jready)
	p.jmu.Unlock()
	return answer()
}

// leave takes a caller whose context ended out of g, which waits for a
// leader. If it was the last, a goroutine takes its place, so that the
// group's records are written all the same.
func (p *Pipeline) leave(g *group) {
	p.jmu.Lock()
	g.waiters--
	// Once Run closed the journal nothing is written: the group's
	// callers all left unanswered, so nothing acknowledged is lost.
	orphan := g.waiters == 0 && g == p.jcur && !p.jclosed
	if orphan {
		p.pushers.Add(1) // Run waits for it (added before jclosed is set)
	}
	p.jmu.Unlock()
	if orphan {
		go func() {
			defer p.pushers.Done()
			p.commitJournaledSelf(context.Background(), nil, nil, false)
		}()
	}
}

// writeGroup writes g's records to the journal with one fsync and queues
// them for the writer, which stores them and tells the journal. With
// Config.Keys, it first tells the duplicates (g.dup) and writes only the
// new records. The records of an account whose lane is full are queued as
// soon as it has room, its callers waiting until then (g.queued): the
// backpressure on Commit, on that account only. If the journal write
// fails, the records are committed through the store instead, unless the
// disk is full: then the group fails at once (the store is on that disk).
func (p *Pipeline) writeGroup(g *group) error {
	var w writeSet
	if p.flight != nil {
		var err error
		if g.dup, err = p.classify(g.parts, &w, g.journaled); err != nil {
			return err
		}
		if len(g.selfs) > 0 {
			if err = p.addSelfs(g, &w); err != nil {
				return err
			}
		}
		if w.n == 0 {
			return nil // all duplicates: nothing to write
		}
		if !g.journaled {
			p.storeGroup(g, &w)
			return nil
		}
	} else {
		for _, part := range g.parts {
			w.add(part)
		}
	}
	start := time.Now()
	frames, err := p.jframes[:0], error(nil)
	for _, part := range w.byAccount {
		if frames, err = p.journal.Encode(frames, part); err != nil {
			break
		}
	}
	p.jframes = frames
	seg, size := uint64(0), 0
	if err == nil {
		seg, size, err = p.journal.Write(frames, w.n)
	}
	if err != nil {
		records := w.flat()
		p.jErrors.Inc()
		if isDiskFull(err) {
			p.disk.setFull(err)
			p.release(records, true)
			return diskFullError(err)
		}
		p.cfg.Logger.Error("ingest: journal write failed; committing through the store", "records", len(records), "err", err)
		s := submission{records: records, done: make(chan result, 1), wait: true}
		if p.flight != nil {
			// In flight still, but not durable until stored: a later
			// copy is counted a duplicate and stored all the same.
			p.fmu.Lock()
			for i := range records {
				k := flightKey{records[i].Account, records[i].EventID}
				c := p.flight[k]
				c.durable--
				p.flight[k] = c
			}
			p.fmu.Unlock()
			s.flight = true
		}
		return p.wait(context.Background(), s).err
	}
	p.disk.wrote()
	p.jLatency.Observe(time.Since(start).Seconds())
	p.jSyncs.Inc()
	p.jBytes.Add(float64(size))
	p.jPerSync.Observe(float64(w.n))
	// One submission per account, each in its account's lane.
	for _, part := range w.byAccount {
		k, s := key(part), submission{records: part, seg: seg, flight: p.flight != nil, durable: true, checked: w.checked(), contested: w.contested}
		if p.queue.tryPush(k, s) {
			continue
		}
		ch := make(chan struct{})
		if g.queued == nil {
			g.queued = map[string]chan struct{}{}
		}
		g.queued[k] = ch
		p.pushers.Add(1)
		go func() {
			defer p.pushers.Done()
			// Stopped: durable, not stored now; the next Open
			// replays them.
			p.queue.push(context.Background(), p.stopped, k, s)
			close(ch)
		}()
	}
	return nil
}

// storeGroup hands the records of a group that is not journaled (w, in
// flight as not durable) to the writer, one submission an account, and
// sets g.stored, closed once every one is stored
// or has failed. A submission never taken by the writer (the pipeline
// stopped) fails with ErrClosed and its keys leave the flight set.
func (p *Pipeline) storeGroup(g *group, w *writeSet) {
	subs := make([]submission, len(w.byAccount))
	for i, part := range w.byAccount {
		subs[i] = submission{records: part, done: make(chan result, 1), store: true, flight: true, checked: w.checked(), contested: w.contested}
	}
	g.stored = make(chan struct{})
	go func() {
		defer close(g.stored)
		var err error
		pushed := 0
		for _, s := range subs {
			if p.stopping() {
				err = ErrClosed
				break
			}
			if err = p.queue.push(context.Background(), p.stopped, key(s.records), s); err != nil {
				break
			}
			pushed++
		}
		for _, s := range subs[pushed:] {
			p.release(s.records, false)
		}
		for _, s := range subs[:pushed] {
			var r result
			select {
			case r = <-s.done:
			case <-p.written:
				select {
				case r = <-s.done:
				default:
					r.err = ErrClosed // queued after the final drain
				}
			}
			if r.err != nil && err == nil {
				err = r.err
			}
		}
		g.storeErr = err
	}()
}

// writeSet is the records a journal group writes, by account (in order
// of first appearance, each account's in their order): the group's
// journal frames and its submissions to the lanes, one an account, are
// made from it without another copy of the records.
type writeSet struct {
	byAccount [][]audit.Record
	n         int
	// classified: classify made every record's key in flight; unsure: it
	// kept a copy of a key already in flight (not durable there), which
	// another append may store too; contested: Pipeline.contested when
	// its first call had put its keys in flight.
	classified, unsure bool
	contested          uint64
	// idx is byAccount's index by account, last the index of the last
	// record's: records come in runs of one account, and a responder's
	// file of an organization's trail may hold hundreds of accounts.
	idx  map[string]int
	last int
}

// checked tells whether each record of w is new and held by w alone: its
// key found neither in flight nor stored by classify, which put it in
// flight (see CheckedStager).
func (w *writeSet) checked() bool { return w.classified && !w.unsure }

// addOne appends rec to its account's records.
func (w *writeSet) addOne(rec *audit.Record) {
	w.n++
	if w.last < len(w.byAccount) && w.byAccount[w.last][0].Account == rec.Account {
		w.byAccount[w.last] = append(w.byAccount[w.last], *rec)
		return
	}
	i, ok := w.idx[rec.Account]
	if !ok {
		if w.idx == nil {
			w.idx = make(map[string]int)
		}
		i = len(w.byAccount)
		w.idx[rec.Account] = i
		w.byAccount = append(w.byAccount, make([]audit.Record, 0, 64))
	}
	w.byAccount[i] = append(w.byAccount[i], *rec)
	w.last = i
}

// addAll appends records, all to be written, to their accounts' records:
// a run of one account not in w yet is taken as it is (capped, so that
// what is appended to it later is a copy), not copied: a file's records,
// in the common case.
func (w *writeSet) addAll(records []audit.Record) {
	if len(records) == 0 {
		return
	}
	acct := records[0].Account
	if _, ok := w.idx[acct]; ok { // every account in byAccount is in idx
		w.add(records)
		return
	}
	for i := range records {
		if records[i].Account != acct {
			w.add(records)
			return
		}
	}
	if w.idx == nil {
		w.idx = make(map[string]int)
	}
	w.last = len(w.byAccount)
	w.idx[acct] = w.last
	w.byAccount = append(w.byAccount, records[:len(records):len(records)])
	w.n += len(records)
}

// add appends records to their accounts' records.
func (w *writeSet) add(records []audit.Record) {
	for i := range records {
		w.addOne(&records[i])
	}
}

// flat returns the records in one slice (a failed write's fallback).
func (w *writeSet) flat() []audit.Record {
	out := make([]audit.Record, 0, w.n)
	for _, part := range w.byAccount {
		out = append(out, part...)
	}
	return out
}

// addSelfs makes the own records of g's SubmitRecorded callers from
// their counts (g.dup), puts them in flight and adds them to w (the
// group's new records, in flight). If that fails, w's records are taken
// out of flight again: the group is not written.
func (p *Pipeline) addSelfs(g *group, w *writeSet) error {
	var own []audit.Record
	var taken []*selfRecord
	for _, sr := range g.selfs {
		if !sr.state.CompareAndSwap(selfPending, selfTaken) {
			continue // its caller stopped waiting
		}
		rec, err := sr.make(counts(g.dup[sr.off : sr.off+sr.n]))
		if err != nil {
			sr.state.Store(selfFailed) // its caller records the call itself
			p.cfg.Logger.Error("ingest: making a call's own record failed", "err", err)
			continue
		}
		own = append(own, rec)
		taken = append(taken, sr)
	}
	if len(own) == 0 {
		return nil
	}
	if _, err := p.classify([][]audit.Record{own}, w, g.journaled); err != nil {
		p.release(w.flat(), g.journaled)
		for _, sr := range taken {
			sr.state.Store(selfFailed)
		}
		return err
	}
	return nil
}

// classify tells which of the records of parts (taken in order, as one
// list) are duplicates: earlier in the list, in flight, or stored (asked
// of Config.Keys, only for the keys not in flight). It adds to w the
// records to write, the new ones, whose keys it puts in flight, as
// durable when journaled (the caller writes them to the journal or
// releases them; else the writer stores them, the caller waiting), and the
// duplicates whose only copies in flight are not durable (queued by
// Enqueue, or a failed journal write's): those are written all the same,
// so that a record acknowledged is never lost with a copy that was not.
// On an error it adds nothing and puts nothing in flight. The calls of
// classify do not overlap (one journal write at a time): a key is put in
// flight by one of them only.
func (p *Pipeline) classify(parts [][]audit.Record, w *writeSet, journaled bool) (dup []bool, err error) {
	n := 0
	for _, part := range parts {
		n += len(part)
	}
	dup = make([]bool, n)
	keep := make([]bool, n)
	// The records asked of the store: a part whose every record is asked
	// (a file's, when none of its keys is in flight) as it is, else the
	// records asked copied; askIdx lists their indexes in the list.
	var asks [][]audit.Record
	var askIdx []int
	// In flight first, the store second: a key leaves the flight set
	// only after its append has returned, so one not found in flight
	// is found by StoredKeys if it is stored. A key not in flight is put
	// there at once, held as the records kept are (hold), and released
	// if the store holds it: one map access finds and holds it, and marks
	// it met by this call (gen), so that a later copy in the call is a
	// duplicate. A key queued meanwhile (Enqueue) then finds it in flight
	// (contested).
	d := int32(0)
	if journaled {
		d = 1
	}
	var (
		asked  []*audit.Record // the records of askIdx
		unsure []*audit.Record // the kept copies of keys in flight elsewhere
	)
	p.fmu.Lock()
	p.classifyGen++
	gen := p.classifyGen
	base := 0
	for _, part := range parts {
		first := len(askIdx)
		for i := range part {
			k := flightKey{part[i].Account, part[i].EventID}
			c, ok := p.flight[k]
			if !ok {
				p.flight[k] = flightCount{n: 1, durable: d, gen: gen}
				askIdx = append(askIdx, base+i)
				asked = append(asked, &part[i])
				continue
			}
			dup[base+i] = true
			if c.gen == gen {
				continue // earlier in this call
			}
			if c.durable == 0 {
				keep[base+i] = true
				unsure = append(unsure, &part[i])
			}
			c.gen = gen
			p.flight[k] = c
		}
		if asked := len(askIdx) - first; asked == len(part) {
			asks = append(asks, part)
		} else if asked > 0 {
			ask := make([]audit.Record, 0, asked)
			for _, i := range askIdx[first:] {
				ask = append(ask, part[i-base])
			}
			asks = append(asks, ask)
		}
		base += len(part)
	}
	if !w.classified {
		w.contested = p.contested.Load()
	}
	p.fmu.Unlock()
	// On an error, the keys put in flight above are released.
	undo := func() {
		p.fmu.Lock()
		defer p.fmu.Unlock()
		for _, r := range asked {
			p.unhold(r, journaled)
		}
	}
	j := 0
	for _, ask := range asks {
		stored, err := p.cfg.Keys.StoredKeys(context.Background(), ask)
		if err == nil && len(stored) != len(ask) {
			err = fmt.Errorf("%d answers for %d records", len(stored), len(ask))
		}
		if err != nil {
			undo()
			return nil, fmt.Errorf("ingest: duplicate check: %w", err)
		}
		for _, st := range stored {
			if i := askIdx[j]; st {
				dup[i] = true
			} else {
				keep[i] = true
			}
			j++
		}
	}
	// The stored keys out of flight, the kept copies of keys in flight
	// elsewhere held.
	if len(asked) > 0 || len(unsure) > 0 {
		p.fmu.Lock()
		for j, r := range asked {
			if dup[askIdx[j]] {
				p.unhold(r, journaled)
			}
		}
		for _, r := range unsure {
			p.holdOne(r, journaled)
		}
		p.fmu.Unlock()
	}
	w.unsure = w.unsure || len(unsure) > 0
	ndup := 0
	base = 0
	for _, part := range parts {
		kept := 0
		for i := range part {
			if keep[base+i] {
				kept++
			}
			if dup[base+i] {
				ndup++
			}
		}
		if kept == len(part) {
			w.addAll(part)
		} else {
			for i := range part {
				if keep[base+i] {
					w.addOne(&part[i])
				}
			}
		}
		base += len(part)
	}
	p.dups.Add(float64(ndup))
	w.classified = true
	return dup, nil
}

// unhold takes one hold of rec's key out of flight (durable: a journaled
// one), under fmu.
func (p *Pipeline) unhold(rec *audit.Record, durable bool) {
	k := flightKey{rec.Account, rec.EventID}
	c, ok := p.flight[k]
	if !ok {
		return
	}
	c.n--
	if durable {
		c.durable--
	}
	if c.n <= 0 {
		delete(p.flight, k)
	} else {
		p.flight[k] = c
	}
}

// hold puts the keys of records in flight (durable: journaled), counting
// those in flight already as contested.
func (p *Pipeline) hold(records []audit.Record, durable bool) {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	for i := range records {
		if p.holdOne(&records[i], durable) {
			p.contested.Add(1)
		}
	}
}

// holdOne puts one more hold of rec's key in flight (durable: a journaled
// one), under fmu, and tells whether the key was in flight already.
func (p *Pipeline) holdOne(rec *audit.Record, durable bool) (held bool) {
	k := flightKey{rec.Account, rec.EventID}
	c := p.flight[k]
	held = c.n > 0
	c.n++
	if durable {
		c.durable++
	}
	p.flight[k] = c
	return held
}

// release takes the keys of records out of flight, once stored or given
// up.
func (p *Pipeline) release(records []audit.Record, durable bool) {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	for i := range records {
		p.unhold(&records[i], durable)
	}
}

// wait queues s and waits for its write.
func (p *Pipeline) wait(ctx context.Context, s submission) result {
	if p.stopping() {
		return result{err: ErrClosed}
	}
	if err := p.queue.push(ctx, p.stopped, key(s.records), s); err != nil {
		return result{err: err}
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
// blocks only while the account's lane is full (backpressure). Records
// enqueued before Run stops are written by Run's final drain.
func (p *Pipeline) Enqueue(ctx context.Context, records ...audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	if p.stopping() {
		return ErrClosed
	}
	s := submission{records: records, done: make(chan result, 1)}
	if p.flight != nil {
		p.hold(records, false)
		s.flight = true
	}
	err := p.queue.push(ctx, p.stopped, key(records), s)
	if err != nil && s.flight {
		p.release(records, false)
	}
	return err
}

// Append makes a Pipeline usable where an audit.Store's Append is expected.
func (p *Pipeline) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	return p.Submit(ctx, records...)
}

// Run is the writer. It returns after ctx ends and every submission queued
// by then has been written (or has failed), and refuses later submissions.
// With a journal, it then closes the journal, keeping records the store did
// not take for the next Open.
func (p *Pipeline) Run(ctx context.Context) error {
	defer close(p.drained)
	// Stopping is announced at once, even while the writer retries a
	// batch: retries of journaled records then end (they stay in the
	// journal) and the drain can finish.
	announced := make(chan struct{})
	go func() { defer close(announced); <-ctx.Done(); p.stop() }()
	defer func() { <-announced }()
	p.writer(ctx)
	close(p.written)
	if p.journal == nil {
		return nil
	}
	// Wait for a journal write under way; none starts after this.
	p.jmu.Lock()
	p.jclosed = true
	for p.jbusy {
		ready := p.jready
		p.jmu.Unlock()
		<-ready
		p.jmu.Lock()
	}
	p.jmu.Unlock()
	p.pushers.Wait() // they end once stopped
	if err := p.journal.Close(); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if n := p.journal.Segments(); n > 0 {
		p.cfg.Logger.Warn("ingest: journal segments hold records the store did not take; the next start replays them", "segments", n)
	}
	return nil
}

func (p *Pipeline) stop() { p.once.Do(func() { close(p.stopped) }) }

func (p *Pipeline) stopping() bool {
	select {
	case <-p.stopped:
		return true
	default:
		return false
	}
}

// writer takes submissions from the lanes, in turn, and writes them to
// the store in batches. It returns after ctx ends and what the lanes held
// by then is written. Submissions a full disk refused are set aside
// (deferred) and tried again once the disk has room.
//
// With a journal, queued records (Enqueue: the records of read calls)
// are not stored at their deadline (MaxDelay) but journaled, all those
// of the batch in one write and fsync (journalQueued), and then wait
// like journaled records, for QueuedDelay or JournalBatch: the server's
// records of its own read calls, a few a millisecond under lookups,
// then cost one store transaction every QueuedDelay instead of one every
// MaxDelay (issue 19), and a crash loses at most MaxDelay of them, as
// before.
func (p *Pipeline) writer(ctx context.Context) {
	var (
		batch []submission
		n     int
		timer = time.NewTimer(time.Hour)
		// The earliest deadlines of the batch's records: of those
		// not journaled (plain) and of those journaled.
		plainAt, journalAt time.Time
		waiting            bool // a Commit or Submit caller is in the batch
		storing            bool // a SubmitStoredEach caller is in the batch
		plain              bool // the batch holds records not journaled
		journaled          bool // the batch holds journaled records
		deferred           []submission
		// pending is the batch staged last and not yet answered
		// (StagingAppender): it commits while the next is staged.
		pending  *stagedBatch
		retry    = time.NewTimer(time.Hour)
		retrying bool
		// backoff spaces the tries of deferred records while they fail:
		// each try is also the probe that tells the disk has room.
		backoff = p.cfg.DiskCheckInterval
	)
	timer.Stop()
	retry.Stop()
	// arm sets the timer to the batch's earliest deadline.
	arm := func() {
		timer.Stop()
		var at time.Time
		switch {
		case plain && journaled:
			at = plainAt
			if journalAt.Before(at) {
				at = journalAt
			}
		case plain:
			at = plainAt
		case journaled:
			at = journalAt
		default:
			return
		}
		timer.Reset(time.Until(at))
	}
	// written bounds what is set aside and arms its retry.
	written := func() {
		deferred = p.bound(deferred)
		if len(deferred) == 0 {
			backoff = p.cfg.DiskCheckInterval
		} else if !retrying {
			retrying = true
			retry.Reset(backoff)
			backoff = min(2*backoff, max(2*time.Second, p.cfg.DiskCheckInterval))
		}
	}
	// finishPending answers the batch staged last once it is stored.
	finishPending := func() {
		if pending != nil {
			deferred = append(deferred, p.finish(pending)...)
			pending = nil
		}
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if p.staging != nil {
			// Prepared, reserved and appended while the batch before
			// commits; that one is answered once it has.
			next := p.stage(batch, n)
			finishPending()
			pending = next
		} else {
			deferred = append(deferred, p.write(batch, n)...)
		}
		batch, n, waiting, storing, plain, journaled = batch[:0], 0, false, false, false, false
		timer.Stop()
		written()
	}
	// journal journals the batch's queued records in place of a store
	// append, when that can be done: it reports whether they are.
	journal := func() bool {
		if waiting || !p.journalQueued(batch) {
			return false
		}
		plain = false
		if at := time.Now().Add(p.cfg.QueuedDelay); !journaled || at.Before(journalAt) {
			journaled, journalAt = true, at
		}
		arm()
		return true
	}
	add := func(s submission) {
		if s.exact && p.each == nil {
			// The store reports totals only: a submission waiting
			// for its counts is written alone, so that they are
			// exact; queued records share batches.
			flush()
			batch, n = append(batch, s), len(s.records)
			flush()
			return
		}
		batch = append(batch, s)
		n += len(s.records)
		waiting = waiting || s.wait || s.exact
		// The batch is written by the earliest deadline of its records;
		// records to store only (not journaled) when the stage before
		// commits, or at JournalBatch.
		if s.store {
			storing = true
		} else if s.seg != 0 {
			if at := time.Now().Add(p.cfg.JournalDelay); !journaled || at.Before(journalAt) {
				journaled, journalAt = true, at
				arm()
			}
		} else if at := time.Now().Add(p.cfg.MaxDelay); !plain || at.Before(plainAt) {
			plain, plainAt = true, at
			arm()
		}
		if plain && n >= p.cfg.MaxBatch && (n >= p.cfg.JournalBatch || !journal()) || !plain && n >= p.cfg.JournalBatch {
			flush()
		}
	}
	// take moves what the lanes hold into batches, in turn. A batch
	// holding a waiting caller is written at once with every submission
	// queued by then (up to MaxBatch records): the group commit. Those
	// arriving during the write form the next group. While several
	// accounts have submissions queued, a batch holding a waiting caller
	// takes one round of them (a submission of each) and is written: an
	// account's call then waits for smaller appends, not for MaxBatch
	// records of another account's backlog.
	inBatch := map[string]bool{}
	take := func() {
		for {
			s, k, active, ok := p.queue.pop()
			if !ok {
				break
			}
			if waiting && active > 1 && inBatch[k] {
				flush()
			}
			if len(batch) == 0 {
				clear(inBatch)
			}
			inBatch[k] = true
			add(s)
		}
		if waiting || storing && pending == nil {
			flush()
		}
	}
	for {
		var staged <-chan struct{}
		if pending != nil {
			staged = pending.done
		}
		select {
		case <-p.queue.ready:
			take()
		case <-staged:
			finishPending()
			written()
			if storing {
				flush()
			}
		case <-timer.C:
			// Queued records due before the journaled ones are
			// journaled, not stored; else the batch is stored.
			if plain && (!journaled || time.Now().Before(journalAt)) && journal() {
				continue
			}
			flush()
		case <-retry.C:
			// Tried whether or not the disk is seen full: the free
			// space may not tell (another process, a quota).
			retrying = false
			for len(deferred) > 0 && n < p.cfg.MaxBatch {
				s := deferred[0]
				deferred = deferred[1:]
				add(s)
			}
			flush()
		case <-ctx.Done():
			p.stop()
			// Drain what was queued before the stop; try what a full
			// disk refused once more.
			take()
			again := deferred
			deferred = nil
			for _, s := range again {
				add(s)
			}
			flush()
			finishPending()
			p.drop(deferred)
			return
		}
	}
}

// journalQueued writes the queued records of batch (Enqueue's: not
// journaled, no caller waiting) to the journal in one write and fsync,
// and marks them journaled (and durable in flight): the writer then
// stores them as it stores journaled records. It reports false, changing
// nothing, when there is no journal, the disk is full or the write
// fails: the records are then stored as they are.
func (p *Pipeline) journalQueued(batch []submission) bool {
	if p.journal == nil || p.disk.full() {
		return false
	}
	var records []audit.Record
	for i := range batch {
		if s := &batch[i]; s.seg == 0 && !s.wait && !s.exact && !s.store {
			records = append(records, s.records...)
		}
	}
	if len(records) == 0 {
		return false
	}
	start := time.Now()
	seg, size, err := p.journal.Append(records)
	if err != nil {
		p.jErrors.Inc()
		if isDiskFull(err) {
			p.disk.setFull(err)
		} else {
			p.cfg.Logger.Error("ingest: journal write of queued records failed; storing them", "records", len(records), "err", err)
		}
		return false
	}
	p.disk.wrote()
	p.jLatency.Observe(time.Since(start).Seconds())
	p.jSyncs.Inc()
	p.jBytes.Add(float64(size))
	p.jPerSync.Observe(float64(len(records)))
	for i := range batch {
		s := &batch[i]
		if s.seg != 0 || s.wait || s.exact || s.store {
			continue
		}
		s.seg = seg
		if s.flight && !s.durable {
			p.harden(s.records)
			s.durable = true
		}
	}
	return true
}

// harden counts the keys of records, in flight as queued, as journaled.
func (p *Pipeline) harden(records []audit.Record) {
	p.fmu.Lock()
	defer p.fmu.Unlock()
	for i := range records {
		k := flightKey{records[i].Account, records[i].EventID}
		if c, ok := p.flight[k]; ok {
			c.durable++
			p.flight[k] = c
		}
	}
}

// bound keeps deferred submissions within QueueSize: the oldest queued
// records of read calls beyond it are dropped (counted and logged).
// Journaled ones are always kept: they are small in number (one per
// account per journal write) and acknowledged.
func (p *Pipeline) bound(deferred []submission) []submission {
	if len(deferred) <= p.cfg.QueueSize {
		return deferred
	}
	over := len(deferred) - p.cfg.QueueSize
	kept := deferred[:0]
	var dropped []submission
	for _, s := range deferred {
		if over > 0 && s.seg == 0 {
			dropped = append(dropped, s)
			over--
			continue
		}
		kept = append(kept, s)
	}
	p.drop(dropped)
	return kept
}

// drop gives up deferred submissions: queued records of read calls are
// lost (counted and logged); journaled ones stay in the journal for the
// next start.
func (p *Pipeline) drop(ss []submission) {
	n := 0
	for _, s := range ss {
		if s.seg == 0 {
			n += len(s.records)
			if s.flight {
				p.release(s.records, false)
			}
		}
	}
	if n > 0 {
		p.dropped.Add(float64(n))
		p.cfg.Logger.Error("ingest: queued records of read calls dropped: the disk stayed full", "records", n)
	}
}

// write appends one batch with retries and answers every submission in it.
// It returns the submissions to try again later because the disk is full:
// journaled ones (acknowledged) and queued ones (Enqueue); the callers
// waiting in the batch get the error.
func (p *Pipeline) write(batch []submission, n int) (deferred []submission) {
	records, journaled := batchRecords(batch, n)
	res, inserted, err := p.appendRetry(context.Background(), records, journaled)
	return p.answerBatch(batch, n, res, inserted, err)
}

// batchRecords returns the records of batch (n in all) in one slice, and
// whether any of them are journaled.
func batchRecords(batch []submission, n int) (records []audit.Record, journaled bool) {
	records = make([]audit.Record, 0, n)
	for _, s := range batch {
		records = append(records, s.records...)
		journaled = journaled || s.seg != 0
	}
	return records, journaled
}

// stagedBatch is a batch appended in stages (StagingAppender): done is
// closed once its stage committed (inserted) or failed (err).
type stagedBatch struct {
	batch    []submission
	n        int
	start    time.Time
	done     chan struct{}
	inserted []bool
	err      error
}

// stage prepares batch and reserves its place in the store, on the
// writer's goroutine (the reservation is in the batches' order), and
// appends and commits it on a goroutine of its own: the store appends it
// while the batch before commits, and commits it after that one.
func (p *Pipeline) stage(batch []submission, n int) *stagedBatch {
	sb := &stagedBatch{batch: slices.Clone(batch), n: n, start: time.Now(), done: make(chan struct{})}
	records, _ := batchRecords(batch, n)
	ctx := context.Background()
	stageOf := p.staging.StageEach
	if p.checker != nil && p.allChecked(batch) {
		stageOf = p.checker.StageChecked
	}
	commit, err := stageOf(records)(ctx)
	if err != nil {
		sb.err = err
		close(sb.done)
		return sb
	}
	go func() {
		defer close(sb.done)
		sb.inserted, sb.err = commit(ctx)
	}()
	return sb
}

// allChecked tells whether every submission of batch is checked, and no
// key was queued since (contested) that might be in flight beside one of
// theirs: such a copy may be staged before them.
func (p *Pipeline) allChecked(batch []submission) bool {
	contested := p.contested.Load()
	for _, s := range batch {
		if !s.checked || s.contested != contested {
			return false
		}
	}
	return true
}

// finish waits for a staged batch's commit and answers it as write does.
// A batch whose stage failed (or that follows one that failed) is written
// again by write, with its tries and backoff: the store's AppendEach first
// waits for every stage and drops what failed, so the batches are stored
// in their order.
func (p *Pipeline) finish(sb *stagedBatch) (deferred []submission) {
	<-sb.done
	if sb.err != nil || len(sb.inserted) != sb.n {
		p.failures.Inc()
		p.cfg.Logger.Warn("ingest: staged append failed; appending the batch again", "records", sb.n, "err", sb.err)
		return p.write(sb.batch, sb.n)
	}
	p.latency.Observe(time.Since(sb.start).Seconds())
	p.disk.wrote()
	var res audit.AppendResult
	for _, ok := range sb.inserted {
		if ok {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	return p.answerBatch(sb.batch, sb.n, res, sb.inserted, nil)
}

// answerBatch answers every submission of a batch written with the result of
// its append (res, and inserted per record when the store tells, or err),
// and returns those to try again later because the disk is full.
func (p *Pipeline) answerBatch(batch []submission, n int, res audit.AppendResult, inserted []bool, err error) (deferred []submission) {
	journaled := false
	for _, s := range batch {
		journaled = journaled || s.seg != 0
	}
	perRecord := err == nil && len(inserted) == n
	full := err != nil && errors.Is(err, ErrDiskFull)
	if err == nil {
		p.batches.Inc()
		p.records.Add(float64(n))
	} else if journaled && !full {
		p.cfg.Logger.Error("ingest: journaled records not stored; they stay in the journal for the next start", "records", n, "err", err)
	}
	// Counts: per submission when the store reports per record, else the
	// totals, exact for a submission alone in its batch; queued
	// submissions (Enqueue) read no counts.
	off := 0
	for _, s := range batch {
		part := off
		off += len(s.records)
		if s.seg != 0 {
			if err == nil {
				p.journal.Done(s.seg, len(s.records))
				if s.flight {
					p.release(s.records, true)
				}
			} else if full {
				// Tried again with the store's own check.
				s.checked = false
				deferred = append(deferred, s)
			}
			// Else stopping: they stay in the journal, and in
			// flight (the next Open stores them).
			continue
		}
		if full && !s.wait && !s.exact && !s.store {
			deferred = append(deferred, s)
			continue
		}
		if s.flight {
			p.release(s.records, s.durable)
		}
		r := result{err: err}
		switch {
		case err != nil:
		case perRecord:
			for _, ok := range inserted[part:off] {
				if ok {
					r.res.Inserted++
				} else {
					r.res.Duplicates++
				}
			}
		case len(batch) == 1:
			r.res = res
		}
		if s.done != nil {
			s.done <- r
		}
	}
	return deferred
}

// appendRetry appends records to the store, trying MaxAttempts times with
// capped exponential backoff and jitter between tries. Records already
// acknowledged from the journal (journaled) are tried until they are
// stored or the pipeline stops: the lanes in front of them fill and push
// back on Commit meanwhile. A full disk ends the tries at once, with an
// error wrapping ErrDiskFull. The append is not cancelled with ctx once
// started (the context of Run must not abort the final flush).
//
// With an EachAppender store, inserted tells per record whether it was new.
func (p *Pipeline) appendRetry(ctx context.Context, records []audit.Record, journaled bool) (res audit.AppendResult, inserted []bool, err error) {
	backoff := 20 * time.Millisecond
	for attempt := 1; ; attempt++ {
		start := time.Now()
		if p.each != nil {
			inserted, err = p.each.AppendEach(context.WithoutCancel(ctx), records)
			res = audit.AppendResult{}
			for _, ok := range inserted {
				if ok {
					res.Inserted++
				} else {
					res.Duplicates++
				}
			}
		} else {
			res, err = p.cfg.Store.Append(context.WithoutCancel(ctx), records)
		}
		p.latency.Observe(time.Since(start).Seconds())
		if err == nil {
			p.disk.wrote()
			return res, inserted, nil
		}
		p.failures.Inc()
		if isDiskFull(err) {
			p.disk.setFull(err)
			return res, nil, diskFullError(err)
		}
		p.cfg.Logger.Error("ingest: append failed", "records", len(records), "attempt", attempt, "err", err)
		if attempt >= p.cfg.MaxAttempts && (!journaled || p.stopping()) {
			return res, nil, err
		}
		select {
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		case <-ctx.Done():
			return res, nil, err
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}
