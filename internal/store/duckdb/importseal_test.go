package duckdb

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// importInto opens a store at path with opts, imports batches into it as
// an offline import does (BeginImport, StageGrouped) and returns it open,
// with each batch's answer.
func importInto(t *testing.T, path string, opts Options, batches [][]audit.Record) (*Store, [][]bool) {
	t.Helper()
	st, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	st.BeginImport()
	got, err := stageGrouped(t, st, batches, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, got
}

// TestImportSeals: an offline import into a store opened with Seal puts
// the records of the days that ended a day before its clock straight into
// the sealed tier, the rest into the table; the store then answers as the
// same import without sealing does: the feed (records, sequence numbers,
// received times), each record by its event ID, every page of a part's
// lookups, LastSeq, and every record imported again a duplicate, before
// and after a reopen. Without sealing's rows in the import's transactions
// (or its blocks in the directory), the comparisons fail. Then the
// blocks are compressed again as a server does it (RecompressSealed, two
// blocks a call), or as `cairn compact` does (RecompressAllSealed, on
// every core).
func TestImportSeals(t *testing.T) {
	for _, every := range []bool{false, true} {
		t.Run(map[bool]string{false: "RecompressSealed", true: "RecompressAllSealed"}[every], func(t *testing.T) {
			testImportSeals(t, every)
		})
	}
}

func testImportSeals(t *testing.T, every bool) {
	ctx := context.Background()
	batches := liveFilled()
	// liveFilled's newest records are of 2026-12-01: a clock of
	// 2026-12-01 12:00 seals every day before 2026-11-30.
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	dir := t.TempDir()
	ref, _ := importInto(t, filepath.Join(dir, "ref.duckdb"), Options{Now: now}, batches)
	want, err := ref.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if ref.SealedRecords() != 0 {
		t.Fatalf("the import without Seal sealed %d records", ref.SealedRecords())
	}
	path := filepath.Join(dir, "events.duckdb")
	// Segments of 16 KiB: the import fills several, and the recompression
	// below must leave none of them behind.
	sealedSegmentBytes = 16 << 10
	t.Cleanup(func() { sealedSegmentBytes = 0 })
	st, answers := importInto(t, path, Options{Now: now, Seal: true}, batches)
	for i, b := range answers {
		for j, ins := range b {
			if !ins {
				t.Fatalf("batch %d record %d not inserted", i, j)
			}
		}
	}
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	if n := st.SealedRecords(); n == 0 || n == total {
		t.Fatalf("%d of %d records sealed; want the old days' (all but the 40 of 2026-12-01)", n, total)
	}
	if n := st.SealedRecords(); n != total-40 {
		t.Errorf("%d records sealed, want %d", n, total-40)
	}
	if segmentBytes(t, path) == 0 {
		t.Fatal("no segment bytes after an import that sealed")
	}
	// The directory keeps every block's Meta for as long as the store:
	// its part's strings must not be the records' (an importer's records
	// are substrings of its read slabs, which they would pin).
	imported := map[*byte]bool{}
	for _, b := range batches {
		for i := range b {
			imported[unsafe.StringData(b[i].Account)] = true
			imported[unsafe.StringData(b[i].Region)] = true
		}
	}
	for _, m := range st.sealed.dir.Blocks() {
		if imported[unsafe.StringData(m.Part.Account)] || imported[unsafe.StringData(m.Part.Region)] {
			t.Fatalf("block %d's part %+v shares its strings with an imported record", m.ID, m.Part)
		}
	}
	checkKeyXor(t, st)
	all := make([]audit.Record, len(want))
	for i := range want {
		all[i] = want[i].Record
	}
	check := func(st *Store, when string) {
		t.Helper()
		got, err := st.ReadAppended(ctx, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		// A batch's sealed records take its first sequence numbers (the
		// numbers are the feed's order, which within a batch is the
		// store's choice): the same records, each batch's with the same
		// numbers, in another order within the batch.
		if len(got) != len(want) {
			t.Fatalf("%s: the feed holds %d records, want %d", when, len(got), len(want))
		}
		for i := range got {
			if got[i].Seq != want[i].Seq {
				t.Fatalf("%s: the feed's record %d has sequence number %d, want %d", when, i, got[i].Seq, want[i].Seq)
			}
		}
		byKey := func(a []audit.Appended) map[string]audit.Appended {
			m := map[string]audit.Appended{}
			for _, x := range a {
				x.Seq = 0
				m[x.Record.Account+"/"+x.Record.EventID] = x
			}
			return m
		}
		if diff := gocmp.Diff(byKey(want), byKey(got), storetest.EquateRecords); diff != "" {
			t.Fatalf("%s: the feed (-without sealing +with):\n%s", when, diff)
		}
		seqOf := func(a []audit.Appended) map[string]int {
			m := map[string]int{}
			for _, x := range a {
				m[x.Record.Account+"/"+x.Record.EventID] = int((x.Seq - 1) / int64(len(batches[0])))
			}
			return m
		}
		if diff := gocmp.Diff(seqOf(want), seqOf(got)); diff != "" {
			t.Fatalf("%s: the batches' sequence numbers (-without sealing +with):\n%s", when, diff)
		}
		for _, a := range want {
			r := a.Record
			p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 5,
				Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
			if err != nil || len(p.Records) != 1 || !bytes.Equal(p.Records[0].Raw, r.Raw) {
				t.Fatalf("%s: lookup of %s: %d records, %v", when, r.EventID, len(p.Records), err)
			}
		}
		for _, anyAccount := range []bool{false, true} {
			for _, limit := range []int{1, 7, 50} {
				q := audit.Query{Account: all[0].Account, AnyAccount: anyAccount, Region: all[0].Region, Category: all[0].Category, Limit: limit}
				checkPaging(t, st, q, all)
			}
		}
		if last, _ := st.LastSeq(ctx); last != want[len(want)-1].Seq {
			t.Errorf("%s: LastSeq = %d, want %d", when, last, want[len(want)-1].Seq)
		}
	}
	check(st, "after the import")
	// The same files again: every record a duplicate, sealed or not.
	again, err := stageGrouped(t, st, batches, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range again {
		for j, ins := range b {
			if ins {
				t.Fatalf("imported again: batch %d record %d (%s) inserted twice", i, j, batches[i][j].EventID)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := Open(path, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	check(st2, "after a reopen")
	res, err := st2.Append(ctx, all)
	if err != nil || res.Inserted != 0 || res.Duplicates != len(all) {
		t.Errorf("appending every record after a reopen = %+v, %v; want all duplicates", res, err)
	}
	if b := st2.keyFilterBuilds.Load(); b != 0 {
		t.Errorf("the key filter was built %d times after a reopen; the import's saved one should match both tiers", b)
	}
	// The import's blocks are at sealed.ImportLevel and pending; encoded
	// again, they are at sealed.Level, the old segment gone, and the
	// store answers as before, also after a reopen.
	blocks := st2.sealed.dir.Len()
	if p := st2.PendingSealed(); p != blocks || p < 3 {
		t.Fatalf("%d blocks pending of %d after the import; want all (and at least 3)", p, blocks)
	}
	segsImported := map[string]bool{}
	if ents, err := os.ReadDir(path + sealedSuffix); err == nil {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".seg") {
				segsImported[e.Name()] = true
			}
		}
	}
	if len(segsImported) < 3 {
		t.Fatalf("the import wrote %d segments; want at least 3 (sealedSegmentBytes)", len(segsImported))
	}
	checkBlockLevel(t, st2, sealed.ImportLevel)
	before := segmentBytes(t, path)
	if every {
		var seen []int
		n, err := st2.RecompressAllSealed(ctx, func(done, left int) {
			seen = append(seen, done)
			if done+left != blocks {
				t.Errorf("progress: %d done and %d left of %d", done, left, blocks)
			}
		})
		if err != nil || n != blocks || st2.PendingSealed() != 0 {
			t.Fatalf("RecompressAllSealed = %d, %v with %d left; want %d", n, err, st2.PendingSealed(), blocks)
		}
		if len(seen) == 0 || seen[len(seen)-1] != blocks {
			t.Errorf("progress reported %v", seen)
		}
	} else {
		calls := 0
		for {
			n, left, err := st2.RecompressSealed(ctx, 2)
			if err != nil {
				t.Fatal(err)
			}
			calls++
			if n == 0 || left == 0 {
				if left != 0 || st2.PendingSealed() != 0 {
					t.Fatalf("RecompressSealed stopped with %d left", left)
				}
				break
			}
		}
		if calls < blocks/2 {
			t.Errorf("%d calls of at most 2 blocks recompressed %d blocks", calls, blocks)
		}
	}
	checkBlockLevel(t, st2, sealed.Level)
	if after := segmentBytes(t, path); after >= before {
		t.Errorf("the segments hold %d bytes after the recompression, %d before", after, before)
	}
	ents, err := os.ReadDir(path + sealedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if segsImported[e.Name()] || !strings.HasSuffix(e.Name(), ".seg") {
			t.Errorf("%s is left after the recompression (the import's segments: %v)", e.Name(), segsImported)
		}
	}
	if st := st2.SealedStats(); st.SegmentBytes != st.LiveBytes {
		t.Errorf("the segments hold %d bytes after the recompression, the blocks %d", st.SegmentBytes, st.LiveBytes)
	}
	checkKeyXor(t, st2)
	check(st2, "after the recompression")
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	st3, err := Open(path, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	if p := st3.PendingSealed(); p != 0 {
		t.Errorf("%d blocks pending after a reopen", p)
	}
	checkBlockLevel(t, st3, sealed.Level)
	check(st3, "after the recompression and a reopen")
	if b := st3.keyFilterBuilds.Load(); b != 0 {
		t.Errorf("the key filter was built %d times after the recompression; its check should hold", b)
	}
}

// checkBlockLevel checks that every sealed block's bytes are what an
// encoder at level makes of its records (zstd's output is deterministic).
func checkBlockLevel(t *testing.T, st *Store, level zstd.EncoderLevel) {
	t.Helper()
	ctx := context.Background()
	enc, err := sealed.NewEncoderAt(level)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.sealed.dir.Blocks() {
		data, err := st.sealed.segs.Read(m.Loc, nil)
		if err != nil {
			t.Fatal(err)
		}
		es, err := st.fetchSealed(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		want, _, err := enc.Encode(slices.Clone(es))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("block %d (%d bytes) is not at level %v (%d bytes there)", m.ID, len(data), level, len(want))
		}
	}
}

// TestImportSealsPastTheKeyFilter: an import that seals more records than
// its key filter first holds, with copies of earlier batches' records in
// later batches, stores each record once. The key filter is built again
// as it grows, with the sealed records' keys from the import's list, not
// from their blocks; without them, the copies of records sealed before a
// rebuild would pass the duplicate check. The import's transactions
// commit at a row group of records though none of them is a table row
// (stageGrouped checks after each batch): the 13 batches between the
// rebuild and the first copies, both of which close a group, hold more
// than a row group (it fails when a group counts table rows only).
func TestImportSealsPastTheKeyFilter(t *testing.T) {
	bigImport(t)
	// And with the import's list of keys cut short (maxSealedHashes): the
	// blocks whose keys it does not hold are decoded by the rebuilds.
	for _, limit := range []int{maxSealedHashes, 0} {
		t.Run(fmt.Sprintf("keys kept %d", limit), func(t *testing.T) {
			defer func(v int) { maxSealedHashes = v }(maxSealedHashes)
			maxSealedHashes = limit
			testImportSealsPastTheKeyFilter(t, limit)
		})
	}
}

func testImportSealsPastTheKeyFilter(t *testing.T, limit int) {
	ctx := context.Background()
	sh := storetest.NewShapes(t, 91)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 10240
	n := 2*keyFilterMinKeys + 8*batch
	var batches [][]audit.Record
	for from := 0; from < n; from += batch {
		k := min(batch, n-from)
		t0 := base.Add(time.Duration(from) * time.Minute)
		batches = append(batches, sh.Records(k, t0, t0.Add(time.Duration(k)*time.Minute), "111111111111", "eu-west-1"))
	}
	// Copies of the first batch's records in the last ones (as a trail
	// delivers a record twice).
	last := len(batches) - 1
	dups := 0
	for i := 0; i < len(batches[0]); i += 97 {
		batches[last] = append(batches[last], batches[0][i])
		batches[last-1] = append(batches[last-1], batches[0][i+1])
		dups += 2
	}
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, answers := importInto(t, path, Options{Now: now, Seal: true}, batches)
	inserted := 0
	for _, b := range answers {
		for _, ins := range b {
			if ins {
				inserted++
			}
		}
	}
	if inserted != n {
		t.Errorf("%d records inserted of %d, with %d copies among them", inserted, n, dups)
	}
	if b := st.keyFilterBuilds.Load(); b < 2 {
		t.Errorf("the key filter was built %d times; the test wants it grown during the import", b)
	}
	if got := st.SealedRecords(); got != n {
		t.Errorf("%d records sealed, want %d", got, n)
	}
	if last, _ := st.LastSeq(ctx); last != int64(n) {
		t.Errorf("LastSeq = %d, want %d", last, n)
	}
	if kept := len(st.importSealedKeys()); kept > limit {
		t.Errorf("the import kept %d keys; want at most %d", kept, limit)
	}
}

// TestImportSealsEdgeTimes: records of day 0 and the days before it
// (1969-12-31, the year 1), one a second before midnight, one at
// midnight, and one whose eventID is another account's, are sealed by
// the import and found as they were: each by its event ID in its own
// account only, by a time range around it, and a duplicate when imported
// again.
func TestImportSealsEdgeTimes(t *testing.T) {
	ctx := context.Background()
	g := storetest.NewGen(7, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC),
		time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
	}
	var batch []audit.Record
	for _, tm := range times {
		batch = append(batch, g.Record(storetest.Spec{Time: tm}))
	}
	// bob's record under alice's event ID: a record of its own.
	batch = append(batch, g.Record(storetest.Spec{Account: "222222222222", EventID: batch[0].EventID, Time: times[0]}))
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, _ := importInto(t, path, Options{Now: now, Seal: true}, [][]audit.Record{batch})
	// bob's block and alice's each hold their own record's key.
	checkKeyXor(t, st)
	if n := st.SealedRecords(); n != len(batch) {
		t.Fatalf("%d records sealed, want %d", n, len(batch))
	}
	for _, r := range batch {
		for _, acct := range []string{"111111111111", "222222222222"} {
			p, err := st.Lookup(ctx, audit.Query{Account: acct, Region: r.Region, Category: r.Category, Limit: 5,
				Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
			if err != nil {
				t.Fatal(err)
			}
			if acct != r.Account {
				for _, x := range p.Records {
					if x.Account != acct {
						t.Fatalf("%s's lookup of %s answered %s's record", acct, r.EventID, x.Account)
					}
				}
				continue
			}
			if len(p.Records) != 1 || !bytes.Equal(p.Records[0].Raw, r.Raw) || !p.Records[0].Time.Equal(r.Time) {
				t.Fatalf("lookup of %s (%s) in %s: %d records", r.EventID, r.Time, acct, len(p.Records))
			}
		}
		p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 50,
			Start: r.Time, End: r.Time.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, x := range p.Records {
			found = found || x.EventID == r.EventID && x.Account == r.Account
		}
		if !found {
			t.Errorf("a lookup from %s to a second later does not find %s", r.Time, r.EventID)
		}
	}
	again, err := stageGrouped(t, st, [][]audit.Record{batch}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for j, ins := range again[0] {
		if ins {
			t.Errorf("record %d (%s) inserted twice", j, batch[j].EventID)
		}
	}
}

// checkKeyXor checks that each sealed block's row holds the XOR of its
// own records' keys, account and event ID (the key filter's check that
// the store is the one it was saved for).
func checkKeyXor(t *testing.T, st *Store) {
	t.Helper()
	ctx := context.Background()
	xors := map[int64]uint64{}
	rows, err := st.wconn.QueryContext(ctx, `SELECT id, key_xor FROM sealed_blocks`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var kx uint64
		if err := rows.Scan(&id, &kx); err != nil {
			t.Fatal(err)
		}
		xors[id] = kx
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.sealed.dir.Blocks() {
		es, err := st.fetchSealed(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		var kx uint64
		for i := range es {
			kx ^= keyHash(es[i].Record.Account, es[i].Record.EventID)
		}
		if got, ok := xors[m.ID]; !ok || got != kx {
			t.Errorf("block %d: key_xor %x (a row: %v), its records' keys %x", m.ID, got, ok, kx)
		}
	}
}

// TestPendingListIsAHint: the list of blocks left to recompress is the
// data dir's own file, but a damaged or hostile one never stops the store:
// a range far past the blocks is cut at the largest block ID (the walk
// does not run to it), and a list out of order is ignored.
func TestPendingListIsAHint(t *testing.T) {
	ctx := context.Background()
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, _ := importInto(t, path, Options{Now: now, Seal: true}, liveFilled())
	blocks := st.sealed.dir.Len()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(path+sealedSuffix, pendingFile)
	for _, c := range []struct {
		name, list string
		pending    int
	}{
		{"a range far past the blocks", "1 9223372036854775000\n", blocks},
		{"ranges out of order", "5 9\n1 3\n", 0},
		{"an empty range", "9 5\n", 0},
		{"not numbers", "'; DROP TABLE sealed_blocks; --\n", 0},
	} {
		if err := os.WriteFile(list, []byte(c.list), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := Open(path, Options{Now: now})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if p := st.PendingSealed(); p != c.pending {
			t.Errorf("%s: %d blocks pending, want %d", c.name, p, c.pending)
		}
		for {
			n, left, err := st.RecompressSealed(ctx, 1000)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if n == 0 || left == 0 {
				break
			}
		}
		if n := st.SealedRecords(); n == 0 {
			t.Errorf("%s: the sealed records are gone", c.name)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
