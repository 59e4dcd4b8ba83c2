package ingest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestRunReturnsAfterItsGoroutines: once a cancelled Run returns, every
// goroutine the pipeline started has returned, with callers that left
// their journal group (stand-in leaders) and callers still committing as
// it stops.
func TestRunReturnsAfterItsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	p, err := Open(t.Context(), Config{Store: &fakeStore{}, JournalDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var callers sync.WaitGroup
	for i := range 64 {
		callers.Go(func() {
			cctx, ccancel := context.WithCancel(context.Background())
			if i%2 == 0 {
				ccancel() // leaves its group at once: a stand-in leads it
			}
			p.Commit(cctx, audit.Record{Account: fmt.Sprint(100000000000 + i%4), EventID: fmt.Sprint(i)})
			ccancel()
			if i == 32 {
				cancel() // stop while others still commit
			}
		})
	}
	callers.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// A goroutine that returned may be counted for a moment more.
	for deadline := testwait.End(t); runtime.NumGoroutine() > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Run returned; %d before Open\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}
