package trail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket"
	"github.com/klauspost/compress/gzip"
)

// Feed is the store's append-order feed.
type Feed interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
	// LastSeq returns the last sequence number given (0 for none).
	LastSeq(ctx context.Context) (int64, error)
}

// Deliverer writes the records logging trails select to their buckets,
// every Interval and once more when Run ends.
type Deliverer struct {
	Registry *Registry
	Feed     Feed
	Bucket   func(name string) (bucket.Bucket, bool)
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// Observer, when set, is told of every log file delivered (digests).
	Observer Observer

	mu      sync.Mutex // one delivery at a time
	backoff map[string]backoff
	files   map[string]logFileBody // bodies of the current batch, shared by trails
}

// Observer learns of delivered log files.
type Observer interface {
	LogDelivered(ctx context.Context, t Trail, account, region, key string, raw []byte, oldest, newest time.Time)
}

type backoff struct {
	next  time.Time
	delay time.Duration
}

// Delivery limits: records read from the feed at a time, and the JSON
// size at which a log file is cut (AWS caps files at 50 MB compressed).
const (
	feedBatch    = 20000
	maxFileBytes = 64 << 20
	maxBackoff   = 5 * time.Minute
)

// Run delivers every Interval until ctx ends, then delivers once more
// (bounded by 30 s), so that a graceful shutdown leaves nothing behind.
func (d *Deliverer) Run(ctx context.Context) {
	tick := time.NewTicker(d.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// The final round tries every trail, backing off or not: a
			// round that shutdown interrupted (its writes cancelled) is
			// done again here, not left for the next start.
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			d.round(final, true)
			cancel()
			return
		case <-tick.C:
			d.DeliverOnce(ctx)
		}
	}
}

// DeliverOnce delivers what the logging trails have not delivered yet.
// A trail's position moves only after every file of a batch was written;
// a failed write leaves it where it was (the next round writes the batch
// again: at least once) and backs the trail off, doubling up to 5 minutes.
func (d *Deliverer) DeliverOnce(ctx context.Context) { d.round(ctx, false) }

// round is one delivery round; a final round ignores backoff. A write
// that fails because ctx ended (shutdown) is no delivery error: it leaves
// the trail's position, status and backoff as they were.
func (d *Deliverer) round(ctx context.Context, final bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	trails := d.Registry.snapshot(func(t *Trail) bool {
		b, ok := d.backoff[t.ARN()]
		return (t.Logging || t.Draining) && (final || !ok || !now.Before(b.next))
	})
	if len(trails) == 0 {
		return
	}
	from := trails[0].Position
	for _, t := range trails {
		from = min(from, t.Position)
	}
	for {
		batch, err := d.Feed.ReadAppended(ctx, from, feedBatch)
		if err != nil {
			d.log().Error("trail: read the store", "err", err)
			return
		}
		if len(batch) == 0 {
			return
		}
		last := batch[len(batch)-1].Seq
		d.files = map[string]logFileBody{}
		for i := range trails {
			t := &trails[i]
			if t.Position >= last {
				continue
			}
			err := d.deliver(ctx, t, batch)
			if err != nil && ctx.Err() != nil {
				d.log().Info("trail: delivery interrupted", "trail", t.ARN(), "err", err)
				d.files = nil
				return
			}
			d.settle(t, last, err)
			if err == nil {
				t.Position = last
			} else {
				t.Position = -1 // failed: not again this round
			}
		}
		from = last
		kept := trails[:0]
		for _, t := range trails {
			if t.Position >= 0 {
				kept = append(kept, t)
			}
		}
		trails = kept
		d.files = nil
		if len(trails) == 0 || len(batch) < feedBatch {
			return
		}
	}
}

type group struct{ account, region, folder string }

