package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// keyedStore is a gatedEach that also answers StoredKeys from the keys of
// its returned appends, counting the keys it is asked about, and fails it
// while askErr is set.
type keyedStore struct {
	*gatedEach
	kmu    sync.Mutex
	stored map[flightKey]bool
	asked  int
	askErr error
}

func newKeyedStore() *keyedStore {
	return &keyedStore{gatedEach: &gatedEach{MemStore: audittest.NewMemStore()}, stored: map[flightKey]bool{}}
}

func (k *keyedStore) AppendEach(ctx context.Context, rs []audit.Record) ([]bool, error) {
	ins, err := k.gatedEach.AppendEach(ctx, rs)
	if err != nil {
		return nil, err
	}
	k.kmu.Lock()
	for i := range rs {
		k.stored[flightKey{rs[i].Account, rs[i].EventID}] = true
	}
	k.kmu.Unlock()
	return ins, nil
}

func (k *keyedStore) Append(ctx context.Context, rs []audit.Record) (audit.AppendResult, error) {
	ins, err := k.AppendEach(ctx, rs)
	var res audit.AppendResult
	for _, ok := range ins {
		if ok {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	return res, err
}

func (k *keyedStore) StoredKeys(_ context.Context, rs []audit.Record) ([]bool, error) {
	k.kmu.Lock()
	defer k.kmu.Unlock()
	if k.askErr != nil {
		return nil, k.askErr
	}
	k.asked += len(rs)
	out := make([]bool, len(rs))
	for i := range rs {
		out[i] = k.stored[flightKey{rs[i].Account, rs[i].EventID}]
	}
	return out, nil
}

func (k *keyedStore) askedKeys() int {
	k.kmu.Lock()
	defer k.kmu.Unlock()
	return k.asked
}

func (k *keyedStore) setAskErr(err error) {
	k.kmu.Lock()
	k.askErr = err
	k.kmu.Unlock()
}

func wantCounts(t *testing.T, what string, got audit.AppendResult, err error, inserted, dups int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: Submit = %v", what, err)
	}
	if got.Inserted != inserted || got.Duplicates != dups {
		t.Fatalf("%s: Submit = %+v; want %d inserted, %d duplicates", what, got, inserted, dups)
	}
}

// With a journal and a key check, Submit returns once its records are
// journaled, while the store holds none of them, with exact counts: a
// record is a duplicate if it is stored, in flight, or earlier in the
// call. Only the new records reach the store.
func TestSubmitIsAnsweredFromTheJournalWithExactCounts(t *testing.T) {
	dir := t.TempDir()
	st := newKeyedStore()
	st.gate = make(chan struct{})
	p, cancel, done := openJournaled(t, Config{Store: st, Keys: st, JournalDir: dir})
	const acct = "111111111111"

	res, err := p.Submit(t.Context(), acctRecs(acct, 0, 100)...)
	wantCounts(t, "new records", res, err, 100, 0)
	if n := st.Len(); n != 0 {
		t.Fatalf("%d records stored while the store was shut; Submit should not wait for it", n)
	}
	if segments(t, dir) != 1 {
		t.Fatalf("%d journal segments; want 1 holding the records", segments(t, dir))
	}
	// Sent again while in flight: duplicates, without asking the store.
	asked := st.askedKeys()
	res, err = p.Submit(t.Context(), acctRecs(acct, 0, 100)...)
	wantCounts(t, "a re-sent batch in flight", res, err, 0, 100)
	if st.askedKeys() != asked {
		t.Errorf("the store was asked about %d keys in flight; want none", st.askedKeys()-asked)
	}
	// 50 in flight, 50 new, 10 of them twice in the call.
	mixed := append(acctRecs(acct, 50, 100), acctRecs(acct, 100, 10)...)
	res, err = p.Submit(t.Context(), mixed...)
	wantCounts(t, "a mixed batch", res, err, 50, 60)
	// Another account's record of the same event ID is its own.
	res, err = p.Submit(t.Context(), acctRecs("222222222222", 0, 1)...)
	wantCounts(t, "another account", res, err, 1, 0)

	close(st.gate)
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 151 })
	waitFor(t, "the keys to leave the flight set", func() bool {
		p.fmu.Lock()
		defer p.fmu.Unlock()
		return len(p.flight) == 0
	})
	// Stored now: the store's key check tells.
	res, err = p.Submit(t.Context(), acctRecs(acct, 140, 20)...)
	wantCounts(t, "stored and new", res, err, 10, 10)
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 161 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	if n := segments(t, dir); n != 0 {
		t.Errorf("%d journal segments after every record was stored; want 0", n)
	}
}

