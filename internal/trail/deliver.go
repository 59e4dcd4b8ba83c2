package trail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
)

// Feed is the store's append-order feed.
type Feed interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
	// LastSeq returns the last sequence number given (0 for none).
	LastSeq(ctx context.Context) (int64, error)
}

// DeliveryConfig configures a Deliverer. Registry, Feed and Bucket are
// required; the rest has working defaults.
type DeliveryConfig struct {
	Registry *Registry
	Feed     Feed
	// Bucket returns the bucket a trail names (false: not configured).
	Bucket func(name string) (Bucket, bool)
	// Interval between delivery rounds (default 5 minutes, as AWS).
	Interval time.Duration
	Now      func() time.Time // the clock (default time.Now)
	Logger   *slog.Logger     // default: discard
	// Observer, when set, is told of every log file delivered (digests).
	Observer Observer
	// Registerer, when set, receives the delivery metrics.
	Registerer prometheus.Registerer
}

// DefaultDeliveryInterval is how often trails deliver when
// DeliveryConfig.Interval is zero.
const DefaultDeliveryInterval = 5 * time.Minute

// Deliverer writes the records logging trails select to their buckets,
// every Interval and once more when Run ends.
type Deliverer struct {
	cfg DeliveryConfig

	mu      sync.Mutex // one delivery at a time
	backoff map[string]backoff
	files   map[string]logFileBody // bodies of the current batch, shared by trails
	metrics *deliveryMetrics
	// batch and maxFile are feedBatch and maxFileBytes (smaller in tests).
	batch, maxFile int
}

// NewDeliverer returns a Deliverer; Run or DeliverOnce deliver.
func NewDeliverer(cfg DeliveryConfig) *Deliverer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultDeliveryInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Deliverer{cfg: cfg, batch: feedBatch, maxFile: maxFileBytes}
	d.initMetrics()
	return d
}

// deliveryMetrics are the Deliverer's counters.
type deliveryMetrics struct {
	setAside *prometheus.CounterVec // records set aside, by code
	failures *prometheus.CounterVec // failed delivery attempts, by code
}

func (d *Deliverer) initMetrics() {
	if d.metrics != nil {
		return
	}
	d.metrics = &deliveryMetrics{
		setAside: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_trail_records_set_aside_total",
			Help: "Records a trail could not deliver and set aside for good (their log key was refused), by error code.",
		}, []string{"code"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_trail_delivery_failures_total",
			Help: "Trail delivery attempts that failed and will be retried after a backoff, by error code.",
		}, []string{"code"}),
	}
	if d.cfg.Registerer != nil {
		d.cfg.Registerer.MustRegister(d.metrics.setAside, d.metrics.failures)
	}
}

// Observer learns of delivered log files.
type Observer interface {
	// LogDelivered is told of the log file written at key, whose
	// uncompressed JSON has the hex SHA-256 hash, holding records of
	// events from oldest to newest.
	LogDelivered(ctx context.Context, t Trail, account, region, key, hash string, oldest, newest time.Time)
}

type backoff struct {
	next  time.Time
	delay time.Duration
}

// Delivery limits: records read from the feed at a time, and the JSON
// size at which a log file is cut (AWS caps files at 50 MB compressed).
const (
	// setAsideVisible is how long LatestDeliveryError shows the code of
	// the latest set-aside.
	setAsideVisible = 24 * time.Hour
	feedBatch       = 20000
	maxFileBytes    = 64 << 20
	maxBackoff      = 5 * time.Minute
)

// Run delivers every Interval until ctx ends, then delivers once more
// (bounded by 30 s), so that a graceful shutdown leaves nothing behind,
// and returns nil. When ctx ended because the node lost its delivery
// lease (lease.Lost), it returns at once: the node now holding it
// delivers. When a write of the registry was fenced off (ctx carries the
// lease's Fence and another node holds the lease now), the round stops
// there and Run returns that error (wrapping lease.ErrFenced): nothing
// more is written, no status or backoff recorded. It starts no goroutine.
func (d *Deliverer) Run(ctx context.Context) error {
	tick := time.NewTicker(d.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if lease.Lost(ctx) {
				// Another node delivers now: a final round here would
				// write what it writes.
				return nil
			}
			// The final round tries every trail, backing off or not: a
			// round that shutdown interrupted (its writes cancelled) is
			// done again here, not left for the next start.
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := d.round(final, true)
			cancel()
			return err
		case <-tick.C:
			if ctx.Err() != nil {
				continue // ended meanwhile (both were ready): the case above decides
			}
			if err := d.round(ctx, false); err != nil {
				return err // the lease is lost: the node holding it delivers
			}
		}
	}
}

