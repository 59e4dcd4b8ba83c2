package duckdb

import (
	"sync/atomic"
	"time"
)

// allocatorPurgeEvery is how often DuckDB's allocator gives the pages it
// freed back to the kernel while a load runs (allocatorPurger).
const allocatorPurgeEvery = time.Second

// allocatorPurger has DuckDB's allocator (its bundled jemalloc, process
// wide) give back the pages it freed and keeps (dirty and muzzy), every
// interval while a load runs (BeginLoad to the last Finish). jemalloc
// purges them on its own only after its decay time (1 s) and only when
// the arena that holds them is used again: an arena whose thread fell
// idle (a commit's, on an OS thread Go then parked) kept them for the
// rest of the load, 150-180 MiB of a 10M load's peak RSS over what it had
// allocated (issue 15; docs/lake.md, "A load's freed pages"). Purging on
// every free (decays of 0) gave them back too, for 12-18% more wall
// time; once a second costs one madvise pass over what was freed since.
type allocatorPurger struct {
	stop, done chan struct{}
	purges     *atomic.Int64
}

// startAllocatorPurger purges every interval until stop, counting the
// purges in n; nil where the allocator cannot be reached
// (allocatorPurgeable).
func startAllocatorPurger(every time.Duration, n *atomic.Int64) *allocatorPurger {
	if !allocatorPurgeable {
		return nil
	}
	p := &allocatorPurger{stop: make(chan struct{}), done: make(chan struct{}), purges: n}
	go func() {
		defer close(p.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
			if purgeAllocator() {
				p.purges.Add(1)
			}
		}
	}()
	return p
}

// Stop stops the purges and returns once the last has ended (nothing for
// nil).
func (p *allocatorPurger) Stop() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}
