package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestGoMemoryLimit: the import's soft limit is importGoMemory while the
// live heap leaves it room, follows the live heap up beyond that, and
// never passes the limit set before the import.
func TestGoMemoryLimit(t *testing.T) {
	for _, c := range []struct {
		live    uint64
		ceiling int64
		want    int64
	}{
		{0, math.MaxInt64, importGoMemory},
		{200 << 20, math.MaxInt64, importGoMemory},
		{300 << 20, math.MaxInt64, importGoMemory},
		{320 << 20, math.MaxInt64, 400 << 20},
		{400 << 20, math.MaxInt64, 500 << 20},
		{1 << 30, math.MaxInt64, 5 << 28},
		{1 << 30, 1 << 30, 1 << 30},
	} {
		if got := goMemoryLimit(c.live, c.ceiling); got != c.want {
			t.Errorf("goMemoryLimit(%d MiB, %d) = %d MiB; want %d MiB", c.live>>20, c.ceiling, got>>20, c.want>>20)
		}
	}
}

// TestLimitGoMemory: the limit is set for the import and put back after;
// a lower one set before (GOMEMLIMIT) is left alone.
func TestLimitGoMemory(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)

	debug.SetMemoryLimit(math.MaxInt64)
	stop := limitGoMemory()
	if got := debug.SetMemoryLimit(-1); got != importGoMemory {
		t.Errorf("during the import the limit is %d; want %d", got, int64(importGoMemory))
	}
	stop()
	stop() // a second call changes nothing
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("after the import the limit is %d; want it back at %d", got, int64(math.MaxInt64))
	}

	debug.SetMemoryLimit(300 << 20)
	stop = limitGoMemory()
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("a lower limit set before: %d during the import; want %d", got, 300<<20)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Errorf("a lower limit set before: %d after the import; want %d", got, 300<<20)
	}
}

// limitCloser records Go's memory limit when it is closed.
type limitCloser struct{ at int64 }

func (c *limitCloser) Close() error {
	c.at = debug.SetMemoryLimit(-1)
	return nil
}

// TestCloseUnderLimit: an import's store is closed while the import's
// limit holds, and the limit before it is back after.
func TestCloseUnderLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)

	debug.SetMemoryLimit(math.MaxInt64)
	c := &limitCloser{}
	closeUnderLimit(c, limitGoMemory())
	if c.at != importGoMemory {
		t.Errorf("the store closed under a limit of %d; want %d", c.at, int64(importGoMemory))
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("after the import the limit is %d; want it back at %d", got, int64(math.MaxInt64))
	}
}

// TestLoadGC: GOGC is loadGoGC while loads run, however they overlap,
// and back to what it was once the last ended; a lower GOGC, or none
// (off), is left alone.
func TestLoadGC(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	gogc := func() int {
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		return p
	}
	g := loadGC{gogc: func() int { return loadGoGC }}
	a := g.lower()
	b := g.lower()
	if got := gogc(); got != loadGoGC {
		t.Fatalf("during two loads GOGC is %d; want %d", got, loadGoGC)
	}
	a()
	a() // a second call changes nothing
	if got := gogc(); got != loadGoGC {
		t.Errorf("with one load still running GOGC is %d; want %d", got, loadGoGC)
	}
	b()
	if got := gogc(); got != 100 {
		t.Errorf("after the loads GOGC is %d; want it back at 100", got)
	}
	for _, set := range []int{loadGoGC / 2, -1} {
		debug.SetGCPercent(set)
		end := g.lower()
		if got := gogc(); got != set {
			t.Errorf("GOGC %d set before: %d during a load; want it left", set, got)
		}
		end()
		if got := gogc(); got != set {
			t.Errorf("GOGC %d set before: %d after a load; want it left", set, got)
		}
	}
}

// TestLoadGCLeftAlone: a load whose GOGC is 0 (CAIRN_LOAD_GOGC 0 or 100)
// leaves GOGC as it was, during the load and after it.
func TestLoadGCLeftAlone(t *testing.T) {
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	g := loadGC{gogc: func() int { return 0 }}
	for _, set := range []int{100, 30, -1} {
		debug.SetGCPercent(set)
		end := g.lower()
		if got := debug.SetGCPercent(set); got != set {
			t.Errorf("GOGC %d set before: %d during a load; want it left", set, got)
		}
		end()
		if got := debug.SetGCPercent(set); got != set {
			t.Errorf("GOGC %d set before: %d after a load; want it left", set, got)
		}
	}
}

// TestLoadAppendersSetting: CAIRN_LOAD_APPENDERS's values and the Appends
// a load takes for each (0: lake.LoadAppenders).
func TestLoadAppendersSetting(t *testing.T) {
	for v, want := range map[string]int{
		"": 0, "1": 1, "2": 2, " 2 ": 2, "4": 4,
		"0": 0, "5": 0, "-1": 0, "two": 0, "2.5": 0,
	} {
		if got := parseLoadAppenders(v); got != want {
			t.Errorf("CAIRN_LOAD_APPENDERS=%q: %d; want %d", v, got, want)
		}
	}
}

// TestLoadGCSetting: CAIRN_LOAD_GOGC's values and the GOGC a load sets
// for each; a load at 50 sets 50 and puts back what there was.
func TestLoadGCSetting(t *testing.T) {
	for v, want := range map[string]int{
		"": loadGoGC, "25": 25, " 50 ": 50, "1": 1, "99": 99,
		"0": 0, "100": 0, "400": 0,
		"-1": loadGoGC, "off": loadGoGC, "50%": loadGoGC,
	} {
		if got := parseLoadGoGC(v); got != want {
			t.Errorf("CAIRN_LOAD_GOGC=%q: %d; want %d", v, got, want)
		}
	}
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	g := loadGC{gogc: func() int { return parseLoadGoGC("50") }}
	end := g.lower()
	if got := debug.SetGCPercent(50); got != 50 {
		t.Errorf("during a load at CAIRN_LOAD_GOGC=50 GOGC is %d; want 50", got)
	}
	end()
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("after the load GOGC is %d; want it back at 100", got)
	}
}

// TestGoMemoryLimitAt: a server's floor (serveGoMemory) holds while the
// live heap leaves it room, then the limit follows the live heap at 1.25x
// as the import's does.
func TestGoMemoryLimitAt(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int64
	}{
		{0, serveGoMemory},
		{300 << 20, serveGoMemory},
		{400 << 20, serveGoMemory},
		{440 << 20, 550 << 20},
		{1 << 30, 5 << 28},
	} {
		if got := goMemoryLimitAt(c.live, serveGoMemory, math.MaxInt64); got != c.want {
			t.Errorf("goMemoryLimitAt(%d MiB, %d MiB) = %d MiB; want %d MiB", c.live>>20, serveGoMemory>>20, got>>20, c.want>>20)
		}
	}
	if got := goMemoryLimitAt(440<<20, serveGoMemory, 500<<20); got != 500<<20 {
		t.Errorf("goMemoryLimitAt under a ceiling of 500 MiB = %d MiB; want 500", got>>20)
	}
}