// Concurrent Submit calls sending overlapping records share journal
// writes; each record is counted inserted by exactly one of them and
// stored once.
func TestConcurrentSubmitsCountEachRecordOnce(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	const acct, callers, calls = "111111111111", 8, 20
	unique := callsShareRecords(t, callers, calls, func(c, i int) (audit.AppendResult, bool) {
		// Every call shares 20 records with every other caller's call
		// of the same i, and has 10 of its own.
		rs := append(acctRecs(acct, i*1000, 20), acctRecs(acct, i*1000+100+c*10, 10)...)
		res, err := p.Submit(context.Background(), rs...)
		if err != nil {
			t.Errorf("Submit = %v", err)
		}
		return res, err == nil
	})
	waitFor(t, "the records to be stored", func() bool { return st.Len() == unique })
}

// callsShareRecords makes calls calls from each of callers goroutines:
// call(c, i) is caller c's i-th, of 30 records, 20 shared with every
// caller's i-th call and 10 its own, and answers its counts (ok false
// stops the caller). It fails unless every record is counted inserted by
// exactly one call, and returns how many records there are.
func callsShareRecords(t *testing.T, callers, calls int, call func(c, i int) (res audit.AppendResult, ok bool)) int {
	var mu sync.Mutex
	var total audit.AppendResult
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				res, ok := call(c, i)
				if !ok {
					return
				}
				mu.Lock()
				total.Inserted += res.Inserted
				total.Duplicates += res.Duplicates
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	unique := calls * (20 + callers*10)
	if total.Inserted != unique || total.Duplicates != callers*calls*30-unique {
		t.Errorf("counts over all calls = %+v; want %d inserted, %d duplicates", total, unique, callers*calls*30-unique)
	}
	return unique
}

// A record queued by Enqueue (not durable) and then sent by Submit is
// counted a duplicate, and journaled all the same: it is stored even if
// the queued copy is lost.
func TestSubmitOfAKeyOnlyQueuedIsJournaled(t *testing.T) {
	st := newKeyedStore()
	st.gate = make(chan struct{})
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	rs := acctRecs("111111111111", 0, 3)
	if err := p.Enqueue(t.Context(), rs...); err != nil {
		t.Fatal(err)
	}
	res, err := p.Submit(t.Context(), rs...)
	wantCounts(t, "records queued, not journaled", res, err, 0, 3)
	p.fmu.Lock()
	for _, r := range rs {
		if c := p.flight[flightKey{r.Account, r.EventID}]; c.n != 2 || c.durable != 1 {
			t.Errorf("record %s in flight %+v; want 2 copies, 1 durable", r.EventID, c)
		}
	}
	p.fmu.Unlock()
	close(st.gate)
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 3 })
}

// When the key check fails, Submit fails, nothing of it is journaled or
// held in flight, and the same records sent again once the store answers
// are counted new.
func TestSubmitFailsWithTheKeyCheck(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	rs := acctRecs("111111111111", 0, 5)
	st.setAskErr(errors.New("store unreadable"))
	if _, err := p.Submit(t.Context(), rs...); err == nil {
		t.Fatal("Submit succeeded although the key check failed")
	}
	p.fmu.Lock()
	if n := len(p.flight); n != 0 {
		t.Errorf("%d keys in flight after the key check failed; want none", n)
	}
	p.fmu.Unlock()
	st.setAskErr(nil)
	res, err := p.Submit(t.Context(), rs...)
	wantCounts(t, "after the key check recovered", res, err, 5, 0)
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 5 })
}

