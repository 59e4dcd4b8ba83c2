package duckdb

import (
	"context"
	"runtime"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestAllocatorStats: on Linux/amd64 DuckDB allocates through the jemalloc
// linked into this binary, and Allocator reads its counters, consistent
// with one another and moved by a load (issue 15's memlogs).
func TestAllocatorStats(t *testing.T) {
	a0, ok := Allocator()
	if !(runtime.GOOS == "linux" && runtime.GOARCH == "amd64") {
		if ok {
			t.Fatalf("Allocator() = %+v, true; want false where jemalloc is not reached", a0)
		}
		return
	}
	if !ok {
		t.Fatal("Allocator(): no jemalloc counters on linux/amd64")
	}
	d := openTemp(t, Options{})
	var rows []engine.Row
	for _, rr := range audittest.RealRecords(t) {
		rows = append(rows, engine.Row{Store: "s", Raw: rr.Raw})
	}
	if err := d.Insert(context.Background(), rows, 0); err != nil {
		t.Fatal(err)
	}
	a, ok := Allocator()
	if !ok {
		t.Fatal("Allocator() after a load: not ok")
	}
	if a.Allocated <= 0 || a.Active < a.Allocated || a.Resident < a.Active || a.Mapped < a.Active {
		t.Errorf("Allocator() = %+v; want 0 < allocated <= active <= resident, active <= mapped", a)
	}
	// Freed pages kept are bytes, whole pages of jemalloc's (4 KiB here),
	// within what it mapped.
	if a.Dirty < 0 || a.Muzzy < 0 || a.Dirty%4096 != 0 || a.Muzzy%4096 != 0 || a.Dirty+a.Muzzy > a.Mapped {
		t.Errorf("Allocator() = %+v; want dirty and muzzy in whole pages' bytes within mapped", a)
	}
	if a == a0 {
		t.Errorf("Allocator() = %+v before and after a load of %d records; want the counters moved", a, len(rows))
	}
}
