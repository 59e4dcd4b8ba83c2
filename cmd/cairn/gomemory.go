package main

import (
	"io"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"time"
)

// importGoMemory is Go's soft memory limit during an offline import into
// the embedded store (issue 15: RSS at most 1 GB during a 10M-record
// import). Without it the collector let the heap grow to twice what was
// live: at 10M records about 260 MB live (the key filters and bucket
// filters, 17 bytes a record, and the records in flight) made a heap of
// 520 MB, which with DuckDB's 256MB and its own beside it took RSS to
// 1.07 GB (docs/store.md, "Memory (session 17)"). 384 MiB since session
// 26 (was 448, with the limit lifted to 1.5x the live heap and 64 MiB):
// at 10M records the live heap peaks near 300 MB, which the old rule
// followed with a heap of up to 550 MB (peak RSS 956–980 MiB); held at
// 384 MiB the heap stayed within 367 MB, the collector took 3% of the
// CPU instead of 2%, and the peak RSS was 823–839 MiB (docs/benchmarks.md,
// "Session 26 at its end, quiet").
const importGoMemory = 384 << 20

// serveGoMemory is the least soft memory limit `cairn serve` runs under
// (limitGoMemoryAt, for the server's life; issue 15: RSS at most 1 GB
// during a 10M import through a server). Above the offline import's
// 384 MiB: with 384 a 10M import through the server took 22-28% more
// server CPU (the limit bound from its second minute), with 512 5-17%
// (peak RSS 719-729 and 712-747 MiB, main's 1,033-1,078); past 410 MiB
// live the limit follows the live heap at 1.25x either way (docs/store.md, "Memory of a server's
// import").
const serveGoMemory = 512 << 20

// goMemoryHeadroom is the least room the limit leaves above the live heap,
// as a fraction of it (and at least 64 MiB): the limit is raised while the
// live heap grows past importGoMemory/1.25, so that the collector never
// runs back to back (a soft limit near the live heap made session 16's
// import26 5.5x the page faults and 70% slower at 10M).
const goMemoryHeadroom = 0.25

// limitGoMemory sets Go's soft memory limit to importGoMemory, or to
// 1.25 times the live heap (at least 64 MiB above it) when that is more,
// checked every second, until stop; stop puts back the limit there was
// (once, however often it is called). A lower limit already set
// (GOMEMLIMIT) stays, and nothing runs.
func limitGoMemory() (stop func()) { return limitGoMemoryAt(importGoMemory) }

// limitGoMemoryAt is limitGoMemory with floor in place of importGoMemory.
func limitGoMemoryAt(floor int64) (stop func()) {
	prev := debug.SetMemoryLimit(-1)
	if prev <= floor {
		return func() {}
	}
	debug.SetMemoryLimit(floor)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			if sample[0].Value.Kind() != metrics.KindUint64 {
				continue
			}
			debug.SetMemoryLimit(goMemoryLimitAt(sample[0].Value.Uint64(), floor, prev))
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-finished
		debug.SetMemoryLimit(prev)
	})
}

// goMemoryLimit is the limit for a live heap of live bytes: importGoMemory,
// or more to leave goMemoryHeadroom (at least 64 MiB) above live; never above
// ceiling (the limit before the import).
func goMemoryLimit(live uint64, ceiling int64) int64 {
	return goMemoryLimitAt(live, importGoMemory, ceiling)
}

// goMemoryLimitAt is goMemoryLimit with floor in place of importGoMemory.
func goMemoryLimitAt(live uint64, floor, ceiling int64) int64 {
	want := int64(live) + max(int64(float64(live)*goMemoryHeadroom), 64<<20)
	return min(max(want, floor), ceiling)
}

// closeUnderLimit closes c, then puts back Go's memory limit (stop): an
// import's store closes under the limit. Its Close rebuilds the bucket
// filters that grew, folds and writes the bucket index and writes the key
// filter: at 10M records a burst that took the heap from ~290 to 550 MB
// when the limit was put back first (session 26; c's Close runs again, as
// a no-op, where it was deferred before).
func closeUnderLimit(c io.Closer, stop func()) {
	c.Close()
	stop()
}