// DeliverOnce delivers what the logging trails have not delivered yet.
//
// A trail's position moves once every group (account, region, folder) of
// a batch was written or set aside. A record whose log key cannot be
// written whatever the retries (the key is refused: a region that is no
// AWS region, objects.ErrKeyRefused, or a refusal while the bucket accepts
// the batch's other keys) is set aside: logged, counted in
// cairn_trail_records_set_aside_total, shown in LatestDeliveryError, left
// in the store, and never blocks the records after it. Any other failure
// (bucket down, access denied) is transient: the trail keeps its position,
// remembers the groups already written (Trail.Pending, so that the retry
// rewrites none of them) and backs off, doubling up to 5 minutes.
func (d *Deliverer) DeliverOnce(ctx context.Context) { _ = d.round(ctx, false) }

// round is one delivery round; a final round ignores backoff. A write
// that fails because ctx ended (shutdown) is no delivery error: it leaves
// the trail's position, status and backoff as they were. A registry write
// fenced off ends the round at once with its error (lease.ErrFenced): the
// lease is lost.
func (d *Deliverer) round(ctx context.Context, final bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.initMetrics()
	now := d.now()
	trails := d.cfg.Registry.snapshot(func(t *Trail) bool {
		b, ok := d.backoff[t.ARN()]
		// A batch begun is finished, whatever the trail became since
		// (its last minute after StopLogging may have ended meanwhile).
		return (t.Logging || t.Draining || t.begun()) && (final || !ok || !now.Before(b.next))
	})
	if len(trails) == 0 {
		return nil
	}
	// Batches begun before (a crash, a takeover, a failed write) are
	// delivered again exactly as they were begun, before anything new.
	for i := range trails {
		t := &trails[i]
		if !t.begun() {
			continue
		}
		if ok, err := d.redo(ctx, t); !ok || err != nil {
			return err
		}
	}
	trails = live(trails)
	if len(trails) == 0 {
		return nil
	}
	from := trails[0].Position
	for _, t := range trails {
		from = min(from, t.Position)
	}
	for {
		batch, err := d.cfg.Feed.ReadAppended(ctx, from, d.batch)
		if err != nil {
			if ctx.Err() == nil { // a stop is no failure
				d.log().Error("trail: read the store", "err", err)
			}
			return nil
		}
		if len(batch) == 0 {
			return d.drained(ctx, trails)
		}
		last := batch[len(batch)-1].Seq
		d.files = map[string]logFileBody{}
		type job struct {
			end    int64
			groups map[group][]int
			order  []group
		}
		jobs := make([]job, len(trails))
		intents := map[string]*Intent{}
		for i := range trails {
			t := &trails[i]
			if t.Position >= last {
				continue
			}
			// A retry of a half-written batch saved before intents
			// existed ends where the batch ended and skips the groups
			// already written.
			end, skip := last, map[string]bool(nil)
			if p := t.Pending; p != nil && p.Upto > t.Position {
				end = min(last, p.Upto)
				skip = p.skip()
			}
			groups, order := plan(t, batch, end, skip)
			jobs[i] = job{end, groups, order}
			if len(order) > 0 {
				intents[t.ARN()] = newIntent(t, end, d.now())
			}
		}
		if ok, err := d.begin(ctx, trails, intents); !ok || err != nil {
			d.files = nil
			return err
		}
		for i := range trails {
			t := &trails[i]
			if t.Position >= last {
				continue
			}
			j := jobs[i]
			if len(j.order) > 0 && intents[t.ARN()] == nil {
				t.Position = -1 // its intent was not saved: not this round
				continue
			}
			out := d.write(ctx, t, batch, j.groups, j.order, intents[t.ARN()])
			if out.err != nil && ctx.Err() != nil {
				d.log().Info("trail: delivery interrupted", "trail", t.ARN(), "err", out.err)
				d.files = nil
				return nil
			}
			// The feed's end is reached when the batch was not full.
			if err := d.settle(ctx, t, j.end, out, len(batch) < d.batch && j.end == last); err != nil {
				d.files = nil
				return err
			}
			if out.err == nil && j.end == last {
				t.Position = last
			} else {
				t.Position = -1 // failed, or a retry done: not again this round
			}
		}
		from = last
		trails = live(trails)
		d.files = nil
		if len(trails) == 0 || len(batch) < d.batch {
			return nil
		}
	}
}