// A failed key check leaves the flight set as it was: keys only queued
// (Enqueue) stay in flight, not durable, once each; the new keys of the
// call and its later copies of them are not held.
func TestFailedKeyCheckLeavesTheFlightSetAsItWas(t *testing.T) {
	st := newKeyedStore()
	st.gate = make(chan struct{})
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	queued := acctRecs("111111111111", 0, 3)
	if err := p.Enqueue(t.Context(), queued...); err != nil {
		t.Fatal(err)
	}
	fresh := acctRecs("111111111111", 10, 2)
	call := append(append(append([]audit.Record{}, queued...), fresh...), fresh[0], queued[1])
	st.setAskErr(errors.New("store unreadable"))
	if _, err := p.Submit(t.Context(), call...); err == nil {
		t.Fatal("Submit succeeded although the key check failed")
	}
	p.fmu.Lock()
	for _, r := range queued {
		if c := p.flight[flightKey{r.Account, r.EventID}]; c.n != 1 || c.durable != 0 {
			t.Errorf("queued record %s in flight %+v; want 1 copy, not durable", r.EventID, c)
		}
	}
	for _, r := range fresh {
		if c, ok := p.flight[flightKey{r.Account, r.EventID}]; ok {
			t.Errorf("new record %s of the failed call in flight %+v; want it out", r.EventID, c)
		}
	}
	p.fmu.Unlock()
	st.setAskErr(nil)
	res, err := p.Submit(t.Context(), call...)
	wantCounts(t, "after the key check recovered", res, err, 2, 5)
	close(st.gate)
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 5 })
}

// Records acknowledged by Submit but not stored when cairn stops are
// replayed by the next Open; sent again then, they are duplicates.
func TestSubmittedRecordsAreReplayedAndStayDuplicates(t *testing.T) {
	dir := t.TempDir()
	bad := newKeyedStore()
	bad.err = errors.New("disk on fire")
	p, cancel, done := openJournaled(t, Config{Store: bad, Keys: bad, JournalDir: dir, MaxAttempts: 1})
	rs := acctRecs("111111111111", 0, 20)
	res, err := p.Submit(t.Context(), rs...)
	wantCounts(t, "while the store fails", res, err, 20, 0)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done <- nil
	good := newKeyedStore()
	p2, _, _ := openJournaled(t, Config{Store: good, Keys: good, JournalDir: dir})
	if n := good.Len(); n != 20 {
		t.Fatalf("%d records replayed; want 20", n)
	}
	res, err = p2.Submit(t.Context(), append(rs, acctRecs("111111111111", 20, 1)...)...)
	wantCounts(t, "after the replay", res, err, 1, 20)
	for i := range rs {
		if rs[i].EventID != fmt.Sprintf("111111111111-%d", i) {
			t.Fatalf("Submit changed its caller's records")
		}
	}
}

// classify takes a group's members' records as they were passed (parts):
// a record is a duplicate if an earlier part or record holds its key, it
// is in flight or stored; the records to write come out by account, each
// account's in their order; a part whose keys are all new is asked of the
// store as it is, one partly in flight only for the keys not in flight.
func TestClassifyPartsByAccount(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	const a, b = "111111111111", "222222222222"
	st.kmu.Lock()
	st.stored[flightKey{a, a + "-1"}] = true // stored
	st.kmu.Unlock()
	p.hold(acctRecs(b, 0, 1), true) // b-0 in flight, durable
	defer p.release(acctRecs(b, 0, 1), true)

	one := append(acctRecs(a, 0, 3), acctRecs(b, 1, 2)...) // a-0 a-1 a-2 b-1 b-2
	two := append(acctRecs(b, 0, 2), acctRecs(a, 2, 2)...) // b-0 b-1 a-2 a-3
	var w writeSet
	dup, err := p.classify([][]audit.Record{one, two}, &w, true)
	if err != nil {
		t.Fatal(err)
	}
	wantDup := []bool{false, true, false, false, false, true, true, true, false}
	if fmt.Sprint(dup) != fmt.Sprint(wantDup) {
		t.Errorf("dup = %v; want %v", dup, wantDup)
	}
	var got []string
	for _, part := range w.byAccount {
		var ids []string
		for _, r := range part {
			ids = append(ids, r.EventID)
		}
		got = append(got, fmt.Sprint(ids))
	}
	want := []string{"[111111111111-0 111111111111-2 111111111111-3]", "[222222222222-1 222222222222-2]"}
	if fmt.Sprint(got) != fmt.Sprint(want) || w.n != 5 {
		t.Errorf("to write %v (%d); want %v (5)", got, w.n, want)
	}
	// Asked: the first part's 5 keys, the second's one key not in flight
	// nor earlier (a-3).
	if n := st.askedKeys(); n != 6 {
		t.Errorf("the store was asked about %d keys; want 6", n)
	}
	p.fmu.Lock()
	held := p.flight[flightKey{a, a + "-3"}].durable == 1 && p.flight[flightKey{b, b + "-2"}].durable == 1
	_, stored := p.flight[flightKey{a, a + "-1"}]
	p.fmu.Unlock()
	if !held || stored {
		t.Errorf("the records to write are not all in flight as durable (%v), or a stored one is (%v)", held, stored)
	}
	for _, part := range w.byAccount {
		p.release(part, true)
	}
}

