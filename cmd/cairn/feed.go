package main

import (
	"context"

	"github.com/cairn-audit/cairn/internal/audit"
)

// appendedReader is the store's append-order feed, as Lake and Insights
// read it.
type appendedReader interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
}

// backgroundFeed reads the store's append-order feed for the background
// readers that catch up over it (Lake's Sync, the Insights runner), each
// read on a thread of its own with the lowest CPU priority (Linux: nice
// 19). Decoding a batch is most of a catch-up's CPU (zstd frames): after a
// `cairn import`, the first minutes of `serve` read every imported record
// twice, and at normal priority that work took the first lookups from 4 to
// 6-17 ms p50 (docs/store.md, "Start-up catch-up"). At the lowest priority
// the catch-up runs when lookups leave a core free, and it still reads
// every record: only its place in the queue changes.
type backgroundFeed struct{ feed appendedReader }

func (f backgroundFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	type result struct {
		recs []audit.Appended
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The goroutine ends without unlocking its thread: Go then ends
		// the thread, so the priority goes with it.
		lowPriorityThread()
		recs, err := f.feed.ReadAppended(ctx, after, limit)
		done <- result{recs, err}
	}()
	r := <-done
	return r.recs, r.err
}