// live returns the trails still delivering this round (position >= 0).
func live(trails []Trail) []Trail {
	kept := trails[:0]
	for _, t := range trails {
		if t.Position >= 0 {
			kept = append(kept, t)
		}
	}
	return kept
}

// newIntent returns the intent of delivering t's batch up to upto at now:
// a fresh random seed and a copy of t as it selects the batch.
func newIntent(t *Trail, upto int64, now time.Time) *Intent {
	var b [16]byte
	rand.Read(b[:])
	c := *t
	c.Intent, c.Pending, c.Tags = nil, nil, nil
	from := t.Position
	return &Intent{From: &from, Upto: upto, At: now.UTC(), Seed: hex.EncodeToString(b[:]), Trail: &c}
}

// begin saves the intents (by trail ARN) in one write of the registry,
// before any of their files is written. An intent is saved only for a
// trail still at the position read and with no other batch begun; the
// others are dropped from intents (not delivered this round). It reports
// false when the registry could not be written: nothing is delivered (with
// the error when the write was fenced off: the lease is lost).
func (d *Deliverer) begin(ctx context.Context, trails []Trail, intents map[string]*Intent) (bool, error) {
	if len(intents) == 0 {
		return true, nil
	}
	pos := map[string]int64{}
	for _, t := range trails {
		pos[t.ARN()] = t.Position
	}
	saved := map[string]bool{}
	err := d.cfg.Registry.updateCtx(ctx, func(cur map[string]*Trail) error {
		clear(saved)
		for arn, in := range intents {
			c := cur[arn]
			if c == nil || c.Position != pos[arn] || c.begun() {
				continue
			}
			c.Intent = in
			saved[arn] = true
		}
		return nil
	})
	if errors.Is(err, lease.ErrFenced) {
		d.log().Info("trail: the delivery lease is lost; nothing written", "err", err)
		return false, err
	}
	if err != nil {
		d.log().Error("trail: saving the delivery intent; nothing written", "err", err)
		return false, nil
	}
	for arn := range intents {
		if !saved[arn] {
			delete(intents, arn)
		}
	}
	return true, nil
}

// redo delivers t's batch begun before (t.Intent) exactly again: it reads
// the intent's range of the feed (from where it began, even when
// StartLogging moved the position since) and writes it as the trail then
// selected it, under the same keys. It reports false when ctx ended (the
// round stops), and the error of a fenced-off save (the lease is lost).
// A batch that failed takes t out of this round (position -1). A batch
// delivered leaves t in it at the position that delivery saved, so that
// the round goes on with the records after the batch: a final round
// (shutdown) that redoes the batch it interrupted also delivers what was
// stored after it, instead of leaving that to the next start.
func (d *Deliverer) redo(ctx context.Context, t *Trail) (bool, error) {
	in := t.Intent
	from := t.intentStart()
	d.log().Info("trail: delivering a begun batch again under its keys", "trail", t.ARN(), "from_seq", from, "to_seq", in.Upto)
	batch, err := d.cfg.Feed.ReadAppended(ctx, from, d.batch)
	if err != nil {
		if ctx.Err() != nil {
			return false, nil
		}
		d.log().Error("trail: read the store", "err", err)
		t.Position = -1
		return true, nil
	}
	// The range held at most d.batch records when it was read first.
	n := 0
	for n < len(batch) && batch[n].Seq <= in.Upto {
		n++
	}
	batch = batch[:n]
	as := *t
	if in.Trail != nil {
		as = *in.Trail
	}
	as.Position, as.Pending, as.Intent, as.org = from, t.Pending, in, t.org
	var skip map[string]bool
	if p := t.Pending; p != nil && p.Upto == in.Upto {
		skip = p.skip()
	}
	d.files = map[string]logFileBody{}
	defer func() { d.files = nil }()
	groups, order := plan(&as, batch, in.Upto, skip)
	out := d.write(ctx, &as, batch, groups, order, in)
	if out.err != nil && ctx.Err() != nil {
		d.log().Info("trail: delivery interrupted", "trail", t.ARN(), "err", out.err)
		return false, nil
	}
	if err := d.settle(ctx, t, in.Upto, out, false); err != nil {
		return false, err
	}
	if out.err != nil || !t.Logging && !t.Draining {
		t.Position = -1 // failed (retried after its backoff), or delivers no more
		return true, nil
	}
	// As settle saved it. Were that save lost, begin finds the intent
	// still there and saves no new one: nothing more this round.
	t.Position = max(t.Position, in.Upto)
	t.Intent = nil
	if p := t.Pending; p != nil && p.Upto <= t.Position {
		t.Pending = nil
	}
	return true, nil
}