// loadGoGC is Go's GOGC while a Lake load runs, offline (`import --into`)
// or in a server (StartImport), instead of Go's 100 (issue 15: a 10M
// load's RSS at most 1 GB). A load's live heap is small (26-37 MiB: the
// batch being read and the one being appended; the seen set is outside
// the heap), and GOGC 100 let the heap grow to twice it. 50 since
// session 30 (was 25): at 10M offline, alternated, 50 peaked at 925-942
// MiB within a few percent of 100's CPU (user CPU -3%, +2%, +3% in three
// pairs), whose peaks were 946-953 (1-8 MiB under the 954 line); 25 took
// 13-29% more user CPU than 50 for peaks of 931 and 916, within the
// runs' spread (docs/lake.md, "The GOGC a load sets"). CAIRN_LOAD_GOGC overrides it
// (loadGoGCFromEnv).
const loadGoGC = 50

// loadGoGCEnv is the environment variable that sets the GOGC a load
// runs at in place of loadGoGC: a tuning knob (docs/lake.md). 0 or 100
// (or more) leaves GOGC alone; it is read once, at the first load.
const loadGoGCEnv = "CAIRN_LOAD_GOGC"

// loadGoGCFromEnv is the GOGC loads run at: loadGoGC, or the positive
// whole number in CAIRN_LOAD_GOGC (0 and 100 or more: GOGC left alone,
// returned as 0). Anything else is ignored, with loadGoGC kept.
var loadGoGCFromEnv = sync.OnceValue(func() int {
	return parseLoadGoGC(os.Getenv(loadGoGCEnv))
})

// parseLoadGoGC is the GOGC a load sets for CAIRN_LOAD_GOGC's value v:
// loadGoGC when v is empty or not a whole number at least 0; 0 (leave
// GOGC alone) for 0 and for 100 or more.
func parseLoadGoGC(v string) int {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case v == "" || err != nil || n < 0:
		return loadGoGC
	case n == 0 || n >= 100:
		return 0
	}
	return n
}

// loadGC lowers GOGC while loads run: it counts the loads running (a
// server may run several at once: imports of different accounts) and
// keeps the GOGC there was before the first. GOGC is the process's: one
// loadGC a process (cairn serve's, or an offline import's).
type loadGC struct {
	// gogc is the GOGC a load sets (0: leave it); nil: loadGoGCFromEnv
	gogc    func() int
	mu      sync.Mutex
	n       int
	prev    int
	lowered bool // GOGC set at the first load (not left alone)
}

// lower sets GOGC to loadGoGC (or CAIRN_LOAD_GOGC's) while a load runs;
// what it returns ends the load (once, however often it is called), and the last load to end puts
// back the GOGC there was. A GOGC already at or below loadGoGC, or off,
// stays.
func (g *loadGC) lower() (ended func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == 0 {
		to := loadGoGCFromEnv()
		if g.gogc != nil {
			to = g.gogc()
		}
		g.lowered = to > 0
		if g.lowered {
			g.prev = debug.SetGCPercent(to)
			if g.prev < 0 || g.prev <= to {
				debug.SetGCPercent(g.prev)
			}
		}
	}
	g.n++
	return sync.OnceFunc(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.n--; g.n == 0 && g.lowered {
			debug.SetGCPercent(g.prev)
		}
	})
}

// loadAppendersEnv is the environment variable that sets the batches of a
// Lake load appended at once (lake.LoadAppenders, 2, when unset): a tuning
// knob. 2 read one batch's records while another is in DuckDB (14-19%
// faster at 10M through a server, session 35); 1 appends each batch as it
// is read, in batches twice as large (lake.LoadBatchOf; docs/lake.md, "Two
// Appends, one transaction"); read once.
const loadAppendersEnv = "CAIRN_LOAD_APPENDERS"

// loadAppendersFromEnv is CAIRN_LOAD_APPENDERS's whole number from 1 to 4,
// or 0 (lake.LoadAppenders) when it is unset or anything else.
var loadAppendersFromEnv = sync.OnceValue(func() int {
	return parseLoadAppenders(os.Getenv(loadAppendersEnv))
})

// parseLoadAppenders is the Appends of a load for CAIRN_LOAD_APPENDERS's
// value v: its whole number from 1 to 4, else 0 (lake.LoadAppenders).
func parseLoadAppenders(v string) int {
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 1 && n <= 4 {
		return n
	}
	return 0
}
