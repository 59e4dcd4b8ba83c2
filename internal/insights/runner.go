package insights

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
)

// Feed is the store's append-order feed.
type Feed interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
}

// Sink stores records durably; the ingest pipeline and the store satisfy it
// through Submitter.
type Sink interface {
	Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error)
}

// Enabler says which Insight types trails enabled for an account and
// region (the trails package implements it).
type Enabler interface {
	InsightsEnabled(account, region string) []string
}

// RunnerConfig configures a Runner. Feed and Sink are required; a zero
// Params is DefaultParams.
type RunnerConfig struct {
	Feed    Feed
	Sink    Sink
	History Lookuper // for attributions; nil: none
	// Enabled decides which Insights are stored; nil stores every type for
	// every account and region when All is set, and none otherwise.
	Enabled Enabler
	All     bool
	Params  Params
	Logger  *slog.Logger // default: discard
	// Registerer receives the runner's metrics; nil: none.
	Registerer prometheus.Registerer
	// Poll is how long the runner waits when the feed has nothing new
	// (default 1s); Now is the clock (default time.Now).
	Poll time.Duration
	Now  func() time.Time
	// Wake, when set, ends the wait of an idle runner (Poll) early: the
	// store signals it when it commits records (cmd/cairn: the DuckDB
	// store's OnCommitted), so that the runner reads them while the
	// store still holds them in memory (its tail, 32 MiB: about a second
	// of a bulk import). Waiting out Poll there, an import's first
	// second had left the tail already, and the runner read every record
	// back from the table, paced, behind the import to its end (7% of a
	// server's CPU through `cairn import --endpoint-url`, issue 15).
	Wake <-chan struct{}
	// Following, when set, is given the store's commits (cmd/cairn: the
	// DuckDB store's OnCommitted, beside Wake): the runner takes their
	// observations from it while it holds the records after the runner's
	// position, and reads the feed otherwise.
	Following *Following
	// StatePath is the file where the runner saves its feed position with
	// the detector's state, so that a restart resumes from there instead
	// of replaying the whole store; "" saves nothing. SaveEvery is how
	// often it is saved (default 1 minute; also when Run ends).
	StatePath string
	SaveEvery time.Duration
	// State, when set, keeps the saved state in a StateStore that other
	// nodes share (under StateKey) instead of StatePath: a node that
	// takes over Insights resumes from the position the last one saved.
	// A save that finds the stored state changed by another node since
	// (compare-and-swap on its version) is not written: the runner
	// resumes from the stored state instead (Insights found again are
	// duplicates, dropped by their derived IDs).
	State    audit.StateStore
	StateKey string // default "insights.state"
}

// Runner runs the detector live over the store's append feed and stores the
// Insights records of accounts and regions that enabled them.
type Runner struct {
	cfg     RunnerConfig
	det     *Detector
	pending []Insight
	metrics struct {
		records, insights prometheus.Counter
		late, future      prometheus.Counter
		position, series  prometheus.Gauge
	}
	lastLate int64
	version  int64 // the shared state's version last read or written
}

// NewRunner returns a runner; Run runs it, once.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SaveEvery <= 0 {
		cfg.SaveEvery = time.Minute
	}
	if reflect.ValueOf(cfg.Params).IsZero() {
		cfg.Params = DefaultParams()
	}
	return &Runner{cfg: cfg}
}

// batchSize is how many feed records the runner reads at a time.
const batchSize = 2000

// busyPoll is how long the runner waits, in place of Poll, after a read
// that returned records but not a full batch: the feed is moving. Waiting
// Poll (1 s) there left it a second of appends behind each time, at an
// import's 25–35k records/s more than the store keeps in memory for its
// feed (duckdb's tail, 32 MiB), so it read them back from the table
// instead, and paced (cmd/cairn's backgroundFeed) it stayed behind: 7% of
// a server's CPU through `cairn import --endpoint-url` (issue 15).
const busyPoll = 100 * time.Millisecond

