package ingest

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// disk tracks whether the disk holding the journal and the store is full:
// set by a write failing with ENOSPC (or EDQUOT), or by free space below
// MinFreeBytes; cleared once the free space, read at most every
// DiskCheckInterval, is back above MinFreeBytes and, after a failed write,
// at least a MiB above what it was then (so that a few bytes freed do not
// resume writes that fail again). A successful write clears it too, but
// only where the free space cannot tell: when it cannot be read, or when
// the failed write had a MiB or more free beside it (a quota, exhausted
// inodes, another process writing). Where the reading explained the
// failure, a write that fits in the last free bytes (a file's last page, a
// compressed journal frame) says nothing of the room the next writes need:
// clearing on it made the state flap while the disk stayed full. While
// full, a write is let through every probeEvery, to find out whether it
// has room again when the free space does not tell.
type disk struct {
	dir      string
	minFree  int64
	interval time.Duration
	log      *slog.Logger
	gauge    prometheus.Gauge

	mu      sync.Mutex
	isFull  bool
	checked time.Time // of the last free-space reading
	since   time.Time // full since
	resume  int64     // free bytes needed to clear a full state
	probed  time.Time // when a write was last let through while full
	// byReading: the free space explains the full state (below the
	// floor, or under a MiB when a write failed), so only a reading
	// clears it, not a write that fit.
	byReading bool
	// freeBytes reads the free space of dir (a variable for tests).
	freeBytes func(dir string) (int64, bool)
}

// probeEvery is how often a write is let through while the disk is full,
// to find out whether it has room again when the free space does not tell.
const probeEvery = 2 * time.Second

func (d *disk) init(cfg *Config) {
	d.dir, d.minFree, d.interval, d.log = cfg.DiskDir, cfg.MinFreeBytes, cfg.DiskCheckInterval, cfg.Logger
	d.freeBytes = freeBytes
	d.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cairn_ingest_disk_full",
		Help: "1 while the disk of the data directory is full (writes are refused with ServiceUnavailableException), else 0.",
	})
}

// full reports whether writes must be refused now, reading the free space
// when the last reading is older than the interval. While full, it lets a
// write through every probeEvery (the probe; its success clears the state).
func (d *disk) full() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if d.isFull && now.Sub(d.since) >= probeEvery && now.Sub(d.probed) >= probeEvery {
		d.probed = now
		return false
	}
	if now.Sub(d.checked) < d.interval {
		return d.isFull
	}
	d.checked = now
	free, ok := d.freeBytes(d.dir)
	switch {
	case ok && d.minFree > 0 && free < d.minFree:
		if !d.isFull {
			d.byReading = true
		}
		d.setFullLocked("free space below ingest.min_free_bytes", "free_bytes", free, "min_free_bytes", d.minFree)
	case ok && d.isFull && free >= d.resume:
		d.clearLocked("free_bytes", free)
	case !ok && d.isFull:
		d.clearLocked() // unknown: let the next write try
	}
	return d.isFull
}

// setFull records a write that failed for a full disk.
func (d *disk) setFull(cause error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.checked = time.Now() // the write was the reading
	free, ok := d.freeBytes(d.dir)
	wasFull := d.isFull
	d.setFullLocked("a write failed: the disk is full", "err", cause)
	d.resume = max(d.minFree, free+1<<20)
	explained := ok && free < 1<<20
	if !wasFull {
		d.byReading = explained
	} else {
		d.byReading = d.byReading || explained
	}
}

// wrote records a successful journal or store write: the disk has room
// again, unless the free space explains the full state (then a reading
// clears it) or is below the floor.
func (d *disk) wrote() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.isFull || d.byReading {
		return
	}
	if free, ok := d.freeBytes(d.dir); ok && d.minFree > 0 && free < d.minFree {
		return
	}
	d.clearLocked()
}

func (d *disk) setFullLocked(why string, args ...any) {
	if d.isFull {
		return
	}
	d.isFull, d.since, d.resume = true, time.Now(), max(d.minFree, 1)
	d.gauge.Set(1)
	d.log.Error("ingest: the disk is full; writes are refused (ServiceUnavailableException) until space is freed",
		append([]any{"why", why, "dir", d.dir}, args...)...)
}

func (d *disk) clearLocked(args ...any) {
	d.isFull = false
	d.gauge.Set(0)
	d.log.Info("ingest: the disk has room again; writes resume",
		append([]any{"dir", d.dir, "full_for", time.Since(d.since).Round(time.Millisecond)}, args...)...)
}

// isDiskFull reports whether err is a write failing for a full disk (or an
// exhausted quota). DuckDB reports it in its message only.
func isDiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "no space left on device") || strings.Contains(msg, "disk quota exceeded") ||
		strings.Contains(msg, "not enough space on the disk")
}
