package duckdb

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// serveNow is the clock of the serving stores below: the days before
// 2026-11-30 are complete a day before it.
var serveNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// serveBatches returns batches as a server's import brings them: each of
// records of 2025 in two accounts over 30 hours (most parts and days with
// enough records to seal, some not), records of the server's own day
// (never sealed), and copies of the batch before (duplicates of a stage
// still committing).
func serveBatches(t *testing.T, n int) [][]audit.Record {
	sh := storetest.NewShapes(t, 41)
	g := storetest.NewGen(43, serveNow)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(7, 8))
	var batches [][]audit.Record
	for i := range n {
		from := base.Add(time.Duration(i) * 20 * time.Hour)
		b := sh.Records(300, from, from.Add(30*time.Hour), "111111111111", "eu-west-1")
		b = append(b, sh.Records(100, from, from.Add(30*time.Hour), "222222222222", "us-east-1")...)
		for j := range 5 {
			b = append(b, g.Record(storetest.Spec{Time: serveNow.Add(time.Duration(i*5+j) * time.Second), Account: "111111111111", Region: "eu-west-1"}))
		}
		if i > 0 {
			for range 20 {
				b = append(b, batches[i-1][rng.IntN(len(batches[i-1]))])
			}
		}
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		batches = append(batches, b)
	}
	return batches
}

// uniqueOf returns the first copy of each record of batches, in order.
func uniqueOf(batches [][]audit.Record) []audit.Record {
	var unique []audit.Record
	seen := map[string]bool{}
	for _, b := range batches {
		for _, r := range b {
			if k := r.Account + "/" + r.EventID; !seen[k] {
				seen[k] = true
				unique = append(unique, r)
			}
		}
	}
	return unique
}

// openServing opens a store at path as cairn serve does (StagedAppends
// and Seal), with the clock now.
func openServing(t *testing.T, path string, now func() time.Time, tailBytes int64) *Store {
	t.Helper()
	st, err := Open(path, Options{Cold: true, StagedAppends: true, Seal: true, Now: now, CheckpointCommits: 3, TailBytes: tailBytes})
	if err != nil {
		t.Fatal(err)
	}
	if st.impSeal == nil || !st.impSeal.serving {
		t.Fatal("a serving store opened with Seal does not seal")
	}
	return st
}