// Run reads the feed until ctx is done. It resumes from the state saved
// at StatePath or, without one (or with one saved under other Params),
// rebuilds the detector's state by replaying the store from its start
// (derived event IDs make the Insights it finds again duplicates), then
// follows new records. It saves its state every SaveEvery and when it
// ends, only once the Insights found so far are stored: a state never
// stands for Insights that were lost. When the
// feed is idle it judges the minutes older than now − Lateness, so that
// Insights end even when calls stop altogether. It returns nil when ctx
// ends, after the batch under way (an error only for invalid Params); it
// starts no goroutine.
func (r *Runner) Run(ctx context.Context) error {
	det, err := NewDetector(r.cfg.Params, func(in Insight) { r.pending = append(r.pending, in) })
	if err != nil {
		return err
	}
	r.det = det
	r.register()
	var pos int64
	if r.saves() {
		switch p, err := r.load(ctx, det); {
		case err == nil:
			pos = p
			r.lastLate = det.stats.Late
			// An offline import's Insights (Importing): stored below,
			// as those the runner finds.
			r.pending = append(r.pending, det.takeFound()...)
			r.cfg.Logger.Info("insights: resuming from the saved state", "position", pos, "found", len(r.pending))
		case !errors.Is(err, errNoState):
			r.cfg.Logger.Warn("insights: not resuming from the saved state; replaying the store", "err", err)
		}
	}
	saved, savedAt := pos, r.cfg.Now()
	// fenced is set when a save was refused because another node holds
	// the Insights lease now (lease.ErrFenced): the runner saves nothing
	// more and returns it (the lease holder counts a lost lease).
	var fenced error
	save := func() {
		if !r.saves() || len(r.pending) > 0 || pos == saved || fenced != nil {
			return
		}
		err := r.save(ctx, pos)
		if errors.Is(err, lease.ErrFenced) {
			r.cfg.Logger.Info("insights: the lease is lost; the node holding it runs Insights", "err", err)
			fenced = err
			return
		}
		if errors.Is(err, audit.ErrStateConflict) {
			// Another node ran Insights meanwhile and saved: continue
			// from its state, never overwrite it.
			fresh, derr := NewDetector(r.cfg.Params, func(in Insight) { r.pending = append(r.pending, in) })
			err = derr
			if derr == nil {
				var p int64
				if p, err = r.load(ctx, fresh); err == nil {
					r.det, pos = fresh, p
					r.pending = append(r.pending, fresh.takeFound()...)
					r.lastLate = fresh.stats.Late
					saved, savedAt = pos, r.cfg.Now()
					r.cfg.Logger.Warn("insights: another node saved its state; resuming from it", "position", pos)
					return
				}
			}
		}
		if err != nil {
			r.cfg.Logger.Warn("insights: saving the state", "err", err)
			return
		}
		saved, savedAt = pos, r.cfg.Now()
	}
	defer save()
	for {
		if r.cfg.Now().Sub(savedAt) >= r.cfg.SaveEvery {
			save()
			if fenced != nil {
				return fenced
			}
		}
		// read: records taken (0: none new); more: more are waiting.
		var read int
		var more bool
		now := r.cfg.Now()
		if obs, last, ok := r.cfg.Following.take(pos); ok {
			read, pos = int(last-pos), last
			for _, o := range obs {
				r.observe(o, now)
			}
			more = r.cfg.Following.ready(pos)
		} else {
			batch, err := r.cfg.Feed.ReadAppended(ctx, pos, batchSize)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.cfg.Logger.Warn("insights: reading the feed", "err", err)
				batch = nil
			}
			now = r.cfg.Now()
			for _, a := range batch {
				pos = a.Seq
				if o, ok := Observe(a.Record); ok {
					r.observe(o, now)
				}
			}
			read, more = len(batch), len(batch) == batchSize
		}
		if r.metrics.position != nil {
			st := r.det.Stats()
			r.metrics.position.Set(float64(pos))
			r.metrics.series.Set(float64(st.Series))
			r.metrics.late.Add(float64(st.Late - r.lastLate))
			r.lastLate = st.Late
		}
		if !more {
			r.det.Flush(now.Add(-r.cfg.Params.Lateness))
		}
		if err := r.store(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.cfg.Logger.Warn("insights: storing Insights", "err", err)
		}
		if !more {
			wait, wake := r.cfg.Poll, r.cfg.Wake
			if read > 0 {
				wait, wake = min(wait, busyPoll), nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
			case <-time.After(wait):
			}
		}
	}
}

