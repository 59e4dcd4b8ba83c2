package duckdb

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestStagedAppends: an import's batches staged (StageEach: each batch
// reserved while the one before still commits) store what the same
// batches appended one by one (AppendEach) store: the same inserted
// flags, duplicates of a batch still committing caught, the same rows
// with the same sequence numbers and record blocks, records byte for byte,
// and lookups by attribute that find every record (the bucket filters
// that outgrew their size meanwhile rebuilt once the stages committed).
// Importing the batches again stages nothing.
func TestStagedAppends(t *testing.T) {
	sh := storetest.NewShapes(t, 23)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	var batches [][]audit.Record
	var prev []audit.Record
	for i := range 8 {
		// Each batch's hours overlap the batch before's, so that hours
		// fill across batches and their filters outgrow their size.
		from := base.Add(time.Duration(i) * 20 * time.Hour)
		b := sh.Records(400, from, from.Add(30*time.Hour), "111111111111", "eu-west-1")
		b = append(b, sh.Records(200, from, from.Add(30*time.Hour), "222222222222", "us-east-1")...)
		// Copies within the batch, of the batch before (still committing
		// when this one is reserved) and of the first batch.
		for range 10 {
			b = append(b, b[rng.IntN(len(b))])
		}
		if prev != nil {
			for range 25 {
				b = append(b, prev[rng.IntN(len(prev))])
			}
			for range 5 {
				b = append(b, batches[0][rng.IntN(len(batches[0]))])
			}
		}
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		batches = append(batches, b)
		prev = b
	}
	ctx := context.Background()
	open := func() (*Store, string) {
		path := filepath.Join(t.TempDir(), "events.duckdb")
		st, err := Open(path, Options{Cold: true})
		if err != nil {
			t.Fatal(err)
		}
		st.BeginImport()
		return st, path
	}

	one, _ := open()
	var wantIns [][]bool
	for _, b := range batches {
		ins, err := one.AppendEach(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		wantIns = append(wantIns, ins)
	}

	staged, stagedPath := open()
	if staged.staged == nil {
		t.Fatal("BeginImport: no staged writer")
	}
	stage := func(batches [][]audit.Record) [][]bool {
		got := make([][]bool, len(batches))
		errs := make(chan error, len(batches))
		for i, b := range batches {
			commit, err := staged.StageEach(b)(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Committed concurrently: the next batch is reserved while
			// this one appends and commits.
			go func() {
				ins, err := commit(ctx)
				got[i] = ins
				errs <- err
			}()
		}
		for range batches {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	got := stage(batches)
	for i := range batches {
		if !slices.Equal(got[i], wantIns[i]) {
			t.Fatalf("batch %d: staged inserted %v; AppendEach %v", i, got[i], wantIns[i])
		}
	}
	if a, b := one.InOrder(), staged.InOrder(); a != b {
		t.Errorf("InOrder: staged %v, AppendEach %v", b, a)
	}

	// The same rows, numbers and blocks.
	rowsOf := func(st *Store) []string {
		t.Helper()
		rows, err := st.db.Query(`SELECT seq::VARCHAR || account || region || category::VARCHAR || event_time::VARCHAR ||
			event_id || key_hash::VARCHAR || coalesce(event_name, '') || coalesce(event_source, '') || read_only::VARCHAR ||
			hex(record) || coalesce(akid_hash::VARCHAR, '') || coalesce(user_hash::VARCHAR, '') || coalesce(res_hashes::VARCHAR, '')
			FROM events ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		brows, err := st.db.Query(`SELECT id::VARCHAR || hex(data) FROM record_blocks ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		defer brows.Close()
		for brows.Next() {
			var s string
			if err := brows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, "block "+s)
		}
		return out
	}
	if a, b := rowsOf(one), rowsOf(staged); !slices.Equal(a, b) {
		t.Fatalf("staged rows (%d) differ from AppendEach's (%d)", len(b), len(a))
	}
	if len(staged.staged.regrow) == 0 {
		t.Fatal("no bucket filter outgrew its size: the test does not cover the rebuild")
	}

	// Every record, byte for byte, and found by its attributes after a
	// reopen (the index written at Close).
	var unique []audit.Record
	seen := map[string]bool{}
	for _, b := range batches {
		for _, r := range b {
			if !seen[r.EventID] {
				seen[r.EventID] = true
				unique = append(unique, r)
			}
		}
	}
	if err := staged.Close(); err != nil {
		t.Fatal(err)
	}
	if err := one.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Open(stagedPath, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkNamedLookups(t, st, unique)

	// Again: every record a duplicate, nothing staged.
	st.BeginImport()
	staged = st
	for i, ins := range stage(batches) {
		if slices.Contains(ins, true) {
			t.Fatalf("importing again: batch %d inserted records", i)
		}
	}
	if n, err := st.LastSeq(ctx); err != nil || n != int64(len(unique)) {
		t.Fatalf("LastSeq after importing again = %d, %v; want %d", n, err, len(unique))
	}
}

// TestStagedServingAppends: a serving store appending in stages
// (Options.StagedAppends, as `cairn serve` opens it: no BeginImport)
// stores what the same batches appended one by one store, rows, numbers
// and blocks alike; its feed (the tail) and its lookups find every record
// while it is open, its bucket index written before its checkpoints (the
// filters that outgrew their size rebuilt there) finds them after a
// reopen, and a stage that failed, and the one reserved after it, are
// appended again with AppendEach under the numbers they were given.
func TestStagedServingAppends(t *testing.T) {
	sh := storetest.NewShapes(t, 29)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(5, 6))
	var batches [][]audit.Record
	for i := range 10 {
		from := base.Add(time.Duration(i) * 20 * time.Hour)
		b := sh.Records(300, from, from.Add(30*time.Hour), "111111111111", "eu-west-1")
		b = append(b, sh.Records(100, from, from.Add(30*time.Hour), "222222222222", "us-east-1")...)
		if i > 0 {
			for range 20 { // copies of the batch before, still committing
				b = append(b, batches[i-1][rng.IntN(len(batches[i-1]))])
			}
		}
		rng.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
		batches = append(batches, b)
	}
	ctx := context.Background()
	open := func(staged bool) (*Store, string) {
		path := filepath.Join(t.TempDir(), "events.duckdb")
		st, err := Open(path, Options{Cold: true, StagedAppends: staged, CheckpointCommits: 3})
		if err != nil {
			t.Fatal(err)
		}
		return st, path
	}
	one, _ := open(false)
	defer one.Close()
	var wantIns [][]bool
	for _, b := range batches {
		ins, err := one.AppendEach(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		wantIns = append(wantIns, ins)
	}
	st, path := open(true)
	if st.staged == nil || st.bulk {
		t.Fatal("StagedAppends: no staged writer, or an import's")
	}
	// Each batch reserved while the one before commits, as the ingest
	// pipeline's writer stages them; batches 4 and 5 fail (4's commit
	// with a cancelled context, 5 because 4 did) and are appended again.
	got := make([][]bool, len(batches))
	var prev chan error
	for i, b := range batches {
		commit, err := st.StageEach(b)(ctx)
		if err != nil && i == 5 {
			// Reserved once 4 had failed: refused at once.
			commit = func(context.Context) ([]bool, error) { return nil, err }
		} else if err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
		cctx := ctx
		if i == 4 {
			c, cancel := context.WithCancel(ctx)
			cancel()
			cctx = c
		}
		done := make(chan error, 1)
		go func() {
			ins, err := commit(cctx)
			got[i] = ins
			done <- err
		}()
		if prev != nil {
			if err := <-prev; err != nil && i-1 != 4 && i-1 != 5 {
				t.Fatalf("batch %d: %v", i-1, err)
			}
		}
		prev = done
		if i == 5 {
			// 4 failed, 5 too: appended again, in order, before the rest.
			if err := <-done; err == nil {
				t.Fatal("the stage after a failed one committed")
			}
			prev = nil
			for _, j := range []int{4, 5} {
				if got[j], err = st.AppendEach(ctx, batches[j]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := <-prev; err != nil {
		t.Fatal(err)
	}
	for i := range batches {
		if !slices.Equal(got[i], wantIns[i]) {
			t.Fatalf("batch %d: staged inserted %v; AppendEach %v", i, got[i], wantIns[i])
		}
	}
	var unique []audit.Record
	seen := map[string]bool{}
	for _, b := range batches {
		for _, r := range b {
			if !seen[r.EventID] {
				seen[r.EventID] = true
				unique = append(unique, r)
			}
		}
	}
	// The feed: every record once, numbered 1..n in append order.
	feed, err := st.ReadAppended(ctx, 0, 2*len(unique))
	if err != nil {
		t.Fatal(err)
	}
	if len(feed) != len(unique) {
		t.Fatalf("ReadAppended: %d records; want %d", len(feed), len(unique))
	}
	for i, a := range feed {
		if a.Seq != int64(i+1) || a.Record.EventID != unique[i].EventID {
			t.Fatalf("ReadAppended[%d] = %d %s; want %d %s", i, a.Seq, a.Record.EventID, i+1, unique[i].EventID)
		}
	}
	checkNamedLookups(t, st, unique)
	if st.indexSeq == 0 {
		t.Fatal("no bucket index written before a checkpoint: the test does not cover it")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	re, err := Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	checkNamedLookups(t, re, unique)
	if n, err := re.LastSeq(ctx); err != nil || n != int64(len(unique)) {
		t.Fatalf("LastSeq after reopening = %d, %v; want %d", n, err, len(unique))
	}
}

// TestCloseWaitsForAStageCommitting: Close called while a serving store's
// stage is reserved and not yet committed waits for its commit (which
// takes rw for its COMMIT, so Close must not hold rw meanwhile), and the
// stage's records are stored.
func TestCloseWaitsForAStageCommitting(t *testing.T) {
	sh := storetest.NewShapes(t, 31)
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	recs := sh.Records(300, base, base.Add(5*time.Hour), "111111111111", "eu-west-1")
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{Cold: true, StagedAppends: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	commit, err := st.StageEach(recs)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	closed, committed := make(chan error, 1), make(chan error, 1)
	go func() { closed <- st.Close() }()
	time.Sleep(100 * time.Millisecond) // Close waiting, most likely
	go func() {
		_, err := commit(ctx)
		committed <- err
	}()
	for range 2 {
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case err := <-committed:
			if err != nil {
				t.Fatal(err)
			}
		case <-testwait.Context(t).Done():
			t.Fatal("Close and the stage's commit wait for each other")
		}
	}
	re, err := Open(path, Options{Cold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer re.Close()
	checkAll(t, re, recs)
}

// checkNamedLookups checks every lookup of unique's records (checkAll),
// then every EventName and Username lookup in both accounts the staged
// tests write, against want.
func checkNamedLookups(t *testing.T, st *Store, unique []audit.Record) {
	t.Helper()
	checkAll(t, st, unique)
	names := map[audit.Attribute]bool{}
	for _, r := range unique {
		names[audit.Attribute{Key: audit.AttrEventName, Value: r.EventName}] = true
		if r.Username != "" {
			names[audit.Attribute{Key: audit.AttrUsername, Value: r.Username}] = true
		}
	}
	for a := range names {
		for _, acct := range []struct{ a, r string }{{"111111111111", "eu-west-1"}, {"222222222222", "us-east-1"}} {
			q := audit.Query{Account: acct.a, Region: acct.r, Limit: 50, Attributes: []audit.Attribute{a},
				Start: time.Unix(0, 0), End: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
			if g, w := ids(lookupAll(t, st, q)), ids(want(unique, q)); !slices.Equal(g, w) {
				t.Fatalf("%s %v: %d records; want %d", acct.a, a, len(g), len(w))
			}
		}
	}
}
