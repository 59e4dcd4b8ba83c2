package duckdb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// groupRows returns n rows of store "g" tagged call-i.
func groupRows(call, n int) []engine.Row {
	rows := make([]engine.Row, n)
	for i := range rows {
		rows[i] = engine.Row{Store: "g", Raw: fmt.Appendf(nil, `{"eventID":"c%d-%d","eventName":"Op","eventTime":"2026-12-03T10:00:00Z"}`, call, i)}
	}
	return rows
}

// storedByCall returns how many rows of each call the table holds.
func storedByCall(t *testing.T, d *DB, calls int) []int {
	t.Helper()
	got := make([]int, calls)
	for c := range calls {
		if err := d.SQL().QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g' AND "eventJson" LIKE ?`, fmt.Sprintf(`%%"c%d-%%`, c)).Scan(&got[c]); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// TestInsertGroupCommit: Insert calls made while another commits share
// one transaction, and every call's answer matches what is stored: a call
// answered nil has all its rows stored, one answered an error none of
// them, whatever the other members of its group did. The writer is held
// so that the first call leads a commit of its own and the others all
// join the next group. A member whose context ended does not fail the
// others (variants: the first call's context ended, a group member's,
// none; a lone call's).
func TestInsertGroupCommit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		calls    int
		canceled int // index of the call whose context has ended (-1: none)
	}{
		{"none canceled", 8, -1},
		{"first canceled", 8, 0},
		{"member canceled", 8, 5},
		{"alone canceled", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openTemp(t, Options{NoJournal: true})
			// Hold the writer: the first call leads and waits for
			// it, the others join the next group.
			d.wmu.Lock()
			before := d.inserts.Load()
			errs := make([]error, tc.calls)
			var wg sync.WaitGroup
			for c := range tc.calls {
				ctx, cancel := context.WithCancel(context.Background())
				if c == tc.canceled {
					cancel()
				} else {
					defer cancel()
				}
				wg.Go(func() { errs[c] = d.Insert(ctx, groupRows(c, 10), 0) })
				// Joined in order: the first leads (busy, its
				// group taken), the others join the pending one.
				for deadline := testwait.End(t); ; {
					d.direct.mu.Lock()
					n := 0
					if d.direct.pending != nil {
						n = len(d.direct.pending.parts)
					}
					joined := d.direct.busy && n == c
					d.direct.mu.Unlock()
					if joined {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("call %d did not join the group", c)
					}
					time.Sleep(time.Millisecond)
				}
			}
			d.wmu.Unlock()
			wg.Wait()
			if got, want := d.inserts.Load()-before, int64(min(tc.calls, 2)); got != want {
				t.Errorf("%d calls took %d transactions; want %d", tc.calls, got, want)
			}
			stored := storedByCall(t, d, tc.calls)
			for c, err := range errs {
				if c != tc.canceled && err != nil {
					t.Errorf("call %d (context live): %v", c, err)
				}
				if want := map[bool]int{true: 10, false: 0}[err == nil]; stored[c] != want {
					t.Errorf("call %d answered %v with %d of its 10 rows stored; want %d", c, err, stored[c], want)
				}
			}
		})
	}
}

// TestInsertGroupCommitConcurrent: callers on many goroutines, some with
// ended contexts, and a feed-position writer among them: every row
// acknowledged is stored, none refused is, and fewer transactions than
// calls ran; with the journal and without.
func TestInsertGroupCommitConcurrent(t *testing.T) {
	for _, noJournal := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoJournal=%v", noJournal), func(t *testing.T) { testInsertGroupCommitConcurrent(t, noJournal) })
	}
}

func testInsertGroupCommitConcurrent(t *testing.T, noJournal bool) {
	d := openTemp(t, Options{NoJournal: noJournal})
	const workers, perWorker = 6, 15
	calls := workers * perWorker
	errs := make([]error, calls)
	before := d.inserts.Load()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				c := w*perWorker + i
				ctx, cancel := context.WithCancel(context.Background())
				if c%7 == 3 {
					cancel()
				}
				errs[c] = d.Insert(ctx, groupRows(c, 5), 0)
				cancel()
			}
		})
	}
	wg.Go(func() {
		for pos := int64(1); pos <= 10; pos++ {
			if err := d.Insert(context.Background(), []engine.Row{{Store: "feed", Raw: []byte(`{"eventName":"Feed"}`)}}, pos); err != nil {
				t.Errorf("insert at feed position %d: %v", pos, err)
			}
		}
	})
	wg.Wait()
	stored := storedByCall(t, d, calls)
	for c, err := range errs {
		if c%7 != 3 && err != nil {
			t.Errorf("call %d (context live): %v", c, err)
		}
		if want := map[bool]int{true: 5, false: 0}[err == nil]; stored[c] != want {
			t.Errorf("call %d answered %v with %d of its 5 rows stored; want %d", c, err, stored[c], want)
		}
	}
	if pos, err := d.Position(context.Background()); err != nil || pos != 10 {
		t.Errorf("feed position %d (%v); want 10", pos, err)
	}
	t.Logf("%d calls, %d transactions", calls+10, d.inserts.Load()-before)
}
