package ingest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// failingStages is a DuckDB store appending in stages whose every fifth
// stage fails when fail: its commit runs with a cancelled context, so the
// store's transaction never begins, and the stage reserved after it fails
// too. It counts the stages of checked batches (StageChecked).
type failingStages struct {
	*duckdb.Store
	fail    bool
	n       atomic.Int64
	failed  atomic.Int64 // stages made to fail
	errs    atomic.Int64 // stages that failed
	checked atomic.Int64 // stages of checked batches
}

func (f *failingStages) StageEach(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	return f.stage(f.Store.StageEach(records))
}

func (f *failingStages) StageChecked(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	f.checked.Add(1)
	return f.stage(f.Store.StageChecked(records))
}

func (f *failingStages) stage(reserve func(ctx context.Context) (func(context.Context) ([]bool, error), error)) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	return func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
		commit, err := reserve(ctx)
		if err != nil {
			f.errs.Add(1)
			return nil, err
		}
		fail := f.fail && f.n.Add(1)%5 == 0
		return func(ctx context.Context) ([]bool, error) {
			if fail {
				f.failed.Add(1)
				cancelled, cancel := context.WithCancel(ctx)
				cancel()
				ctx = cancelled
			}
			ins, err := commit(ctx)
			if err != nil {
				f.errs.Add(1)
			}
			return ins, err
		}, nil
	}
}

// openStaged opens a journaled pipeline over a DuckDB store appending in
// stages (as `cairn serve` runs it), whose every fifth stage fails when
// fail (fs counts them, and the checked batches' stages).
func openStaged(t *testing.T, fail bool) (*duckdb.Store, *failingStages, *Pipeline, context.CancelFunc, chan error) {
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{StagedAppends: true, CheckpointCommits: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs := &failingStages{Store: st, fail: fail}
	p, cancel, done := openJournaled(t, Config{Store: fs, Keys: st, JournalDir: t.TempDir(), JournalBatch: 150, JournalDelay: 1})
	return st, fs, p, cancel, done
}

// stopStaged waits for the journal's records to be stored and stops the
// pipeline of openStaged, failing if no stage failed when fail.
func stopStaged(t *testing.T, p *Pipeline, fs *failingStages, fail bool, cancel context.CancelFunc, done chan error) {
	waitFor(t, "the journal's records to be stored", func() bool { return p.journal.Pending() == 0 })
	cancel()
	err := <-done
	done <- err // for openJournaled's cleanup
	if err != nil {
		t.Fatal(err)
	}
	if fail && fs.failed.Load() == 0 {
		t.Fatal("no stage failed: the test does not cover the retry")
	}
}

// sharingRecords is caller c's i-th call of callsShareRecords (run: what
// sets the records of a run of calls apart).
func sharingRecords(run string, c, i int) []audit.Record {
	var rs []audit.Record
	for j := range 20 {
		rs = append(rs, crashRecord(fmt.Sprintf("shared-%s-%d-%d", run, i, j)))
	}
	for j := range 10 {
		rs = append(rs, crashRecord(fmt.Sprintf("own-%s-%d-%d-%d", run, c, i, j)))
	}
	return rs
}

// A journaled pipeline over a DuckDB store appending in stages (as `cairn
// serve` runs it): concurrent Submit calls with overlapping records count
// each record inserted exactly once, every record is stored once with
// dense sequence numbers, and the batches whose stage failed (and those
// reserved after them) are appended again, in order.
func TestStagedWriterStoresEachRecordOnce(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", fail), func(t *testing.T) {
			st, fs, p, cancel, done := openStaged(t, fail)
			if p.staging == nil {
				t.Fatal("the pipeline does not stage its batches")
			}
			const callers, calls = 6, 25
			unique := callsShareRecords(t, callers, calls, func(c, i int) (audit.AppendResult, bool) {
				res, err := p.Submit(context.Background(), sharingRecords("", c, i)...)
				if err != nil {
					t.Errorf("Submit = %v", err)
				}
				return res, err == nil
			})
			stopStaged(t, p, fs, fail, cancel, done)
			// A failed stage fails the one reserved after it, no more:
			// once both are appended again, stages commit again.
			if e, f := fs.errs.Load(), fs.failed.Load(); e > 2*f {
				t.Errorf("%d stages failed for %d made to fail", e, f)
			}
			n, err := st.LastSeq(context.Background())
			if err != nil || n != int64(unique) {
				t.Fatalf("LastSeq = %d, %v; want %d (numbers given to failed stages reused)", n, err, unique)
			}
			got, err := st.ReadAppended(context.Background(), 0, 2*unique)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for i, a := range got {
				if a.Seq != int64(i+1) {
					t.Fatalf("record %d has sequence number %d", i, a.Seq)
				}
				if seen[a.Record.EventID] {
					t.Fatalf("%s stored twice", a.Record.EventID)
				}
				seen[a.Record.EventID] = true
			}
			if len(got) != unique {
				t.Fatalf("%d records stored; want %d", len(got), unique)
			}
		})
	}
}

