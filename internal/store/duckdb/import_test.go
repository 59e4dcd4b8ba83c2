package duckdb

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestImportOrder: after BeginImport on an empty store, appends in time
// order (each batch shuffled, two partitions interleaved) leave the store
// InOrder, with each partition's rows in eventsOrder by seq and blocks
// that span hours; a batch that goes back in time, or an import into a
// store that held rows, is not InOrder. The records come back byte for
// byte, and Close folds the filters as Compact does.
func TestImportOrder(t *testing.T) {
	sh := storetest.NewShapes(t, 11)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	batch := func(from time.Time) []audit.Record {
		// 300 records over 30 hours of each of two partitions, shuffled.
		recs := sh.Records(300, from, from.Add(30*time.Hour), "111111111111", "eu-west-1")
		recs = append(recs, sh.Records(300, from, from.Add(30*time.Hour), "222222222222", "us-east-1")...)
		rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
		return recs
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.BeginImport()
	var all []audit.Record
	for i := range 3 {
		b := batch(base.Add(time.Duration(i) * 31 * time.Hour))
		all = append(all, b...)
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if !st.InOrder() {
		t.Fatal("appends in time order: not InOrder")
	}
	// Each partition's rows by seq are in eventsOrder.
	rows, err := st.db.Query(`SELECT account, region, category, event_time, event_id FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	last := map[partKey]orderKey{}
	for rows.Next() {
		var k orderKey
		if err := rows.Scan(&k.account, &k.region, &k.category, &k.t, &k.id); err != nil {
			t.Fatal(err)
		}
		p := partKey{k.account, k.region, k.category}
		if l, ok := last[p]; ok && compareOrder(k, l) <= 0 {
			t.Fatalf("row %+v after %+v", k, l)
		}
		last[p] = k
	}
	rows.Close()
	// Blocks span hours: blocks of one hour would be at least one a
	// batch, partition and hour (180, each hour has 10 records); 300
	// records of 64 KiB blocks hold half as many blocks unless a record
	// is over 3 KB.
	var blocks int
	if err := st.db.QueryRow(`SELECT count(*) FROM record_blocks`).Scan(&blocks); err != nil {
		t.Fatal(err)
	}
	if blocks == 0 || blocks >= 90 {
		t.Errorf("%d record blocks for 3 batches of 2 partitions over 30 hours; want blocks across hours", blocks)
	}
	checkAll(t, st, all)
	// Back in time: no longer in order.
	b := batch(base)
	all = append(all, b...)
	if _, err := st.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	if st.InOrder() {
		t.Error("a batch older than the rows before: still InOrder")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// Close folded the filters: compacting changes none of them.
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, st, all)
	var unfolded int
	if err := registerFold(st.wconn); err != nil {
		t.Fatal(err)
	}
	if err := st.wconn.QueryRowContext(ctx, `SELECT count(*) FROM bucket_index_v1 WHERE cairn_fold(bloom) <> bloom`).Scan(&unfolded); err != nil {
		t.Fatal(err)
	}
	if unfolded != 0 {
		t.Errorf("%d bucket filters that Compact would fold", unfolded)
	}
	// An import into a store that holds rows is not in order.
	st.BeginImport()
	if _, err := st.Append(ctx, batch(base.Add(1000*time.Hour))); err != nil {
		t.Fatal(err)
	}
	if st.InOrder() {
		t.Error("an import into a store that held rows: InOrder")
	}
	st.Close()
}

// TestOrderOf: orderOf sorts records as eventsOrder does (account,
// region, category, time in seconds, event ID), partitions given in any
// order.
func TestOrderOf(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var recs []audit.Record
	for i := range 2000 {
		recs = append(recs, audit.Record{
			Account:  []string{"111111111111", "222222222222", "011111111111"}[rng.IntN(3)],
			Region:   []string{"us-east-1", "eu-west-1"}[rng.IntN(2)],
			Category: audit.Category(rng.IntN(3)),
			Time:     base.Add(time.Duration(rng.IntN(50)) * 500 * time.Millisecond),
			EventID:  fmt.Sprintf("%04x", rng.IntN(1<<16)+i),
		})
	}
	ord := orderOf(len(recs), func(i int) *audit.Record { return &recs[i] })
	seen := map[int]bool{}
	for j, i := range ord {
		seen[i] = true
		if j > 0 && compareOrder(keyOf(&recs[ord[j-1]]), keyOf(&recs[i])) > 0 {
			t.Fatalf("%+v before %+v", keyOf(&recs[ord[j-1]]), keyOf(&recs[i]))
		}
	}
	if len(seen) != len(recs) {
		t.Fatalf("orderOf gave %d distinct indexes of %d", len(seen), len(recs))
	}
}

// TestImportBlocksAtImportLevel: an offline import's blocks (BeginImport)
// are compressed at SpeedFastest (importLevel, since session 24;
// SpeedDefault in session 21, Compact's SpeedBetterCompression before)
// while the import is in order (it will not be compacted), in 128 KiB
// blocks; once a batch goes back in time (the import will be compacted)
// and in a live append they are SpeedFastest too. Each stored block is compared with its
// content compressed again by each level's encoder (the encoders are
// deterministic), and the records come back byte for byte.
func TestImportBlocksAtImportLevel(t *testing.T) {
	sh := storetest.NewShapes(t, 12)
	base := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	fast, err := newBlockEncoder(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	imp, err := newBlockEncoder(zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	type batch struct {
		hour int           // the batch's records: this hour after base
		want *zstd.Encoder // its blocks' encoder; nil: not checked
	}
	for _, tc := range []struct {
		name     string
		imported bool
		batches  []batch
	}{
		{"import", true, []batch{{10, imp}, {11, imp}}},
		// The second batch goes back in time: it may have been encoded
		// before the order check; the third follows it.
		{"import out of order", true, []batch{{10, imp}, {0, nil}, {20, fast}}},
		{"live", false, []batch{{10, fast}, {11, fast}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if tc.imported {
				st.BeginImport()
			}
			var all []audit.Record
			var firstSeq []int64 // of each batch
			for _, b := range tc.batches {
				from := base.Add(time.Duration(b.hour) * time.Hour)
				recs := sh.Records(400, from, from.Add(time.Hour-time.Second), "111111111111", "eu-west-1")
				var last int64
				if err := st.db.QueryRow(`SELECT coalesce(max(seq), 0) FROM events`).Scan(&last); err != nil {
					t.Fatal(err)
				}
				firstSeq = append(firstSeq, last+1)
				if _, err := st.Append(ctx, recs); err != nil {
					t.Fatal(err)
				}
				all = append(all, recs...)
			}
			rows, err := st.db.Query(`SELECT id, data FROM record_blocks`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			checked := 0
			for rows.Next() {
				var id int64
				var data []byte
				if err := rows.Scan(&id, &data); err != nil {
					t.Fatal(err)
				}
				b := 0 // the batch of the block's first row
				for b+1 < len(firstSeq) && id >= firstSeq[b+1] {
					b++
				}
				want := tc.batches[b].want
				if want == nil {
					continue
				}
				content, err := st.codec.decompressBlock(data)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := data, compressBlockWith(want, content); !bytes.Equal(got, want) {
					t.Errorf("batch %d: block %d of %d bytes (%d of content) is not the encoder's %d bytes", b, id, len(got), len(content), len(want))
				}
				checked++
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if checked == 0 {
				t.Fatal("no record blocks checked")
			}
			checkAll(t, st, all)
		})
	}
}