// stageServing appends batches as the ingest pipeline's writer does:
// each reserved while the one before commits. It returns each batch's
// inserted flags and the first error.
func stageServing(st *Store, batches [][]audit.Record) ([][]bool, error) {
	ctx := context.Background()
	got := make([][]bool, len(batches))
	var (
		prev  chan error
		first error
	)
	for i, b := range batches {
		commit, err := st.StageEach(b)(ctx)
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		done := make(chan error, 1)
		go func() {
			ins, err := commit(ctx)
			got[i] = ins
			done <- err
		}()
		if prev != nil {
			first = cmpErr(first, <-prev)
		}
		prev = done
	}
	if prev != nil {
		first = cmpErr(first, <-prev)
	}
	return got, first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// checkFeedOnce checks that ReadAppended and ReadRaw, read in pages of
// page, give unique's records each once, numbered 1..n.
func checkFeedOnce(t *testing.T, st *Store, unique []audit.Record, page int, when string) {
	t.Helper()
	ctx := context.Background()
	byKey := map[string]audit.Record{}
	for _, r := range unique {
		byKey[r.Account+"/"+r.EventID] = r
	}
	var after int64
	seen := map[string]bool{}
	for {
		recs, err := st.ReadAppended(ctx, after, page)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := st.ReadRaw(ctx, after, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != len(recs) {
			t.Fatalf("%s: after %d ReadRaw gave %d records, ReadAppended %d", when, after, len(raw), len(recs))
		}
		if len(recs) == 0 {
			break
		}
		for i, a := range recs {
			if a.Seq != after+1 {
				t.Fatalf("%s: the feed gives %d after %d", when, a.Seq, after)
			}
			after = a.Seq
			k := a.Record.Account + "/" + a.Record.EventID
			w, ok := byKey[k]
			if !ok || seen[k] {
				t.Fatalf("%s: the feed gives %s (stored %v, seen before %v)", when, k, ok, seen[k])
			}
			seen[k] = true
			if !bytes.Equal(a.Record.Raw, w.Raw) || raw[i].Seq != a.Seq || !bytes.Equal(raw[i].Raw, w.Raw) {
				t.Fatalf("%s: the feed's record %d (%s) differs from the one appended", when, a.Seq, k)
			}
		}
	}
	if len(seen) != len(unique) {
		t.Fatalf("%s: the feed gives %d records, want %d", when, len(seen), len(unique))
	}
}

// checkServed checks what a serving store that sealed answers: the feed
// (through the tail, and without it through both tiers), every record by
// each of its attributes, every page of the parts' lookups and every
// record a duplicate when appended again.
func checkServed(t *testing.T, st *Store, unique []audit.Record, when string) {
	t.Helper()
	for _, page := range []int{7, 1000} {
		checkFeedOnce(t, st, unique, page, when)
	}
	checkNamedLookups(t, st, unique)
	for _, limit := range []int{1, 7, 50} {
		checkPaging(t, st, audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: limit}, unique)
	}
	// Without the tail: the table and the sealed tier.
	st.tail.clear()
	checkFeedOnce(t, st, unique, 50, when+", tail empty")
	checkNamedLookups(t, st, unique)
	stored, err := st.StoredKeys(context.Background(), unique)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range stored {
		if !ok {
			t.Fatalf("%s: StoredKeys: %s not stored", when, unique[i].EventID)
		}
	}
}

// countRows returns the events table's rows.
func countRows(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	if err := st.db.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestServeSeals: a serving store (cairn serve's: StagedAppends and Seal)
// seals the records of complete days its staged batches bring, when a
// batch holds enough of a part and day, and keeps the rest (today's, and
// the few of a part and day) in the table; it answers as a store that
// sealed nothing: the same inserted flags, the feed every record once in
// sequence order (through the tail and through both tiers), every record
// by each kind of attribute, every page, every record a duplicate when
// appended again, before and after a reopen; its blocks are pending and
// RecompressSealed encodes them again; retention removes its blocks and
// later stages seal on.
func TestServeSeals(t *testing.T) {
	ctx := context.Background()
	batches := serveBatches(t, 8)
	unique := uniqueOf(batches)
	dir := t.TempDir()
	ref, err := Open(filepath.Join(dir, "ref.duckdb"), Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	var wantIns [][]bool
	for _, b := range batches {
		ins, err := ref.AppendEach(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		wantIns = append(wantIns, ins)
	}
	// Each batch received a minute after the one before (retention below).
	var clock atomic.Int64
	clock.Store(serveNow.Unix())
	now := func() time.Time { return time.Unix(clock.Load(), 0) }
	path := filepath.Join(dir, "events.duckdb")
	st := openServing(t, path, now, 0)
	got := make([][]bool, len(batches))
	// Two batches at a time, so that one reserves while the other commits.
	for i := 0; i < len(batches); i += 2 {
		ins, err := stageServing(st, batches[i:i+2])
		if err != nil {
			t.Fatal(err)
		}
		copy(got[i:], ins)
		clock.Add(60)
	}
	for i := range batches {
		if !slices.Equal(got[i], wantIns[i]) {
			t.Fatalf("batch %d: staged with sealing inserted %v; AppendEach %v", i, got[i], wantIns[i])
		}
	}
	sealedN, rows := st.SealedRecords(), countRows(t, st)
	if sealedN == 0 || rows == 0 || sealedN+rows != len(unique) {
		t.Fatalf("%d records sealed, %d rows; want both, %d in all", sealedN, rows, len(unique))
	}
	today := 0
	for _, r := range unique {
		if r.Time.After(serveNow.Add(-36 * time.Hour)) {
			today++
		}
	}
	if rows < today {
		t.Fatalf("%d rows; today's %d records must all be rows", rows, today)
	}
	checkKeyXor(t, st)
	checkServed(t, st, unique, "after the stages")
	if again, err := stageServing(st, batches); err != nil {
		t.Fatal(err)
	} else {
		for i, b := range again {
			if slices.Contains(b, true) {
				t.Fatalf("appended again: batch %d inserted records", i)
			}
		}
	}
	blocks := st.sealed.dir.Len()
	if p := st.PendingSealed(); p != blocks || blocks == 0 {
		t.Fatalf("%d blocks pending of %d; want all", p, blocks)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openServing(t, path, now, 0)
	defer func() { st.Close() }()
	if p := st.PendingSealed(); p != blocks {
		t.Fatalf("after a reopen %d blocks pending; want %d", p, blocks)
	}
	if again, err := stageServing(st, batches); err != nil {
		t.Fatal(err)
	} else {
		for i, b := range again {
			if slices.Contains(b, true) {
				t.Fatalf("appended again after a reopen: batch %d inserted records", i)
			}
		}
	}
	checkServed(t, st, unique, "after a reopen")
	for range 100 {
		_, left, err := st.RecompressSealed(ctx, 16)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
	}
	if p := st.PendingSealed(); p != 0 {
		t.Fatalf("%d blocks pending after RecompressSealed", p)
	}
	checkBlockLevel(t, st, "sealed.Level", sealed.NewEncoder)
	checkServed(t, st, unique, "after the recompression")

	// Retention: the first two stages' records (received at serveNow)
	// go, the blocks among them too; stages after it seal on, with
	// block IDs of their own.
	n, err := st.DeleteReceivedBefore(ctx, serveNow.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var kept []audit.Record
	firstTwo := uniqueOf(batches[:2])
	gone := map[string]bool{}
	for _, r := range firstTwo {
		gone[r.Account+"/"+r.EventID] = true
	}
	for _, r := range unique {
		if !gone[r.Account+"/"+r.EventID] {
			kept = append(kept, r)
		}
	}
	if int(n) != len(firstTwo) {
		t.Fatalf("retention removed %d records; want %d", n, len(firstTwo))
	}
	more := serveBatches(t, 10)[8:]
	// Not copies of the batches before (those are gone or stored).
	for i := range more {
		more[i] = slices.DeleteFunc(slices.Clone(more[i]), func(r audit.Record) bool {
			for _, u := range unique {
				if u.EventID == r.EventID {
					return true
				}
			}
			return false
		})
	}
	before := st.SealedRecords()
	if _, err := stageServing(st, more); err != nil {
		t.Fatal(err)
	}
	if st.SealedRecords() <= before {
		t.Fatal("the stages after retention sealed nothing")
	}
	var ids []int64
	if err := func() error {
		rows, err := st.db.Query(`SELECT id FROM sealed_blocks ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	}(); err != nil {
		t.Fatal(err)
	}
	if len(ids) != st.sealed.dir.Len() || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("sealed_blocks holds %d rows (%d IDs), the directory %d blocks", len(ids), len(slices.Compact(ids)), st.sealed.dir.Len())
	}
	all := append(kept, uniqueOf(more)...)
	checkKeyXor(t, st)
	checkFeedAfter(t, st, all)
	checkNamedLookups(t, st, all)
}

// checkFeedAfter checks the feed holds all's records each once, in
// ascending sequence numbers (retention leaves gaps).
func checkFeedAfter(t *testing.T, st *Store, all []audit.Record) {
	t.Helper()
	feed, err := st.ReadAppended(context.Background(), 0, 10*len(all))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, a := range feed {
		if i > 0 && a.Seq <= feed[i-1].Seq {
			t.Fatalf("the feed gives %d after %d", a.Seq, feed[i-1].Seq)
		}
		seen[a.Record.Account+"/"+a.Record.EventID] = true
	}
	if len(feed) != len(all) || len(seen) != len(all) {
		t.Fatalf("the feed gives %d records (%d distinct); want %d", len(feed), len(seen), len(all))
	}
}

// TestServeSealTailBuckets: the tail keeps a stage's sealed records for
// the feed but not in its buckets, which answer lookups only while they
// hold as many records of a bucket as the bucket index counts, and the
// index does not count sealed records. A bucket whose 70 hot records were
// stored before a restart and that then gets 70 sealed ones is answered
// from the table and the sealed tier: counted in the tail's bucket, the
// sealed 70 would pass for the bucket's hot 70, and a lookup would give
// them twice and the hot ones never.
func TestServeSealTailBuckets(t *testing.T) {
	hour := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	g := storetest.NewGen(47, hour)
	var recs []audit.Record
	for i := range 140 {
		recs = append(recs, g.Record(storetest.Spec{Time: hour.Add(time.Duration(i) * 20 * time.Second),
			Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, EventName: "GetObject"}))
	}
	path := filepath.Join(t.TempDir(), "events.duckdb")
	hot, err := Open(path, Options{Cold: true, StagedAppends: true, Now: func() time.Time { return serveNow }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stageServing(hot, [][]audit.Record{recs[:70]}); err != nil {
		t.Fatal(err)
	}
	if err := hot.Close(); err != nil {
		t.Fatal(err)
	}
	st := openServing(t, path, func() time.Time { return serveNow }, 0)
	defer st.Close()
	if _, err := stageServing(st, [][]audit.Record{recs[70:]}); err != nil {
		t.Fatal(err)
	}
	if n := st.SealedRecords(); n != 70 {
		t.Fatalf("%d records sealed; want the second 70", n)
	}
	for _, q := range []audit.Query{
		{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50},
		{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50,
			Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: "GetObject"}}},
		{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 1000,
			Start: hour, End: hour.Add(time.Hour)},
	} {
		q.Start, q.End = time.Unix(0, 0), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		if g, w := ids(lookupAll(t, st, q)), ids(want(recs, q)); !slices.Equal(g, w) {
			t.Fatalf("%v: %d records (%d distinct); want %d", q.Attributes, len(g), len(slices.Compact(slices.Sorted(slices.Values(g)))), len(w))
		}
	}
	checkFeedOnce(t, st, recs, 100, "the bucket")
}

// TestServeSealCrash: a stage stopped after its sealed blocks' bytes are
// in the segments and their rows in its transaction, before its COMMIT
// (as a crash stops it), stores nothing: the bytes are cut at the next
// Open (Segments.Recover), its records are not in the store, and
// appended again (the journal's replay) they are stored once.
func TestServeSealCrash(t *testing.T) {
	batches := serveBatches(t, 3)
	path := filepath.Join(t.TempDir(), "events.duckdb")
	now := func() time.Time { return serveNow }
	st := openServing(t, path, now, 0)
	if _, err := stageServing(st, batches[:1]); err != nil {
		t.Fatal(err)
	}
	sealed0 := st.SealedRecords()
	if sealed0 == 0 {
		t.Fatal("the first batch sealed nothing")
	}
	segs0 := segFileBytes(t, path)
	errStop := errors.New("stopped before the COMMIT")
	stageSealedHook = func() error { return errStop }
	_, err := stageServing(st, batches[1:2])
	stageSealedHook = nil
	if !errors.Is(err, errStop) {
		t.Fatalf("the stopped stage returned %v", err)
	}
	if segFileBytes(t, path) <= segs0 {
		t.Fatal("the stopped stage wrote no segment bytes: the test does not cover them")
	}
	if n := st.SealedRecords(); n != sealed0 {
		t.Fatalf("%d records sealed after the stopped stage; want %d", n, sealed0)
	}
	checkFeedOnce(t, st, uniqueOf(batches[:1]), 100, "after the stopped stage")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = openServing(t, path, now, 0)
	defer func() { st.Close() }()
	if got := segFileBytes(t, path); got != segs0 {
		t.Fatalf("segments hold %d bytes after the reopen; want %d (the stopped stage's cut)", got, segs0)
	}
	checkFeedOnce(t, st, uniqueOf(batches[:1]), 100, "after the reopen")
	// The journal's replay: the stopped batch again, then the next.
	if _, err := stageServing(st, batches[1:]); err != nil {
		t.Fatal(err)
	}
	checkServed(t, st, uniqueOf(batches), "after the replay")
}

// TestServeSealConcurrentReaders: while a serving store's stages seal
// and commit, a reader following the feed gets every record once, in
// sequence order, with the tail and without it (through both tiers,
// where a stage may commit between the two reads), and lookups paging
// a part never give a record twice. Run with -race.
func TestServeSealConcurrentReaders(t *testing.T) {
	for _, c := range []struct {
		name string
		tail int64
	}{{"tail", 0}, {"no tail", -1}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			batches := serveBatches(t, 10)
			unique := uniqueOf(batches)
			st := openServing(t, filepath.Join(t.TempDir(), "events.duckdb"), func() time.Time { return serveNow }, c.tail)
			defer st.Close()
			var wg sync.WaitGroup
			done := make(chan struct{})
			fail := make(chan string, 4)
			wg.Go(func() {
				var after int64
				seen := map[string]bool{}
				for len(seen) < len(unique) {
					recs, err := st.ReadAppended(ctx, after, 37)
					if err != nil {
						fail <- err.Error()
						return
					}
					for _, a := range recs {
						k := a.Record.Account + "/" + a.Record.EventID
						if a.Seq != after+1 || seen[k] {
							fail <- "the feed gave a record out of order or twice"
							return
						}
						after, seen[k] = a.Seq, true
					}
					if len(recs) == 0 {
						time.Sleep(time.Millisecond)
					}
				}
			})
			wg.Go(func() {
				for {
					select {
					case <-done:
						return
					default:
					}
					q := audit.Query{Account: "111111111111", Region: "eu-west-1", Category: audit.CategoryManagement, Limit: 50,
						Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
					got := map[string]bool{}
					for range 1000 {
						p, err := st.Lookup(ctx, q)
						if err != nil {
							fail <- err.Error()
							return
						}
						for _, r := range p.Records {
							if got[r.EventID] {
								fail <- "a lookup's pages gave " + r.EventID + " twice"
								return
							}
							got[r.EventID] = true
						}
						if p.Next == nil {
							break
						}
						q.After = p.Next
					}
				}
			})
			for i := 0; i < len(batches); i += 2 {
				if _, err := stageServing(st, batches[i:i+2]); err != nil {
					t.Fatal(err)
				}
			}
			close(done)
			wg.Wait()
			close(fail)
			for f := range fail {
				t.Error(f)
			}
			if st.SealedRecords() == 0 {
				t.Fatal("nothing sealed")
			}
			checkServed(t, st, unique, "after the stages")
		})
	}
}

// stagingStore appends through StageEach, as a server's ingest pipeline
// does, so that a serving store seals (TestConformanceServeSealed); one
// batch at a time, as the pipeline's one writer stages them (stages
// committed out of their order would wait for each other's connections).
type stagingStore struct {
	*Store
	mu *sync.Mutex
}

func (s stagingStore) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var res audit.AppendResult
	commit, err := s.StageEach(recs)(ctx)
	if err != nil {
		return res, err
	}
	ins, err := commit(ctx)
	if err != nil {
		return res, err
	}
	for _, ok := range ins {
		if ok {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	return res, nil
}

// TestConformanceServeSealed runs the conformance suite over a serving
// store that seals in its staged appends, every part and day however few
// (serveMinRun 1): storetest's records are of 2020 to 2024, complete days,
// so each subtest's records are sealed as they are appended, beside the
// today's records some subtests append.
func TestConformanceServeSealed(t *testing.T) {
	serveMinRun = 1
	t.Cleanup(func() { serveMinRun = 64 })
	var sealedN atomic.Int64
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		st, err := Open(filepath.Join(dir, "events.duckdb"), Options{StagedAppends: true, Seal: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sealedN.Add(int64(st.SealedRecords())) })
		return stagingStore{st, &sync.Mutex{}}
	})
	if sealedN.Load() == 0 {
		t.Error("no record was sealed")
	}
	t.Logf("%d records sealed", sealedN.Load())
}

// segFileBytes returns the bytes of the store's segment files (not the
// pending list beside them).
func segFileBytes(t *testing.T, path string) int64 {
	t.Helper()
	ents, err := os.ReadDir(path + sealedSuffix)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".seg") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
