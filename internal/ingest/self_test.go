package ingest

import (
	"errors"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/cairn-audit/cairn/internal/audit"
)

// SubmitRecorded writes the call's own record, made from the call's
// counts, in the same journal write as its records (one fsync a call, not
// two), also when every record is a duplicate; the record is stored with
// them.
func TestSubmitRecordedJournalsTheCallsRecordWithItsRecords(t *testing.T) {
	st := newKeyedStore()
	st.gate = make(chan struct{})
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	const acct = "111111111111"
	var seen []audit.AppendResult
	self := func(id string) func(audit.AppendResult) (audit.Record, error) {
		return func(r audit.AppendResult) (audit.Record, error) {
			seen = append(seen, r)
			return audit.Record{Account: acct, EventID: id}, nil
		}
	}
	fsyncs := func() float64 {
		var m dto.Metric
		if err := p.jSyncs.Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	syncs := fsyncs()
	res, recorded, err := p.SubmitRecorded(t.Context(), acctRecs(acct, 0, 100), self("self-1"))
	wantCounts(t, "new records", res, err, 100, 0)
	if !recorded {
		t.Error("SubmitRecorded = not recorded; want the call's record written with its records")
	}
	if got := fsyncs() - syncs; got != 1 {
		t.Errorf("%v journal writes for a call and its own record; want 1", got)
	}
	// Every record a duplicate: the call's record is written all the same.
	res, recorded, err = p.SubmitRecorded(t.Context(), append(acctRecs(acct, 90, 10), acctRecs(acct, 100, 5)...), self("self-2"))
	wantCounts(t, "a mixed batch", res, err, 5, 10)
	if !recorded {
		t.Error("SubmitRecorded of duplicates = not recorded; want the call's record written")
	}
	res, recorded, err = p.SubmitRecorded(t.Context(), acctRecs(acct, 0, 3), self("self-3"))
	wantCounts(t, "duplicates only", res, err, 0, 3)
	if !recorded {
		t.Error("SubmitRecorded of duplicates only = not recorded; want the call's record written")
	}
	want := []audit.AppendResult{{Inserted: 100}, {Inserted: 5, Duplicates: 10}, {Duplicates: 3}}
	if len(seen) != len(want) {
		t.Fatalf("self made %d records; want %d", len(seen), len(want))
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("call %d: self got counts %+v; want %+v", i, seen[i], want[i])
		}
	}
	close(st.gate)
	waitFor(t, "the records and the calls' own records to be stored", func() bool { return st.Len() == 108 })
	st.kmu.Lock()
	for _, id := range []string{"self-1", "self-2", "self-3"} {
		if !st.stored[flightKey{acct, id}] {
			t.Errorf("the call's own record %s was not stored", id)
		}
	}
	st.kmu.Unlock()
}

// When self fails, the call's records are written and SubmitRecorded
// says its own record was not, so that the caller records the call
// itself.
func TestSubmitRecordedWhenSelfFails(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, Keys: st, JournalDir: t.TempDir()})
	res, recorded, err := p.SubmitRecorded(t.Context(), acctRecs("111111111111", 0, 4), func(audit.AppendResult) (audit.Record, error) {
		return audit.Record{}, errors.New("no record")
	})
	wantCounts(t, "records", res, err, 4, 0)
	if recorded {
		t.Error("SubmitRecorded = recorded when self failed; want not recorded")
	}
	waitFor(t, "the records to be stored", func() bool { return st.Len() == 4 })
}

// Without a key check (a store shared by several nodes) there is no
// journaled Submit: SubmitRecorded submits and leaves the recording to
// the caller.
func TestSubmitRecordedWithoutKeys(t *testing.T) {
	st := newKeyedStore()
	p, _, _ := openJournaled(t, Config{Store: st, JournalDir: t.TempDir()})
	called := false
	res, recorded, err := p.SubmitRecorded(t.Context(), acctRecs("111111111111", 0, 2), func(audit.AppendResult) (audit.Record, error) {
		called = true
		return audit.Record{}, nil
	})
	wantCounts(t, "records", res, err, 2, 0)
	if recorded || called {
		t.Errorf("SubmitRecorded without Keys: recorded %v, self called %v; want neither", recorded, called)
	}
}
