package main

import (
	"context"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/trail"
)

// appendedReader is the store's append-order feed, as Lake and Insights
// read it.
type appendedReader interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
	LastSeq(ctx context.Context) (int64, error)
}

// catchUpPause is how long backgroundFeed pauses after a full batch, as a
// multiple of the time the read took: the catch-up's reads then take at
// most a third of a core.
const catchUpPause = 2

// backgroundFeed reads the store's append-order feed for the background
// readers that catch up over it (Lake's Sync, the Insights runner, trail
// delivery). Reading
// a batch (DuckDB, then decoding its zstd frames) is most of a catch-up's
// CPU: after a `cairn import`, the first `serve` reads every imported
// record twice, and unpaced that took a core for seconds (200k records)
// and the first lookups from 4 to 6-30 ms p50 (docs/store.md, "Start-up
// catch-up"). After a read that returned a full batch (more are waiting)
// it pauses catchUpPause times as long as the read took, so the catch-up
// leaves the cores to the lookups; it still reads every record, and a
// reader that is caught up (partial batches) is never paused.
//
// (A first version ran the reads on a nice-19 thread. A starved thread
// running Go code holds its P, and the runtime's stop-the-world phases
// wait for it: under load the other lookups' p99 reached seconds.)
type backgroundFeed struct {
	feed appendedReader
	// now and sleep default to the real clock; tests inject them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

func (f backgroundFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	now, sleep := f.now, f.sleep
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = sleepCtx
	}
	t0 := now()
	recs, err := f.feed.ReadAppended(ctx, after, limit)
	if err != nil || len(recs) < limit {
		return recs, err
	}
	if err := sleep(ctx, catchUpPause*now().Sub(t0)); err != nil {
		return nil, err
	}
	return recs, nil
}

// LastSeq is the feed's, unpaced (Lake skips what no store takes by it).
func (f backgroundFeed) LastSeq(ctx context.Context) (int64, error) { return f.feed.LastSeq(ctx) }

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacedTrailFeed is trail delivery's feed: its reads go through paced (a
// backgroundFeed over the same store), LastSeq to the store as it is.
type pacedTrailFeed struct {
	trail.Feed
	paced backgroundFeed
}

func newPacedTrailFeed(f trail.Feed) pacedTrailFeed {
	return pacedTrailFeed{Feed: f, paced: backgroundFeed{feed: f}}
}

func (f pacedTrailFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	return f.paced.ReadAppended(ctx, after, limit)
}
