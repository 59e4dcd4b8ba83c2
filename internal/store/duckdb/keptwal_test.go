package duckdb

import (
	"context"
	"os"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// lastRowGroupOnDisk reports how many of the segments of events' last row
// group are persistent (on disk), and how many there are.
func lastRowGroupOnDisk(t *testing.T, st *Store) (persistent, all int) {
	t.Helper()
	err := st.db.QueryRowContext(context.Background(), `SELECT count(*) FILTER (WHERE persistent), count(*)
		FROM pragma_storage_info('events')
		WHERE row_group_id = (SELECT max(row_group_id) FROM pragma_storage_info('events'))`).Scan(&persistent, &all)
	if err != nil {
		t.Fatal(err)
	}
	return persistent, all
}

func walBytes(path string) int64 {
	fi, err := os.Stat(path + ".wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// TestServingStoreKeepsItsLogAcrossRestart: a serving store's Close leaves
// a short write-ahead log, and the next Open replays it without a
// checkpoint, so that the appends since the last checkpoint are in memory
// in the last row group (which the next append fills instead of making a
// segment of every column inside its COMMIT, with lookups held); every
// record is there, a longer log is checkpointed at Close as before, and an
// offline command's Open (Cold) checkpoints what it finds, as Compact
// needs.
func TestServingStoreKeepsItsLogAcrossRestart(t *testing.T) {
	ctx := context.Background()
	st, path := openWithBlockRecords(t)
	var stored int
	var appended []audit.Record
	for _, b := range blockRecords(t) {
		appended = append(appended, b...)
	}
	if err := st.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if walBytes(path) == 0 {
		t.Fatalf("Close of a serving store left no log (the appends were checkpointed)")
	}
	check := func(st *Store, want int) {
		t.Helper()
		var n int
		if err := st.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Fatalf("%d records after the restart; want %d", n, want)
		}
		for _, r := range []audit.Record{appended[0], appended[len(appended)-1]} {
			p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 50,
				Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Records) != 1 || p.Records[0].EventID != r.EventID {
				t.Fatalf("Lookup(EventId=%s) after the restart: %d records", r.EventID, len(p.Records))
			}
		}
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p, all := lastRowGroupOnDisk(t, st); all == 0 || p != 0 {
		t.Errorf("after the restart %d of the last row group's %d segments are on disk; want none (the log replayed into memory)", p, all)
	}
	check(st, stored)
	// One more append goes on in the same row group, and its log stays too.
	r := appended[0]
	r.EventID = "after-the-restart"
	if _, err := st.Append(ctx, []audit.Record{r}); err != nil {
		t.Fatal(err)
	}
	stored++
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if walBytes(path) == 0 {
		t.Fatalf("the second Close left no log")
	}

	// An offline command replays and checkpoints it.
	if st, err = Open(path, Options{Cold: true}); err != nil {
		t.Fatal(err)
	}
	if p, all := lastRowGroupOnDisk(t, st); p != all {
		t.Errorf("a Cold Open left %d of the last row group's %d segments in memory; want it checkpointed", all-p, all)
	}
	check(st, stored)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := walBytes(path); n != 0 {
		t.Fatalf("a Cold store's Close left %d bytes of log", n)
	}

	// A log longer than keptWALBytes is checkpointed at Close, and one
	// found longer at Open is checkpointed there.
	if st, err = Open(path, Options{keptWALBytes: 1}); err != nil {
		t.Fatal(err)
	}
	r.EventID = "a-longer-log"
	if _, err := st.Append(ctx, []audit.Record{r}); err != nil {
		t.Fatal(err)
	}
	stored++
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n := walBytes(path); n != 0 {
		t.Fatalf("Close left %d bytes of log, more than the store keeps", n)
	}
	if st, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check(st, stored)
}