// SubmitStoredEach over a DuckDB store appending in stages (an
// ImportRecords call of a file, as `cairn serve` runs it): concurrent
// calls sharing records are each answered once the store holds every
// one of their records and their own record (none of them journaled);
// then the same beside journaled Submit calls sharing records with them
// (a call of either kind in a group makes it journaled: durable, not
// stored, when answered). In both, each record is counted inserted
// exactly once over all the calls and stored once, with stages made to
// fail or not (a failed stage's batch is appended again before its
// callers are answered).
func TestStoredSubmitsCountEachRecordOnce(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("failing=%v", fail), func(t *testing.T) {
			st, fs, p, cancel, done := openStaged(t, fail)
			const callers, calls = 6, 25
			var selfs atomic.Int64
			for _, mixed := range []bool{false, true} {
				callsShareRecords(t, callers, calls, func(c, i int) (audit.AppendResult, bool) {
					rs := sharingRecords(fmt.Sprint(mixed), c, i)
					if mixed && c%2 == 1 { // journaled
						res, err := p.Submit(context.Background(), rs...)
						if err != nil {
							t.Errorf("Submit = %v", err)
						}
						return res, err == nil
					}
					own := crashRecord(fmt.Sprintf("self-%v-%d-%d", mixed, c, i))
					self := func(audit.AppendResult) (audit.Record, error) { return own, nil }
					dup, recorded, ok, err := p.SubmitStoredEach(context.Background(), rs, self)
					if err != nil || !ok || !recorded || len(dup) != len(rs) {
						t.Errorf("SubmitStoredEach = %d flags, recorded %v, ok %v, %v; want %d flags, recorded", len(dup), recorded, ok, err, len(rs))
						return audit.AppendResult{}, false
					}
					selfs.Add(1)
					held, err := st.StoredKeys(context.Background(), append(slices.Clone(rs), own))
					if err != nil {
						t.Error(err)
						return audit.AppendResult{}, false
					}
					for k, ok := range held {
						if !ok && !mixed {
							t.Errorf("caller %d call %d: record %d not in the store once answered", c, i, k)
							return audit.AppendResult{}, false
						}
					}
					return counts(dup), true
				})
			}
			stopStaged(t, p, fs, fail, cancel, done)
			want := 2*calls*(20+callers*10) + int(selfs.Load())
			got, err := st.ReadAppended(context.Background(), 0, 2*want)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, a := range got {
				if seen[a.Record.EventID] {
					t.Fatalf("%s stored twice", a.Record.EventID)
				}
				seen[a.Record.EventID] = true
			}
			if len(got) != want {
				t.Fatalf("%d records stored; want %d (%d calls' own)", len(got), want, selfs.Load())
			}
		})
	}
}

// classify holds a new key from the moment it finds it not in flight: a
// record of that key queued (Enqueue) while the checked records are in
// flight finds it there, and a batch of theirs is then no longer staged
// checked (the queued copy may be staged first, and the store's own check
// must see it). Within one call a later copy of a key is a duplicate, and a
// stored key leaves the flight set.
func TestClassifyHoldsAndContests(t *testing.T) {
	st, fs, p, cancel, done := openStaged(t, false)
	defer func() {
		cancel()
		done <- <-done
	}()
	// A call's records new to the store and in no other call skip the
	// store's own check (StageChecked), and are stored.
	lone := []audit.Record{crashRecord("lone-1"), crashRecord("lone-2")}
	own := crashRecord("lone-self")
	dupOf, recorded, ok, err := p.SubmitStoredEach(context.Background(), lone, func(audit.AppendResult) (audit.Record, error) { return own, nil })
	if err != nil || !ok || !recorded || slices.Contains(dupOf, true) {
		t.Fatalf("SubmitStoredEach = %v, recorded %v, ok %v, %v; want two new records, recorded", dupOf, recorded, ok, err)
	}
	if fs.checked.Load() == 0 {
		t.Fatal("a lone call's batch was not staged checked")
	}
	if held, err := st.StoredKeys(context.Background(), append(lone, own)); err != nil || slices.Contains(held, false) {
		t.Fatalf("StoredKeys = %v, %v; want the call's records and its own stored", held, err)
	}
	stored := crashRecord("contest-stored")
	if _, err := st.AppendEach(context.Background(), []audit.Record{stored}); err != nil {
		t.Fatal(err)
	}
	a, b := crashRecord("contest-a"), crashRecord("contest-b")
	var w writeSet
	dup, err := p.classify([][]audit.Record{{a, b, a, stored}}, &w, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{false, false, true, true}; !slices.Equal(dup, want) {
		t.Fatalf("dup = %v; want %v", dup, want)
	}
	if w.n != 2 || !w.checked() {
		t.Fatalf("writeSet of %d records, checked %v; want 2, checked", w.n, w.checked())
	}
	p.fmu.Lock()
	inFlight := len(p.flight)
	ca := p.flight[flightKey{a.Account, a.EventID}]
	p.fmu.Unlock()
	if inFlight != 2 || ca.n != 1 {
		t.Fatalf("%d keys in flight, a's held %d times; want 2, once (the stored key released)", inFlight, ca.n)
	}
	sub := []submission{{records: w.byAccount[0], checked: w.checked(), contested: w.contested}}
	if !p.allChecked(sub) {
		t.Fatal("the classified batch is not staged checked")
	}
	if err := p.Enqueue(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if p.allChecked(sub) {
		t.Fatal("a batch is staged checked although a copy of one of its keys was queued after classify")
	}
	p.release(w.byAccount[0], false)
}
