package ingest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// waitFor polls cond (the writer runs on real time and real files here:
// no synctest), failing after a generous deadline. It asserts no timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := testwait.End(t); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func segments(t *testing.T, dir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m)
}

func openJournaled(t *testing.T, cfg Config) (*Pipeline, context.CancelFunc, chan error) {
	t.Helper()
	p, err := Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return p, cancel, done
}

// With a journal, Commit returns once the records are journaled, while
// the store still holds none of them; the writer then stores them and the
// journal's segments go.
func TestJournaledCommitDoesNotWaitForTheStore(t *testing.T) {
	dir := t.TempDir()
	st := &fakeStore{gate: make(chan struct{})}
	p, cancel, done := openJournaled(t, Config{Store: st, JournalDir: dir})
	for i := range 5 {
		if err := p.Commit(t.Context(), recs(3)[i%3]); err != nil {
			t.Fatal(err)
		}
	}
	if _, n := st.count(); n != 0 {
		t.Fatalf("%d records stored while the store was shut", n)
	}
	if segments(t, dir) != 1 {
		t.Fatalf("%d journal segments; want 1 holding the records", segments(t, dir))
	}
	close(st.gate)
	waitFor(t, "the records to be stored", func() bool { _, n := st.count(); return n == 5 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil // for the cleanup
	if n := segments(t, dir); n != 0 {
		t.Errorf("%d journal segments after every record was stored; want 0", n)
	}
}

// Records journaled but never taken by the store (it fails until cairn
// stops) stay in the journal, and the next Open stores them before it
// returns.
func TestJournaledRecordsAreReplayedAtOpen(t *testing.T) {
	dir := t.TempDir()
	bad := &fakeStore{failures: 1 << 30}
	p, cancel, done := openJournaled(t, Config{Store: bad, JournalDir: dir, MaxAttempts: 2})
	want := recs(10)
	for i := range want {
		if err := p.Commit(t.Context(), want[i]); err != nil {
			t.Fatal(err)
		}
	}
	cancel() // Run gives up on the store: the records stay journaled
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if segments(t, dir) == 0 {
		t.Fatal("no journal segment left although the store took nothing")
	}
	good := &fakeStore{}
	if _, err := Open(t.Context(), Config{Store: good, JournalDir: dir}); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, b := range good.batches {
		for _, r := range b {
			got[r.EventID] = true
		}
	}
	for _, r := range want {
		if !got[r.EventID] {
			t.Errorf("record %s not replayed", r.EventID)
		}
	}
	if n := segments(t, dir); n != 0 {
		t.Errorf("%d journal segments after the replay; want 0", n)
	}
	// A store that refuses the replay fails Open: nothing is skipped.
	bad = &fakeStore{failures: 1 << 30}
	p2, cancel2, done2 := openJournaled(t, Config{Store: bad, JournalDir: dir, MaxAttempts: 1})
	if err := p2.Commit(t.Context(), want[0]); err != nil {
		t.Fatal(err)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatal(err)
	}
	done2 <- nil
	if _, err := Open(t.Context(), Config{Store: bad, JournalDir: dir, MaxAttempts: 1}); err == nil {
		t.Error("Open succeeded although the store refused the journal's records")
	}
}

// A store that stalls fills the queue behind the journal, and then
// Commit blocks (backpressure); once the store moves, every commit returns
// and every record is stored.
func TestJournalPushesBackWhenTheStoreStalls(t *testing.T) {
	dir := t.TempDir()
	st := &fakeStore{gate: make(chan struct{})}
	var once sync.Once
	open := func() { once.Do(func() { close(st.gate) }) }
	t.Cleanup(open)
	p, _, _ := openJournaled(t, Config{Store: st, JournalDir: dir, QueueSize: 1, MaxBatch: 1})
	commit := func(i int) error {
		return p.Commit(context.Background(), audit.Record{Account: "111111111111", EventID: fmt.Sprint(i)})
	}
	// The first record goes to the store, which holds it; the second
	// waits in the queue. Both are acknowledged: they are journaled.
	if err := commit(0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer to take the first record", func() bool { return p.queue.len() == 0 })
	if err := commit(1); err != nil {
		t.Fatal(err)
	}
	// The queue is full: the next commits are journaled but wait to be
	// queued, unacknowledged.
	const calls = 12
	var (
		acked atomic.Int64
		wg    sync.WaitGroup
	)
	for i := 2; i < calls; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := commit(i); err != nil {
				t.Error(err)
			}
			acked.Add(1)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if n := acked.Load(); n != 0 {
		t.Fatalf("%d commits acknowledged with the queue full and the store stalled; want 0", n)
	}
	open()
	wg.Wait()
	waitFor(t, "every record stored", func() bool { _, n := st.count(); return n == calls })
}

// Concurrent commits share journal fsyncs (group commit): fewer fsyncs
// than commits when they queue up behind a write.
func TestJournalGroupCommit(t *testing.T) {
	dir := t.TempDir()
	st := &fakeStore{}
	p, _, _ := openJournaled(t, Config{Store: st, JournalDir: dir})
	var wg sync.WaitGroup
	const calls = 200
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Commit(context.Background(), audit.Record{Account: "111111111111", EventID: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var m dto.Metric
	if err := p.jSyncs.Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n >= calls || n == 0 {
		t.Errorf("%v fsyncs for %d concurrent commits; want fewer (shared)", n, calls)
	}
	waitFor(t, "every record stored", func() bool { _, n := st.count(); return n == calls })
}

// Once the pipeline has stopped, Commit is refused, and a caller whose
// context ends while its group waits gets the context's error (the group
// is written all the same).
func TestJournaledCommitAfterStopAndCancel(t *testing.T) {
	dir := t.TempDir()
	st := &fakeStore{gate: make(chan struct{})}
	var once sync.Once
	open := func() { once.Do(func() { close(st.gate) }) }
	t.Cleanup(open)
	p, cancel, done := openJournaled(t, Config{Store: st, JournalDir: dir, QueueSize: 1, MaxBatch: 1})
	commit := func(ctx context.Context, i int) error {
		return p.Commit(ctx, audit.Record{Account: "111111111111", EventID: fmt.Sprint(i)})
	}
	// Store busy with 0, queue full with 1: 2 is journaled and waits to
	// be queued, and so does 3 (written by the same or the next group),
	// until its context ends.
	if err := commit(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the writer to take the first record", func() bool { return p.queue.len() == 0 })
	if err := commit(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	go commit(context.Background(), 2)
	ctx, stop := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- commit(ctx, 3) }()
	stop()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Commit with a cancelled context = %v; want context.Canceled", err)
	}
	open()
	waitFor(t, "every record stored", func() bool { _, n := st.count(); return n == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if err := commit(t.Context(), 4); err != ErrClosed {
		t.Errorf("Commit after stop = %v; want ErrClosed", err)
	}
	if n := segments(t, dir); n != 0 {
		t.Errorf("%d journal segments after every record was stored and Run ended; want 0", n)
	}
}
