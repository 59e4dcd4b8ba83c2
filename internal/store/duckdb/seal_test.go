package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"hash/crc32"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// memSink keeps sealed blocks in memory, one segment.
type memSink struct {
	mu     sync.Mutex
	data   []byte
	writes int
	fail   error
}

func (m *memSink) Write(blocks [][]byte) ([]sealed.Loc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.writes++
	locs := make([]sealed.Loc, len(blocks))
	for i, b := range blocks {
		locs[i] = sealed.Loc{Seg: 1, Off: int64(len(m.data)), Len: uint32(len(b)), CRC: crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))}
		m.data = append(m.data, b...)
	}
	return locs, nil
}

func (m *memSink) read(l sealed.Loc) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data[l.Off:l.End()])
}

// TestCompactSeals: a compaction with a seal plan moves the records of the
// days before the plan's into sealed blocks, and leaves the others in
// events. Every record is in exactly one of the two, byte for byte, with
// its sequence number; a block is one account, region, category and day;
// the blocks' key_xor add up to the sealed records' keys.
func TestCompactSeals(t *testing.T) {
	ctx := context.Background()
	commitRows, writeBytes, pieceRows, sealBytes := compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes
	compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes = 100, 64<<10, 30, 16<<10
	t.Cleanup(func() {
		compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes = commitRows, writeBytes, pieceRows, sealBytes
	})
	batches := liveFilled()
	st, path := openTemp(t, batches...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// liveFilled's records are of 2025-03 and of 2026-12-01: seal every
	// day before 2026-11-30.
	before := sealed.Day(want[len(want)-1].Record.Time.Unix()) - 1
	sink := &memSink{}
	res, err := compact(ctx, path, Options{}, &sealPlan{sink: sink, before: before})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, n, _, err := loadSealed(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	// The file holds no free blocks (the sealed hours' index rows are
	// not copied, rather than copied and deleted).
	var free, indexed int64
	if err := db.QueryRow(`SELECT free_blocks FROM pragma_database_size()`).Scan(&free); err != nil {
		t.Fatal(err)
	}
	if free != 0 {
		t.Errorf("%d free blocks in the compacted file", free)
	}
	if err := db.QueryRow(`SELECT coalesce(sum(n), 0) FROM bucket_index_v1`).Scan(&indexed); err != nil {
		t.Fatal(err)
	}
	var hot int64
	if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&hot); err != nil {
		t.Fatal(err)
	}
	if res.Records != hot+n || res.Sealed != n {
		t.Errorf("Compact says %d records, %d sealed; the table holds %d, the blocks %d", res.Records, res.Sealed, hot, n)
	}
	bySeq := map[int64]audit.Record{}
	for _, a := range want {
		bySeq[a.Seq] = a.Record
	}
	dec, err := sealed.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	ids := map[int64]bool{}
	for _, m := range ms {
		if ids[m.ID] {
			t.Fatalf("block id %d twice", m.ID)
		}
		ids[m.ID] = true
		if m.Day >= before {
			t.Errorf("block %d of day %d sealed, the plan says before %d", m.ID, m.Day, before)
		}
		es, err := dec.Decode(sink.read(m.Loc), m)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			w, ok := bySeq[e.Seq]
			if !ok || seen[e.Seq] {
				t.Fatalf("block %d: record %d unknown or sealed twice", m.ID, e.Seq)
			}
			seen[e.Seq] = true
			if !bytes.Equal(w.Raw, e.Record.Raw) || w.EventID != e.Record.EventID || !w.Time.Equal(e.Record.Time) ||
				w.Account != e.Record.Account || w.Region != e.Record.Region || w.EventName != e.Record.EventName {
				t.Fatalf("record %d sealed differs", e.Seq)
			}
			if sealed.Day(w.Time.Unix()) != m.Day || (sealed.Part{Account: w.Account, Region: w.Region, Category: w.Category}) != m.Part {
				t.Fatalf("record %d in block %d of another part or day", e.Seq, m.ID)
			}
		}
	}
	rows, err := db.Query(`SELECT seq, event_time FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq, at int64
		if err := rows.Scan(&seq, &at); err != nil {
			t.Fatal(err)
		}
		if seen[seq] {
			t.Fatalf("record %d both sealed and in events", seq)
		}
		if sealed.Day(at) < before {
			t.Errorf("record %d of day %d left in events", seq, sealed.Day(at))
		}
		seen[seq] = true
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if indexed != hot {
		t.Errorf("the bucket index counts %d records, the table holds %d", indexed, hot)
	}
	if len(seen) != len(want) || n+hot != int64(len(want)) {
		t.Fatalf("%d records sealed or hot (%d + %d), want %d", len(seen), n, hot, len(want))
	}
	if n == 0 || hot == 0 || len(ms) < 4 {
		t.Fatalf("%d sealed in %d blocks, %d hot: the test seals nothing or everything", n, len(ms), hot)
	}
	if sink.writes < 2 {
		t.Errorf("%d writes to the sink; the test wants several", sink.writes)
	}
}

// TestCompactSealFailureLeavesTheStore: a sink that fails stops the
// compaction before its rename; the store is as it was.
func TestCompactSealFailureLeavesTheStore(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t, liveFilled()...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sink := &memSink{fail: errSinkDown}
	if _, err := compact(ctx, path, Options{}, &sealPlan{sink: sink, before: sealed.Day(want[len(want)-1].Record.Time.Unix())}); err == nil {
		t.Fatal("compact with a failing sink succeeded")
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records after a failed seal, want %d", len(got), len(want))
	}
}

var errSinkDown = errorString("the sink is down")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestCompactSealsThroughSegments: Options.Seal seals into the store's
// segments (PATH.sealed); the store opened after holds every record once,
// answers from both tiers, and did not rebuild its bucket index. A
// compaction stopped before its rename (as a crash) leaves the store as it
// was, and the bytes it wrote are cut at the next Open.
func TestCompactSealsThroughSegments(t *testing.T) {
	ctx := context.Background()
	batches := liveFilled()
	st, path := openTemp(t, batches...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// liveFilled's newest records are of 2026-12-01: a clock of
	// 2026-12-01 12:00 seals every day before 2026-11-30.
	now := func() time.Time { return time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC) }
	compactHook = func() error { return errors.New("crash") }
	_, err = Compact(ctx, path, Options{Seal: true, Now: now})
	compactHook = nil
	if err == nil {
		t.Fatal("the compaction stopped before its rename succeeded")
	}
	written := segmentBytes(t, path)
	if written == 0 {
		t.Fatal("the stopped compaction wrote no sealed block")
	}
	st, err = Open(path, Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if n := st.SealedRecords(); n != 0 {
		t.Fatalf("%d records sealed after a stopped compaction", n)
	}
	if b := segmentBytes(t, path); b != 0 {
		t.Errorf("%d bytes of segments left after Open; want the stopped compaction's %d cut", b, written)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(ctx, path, Options{Seal: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	st, err = Open(path, Options{Now: now, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if strings.Contains(log.String(), "rebuilding the bucket index") {
		t.Errorf("Open after a seal rebuilt the bucket index:\n%s", log.String())
	}
	sealedN := st.SealedRecords()
	if sealedN == 0 || sealedN == len(want) {
		t.Fatalf("%d of %d records sealed; want some", sealedN, len(want))
	}
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(want, got, storetest.EquateRecords); diff != "" {
		t.Errorf("the feed after sealing (-before +after):\n%s", diff)
	}
	// Every record by its event ID, and every record again a duplicate.
	for _, a := range want {
		r := a.Record
		p, err := st.Lookup(ctx, audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 5,
			Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: r.EventID}}})
		if err != nil || len(p.Records) != 1 || !bytes.Equal(p.Records[0].Raw, r.Raw) {
			t.Fatalf("lookup of %s: %d records, %v", r.EventID, len(p.Records), err)
		}
	}
	all := make([]audit.Record, len(want))
	for i := range want {
		all[i] = want[i].Record
	}
	// Pages across both tiers, for one account and for every account.
	for _, anyAccount := range []bool{false, true} {
		for _, limit := range []int{1, 3, 7, 50} {
			q := audit.Query{Account: all[0].Account, AnyAccount: anyAccount, Region: all[0].Region, Category: all[0].Category, Limit: limit}
			checkPaging(t, st, q, all)
		}
	}
	res, err := st.Append(ctx, all)
	if err != nil || res.Inserted != 0 || res.Duplicates != len(all) {
		t.Errorf("appending every record again = %+v, %v; want all duplicates", res, err)
	}
	if last, _ := st.LastSeq(ctx); last != want[len(want)-1].Seq {
		t.Errorf("LastSeq = %d, want %d", last, want[len(want)-1].Seq)
	}
}

// TestSealedSegmentsMissing: a store whose rows reference sealed blocks
// does not open without their segments.
func TestSealedSegmentsMissing(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t, liveFilled()...)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(ctx, path, Options{Seal: true}); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(path + sealedSuffix); err != nil {
		t.Fatal(err)
	}
	if st, err := Open(path, Options{}); err == nil {
		st.Close()
		t.Fatal("a store without its sealed blocks' segments opened")
	}
}

func segmentBytes(t *testing.T, path string) int64 {
	t.Helper()
	ents, err := os.ReadDir(path + sealedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// TestSealedAndHotSameSeconds: records of a sealed day that arrive later
// stay in the table, many in the very seconds of sealed ones; pages of
// every size, for one account and every account, merge the two tiers in
// the lookups' order (time, event ID, account) without losing or
// repeating a record.
func TestSealedAndHotSameSeconds(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)
	g := storetest.NewGen(41, base)
	mk := func(n int) []audit.Record {
		var recs []audit.Record
		for i := range n {
			s := storetest.Spec{Time: base.Add(time.Duration(i%9) * time.Second)}
			if i%4 == 1 {
				s.Account = "222222222222"
			}
			recs = append(recs, g.Record(s))
		}
		return recs
	}
	first, later := mk(60), mk(60)
	st, path := openTemp(t, first)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Compact(ctx, path, Options{Seal: true}); err != nil {
		t.Fatal(err)
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Append(ctx, later); err != nil {
		t.Fatal(err)
	}
	if n := st.SealedRecords(); n != len(first) {
		t.Fatalf("%d records sealed, want %d", n, len(first))
	}
	all := append(slices.Clone(first), later...)
	for _, anyAccount := range []bool{false, true} {
		for limit := 1; limit <= 13; limit++ {
			q := audit.Query{Account: "111111111111", AnyAccount: anyAccount, Region: all[0].Region, Category: audit.CategoryManagement, Limit: limit}
			checkPaging(t, st, q, all)
		}
	}
}

// checkPaging pages through q to its end and checks the records are
// those of all that q matches, in the lookups' order, none lost or
// repeated.
func checkPaging(t *testing.T, st *Store, q audit.Query, all []audit.Record) {
	t.Helper()
	var ref []audit.Record
	for i := range all {
		if q.Matches(&all[i]) {
			ref = append(ref, all[i])
		}
	}
	slices.SortFunc(ref, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
	if len(ref) < 20 {
		t.Fatalf("%d records to page through: the test is wrong", len(ref))
	}
	var got []audit.Record
	for pages := 0; ; pages++ {
		p, err := st.Lookup(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p.Records...)
		if p.Next == nil || pages > len(all) {
			break
		}
		q.After = p.Next
	}
	if len(got) != len(ref) {
		t.Fatalf("any account %v, limit %d: %d records paged, want %d", q.AnyAccount, q.Limit, len(got), len(ref))
	}
	for i := range ref {
		if got[i].EventID != ref[i].EventID || got[i].Account != ref[i].Account {
			t.Fatalf("any account %v, limit %d: record %d is %s, want %s", q.AnyAccount, q.Limit, i, got[i].EventID, ref[i].EventID)
		}
	}
}
