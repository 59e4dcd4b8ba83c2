package duckdb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestBucketIndexCatchUpAfterCrash: appends write bucket_index_v1 only
// every few transactions, so a crash leaves the table behind the rows. A
// store copied while open (its file and write-ahead log as a crash leaves
// them) at every point of that cycle — right after the table was written,
// one and several transactions after, after a retention delete, with
// filters that fill during the catch-up — opens with an index that counts
// every row, finds every record by each of its values, and writes the
// table so that a later reopen needs no rebuild.
func TestBucketIndexCatchUpAfterCrash(t *testing.T) {
	base := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	parts := [][2]string{{"111111111111", "us-east-1"}, {"111111111111", "eu-west-1"}, {"222222222222", "us-east-1"}}
	for _, c := range []struct {
		name    string
		batches int  // appends before the crash
		delete  bool // a retention delete after the first two batches
	}{
		{"no append", 0, false},
		{"one transaction", 1, false},
		{"table just written", 3, false}, // CheckpointCommits 3: the third append writes it
		{"one after the write", 4, false},
		{"several after", 6, false},
		{"after a retention delete", 5, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.duckdb")
			now := base.Add(48 * time.Hour)
			opts := Options{CheckpointCommits: 3, Now: func() time.Time { return now }}
			st, err := Open(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := storetest.NewGen(31, base)
			var recs []audit.Record
			for batch := range c.batches {
				var b []audit.Record
				for i := range 100 {
					p := parts[(i+batch)%len(parts)]
					b = append(b, g.Record(storetest.Spec{Account: p[0], Region: p[1],
						Time:        base.Add(time.Duration(i%7+batch) * time.Hour),
						AccessKeyID: fmt.Sprintf("AKIA%d%05d", batch, i), // new values: filters fill
						EventName:   fmt.Sprintf("Op%d", i%(20*(batch+1)))}))
				}
				if _, err := st.Append(context.Background(), b); err != nil {
					t.Fatal(err)
				}
				recs = append(recs, b...)
				if c.delete && batch == 1 {
					// The first batch was received before the second.
					if _, err := st.DeleteReceivedBefore(context.Background(), now.Add(time.Second)); err != nil {
						t.Fatal(err)
					}
					recs = nil
					now = now.Add(time.Hour)
				}
			}
			crashed := filepath.Join(t.TempDir(), "crashed.duckdb")
			copyFile(t, path, crashed)
			copyFile(t, path+".wal", crashed+".wal")
			var log bytes.Buffer
			got, err := Open(crashed, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			// Caught up, not rebuilt from the whole table (which would
			// hide a catch-up that miscounts).
			if strings.Contains(log.String(), "rebuilding the bucket index") {
				t.Errorf("Open rebuilt the bucket index; want a catch-up:\n%s", log.String())
			}
			checkIndex(t, got, recs, false)
			got = reopenAfter(t, got, crashed)
			checkIndex(t, got, recs, true)
		})
	}
}

// checkIndex checks st's bucket index in memory (and in bucket_index_v1
// with table) against its rows, and that every record is found by its
// access key and by its event name.
func checkIndex(t *testing.T, st *Store, recs []audit.Record, table bool) {
	t.Helper()
	counts := func(q string) map[string]int64 {
		rows, err := st.db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]int64{}
		for rows.Next() {
			var a, r string
			var c uint8
			var d, n int64
			if err := rows.Scan(&a, &r, &c, &d, &n); err != nil {
				t.Fatal(err)
			}
			out[fmt.Sprint(a, r, c, d)] += n
		}
		return out
	}
	fromRows := counts(`SELECT account, region, category, floor(event_time / 3600)::BIGINT, count(*) FROM events GROUP BY ALL`)
	if int64(len(recs)) != sum(fromRows) {
		t.Fatalf("%d rows stored; want %d", sum(fromRows), len(recs))
	}
	if table {
		if diff := cmp.Diff(fromRows, counts(`SELECT account, region, category, day, n FROM bucket_index_v1`), storetest.EquateRecords); diff != "" {
			t.Errorf("bucket_index_v1 counts (-rows +table):\n%s", diff)
		}
	}
	mem := map[string]int64{}
	st.index.mu.RLock()
	for k, days := range st.index.parts {
		for d, sum := range days {
			mem[fmt.Sprint(k.account, k.region, uint8(k.category), d)] = sum.n
		}
	}
	st.index.mu.RUnlock()
	if diff := cmp.Diff(fromRows, mem, storetest.EquateRecords); diff != "" {
		t.Errorf("in-memory counts (-rows +memory):\n%s", diff)
	}
	for i := 0; i < len(recs); i += 97 {
		r := recs[i]
		for _, a := range []audit.Attribute{{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}, {Key: audit.AttrEventName, Value: r.EventName}} {
			q := audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 50, Attributes: []audit.Attribute{a}}
			if diff := cmp.Diff(want(recs, q), lookupAll(t, st, q), storetest.EquateRecords); diff != "" {
				t.Fatalf("%s/%s %v: (-want +got):\n%s", r.Account, r.Region, a, diff)
			}
		}
	}
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// copyFile copies src to dst; a missing src (no write-ahead log) copies
// nothing.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
