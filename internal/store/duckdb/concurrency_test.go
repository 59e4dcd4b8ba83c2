package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestLookupsDuringAppendsAndCheckpoints looks up stored records by EventId
// while records are appended and every append is followed by a checkpoint
// (CheckpointCommits 1; a server checkpoints every 100 appends or 16 MiB of
// log).
// Each lookup must find its record. Run together, DuckDB 1.5.6 returned no
// rows for a few of 4,000 such lookups: the flaky
// TestImportedRealRecordsAreFoundUnderEveryAttribute of cmd/cairn.
func TestLookupsDuringAppendsAndCheckpoints(t *testing.T) {
	var recs []audit.Record
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if r.Category == audit.CategoryManagement {
			recs = append(recs, r)
		}
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(recs); i += 250 {
		if _, err := st.Append(ctx, recs[i:min(i+250, len(recs))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Every append checkpoints, as the store does once its log is large.
	if st, err = Open(path, Options{CheckpointCommits: 1}); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	end := time.Now().Add(-time.Second)
	stop := make(chan struct{})
	var writer sync.WaitGroup
	writer.Go(func() {
		// What a server appends meanwhile: its own recorded calls.
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			var b []audit.Record
			for j := range 1 + k%7 {
				r := recs[(k+j)%len(recs)]
				r.EventID = fmt.Sprintf("live-%d-%d", k, j)
				r.Time = time.Now().UTC()
				b = append(b, r)
			}
			if _, err := st.Append(ctx, b); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var readers sync.WaitGroup
	const workers = 2
	for w := range workers {
		readers.Go(func() {
			for i := w; i < len(recs); i += workers {
				r := &recs[i]
				p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, End: end, Limit: 50,
					Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
				if err != nil {
					t.Error(err)
					return
				}
				if len(p.Records) != 1 || p.Records[0].EventID != r.EventID {
					t.Errorf("Lookup(%s/%s EventId=%s) = %d records; want the stored one", r.Account, r.Region, r.EventID, len(p.Records))
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writer.Wait()
}
