// Package detect is cairn's live detection (issue 17 item 2): a worker that
// follows the store's append order, matches every stored record against
// every loaded Sigma rule, and keeps each match as a Finding. Findings are
// durable (DATA_DIR/findings.jsonl, fsynced before the feed position moves
// past their records), unique per rule and event (a replay after a crash
// finds them again and keeps one), counted, logged, listed per account and
// region, and posted to an optional webhook from a durable outbox (the
// position of the last finding delivered), with capped exponential backoff.
//
// Matching runs off the acknowledged-write path: the worker reads records
// the store already holds, so an ingest acknowledgement never waits for a
// rule. Rules reload on Reload (SIGHUP) and when their files change; a rule
// file that no longer loads keeps its previous version.
package detect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/sigma"
)

// Files of the data dir.
const (
	FindingsFile = "findings.jsonl" // one Finding a line, in detection order
	StateFile    = "detect.json"    // feed position and webhook position
)

// Feed is the store's append order (audit.Store.ReadAppended).
type Feed interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
}

// Config configures a Detector. Dir and Feed are required for Run; the
// rest has working defaults (no rules: nothing is matched).
type Config struct {
	// Dir holds FindingsFile and StateFile.
	Dir string
	// State, when set, keeps the findings and positions in a StateStore
	// that other nodes share instead of Dir (shared.go): findings in one
	// key per stored batch under "detect-findings/", the positions under
	// StateFile with compare-and-swap. Every node lists the same
	// findings, and a node that takes detection over resumes from the
	// saved position.
	State audit.StateStore
	Feed  Feed
	// Folders are rule folders (or files), walked recursively.
	Folders []string
	// Builtin, when set, is the built-in rules' file system (builtin.FS()).
	Builtin fs.FS
	// Stateful are hunts that need what came before a record
	// (builtin.Stateful: a principal never seen, a burst of denied calls).
	// They observe every stored record in append order; their findings
	// are stored like the rules'. They are not reloaded.
	Stateful []sigma.Stateful
	// WarmUp bounds the stored records the Stateful hunts observe,
	// without reporting, when a Detector opens at a saved position (a
	// restart): the up to WarmUp records before it, so that a restart does
	// not find every principal "never seen" again (default 1,000,000;
	// negative: none).
	WarmUp int
	// Sigma bounds rule loading.
	Sigma   sigma.Config
	Webhook Webhook
	// Interval is how often the feed is read (default 1 s).
	Interval time.Duration
	// PollRules is how often the rule files' sizes and mtimes are checked
	// for a change (default 5 s; negative: never).
	PollRules time.Duration
	// BatchSize is the records read from the feed at a time (default 1000).
	BatchSize int
	// Retention is how long findings are kept from their detection (0:
	// for ever); serve gives Event History's.
	Retention  time.Duration
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// Webhook configures where findings are POSTed (URL empty: nowhere).
type Webhook struct {
	URL string
	// Headers are added to every POST (an Authorization for the receiver).
	Headers map[string]string
	// Timeout bounds one attempt (default 10 s).
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed attempts,
	// doubled after each failure with full jitter (defaults 1 s and 5 min).
	MinBackoff, MaxBackoff time.Duration
	// Client sends the POSTs (default: an http.Client with Timeout).
	Client *http.Client
}

// Finding is one rule's or stateful hunt's match on one stored event: the
// sigma.Finding `cairn hunt` prints, with the finding's ID and when it was
// detected. Its JSON is the line of FindingsFile, the webhook's body and
// the API's item.
type Finding struct {
	// ID is unique per rule and event: rule ID, account and eventID.
	ID string `json:"findingId"`
	sigma.Finding
	DetectedAt time.Time `json:"detectedAt"`
}

type state struct {
	// Position is the last feed sequence number matched.
	Position int64 `json:"position"`
	// Delivered is how many findings (lines of FindingsFile) the webhook
	// has taken.
	Delivered int `json:"delivered"`
}

// Detector matches stored records against rules. Its methods are safe for
// concurrent use.
type Detector struct {
	cfg   Config
	log   *slog.Logger
	rules atomic.Pointer[ruleSet]

	reload chan struct{}
	wake   chan struct{} // a new finding for the webhook

	// syncMu serialises Sync: the stateful hunts are used by one
	// goroutine at a time; warm says they have observed the records
	// before the position they opened at.
	syncMu sync.Mutex
	warm   bool
	dec    sigma.Decoder // Sync's, under syncMu

	mu       sync.Mutex
	f        *os.File
	live     bool // open: d.f (a file) or State; false once closed
	shared   sharedState
	findings []Finding
	seen     map[string]bool
	st       state

	m metrics
}

type metrics struct {
	findings  *prometheus.CounterVec
	events    prometheus.Counter
	rules     prometheus.Gauge
	refused   prometheus.Gauge
	reloads   *prometheus.CounterVec
	posts     *prometheus.CounterVec
	pending   prometheus.GaugeFunc
	stored    prometheus.GaugeFunc
	position  prometheus.GaugeFunc
	matchTime prometheus.Counter
}

// Open reads the findings and the positions kept in cfg.Dir (a torn last
// line, left by a crash, is cut: its records are matched again) and loads
// the rules, logging each refused file as file:line: reason.
func Open(cfg Config) (*Detector, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.PollRules == 0 {
		cfg.PollRules = 5 * time.Second
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.WarmUp == 0 {
		cfg.WarmUp = 1_000_000
	}
	w := &cfg.Webhook
	if w.Timeout <= 0 {
		w.Timeout = 10 * time.Second
	}
	if w.MinBackoff <= 0 {
		w.MinBackoff = time.Second
	}
	if w.MaxBackoff <= 0 {
		w.MaxBackoff = 5 * time.Minute
	}
	if w.MaxBackoff < w.MinBackoff {
		w.MaxBackoff = w.MinBackoff
	}
	if w.Client == nil {
		w.Client = &http.Client{Timeout: w.Timeout}
	}
	d := &Detector{cfg: cfg, log: cfg.Logger, seen: map[string]bool{},
		reload: make(chan struct{}, 1), wake: make(chan struct{}, 1)}
	switch {
	case cfg.State != nil:
		if err := d.openShared(); err != nil {
			return nil, err
		}
	case cfg.Dir != "":
		if err := d.openFiles(); err != nil {
			return nil, err
		}
	}
	d.initMetrics()
	d.rules.Store(&ruleSet{byName: map[string][]int{}})
	d.loadRules("start")
	return d, nil
}

func (d *Detector) openFiles() error {
	if err := os.MkdirAll(d.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(d.cfg.Dir, StateFile)); err == nil {
		if err := json.Unmarshal(b, &d.st); err != nil {
			return fmt.Errorf("detect: %s: %w", StateFile, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("detect: %w", err)
	}
	path := filepath.Join(d.cfg.Dir, FindingsFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("detect: %w", err)
	}
	good, err := d.readFindings(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("detect: %s: %w", path, err)
	}
	// Cut a torn last line (a crash in the middle of a write); its
	// records are after the saved position and are matched again.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return fmt.Errorf("detect: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("detect: %w", err)
	}
	d.f, d.live = f, true
	if d.st.Delivered > len(d.findings) {
		d.st.Delivered = len(d.findings)
	}
	return nil
}

// readFindings reads whole lines of f and returns the offset after the last
// good one.
func (d *Detector) readFindings(f *os.File) (int64, error) {
	r := bufio.NewReaderSize(f, 64<<10)
	var off int64
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				d.log.Warn("detect: cutting a torn last line of the findings file", "bytes", len(line))
			}
			return off, nil
		}
		if err != nil {
			return 0, err
		}
		var fd Finding
		if err := json.Unmarshal(line, &fd); err != nil || fd.ID == "" {
			d.log.Warn("detect: cutting the findings file at a malformed line", "offset", off)
			return off, nil
		}
		off += int64(len(line))
		if !d.seen[fd.ID] {
			d.seen[fd.ID] = true
			d.findings = append(d.findings, fd)
		}
	}
}

