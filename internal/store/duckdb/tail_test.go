package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestTailReadsAsTable: ReadAppended served from the in-memory tail returns
// what the table returns, record for record, for every start and limit:
// records of several accounts, regions and categories, real shapes and
// generated ones, sub-second and non-UTC times, duplicates within and
// across batches, a tail too small for all of them (reads before its first
// record go to the table), and a retention delete (its records are no
// longer served).
func TestTailReadsAsTable(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	now := base.Add(24 * time.Hour)
	dir := t.TempDir()
	path := filepath.Join(dir, "events.duckdb")
	// A tail of about 60 KB: it holds only the newest records.
	st, err := Open(path, Options{TailBytes: 60 << 10, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	g := storetest.NewGen(41, base)
	shapes := storetest.NewShapes(t, 3)
	var batches [][]audit.Record
	for b := range 6 {
		var recs []audit.Record
		if b%2 == 0 {
			recs = shapes.Records(40, base.Add(time.Duration(b)*time.Hour), base.Add(time.Duration(b+1)*time.Hour), "333333333333", "eu-west-1")
		} else {
			for i := range 40 {
				recs = append(recs, g.Record(storetest.Spec{Account: fmt.Sprint(111111111111 * (1 + i%2)), Region: []string{"us-east-1", "ap-south-1"}[i%2],
					Category: audit.Category(i % 3), NoReadOnly: i%5 == 0, Service: i%7 == 0}))
			}
		}
		for i := range recs {
			switch i % 4 {
			case 1:
				recs[i].Time = recs[i].Time.Add(734 * time.Millisecond)
			case 2:
				recs[i].Time = recs[i].Time.In(time.FixedZone("x", 5*3600))
			}
		}
		if b > 0 {
			recs = append(recs, batches[b-1][3], recs[0]) // duplicates across and within batches
		}
		batches = append(batches, recs)
	}
	compare := func(name string, want *Store) {
		t.Helper()
		last, err := st.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Every 41st position, and those around the tail's ends.
		afters := []int64{last - 1, last, last + 1}
		if st.tail.recs.len() > 0 {
			f := st.tail.recs.at(0).Seq
			afters = append(afters, f-2, f-1, f)
		}
		for a := int64(0); a <= last; a += 41 {
			afters = append(afters, a)
		}
		for _, after := range afters {
			for _, limit := range []int{1, 1000} {
				got, err := st.ReadAppended(ctx, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				w, err := want.ReadAppended(ctx, after, limit)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Fatalf("%s: ReadAppended(%d, %d) (-table +tail):\n%s", name, after, limit, diff)
				}
			}
		}
	}
	// The table alone: the same file read by a store without a tail
	// (DuckDB lets one process attach a file once, so a second store
	// reads a copy made after each step).
	table := func() *Store {
		t.Helper()
		cp := filepath.Join(t.TempDir(), "copy.duckdb")
		copyFile(t, path, cp)
		copyFile(t, path+".wal", cp+".wal")
		o, err := Open(cp, Options{TailBytes: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return o
	}
	for i, b := range batches {
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			compare(fmt.Sprintf("after batch %d", i), table())
		}
	}
	if st.tail.bytes == 0 || st.tail.recs.at(0).Seq <= 1 {
		t.Fatalf("tail holds %d bytes from seq %d; want a tail that dropped the oldest", st.tail.bytes, st.tail.recs.at(0).Seq)
	}
	compare("all", table())
	now = now.Add(time.Hour)
	if _, err := st.DeleteReceivedBefore(ctx, now); err != nil {
		t.Fatal(err)
	}
	compare("after a retention delete", table())
}

// TestTailRecs checks the tail's chunked queue against a slice: pushes and
// pops across several chunks, emptied and filled again.
func TestTailRecs(t *testing.T) {
	var q tailRecs
	var want []audit.Appended
	var recv []int64
	seq := int64(0)
	check := func(step string) {
		t.Helper()
		if q.len() != len(want) {
			t.Fatalf("%s: len = %d; want %d", step, q.len(), len(want))
		}
		for i := range want {
			if got := q.at(i).Seq; got != want[i].Seq || q.receivedAt(i) != recv[i] {
				t.Fatalf("%s: at(%d) = %d, received %d; want %d, %d", step, i, got, q.receivedAt(i), want[i].Seq, recv[i])
			}
		}
		for _, r := range [][2]int{{0, len(want)}, {len(want) / 3, len(want) / 3 * 2}, {len(want), len(want)}} {
			got := q.copyTo(nil, r[0], r[1])
			if len(got) != r[1]-r[0] {
				t.Fatalf("%s: copyTo(%d, %d) gave %d records", step, r[0], r[1], len(got))
			}
			for i := range got {
				if got[i].Seq != want[r[0]+i].Seq {
					t.Fatalf("%s: copyTo(%d, %d)[%d] = %d; want %d", step, r[0], r[1], i, got[i].Seq, want[r[0]+i].Seq)
				}
			}
		}
	}
	push := func(n int) {
		for range n {
			seq++
			*q.push(seq * 10) = audit.Appended{Seq: seq, Record: audit.Record{EventID: fmt.Sprint(seq)}}
			want = append(want, audit.Appended{Seq: seq})
			recv = append(recv, seq*10)
		}
	}
	pop := func(n int) {
		for range n {
			q.pop()
			want, recv = want[1:], recv[1:]
		}
	}
	push(3*tailChunkLen + 5)
	check("filled")
	pop(tailChunkLen + 7)
	check("popped across a chunk")
	push(2*tailChunkLen - 3)
	check("filled again")
	if len(q.chunks) > 5 {
		t.Errorf("%d chunks for %d records", len(q.chunks), q.len())
	}
	pop(q.len())
	check("emptied")
	push(tailChunkLen + 1)
	check("filled after empty")
}