// deliver writes t's files for the records of batch after t.Position.
func (d *Deliverer) deliver(ctx context.Context, t *Trail, batch []audit.Appended) error {
	groups := map[group][]int{}
	var order []group
	for i := range batch {
		a := &batch[i]
		// A call's record is stored a few milliseconds after its answer,
		// so records of calls made before StartLogging can follow its
		// position: the trail also leaves out events from before the
		// second logging started.
		if a.Seq <= t.Position || !t.logged(a.Record.Time) || !t.Selects(&a.Record) {
			continue
		}
		g := group{a.Record.Account, a.Record.Region, FolderLogs}
		if a.Record.Category == audit.CategoryInsight {
			g.folder = FolderInsights
		}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], i)
	}
	if len(order) == 0 {
		return nil
	}
	b, ok := d.Bucket(t.S3BucketName)
	if !ok {
		return fmt.Errorf("NoSuchBucket: bucket %s is not configured", t.S3BucketName)
	}
	for _, g := range order {
		idx := groups[g]
		recs := make([]*audit.Record, len(idx))
		for i, j := range idx {
			recs[i] = &batch[j].Record
		}
		for len(recs) > 0 {
			f, err := d.file(g, idx, recs)
			if err != nil {
				return err
			}
			n, raw, gz := f.n, f.raw, f.gz
			key := logKey(t, g, d.now())
			if err := b.Put(ctx, key, gz, "application/json", nil); err != nil {
				return err
			}
			if d.Observer != nil {
				oldest, newest := span(recs[:n])
				if g.folder == FolderLogs {
					d.Observer.LogDelivered(ctx, *t, g.account, g.region, key, raw, oldest, newest)
				}
			}
			recs, idx = recs[n:], idx[n:]
		}
	}
	return nil
}

// logFileBody is a log file's JSON and its gzip.
type logFileBody struct {
	n       int
	raw, gz []byte
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
	n, raw := logFile(recs)
	gz, err := gzipped(raw)
	if err != nil {
		return logFileBody{}, err
	}
	f := logFileBody{n, raw, gz}
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

// settle records the outcome of a delivery in the registry.
func (d *Deliverer) settle(t *Trail, last int64, err error) {
	now := d.now()
	if d.backoff == nil {
		d.backoff = map[string]backoff{}
	}
	if err != nil {
		b := d.backoff[t.ARN()]
		b.delay = min(max(2*b.delay, time.Second), maxBackoff)
		b.next = now.Add(b.delay)
		d.backoff[t.ARN()] = b
		d.log().Warn("trail: delivery failed", "trail", t.ARN(), "err", err, "retry_in", b.delay)
	} else {
		delete(d.backoff, t.ARN())
	}
	uerr := d.Registry.update(func(trails map[string]*Trail) error {
		cur := trails[t.ARN()]
		if cur == nil {
			return nil // deleted meanwhile
		}
		cur.LatestDeliveryAttemptTime = now
		if err != nil {
			cur.LatestDeliveryError = err.Error()
			return nil
		}
		if last > cur.Position {
			cur.Position = last
		}
		// A stopped trail delivers what was recorded up to StopLogging
		// (including the StopLogging call, stored just after it answered),
		// for drainWindow after it.
		if cur.Draining && now.After(cur.StopLoggingTime.Add(drainWindow)) {
			cur.Draining = false
		}
		cur.LatestDeliveryError = ""
		cur.LatestDeliveryTime = now
		return nil
	})
	if uerr != nil {
		d.log().Error("trail: saving the delivery position", "trail", t.ARN(), "err", uerr)
	}
}

// logFile returns the JSON of a log file holding the first n records
// (all of them, or as many as fit in maxFileBytes, at least one).
func logFile(recs []*audit.Record) (int, []byte) {
	size := 16
	for _, r := range recs {
		if size += len(r.Raw) + 1; size > maxFileBytes {
			break
		}
	}
	var buf bytes.Buffer
	buf.Grow(size)
	buf.WriteString(`{"Records":[`)
	n := 0
	for _, r := range recs {
		if n > 0 && buf.Len()+len(r.Raw) > maxFileBytes {
			break
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(r.Raw)
		n++
	}
	buf.WriteString(`]}`)
	return n, buf.Bytes()
}

func gzipped(b []byte) ([]byte, error) {
	var out bytes.Buffer
	out.Grow(len(b)/8 + 64)
	w := gzip.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
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

// logKey is AWS's key of a log or Insights file delivered at t (facts §4.1).
func logKey(tr *Trail, g group, t time.Time) string {
	var b [16]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = alnum[int(b[i])%len(alnum)]
	}
	t = t.UTC()
	return fmt.Sprintf("%s%s/%s_%s_%s_%s_%s.json.gz", tr.KeyPrefix(g.account, g.folder, g.region),
		t.Format("2006/01/02"), g.account, g.folder, g.region, t.Format("20060102T1504Z"), b[:])
}

func (d *Deliverer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deliverer) log() *slog.Logger {
	if d.Logger != nil {
		return d.Logger
	}
	return slog.New(slog.DiscardHandler)
}
