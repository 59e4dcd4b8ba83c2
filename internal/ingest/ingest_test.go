package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// fakeStore records the batches it is given. Appends block while gate is
// non-nil and open, and fail while failures > 0.
type fakeStore struct {
	mu       sync.Mutex
	batches  [][]audit.Record
	failures int
	gate     chan struct{}
}

func (f *fakeStore) Append(ctx context.Context, rs []audit.Record) (audit.AppendResult, error) {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return audit.AppendResult{}, errors.New("disk on fire")
	}
	f.batches = append(f.batches, append([]audit.Record(nil), rs...))
	return audit.AppendResult{Inserted: len(rs)}, nil
}

func (f *fakeStore) count() (batches, records int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		records += len(b)
	}
	return len(f.batches), records
}

func recs(n int) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = audit.Record{Account: "111111111111", EventID: fmt.Sprint(i)}
	}
	return out
}

func TestSubmitIsAcknowledgedAfterTheWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(Config{Store: st, MaxDelay: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()

		res, err := p.Submit(t.Context(), recs(3)...)
		if err != nil {
			t.Fatalf("Submit = %v", err)
		}
		if res.Inserted != 3 {
			t.Errorf("Inserted = %d; want 3", res.Inserted)
		}
		if b, r := st.count(); b != 1 || r != 3 {
			t.Errorf("store has %d batches, %d records; want 1, 3", b, r)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestQueuedRecordsFlushOnSizeAndDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(Config{Store: st, MaxBatch: 10, MaxDelay: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)

		for range 5 {
			if err := p.Enqueue(t.Context(), recs(2)...); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // 5×2 = MaxBatch: flushed on size, before the deadline
		if b, r := st.count(); b != 1 || r != 10 {
			t.Errorf("after the size flush: %d batches, %d records; want 1, 10", b, r)
		}
		p.Enqueue(t.Context(), recs(1)...)
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		if _, r := st.count(); r != 10 {
			t.Errorf("a lone record was written after %d records; want it to wait for the deadline", r)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if _, r := st.count(); r != 11 {
			t.Errorf("after the deadline %d records; want 11", r)
		}
	})
}

func TestSubmitCountsAreExactBesideQueuedRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &dupStore{}
		p := New(Config{Store: st, MaxDelay: time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		p.Enqueue(t.Context(), recs(1)...)
		res, err := p.Submit(t.Context(), audit.Record{EventID: "dup"})
		if err != nil || res.Duplicates != 1 || res.Inserted != 0 {
			t.Errorf("Submit of a duplicate = %+v, %v; want 1 duplicate", res, err)
		}
	})
}

// dupStore reports every record with EventID "dup" as a duplicate.
type dupStore struct{}

func (dupStore) Append(_ context.Context, rs []audit.Record) (audit.AppendResult, error) {
	var res audit.AppendResult
	for _, r := range rs {
		if r.EventID == "dup" {
			res.Duplicates++
		} else {
			res.Inserted++
		}
	}
	return res, nil
}

func TestFullQueuePushesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{gate: make(chan struct{})}
		p := New(Config{Store: st, MaxBatch: 1, QueueSize: 2})
		ctx, cancel := context.WithCancel(t.Context())
		go p.Run(ctx)

		for range 3 { // one taken by the blocked writer, two queued
			go p.Submit(t.Context(), recs(1)...)
		}
		synctest.Wait()
		short, stop := context.WithTimeout(t.Context(), time.Second)
		defer stop()
		if _, err := p.Submit(short, recs(1)...); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Submit on a full queue = %v; want it to block until the deadline", err)
		}
		close(st.gate)
		synctest.Wait()
		if _, r := st.count(); r != 3 {
			t.Errorf("store has %d records; want the 3 queued ones, none dropped", r)
		}
		cancel()
	})
}

func TestRetriesThenFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{failures: 2}
		p := New(Config{Store: st, MaxAttempts: 3})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		if _, err := p.Submit(t.Context(), recs(1)...); err != nil {
			t.Errorf("Submit after 2 transient failures = %v; want success on the 3rd attempt", err)
		}
		st.mu.Lock()
		st.failures = 3
		st.mu.Unlock()
		if _, err := p.Submit(t.Context(), recs(1)...); err == nil {
			t.Error("Submit with the store failing every attempt = nil; want the error")
		}
	})
}

func TestShutdownDrainsAndRefuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{gate: make(chan struct{})}
		p := New(Config{Store: st, MaxBatch: 1})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		errs := make(chan error, 4)
		for range 4 {
			go func() { _, err := p.Submit(t.Context(), recs(1)...); errs <- err }()
		}
		synctest.Wait()
		cancel()
		close(st.gate)
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Errorf("queued Submit = %v; want it written during the drain", err)
			}
		}
		if _, r := st.count(); r != 4 {
			t.Errorf("store has %d records; want 4", r)
		}
		if _, err := p.Submit(t.Context(), recs(1)...); !errors.Is(err, ErrClosed) {
			t.Errorf("Submit after stop = %v; want ErrClosed", err)
		}
	})
}

func TestCommitWritesWithoutWaitingForTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p := New(Config{Store: st, MaxDelay: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		start := time.Now()
		if err := p.Commit(t.Context(), recs(2)...); err != nil {
			t.Fatalf("Commit = %v", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Commit took %v of (fake) time; want the write at once, not after MaxDelay", d)
		}
		if b, r := st.count(); b != 1 || r != 2 {
			t.Errorf("store has %d batches, %d records; want 1, 2", b, r)
		}
	})
}

func TestConcurrentCommitsShareOneAppend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{gate: make(chan struct{})}
		p := New(Config{Store: st, MaxDelay: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go p.Run(ctx)
		errs := make(chan error, 6)
		go func() { errs <- p.Commit(t.Context(), recs(1)...) }()
		synctest.Wait() // the writer is blocked in the first append
		for range 5 {
			go func() { errs <- p.Commit(t.Context(), recs(1)...) }()
		}
		if err := p.Enqueue(t.Context(), recs(1)...); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if b, _ := st.count(); b != 0 {
			t.Fatalf("%d batches written while the store is blocked", b)
		}
		close(st.gate)
		for range 6 {
			if err := <-errs; err != nil {
				t.Errorf("Commit = %v", err)
			}
		}
		synctest.Wait()
		st.mu.Lock()
		sizes := []int{}
		for _, b := range st.batches {
			sizes = append(sizes, len(b))
		}
		st.mu.Unlock()
		if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 6 {
			t.Errorf("batch sizes %v; want [1 6]: the first commit alone, then the 5 waiting and the queued record in one append", sizes)
		}
	})
}

func TestCommitAfterStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(Config{Store: &fakeStore{}})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		cancel()
		<-done
		if err := p.Commit(t.Context(), recs(1)...); !errors.Is(err, ErrClosed) {
			t.Errorf("Commit after stop = %v; want ErrClosed", err)
		}
	})
}
