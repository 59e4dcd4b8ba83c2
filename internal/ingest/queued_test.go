package ingest

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cairn-audit/cairn/internal/audit"
)

// queuedRec is the record of a read call i (Enqueue).
func queuedRec(i int) audit.Record {
	return audit.Record{Account: "111111111111", EventID: fmt.Sprintf("read-%d", i)}
}

// With a journal, the records of read calls (Enqueue) are journaled at
// MaxDelay, all those queued in one write, and stored at QueuedDelay:
// read calls arriving every 10 ms for 400 ms cost one store append, not
// one every MaxDelay, and none is stored before it is journaled.
func TestQueuedRecordsAreJournaledThenStoredTogether(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		dir := t.TempDir()
		p, err := Open(t.Context(), Config{Store: st, JournalDir: dir, MaxDelay: 50 * time.Millisecond, QueuedDelay: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		for i := range 40 {
			if err := p.Enqueue(t.Context(), queuedRec(i)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			if i == 9 { // 100 ms: the first records are journaled, none stored
				if _, n := st.count(); n != 0 {
					t.Errorf("%d records stored after 100 ms; want them journaled, not stored", n)
				}
				if got := counter(t, p.jSyncs); got < 1 {
					t.Errorf("%v journal writes after 100 ms; want the queued records journaled", got)
				}
				if got := p.journal.Pending(); got == 0 {
					t.Error("no journal record pending after 100 ms; want the queued records journaled")
				}
			}
		}
		// 400 ms: the first records' QueuedDelay (50 + 500 ms) has not
		// passed.
		if _, n := st.count(); n != 0 {
			t.Errorf("%d records stored after 400 ms; want none before the journal deadline", n)
		}
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		if b, n := st.count(); b != 1 || n != 40 {
			t.Errorf("after the journal deadline: %d appends of %d records; want 1 of 40", b, n)
		}
		if got := p.journal.Pending(); got != 0 {
			t.Errorf("%d journaled records pending once stored; want 0", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// With the default delays, a read call's record is in the store within a
// second of its call (LookupEvents finds it: issue 19's promise).
func TestQueuedRecordIsStoredWithinASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeStore{}
		p, err := Open(t.Context(), Config{Store: st, JournalDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		if err := p.Enqueue(t.Context(), queuedRec(1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if _, n := st.count(); n != 1 {
			t.Errorf("%d records stored a second after the call; want 1", n)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// The queued records journaled and not stored (the store fails until
// cairn stops) are stored by the next Open: once journaled, a crash or a
// failing store no longer loses them.
func TestQueuedRecordsJournaledAreReplayed(t *testing.T) {
	dir := t.TempDir()
	bad := &fakeStore{failures: 1 << 30}
	p, cancel, done := openJournaled(t, Config{Store: bad, JournalDir: dir, MaxAttempts: 2, MaxDelay: time.Millisecond, QueuedDelay: time.Hour})
	for i := range 10 {
		if err := p.Enqueue(t.Context(), queuedRec(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the queued records journaled", func() bool { return p.journal.Pending() == 10 })
	cancel() // the drain's append fails: they stay journaled
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	good := &fakeStore{}
	if _, err := Open(t.Context(), Config{Store: good, JournalDir: dir}); err != nil {
		t.Fatal(err)
	}
	if _, n := good.count(); n != 10 {
		t.Errorf("%d of the 10 journaled queued records replayed", n)
	}
}

// A key queued by Enqueue counts as journaled (durable) in flight once
// the writer journaled it: a Submit of the same record is a duplicate and
// is not journaled again.
func TestQueuedRecordJournaledIsADurableDuplicate(t *testing.T) {
	st := newKeyedStore()
	st.gate = make(chan struct{})
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir(), MaxDelay: time.Millisecond, QueuedDelay: 50 * time.Millisecond})
	rs := acctRecs("111111111111", 0, 3)
	if err := p.Enqueue(t.Context(), rs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queued records journaled", func() bool { return p.journal.Pending() == 3 })
	syncs := counter(t, p.jSyncs)
	res, err := p.Submit(t.Context(), rs...)
	wantCounts(t, "records queued and journaled", res, err, 0, 3)
	if got := counter(t, p.jSyncs) - syncs; got != 0 {
		t.Errorf("%v journal writes for records journaled already; want 0", got)
	}
	p.fmu.Lock()
	for _, r := range rs {
		if c := p.flight[flightKey{r.Account, r.EventID}]; c.n != 1 || c.durable != 1 {
			t.Errorf("record %s in flight %+v; want 1 copy, durable", r.EventID, c)
		}
	}
	p.fmu.Unlock()
	close(st.gate)
	waitFor(t, "the records stored", func() bool { return st.Len() == 3 })
	waitFor(t, "the keys out of flight", func() bool {
		p.fmu.Lock()
		defer p.fmu.Unlock()
		return len(p.flight) == 0
	})
}

// counter is c's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