func (d *Detector) initMetrics() {
	d.m = metrics{
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_detect_findings_total",
			Help: "Findings stored: a rule matching a stored event, by the rule's level."}, []string{"level"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_detect_events_total",
			Help: "Stored events matched against the loaded rules."}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_detect_rules",
			Help: "Sigma rules loaded for live detection."}),
		refused: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cairn_detect_rules_refused",
			Help: "Rule files refused at the last load (see the log for file:line: reason)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_detect_reloads_total",
			Help: "Rule reloads, by cause (start, signal, change)."}, []string{"cause"}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_detect_webhook_posts_total",
			Help: "Webhook POSTs of findings, by result (ok, error)."}, []string{"result"}),
		matchTime: prometheus.NewCounter(prometheus.CounterOpts{Name: "cairn_detect_match_seconds_total",
			Help: "Time spent decoding and matching events."}),
	}
	d.m.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_detect_webhook_pending_findings",
		Help: "Findings not delivered to the webhook yet."}, func() float64 {
		if d.cfg.Webhook.URL == "" {
			return 0
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(len(d.findings) - d.st.Delivered)
	})
	d.m.stored = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_detect_findings_held",
		Help: "Findings held."}, func() float64 { d.mu.Lock(); defer d.mu.Unlock(); return float64(len(d.findings)) })
	d.m.position = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cairn_detect_position",
		Help: "The store sequence number of the last event matched."}, func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(d.st.Position)
	})
	if r := d.cfg.Registerer; r != nil {
		r.MustRegister(d.m.findings, d.m.events, d.m.rules, d.m.refused, d.m.reloads, d.m.posts, d.m.pending,
			d.m.stored, d.m.position, d.m.matchTime)
	}
}

