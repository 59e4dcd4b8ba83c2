package duckdb

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestOnCommittedIsTheFeed: the records OnCommitted gives, for an import's
// appends (each batch sorted into the store's order, several partitions,
// duplicates within and across batches) and for live appends after it,
// are exactly what ReadAppended returns from the start: the same sequence
// numbers, records and fields, but for Time in whole seconds. An append
// that stores nothing gives nothing; after OnCommitted(nil) nothing more.
func TestOnCommittedIsTheFeed(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.BeginImport()
	type got struct {
		seq int64
		rec audit.Record
	}
	var seen []got
	next := int64(1)
	st.OnCommitted(func(first int64, recs []*audit.Record) {
		if first != next {
			t.Errorf("OnCommitted from %d, want %d", first, next)
		}
		next = first + int64(len(recs))
		for i, r := range recs {
			seen = append(seen, got{first + int64(i), *r})
		}
	})
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(7, base)
	parts := [][2]string{{"222222222222", "us-east-1"}, {"111111111111", "eu-west-1"}, {"111111111111", "us-east-1"}}
	var all []audit.Record
	for b := range 5 {
		var batch []audit.Record
		for i := range 300 {
			p := parts[(i*7+b)%len(parts)]
			// times out of order within the batch, with sub-second parts
			at := base.Add(time.Duration(b)*time.Hour + time.Duration((i*37)%300)*time.Second + 250*time.Millisecond)
			batch = append(batch, g.Record(storetest.Spec{Account: p[0], Region: p[1], Time: at}))
		}
		if b > 0 {
			batch = append(batch, all[b*10], batch[3]) // duplicates: of an earlier batch, and within this one
		}
		all = append(all, batch...)
		if _, err := st.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Append(ctx, all[:50]); err != nil { // nothing new
		t.Fatal(err)
	}
	live := g.Records(20)
	if _, err := st.Append(ctx, live); err != nil {
		t.Fatal(err)
	}
	st.OnCommitted(nil)
	if _, err := st.Append(ctx, g.Records(5)); err != nil {
		t.Fatal(err)
	}
	feed, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if want := 5*300 + 20; len(seen) != want || len(feed) != want+5 {
		t.Fatalf("OnCommitted gave %d records, the feed holds %d; want %d and %d", len(seen), len(feed), want, want+5)
	}
	for i, s := range seen {
		a := feed[i]
		r := s.rec
		if s.seq != a.Seq || r.EventID != a.Record.EventID || string(r.Raw) != string(a.Record.Raw) ||
			r.Account != a.Record.Account || r.Region != a.Record.Region || r.Category != a.Record.Category ||
			r.EventName != a.Record.EventName || r.EventSource != a.Record.EventSource || r.ReadOnly != a.Record.ReadOnly ||
			r.Time.Unix() != a.Record.Time.Unix() {
			t.Fatalf("record %d: OnCommitted gave seq %d %s %s %s %v, the feed seq %d %s %s %s %v", i, s.seq, r.Account, r.Region, r.EventID, r.Time,
				a.Seq, a.Record.Account, a.Record.Region, a.Record.EventID, a.Record.Time)
		}
	}
}