type group struct{ account, region, folder string }

// key spells g in Pending.Done.
func (g group) key() string { return g.account + "/" + g.region + "/" + g.folder }

// outcome is what one delivery attempt of a trail did.
type outcome struct {
	done     []string // groups written or set aside
	wrote    bool     // the bucket accepted a file
	setAside int64    // records set aside
	code     string   // error code of the latest set-aside, for the status
	err      error    // a transient failure: retried after a backoff
}

// plan groups the records of batch after t.Position up to end that t
// selects by account, region and folder (batch indexes), leaving out the
// groups of skip; order is the groups in their first record's order.
func plan(t *Trail, batch []audit.Appended, end int64, skip map[string]bool) (map[group][]int, []group) {
	groups := map[group][]int{}
	var order []group
	for i := range batch {
		a := &batch[i]
		// A call's record is stored a few milliseconds after its answer,
		// so records of calls made before StartLogging can follow its
		// position: the trail also leaves out events from before the
		// second logging started.
		if a.Seq <= t.Position || a.Seq > end || !t.logged(a.Record.Time) || !t.Selects(&a.Record) {
			continue
		}
		g := group{a.Record.Account, a.Record.Region, folderLogs}
		if a.Record.Category == audit.CategoryInsight {
			g.folder = folderInsights
		}
		if skip[g.key()] {
			continue
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	return groups, order
}

// skip returns the groups p holds as done.
func (p *Pending) skip() map[string]bool {
	m := make(map[string]bool, len(p.Done))
	for _, k := range p.Done {
		m[k] = true
	}
	return m
}

// write writes t's files of the planned groups (plan), under the keys
// of in.
func (d *Deliverer) write(ctx context.Context, t *Trail, batch []audit.Appended, groups map[group][]int, order []group, in *Intent) outcome {
	var out outcome
	if len(order) == 0 {
		return out
	}
	end := in.Upto
	b, ok := d.cfg.Bucket(t.S3BucketName)
	if !ok {
		out.err = &objects.CodeError{Code: "NoSuchBucket", Err: fmt.Errorf("bucket %s is not configured", t.S3BucketName)}
		return out
	}
	if p := t.Pending; p != nil && p.Upto == end {
		out.wrote = p.Wrote
	}
	// Groups the bucket refused without saying why: set aside if it
	// accepted other keys of the batch, else a failure of the bucket.
	type refusal struct {
		g   group
		err error
	}
	var refused []refusal
	for _, g := range order {
		idx := groups[g]
		if !audit.ValidRegion(g.region) {
			// A record stored before regions were validated: its key
			// would hold a "region" such as '..'. Not even tried.
			d.setAside(t, g, batch, idx, "InvalidArgument", fmt.Errorf("awsRegion %q is not an AWS region", audit.Clip(g.region, 128)), &out)
			continue
		}
		err := d.writeGroup(ctx, b, t, g, batch, idx, in)
		switch {
		case err == nil:
			out.wrote = true
			out.done = append(out.done, g.key())
		case ctx.Err() != nil:
			out.err = err
			return out
		case errors.Is(err, objects.ErrKeyRefused):
			d.setAside(t, g, batch, idx, objects.ErrorCode(err), err, &out)
		case errors.Is(err, objects.ErrRequestRefused):
			refused = append(refused, refusal{g, err})
		default:
			out.err = err // the bucket, not the key: stop, retry later
			return out
		}
	}
	for _, r := range refused {
		if !out.wrote {
			out.err = r.err
			return out
		}
		d.setAside(t, r.g, batch, groups[r.g], objects.ErrorCode(r.err), r.err, &out)
	}
	return out
}

// writeGroup writes the files of one group's records (batch indexes idx).
func (d *Deliverer) writeGroup(ctx context.Context, b Bucket, t *Trail, g group, batch []audit.Appended, idx []int, in *Intent) error {
	recs := make([]*audit.Record, len(idx))
	for i, j := range idx {
		recs[i] = &batch[j].Record
	}
	for part := 0; len(recs) > 0; part++ {
		f, err := d.file(g, idx, recs)
		if err != nil {
			return err
		}
		n, hash, gz := f.n, f.hash, f.gz
		key := logKey(t, g, in, part)
		if !objects.ValidKey(key) {
			return &objects.CodeError{Code: "InvalidArgument", Err: fmt.Errorf("log key %q: %w", audit.Clip(key, 128), objects.ErrKeyRefused)}
		}
		if err := b.Put(ctx, key, gz, "application/json", nil); err != nil {
			return err
		}
		if d.cfg.Observer != nil {
			oldest, newest := span(recs[:n])
			if g.folder == folderLogs {
				d.cfg.Observer.LogDelivered(ctx, *t, g.account, g.region, key, hash, oldest, newest)
			}
		}
		recs, idx = recs[n:], idx[n:]
	}
	return nil
}

// setAside gives up on the records of one group (batch indexes idx): they
// stay in the store, the log says which, the metric counts them.
func (d *Deliverer) setAside(t *Trail, g group, batch []audit.Appended, idx []int, code string, cause error, out *outcome) {
	out.done = append(out.done, g.key())
	out.setAside += int64(len(idx))
	out.code = code
	d.metrics.setAside.WithLabelValues(code).Add(float64(len(idx)))
	d.log().Error("trail: records set aside: their log file cannot be delivered", "trail", t.ARN(),
		"account", audit.Clip(g.account, 128), "region", audit.Clip(g.region, 128), "folder", g.folder, "records", len(idx),
		"first_seq", batch[idx[0]].Seq, "last_seq", batch[idx[len(idx)-1]].Seq, "code", code, "err", cause)
}

// logFileBody is a log file: how many records it holds, the hex SHA-256
// of its JSON and its gzip.
type logFileBody struct {
	n    int
	hash string
	gz   []byte
}

// file returns the log file of the first records of recs (batch indexes
// idx). Trails that select the same records of a batch share the file's
// body: it is built and compressed once per batch.
func (d *Deliverer) file(g group, idx []int, recs []*audit.Record) (logFileBody, error) {
	h := fnv.New64a()
	var b [8]byte
	for _, i := range idx {
		binary.LittleEndian.PutUint64(b[:], uint64(i))
		h.Write(b[:])
	}
	key := fmt.Sprintf("%s|%s|%s|%d|%x", g.account, g.region, g.folder, len(idx), h.Sum64())
	if f, ok := d.files[key]; ok {
		return f, nil
	}
	n, hash, gz, err := logFile(recs, d.maxFile)
	if err != nil {
		return logFileBody{}, err
	}
	f := logFileBody{n, hash, gz}
	if n == len(recs) { // a cut file's rest has other indexes: not shared
		d.files[key] = f
	}
	return f, nil
}

// drainWindow is how long after StopLogging a trail still delivers the
// records of events up to StopLogging (they are stored milliseconds after
// the calls answer).
const drainWindow = time.Minute

// logged reports whether an event at time at happened while t was logging:
// from DeliverFrom (StartLogging) and, for a stopped trail, up to
// StopLoggingTime. Record times are to the second.
func (t *Trail) logged(at time.Time) bool {
	from := t.DeliverFrom
	if from.IsZero() {
		from = t.StartLoggingTime
	}
	if at.Before(from.Truncate(time.Second)) {
		return false
	}
	return t.Logging || !at.After(t.StopLoggingTime)
}

// drained ends the last minute of the stopped trails that delivered every
// record the feed holds (their round read nothing more): they stop
// reading the feed.
func (d *Deliverer) drained(ctx context.Context, trails []Trail) error {
	now := d.now()
	var done []Trail
	for _, t := range trails {
		if t.Draining && !t.Logging && now.After(t.StopLoggingTime.Add(drainWindow)) {
			done = append(done, t)
		}
	}
	if len(done) == 0 {
		return nil
	}
	err := d.cfg.Registry.updateCtx(ctx, func(trails map[string]*Trail) error {
		for _, t := range done {
			if cur := trails[t.ARN()]; cur != nil && cur.Draining && cur.Position == t.Position && !cur.begun() {
				cur.Draining = false
			}
		}
		return nil
	})
	if errors.Is(err, lease.ErrFenced) {
		d.log().Info("trail: the delivery lease is lost", "err", err)
		return err
	}
	if err != nil {
		d.log().Error("trail: saving the end of a stopped trail's delivery", "err", err)
	}
	return nil
}

// settle records the outcome of a delivery up to end in the registry;
// caughtUp says that end is the end of the feed when it was read. The
// status shows an AWS-style code (objects.ErrorCode), never raw text. A
// save fenced off (another node holds the delivery lease) records
// nothing, no status or backoff, and returns its error: the round stops.
func (d *Deliverer) settle(ctx context.Context, t *Trail, end int64, out outcome, caughtUp bool) error {
	now := d.now()
	if d.backoff == nil {
		d.backoff = map[string]backoff{}
	}
	code := out.code
	if out.err != nil {
		code = objects.ErrorCode(out.err)
		d.metrics.failures.WithLabelValues(code).Inc()
		b := d.backoff[t.ARN()]
		b.delay = min(max(2*b.delay, time.Second), maxBackoff)
		b.next = now.Add(b.delay)
		d.backoff[t.ARN()] = b
		d.log().Warn("trail: delivery failed", "trail", t.ARN(), "code", code, "err", out.err, "retry_in", b.delay)
	} else {
		delete(d.backoff, t.ARN())
	}
	uerr := d.cfg.Registry.updateCtx(ctx, func(trails map[string]*Trail) error {
		cur := trails[t.ARN()]
		if cur == nil {
			return nil // deleted meanwhile
		}
		cur.LatestDeliveryAttemptTime = now
		if out.setAside > 0 {
			cur.SetAside += out.setAside
			cur.SetAsideCode, cur.SetAsideTime = out.code, now
		}
		if out.err != nil {
			cur.LatestDeliveryError = code
			// Remember what this attempt wrote, so that the retry
			// writes only the rest (never a new Pending object shared
			// with a snapshot: update restores by copy).
			// (A begun batch's Pending may be at or below a position
			// StartLogging moved: its end still names it.)
			switch p := cur.Pending; {
			case p != nil && p.Upto == end:
				cur.Pending = &Pending{Upto: end, Done: append(append([]string(nil), p.Done...), out.done...), Wrote: p.Wrote || out.wrote}
			case p == nil || p.Upto <= cur.Position:
				cur.Pending = &Pending{Upto: end, Done: out.done, Wrote: out.wrote}
			}
			return nil
		}
		if end > cur.Position {
			cur.Position = end
		}
		if p := cur.Pending; p != nil && p.Upto <= cur.Position {
			cur.Pending = nil
		}
		if in := cur.Intent; in != nil && in.Upto <= cur.Position {
			cur.Intent = nil // the batch is delivered: its files stand
		}
		// A stopped trail delivers what was recorded up to StopLogging
		// (including the StopLogging call, stored just after it answered),
		// for drainWindow after it, and until it delivered every record
		// stored by then: a round that ends the minute in a batch before
		// the feed's end keeps it draining, so that a crash before the
		// round's next batch leaves that batch to deliver.
		if cur.Draining && caughtUp && now.After(cur.StopLoggingTime.Add(drainWindow)) {
			cur.Draining = false
		}
		// Records set aside are never delivered: the status says so for
		// a day, whatever the rounds after; a transient error clears
		// with the first clean round.
		if code == "" && cur.SetAsideCode != "" && now.Sub(cur.SetAsideTime) < setAsideVisible {
			code = cur.SetAsideCode
		}
		cur.LatestDeliveryError = code
		cur.LatestDeliveryTime = now
		return nil
	})
	if errors.Is(uerr, lease.ErrFenced) {
		delete(d.backoff, t.ARN())
		d.log().Info("trail: the delivery lease is lost; the node holding it delivers", "trail", t.ARN(), "err", uerr)
		return uerr
	}
	if uerr != nil {
		d.log().Error("trail: saving the delivery position", "trail", t.ARN(), "err", uerr)
	}
	return nil
}

// logFile writes the log file of the first records of recs, as many as
// fit in limit bytes of JSON (at least one), gzipped: it returns how many
// it holds, the hex SHA-256 of its JSON (the digest's hashValue) and the
// gzip. The JSON is not kept: it goes through a buffer of fileChunk bytes
// to the hash and the compressor (a pooled gzip.Writer). Building each
// file whole first allocated its size in fresh memory every round, whose
// clearing was 4% of live ingest's CPU (issue 15).
func logFile(recs []*audit.Record, limit int) (int, string, []byte, error) {
	size := 16
	for _, r := range recs {
		if size += len(r.Raw) + 1; size > limit {
			break
		}
	}
	var out bytes.Buffer
	out.Grow(min(size, limit)/8 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&out)
	h := sha256.New()
	buf := make([]byte, 0, fileChunk)
	var werr error
	flush := func() {
		if werr == nil && len(buf) > 0 {
			h.Write(buf)
			_, werr = zw.Write(buf)
		}
		buf = buf[:0]
	}
	write := func(b []byte) {
		if len(buf)+len(b) > cap(buf) {
			flush()
		}
		if len(b) >= cap(buf) {
			if werr == nil {
				h.Write(b)
				_, werr = zw.Write(b)
			}
			return
		}
		buf = append(buf, b...)
	}
	write([]byte(`{"Records":[`))
	n, written := 0, len(`{"Records":[`)
	for _, r := range recs {
		if n > 0 && written+len(r.Raw) > limit {
			break
		}
		if n > 0 {
			write([]byte{','})
			written++
		}
		write(r.Raw)
		written += len(r.Raw)
		n++
	}
	write([]byte(`]}`))
	flush()
	if werr != nil {
		return 0, "", nil, werr
	}
	if err := zw.Close(); err != nil {
		return 0, "", nil, err
	}
	return n, hex.EncodeToString(h.Sum(nil)), out.Bytes(), nil
}

// fileChunk is the buffer through which logFile gives a file's JSON to
// the hash and the compressor.
const fileChunk = 64 << 10

// gzipWriters holds the compressors of log files: a gzip.Writer's state
// is over a megabyte, made once rather than per file.
var gzipWriters = &sync.Pool{New: func() any { return newGzipWriter(logGzipLevel) }}

// logGzipLevel is the compression level of log files. BenchmarkLogFile
// (20,000 real records, klauspost/compress, load 16-18): the default
// level 195-242 MB/s of JSON, files 10.9% of the JSON; level 2 312-408
// MB/s, 11.8%; level 1 281-377 MB/s, 12.7%. At 50k events/s of 1.4 kB
// records the default would take a third of a core for gzip alone; level
// 2 takes about 60% of that for files 8% larger. Any level is read alike
// (validate-logs hashes the uncompressed file).
const logGzipLevel = 2

func newGzipWriter(level int) *gzip.Writer {
	w, err := gzip.NewWriterLevel(nil, level)
	if err != nil {
		panic(err) // a constant level: a bug, not an input
	}
	return w
}

func span(recs []*audit.Record) (oldest, newest time.Time) {
	for i, r := range recs {
		if i == 0 || r.Time.Before(oldest) {
			oldest = r.Time
		}
		if r.Time.After(newest) {
			newest = r.Time
		}
	}
	return oldest, newest
}

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// logKey is AWS's key of a log or Insights file (facts §4.1): the part-th
// file of group g in the batch of in, delivered at in.At. Its 16 random
// characters derive from in.Seed, the group and part, so a batch delivered
// again has the same keys.
func logKey(tr *Trail, g group, in *Intent, part int) string {
	h := sha256.Sum256([]byte(in.Seed + "|" + g.key() + "|" + strconv.Itoa(part)))
	var b [16]byte
	for i := range b {
		b[i] = alnum[int(h[i])%len(alnum)]
	}
	t := in.At.UTC()
	return fmt.Sprintf("%s%s/%s_%s_%s_%s_%s.json.gz", tr.keyPrefix(g.account, g.folder, g.region),
		t.Format("2006/01/02"), g.account, g.folder, g.region, t.Format("20060102T1504Z"), b[:])
}

func (d *Deliverer) now() time.Time { return d.cfg.Now() }

func (d *Deliverer) log() *slog.Logger { return d.cfg.Logger }