// observe gives the detector o, read at now, unless o is more than 5
// minutes in the future: it would move its scope's clock ahead of every
// other record.
func (r *Runner) observe(o Observation, now time.Time) {
	if o.Time.After(now.Add(5 * time.Minute)) {
		if r.metrics.future != nil {
			r.metrics.future.Inc()
		}
		return
	}
	r.det.Observe(o)
	if r.metrics.records != nil {
		r.metrics.records.Inc()
	}
}

// store writes the pending Insights of enabled accounts and regions; on an
// error they are kept and retried.
func (r *Runner) store(ctx context.Context) error {
	if len(r.pending) == 0 {
		return nil
	}
	var recs []audit.Record
	for _, in := range r.pending {
		if !r.enabled(in) {
			continue
		}
		attrs, err := Attributions(ctx, r.cfg.History, in)
		if err != nil {
			return err
		}
		rec, err := Record(in, attrs)
		if err != nil {
			return err
		}
		recs = append(recs, rec)
		r.cfg.Logger.Info("insight", "state", in.State, "type", in.InsightType, "account", in.Account, "region", in.Region,
			"eventSource", in.EventSource, "eventName", in.EventName, "errorCode", in.ErrorCode, "start", in.Start)
	}
	if len(recs) > 0 {
		if _, err := r.cfg.Sink.Append(ctx, recs); err != nil {
			return err
		}
		if r.metrics.insights != nil {
			r.metrics.insights.Add(float64(len(recs)))
		}
	}
	r.pending = r.pending[:0]
	return nil
}

func (r *Runner) enabled(in Insight) bool {
	if r.cfg.Enabled == nil {
		return r.cfg.All
	}
	for _, t := range r.cfg.Enabled.InsightsEnabled(in.Account, in.Region) {
		if t == in.InsightType {
			return true
		}
	}
	return false
}

func (r *Runner) register() {
	if r.cfg.Registerer == nil {
		return
	}
	m := &r.metrics
	m.records = prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_insights_records_total", Help: "Records the Insights detector analysed."})
	m.insights = prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_insights_events_total", Help: "Insights records stored (Start and End)."})
	m.late = prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_insights_late_records_total", Help: "Records older than their account and region's lateness allowance, not analysed."})
	m.future = prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_insights_future_records_total", Help: "Records more than 5 minutes in the future, not analysed."})
	m.position = prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_insights_feed_position", Help: "Last feed sequence number the Insights runner read."})
	m.series = prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_insights_series", Help: "Series the Insights detector tracks."})
	for _, c := range []prometheus.Collector{m.records, m.insights, m.late, m.future, m.position, m.series} {
		if err := r.cfg.Registerer.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				r.cfg.Logger.Warn("insights: metrics", "err", fmt.Sprint(err))
			}
		}
	}
}

// saves reports whether the runner saves its state (a file or shared).
func (r *Runner) saves() bool { return r.cfg.StatePath != "" || r.cfg.State != nil }

func (r *Runner) stateKey() string {
	if r.cfg.StateKey != "" {
		return r.cfg.StateKey
	}
	return "insights.state"
}

// load restores the saved state into det and returns its feed position
// (errNoState: none saved).
func (r *Runner) load(ctx context.Context, det *Detector) (int64, error) {
	if r.cfg.State == nil {
		return det.load(r.cfg.StatePath)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	b, v, err := r.cfg.State.Get(ctx, r.stateKey())
	if err != nil {
		return 0, err
	}
	r.version = v
	if v == 0 {
		return 0, errNoState
	}
	return det.decode(bytes.NewReader(b), "the shared "+r.stateKey())
}

// save writes the detector's state at pos; on a shared store it fails
// with audit.ErrStateConflict when another node saved since this runner
// last read or wrote it.
func (r *Runner) save(ctx context.Context, pos int64) error {
	if r.cfg.State == nil {
		return r.det.save(r.cfg.StatePath, pos)
	}
	var buf bytes.Buffer
	if err := r.det.encode(&buf, pos); err != nil {
		return err
	}
	// Saved when Run ends too: after its ctx is done.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	v, err := r.cfg.State.Put(ctx, r.stateKey(), buf.Bytes(), r.version)
	if err != nil {
		return err
	}
	r.version = v
	return nil
}