// Close closes the findings file. Call it after Run has returned.
func (d *Detector) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.live = false
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

// Reload asks Run to load the rules again (SIGHUP); it does not wait.
func (d *Detector) Reload() {
	select {
	case d.reload <- struct{}{}:
	default:
	}
}

// Rules returns the rules loaded now.
func (d *Detector) Rules() []*sigma.Rule { return d.rules.Load().rules }

// Run follows the feed every Interval until ctx ends, reloads the rules on
// Reload and when their files change, and posts findings to the webhook.
// It returns nil once its goroutines have returned. With a shared State,
// every write carries ctx's lease.Fence (lease.Holder.Run's): a write
// refused because another node holds detection now stops Run, which
// returns that error (wrapping lease.ErrFenced) instead of retrying.
func (d *Detector) Run(ctx context.Context) error {
	if d.cfg.Feed == nil || !d.live {
		return errors.New("detect: Run needs Config.Dir (or State) and Config.Feed")
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	if d.cfg.Webhook.URL != "" {
		wg.Go(func() { d.deliver(ctx, stop) })
	}
	defer wg.Wait()
	fenced := func(err error) error { // stops the webhook's delivery too
		stop(err)
		return err
	}
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	var poll <-chan time.Time
	if d.cfg.PollRules > 0 {
		pt := time.NewTicker(d.cfg.PollRules)
		defer pt.Stop()
		poll = pt.C
	}
	var expired time.Time
	for {
		if _, err := d.Sync(ctx); errors.Is(err, lease.ErrFenced) {
			return fenced(err)
		} else if err != nil && ctx.Err() == nil {
			d.log.Error("detect: matching stored events", "err", err)
		}
		if now := time.Now(); now.Sub(expired) >= time.Hour {
			if n, err := d.expire(ctx); errors.Is(err, lease.ErrFenced) {
				return fenced(err)
			} else if err != nil {
				d.log.Error("detect: removing expired findings", "err", err)
			} else if n > 0 {
				d.log.Info("detect: removed expired findings", "findings", n)
			}
			expired = now
		}
		select {
		case <-ctx.Done():
			if cause := context.Cause(ctx); errors.Is(cause, lease.ErrFenced) {
				return cause // the webhook's save was fenced off
			}
			return nil
		case <-tick.C:
		case <-d.reload:
			d.loadRules("signal")
		case <-poll:
			if d.rules.Load().sig != d.signature() {
				d.loadRules("change")
			}
		}
	}
}

// Sync matches the records appended after the position, up to the end of
// the feed, and returns how many findings it stored. Findings are written
// and fsynced before the position moves past their records.
func (d *Detector) Sync(ctx context.Context) (int, error) {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	if !d.warm {
		if err := d.warmUp(ctx); err != nil {
			return 0, err
		}
		d.warm = true
	}
	if d.cfg.State != nil {
		// Another node may have matched and saved since (it held
		// detection before this one): continue from its position.
		d.mu.Lock()
		err := d.refreshSharedLocked(ctx)
		d.mu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	total := 0
	for {
		d.mu.Lock()
		pos := d.st.Position
		d.mu.Unlock()
		batch, err := d.cfg.Feed.ReadAppended(ctx, pos, d.cfg.BatchSize)
		if err != nil || len(batch) == 0 {
			return total, err
		}
		rs := d.rules.Load()
		start := time.Now()
		var found []Finding
		now := d.cfg.Now().UTC()
		for i := range batch {
			found = rs.match(&batch[i].Record, d.cfg.Stateful, now, found, &d.dec)
		}
		d.m.matchTime.Add(time.Since(start).Seconds())
		d.m.events.Add(float64(len(batch)))
		n, err := d.store(ctx, found, batch[len(batch)-1].Seq)
		total += n
		if err != nil {
			return total, err
		}
	}
}

// warmUp lets the stateful hunts observe, without reporting, the up to
// WarmUp records before the position the detector opened at: their state
// is in memory only, and a hunt that remembered nothing would report every
// principal as never seen. Records older than the warm-up are not seen
// again: an account's history for the new-principal hunt begins at the
// first record observed, so after a restart over a store holding more
// than WarmUp records that hunt learns for its baseline again (it misses
// rather than floods).
func (d *Detector) warmUp(ctx context.Context) error {
	d.mu.Lock()
	end := d.st.Position
	d.mu.Unlock()
	if len(d.cfg.Stateful) == 0 || d.cfg.WarmUp < 0 || end == 0 {
		return nil
	}
	start := time.Now()
	// Sequence numbers grow by at least one a record: reading after
	// end-WarmUp reads at most WarmUp records.
	pos, n := max(0, end-int64(d.cfg.WarmUp)), 0
	for pos < end {
		batch, err := d.cfg.Feed.ReadAppended(ctx, pos, d.cfg.BatchSize)
		if err != nil {
			return fmt.Errorf("detect: warming up the hunts: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			if batch[i].Seq > end {
				pos = end
				break
			}
			if rec, err := d.dec.Brief(batch[i].Record.Raw); err == nil && rec != nil {
				for _, s := range d.cfg.Stateful {
					s.Observe(rec)
				}
			}
			pos = batch[i].Seq
			n++
		}
	}
	d.log.Info("detect: stateful hunts warmed up", "records", n, "position", end, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// store appends the new findings durably, then saves the position; shared
// writes carry ctx's lease.Fence.
func (d *Detector) store(ctx context.Context, found []Finding, pos int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.live {
		return 0, errors.New("detect: closed")
	}
	var buf bytes.Buffer
	var fresh []Finding
	for _, f := range found {
		if d.seen[f.ID] {
			continue
		}
		d.seen[f.ID] = true
		b, _ := json.Marshal(f)
		buf.Write(b)
		buf.WriteByte('\n')
		fresh = append(fresh, f)
	}
	if len(fresh) > 0 && d.cfg.State != nil {
		if err := d.putBatchLocked(ctx, pos, buf.Bytes(), len(fresh)); err != nil {
			d.unsee(fresh)
			return 0, err
		}
	} else if len(fresh) > 0 {
		if _, err := d.f.Write(buf.Bytes()); err != nil {
			d.unsee(fresh)
			return 0, fmt.Errorf("detect: writing findings: %w", err)
		}
		if err := d.f.Sync(); err != nil {
			d.unsee(fresh)
			return 0, fmt.Errorf("detect: writing findings: %w", err)
		}
	}
	if len(fresh) > 0 {
		d.findings = append(d.findings, fresh...)
		for _, f := range fresh {
			d.m.findings.WithLabelValues(f.Level).Inc()
			d.log.Warn("detect: finding", "rule_id", f.RuleID, "title", f.Title, "level", f.Level,
				"event_id", f.EventID, "event_name", f.EventName, "account", f.Account, "region", f.Region, "principal", f.Principal)
		}
		select {
		case d.wake <- struct{}{}:
		default:
		}
	}
	d.st.Position = pos
	if err := d.saveStateLocked(ctx); err != nil {
		return len(fresh), err
	}
	return len(fresh), nil
}

// unsee forgets findings whose write failed; they are found again when
// their records are read again.
func (d *Detector) unsee(fs []Finding) {
	for _, f := range fs {
		delete(d.seen, f.ID)
	}
}

// saveStateLocked saves the positions; a shared save carries ctx's
// lease.Fence (its cancellation does not stop it).
func (d *Detector) saveStateLocked(ctx context.Context) error {
	if d.cfg.State != nil {
		return d.saveSharedStateLocked(ctx)
	}
	b, _ := json.Marshal(d.st)
	if err := atomicfile.Write(filepath.Join(d.cfg.Dir, StateFile), b, 0o600); err != nil {
		return fmt.Errorf("detect: saving the position: %w", err)
	}
	return nil
}

// Query selects findings of one account and region (List).
type Query struct {
	Account, Region string
	// AnyAccount lists every account's findings of Region (a
	// responder's listing, as its LookupEvents).
	AnyAccount bool
	// Start and End bound the events' eventTime (zero: unbounded; End
	// exclusive).
	Start, End time.Time
	// Before, when positive, lists only findings detected before the
	// finding numbered Before (Page.Next of the page before).
	Before int
	// Limit is the most findings returned (default 50).
	Limit int
}

// Page is a page of findings, newest detected first, and Next, the Before
// of the next page (0: none).
type Page struct {
	Findings []Finding
	Next     int
}

// List returns the findings of q.Account and q.Region, newest detected
// first. It never returns another account's or region's findings.
func (d *Detector) List(q Query) Page {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.State != nil {
		// Another node may have stored findings since: read them.
		if err := d.refreshSharedLocked(context.Background()); err != nil {
			d.log.Warn("detect: reading the shared findings; listing those last read", "err", err)
		}
	}
	// Findings are numbered from 1 in detection order; i is the number
	// of the next one to look at.
	i := len(d.findings)
	if q.Before > 0 && q.Before <= i {
		i = q.Before - 1
	}
	var p Page
	for ; i > 0; i-- {
		f := d.findings[i-1]
		if !q.AnyAccount && f.Account != q.Account || f.Region != q.Region ||
			!q.Start.IsZero() && f.EventTime.Before(q.Start) || !q.End.IsZero() && !f.EventTime.Before(q.End) {
			continue
		}
		if len(p.Findings) == q.Limit {
			p.Next = i + 1 // the next page starts at this finding
			return p
		}
		p.Findings = append(p.Findings, f)
	}
	return p
}