// A hostile tenant's records that carry another account's event IDs are
// that tenant's: not duplicates of the other account's stored, in-flight
// or same-group records, and written in the tenant's own list, never the
// other account's, however the accounts interleave in a group.
func TestClassifyKeepsAccountsApart(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	const alice, bob = "111111111111", "222222222222"
	st.kmu.Lock()
	st.stored[flightKey{alice, alice + "-0"}] = true
	st.kmu.Unlock()
	p.hold(acctRecs(alice, 1, 1), true) // alice-1 in flight
	defer p.release(acctRecs(alice, 1, 1), true)

	// Bob sends alice's IDs 0 (stored), 1 (in flight) and 2 (in the
	// same group, alice's own), interleaved with alice's record 2.
	forged := acctRecs(alice, 0, 3)
	for i := range forged {
		forged[i].Account = bob
	}
	mixed := []audit.Record{forged[0], acctRecs(alice, 2, 1)[0], forged[1], forged[2]}
	var w writeSet
	dup, err := p.classify([][]audit.Record{mixed}, &w, true)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dup) != "[false false false false]" {
		t.Errorf("dup = %v; want none: bob's records are bob's", dup)
	}
	got := map[string][]string{}
	for _, part := range w.byAccount {
		for _, r := range part {
			got[part[0].Account] = append(got[part[0].Account], r.Account+"/"+r.EventID)
		}
	}
	want := map[string][]string{
		alice: {alice + "/" + alice + "-2"},
		bob:   {bob + "/" + alice + "-0", bob + "/" + alice + "-1", bob + "/" + alice + "-2"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(w.byAccount) != 2 || w.n != 4 {
		t.Errorf("to write %v in %d lists; want %v in 2", got, len(w.byAccount), want)
	}
	for _, part := range w.byAccount {
		p.release(part, true)
	}
}

// writeSet keeps each account's records together and in order, with
// many accounts interleaved (a responder's file of an organization).
func TestWriteSetManyAccounts(t *testing.T) {
	var w writeSet
	var in []audit.Record
	for i := range 1000 {
		for a := range 300 {
			in = append(in, audit.Record{Account: fmt.Sprintf("%012d", (a*7+i)%300), EventID: fmt.Sprint(i)})
		}
	}
	w.add(in)
	if len(w.byAccount) != 300 || w.n != len(in) || len(w.flat()) != len(in) {
		t.Fatalf("%d lists, n %d, flat %d; want 300, %d", len(w.byAccount), w.n, len(w.flat()), len(in))
	}
	for _, part := range w.byAccount {
		if len(part) != 1000 {
			t.Fatalf("account %s: %d records; want 1000", part[0].Account, len(part))
		}
		for i, r := range part {
			if r.Account != part[0].Account || r.EventID != fmt.Sprint(i) {
				t.Fatalf("account %s: record %d is %s/%s", part[0].Account, i, r.Account, r.EventID)
			}
		}
	}
}
