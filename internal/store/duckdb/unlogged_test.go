package duckdb

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestUnloggedImportCrash: an offline import into a store opened without
// its write-ahead log (Options.Unlogged) writes no log, and a crash (the
// files copied as a SIGKILL leaves them, with committed transactions not
// checkpointed and the last one open) leaves the store as of its last
// checkpoint: as before the import when none was made since it began, or
// with the batches checkpointed during it; a store that Opens as a server
// opens it, whose records read back byte for byte, each once, and into
// which the same import run again adds exactly what is missing, and a third
// run nothing. Checkpoint makes every committed batch durable.
func TestUnloggedImportCrash(t *testing.T) {
	bigImport(t)
	batches, n := overRowGroup(t, 34)
	const before = 2 // batches imported (and the store closed) before the import that crashes
	nBefore := int64(len(batches[0]) + len(batches[1]))
	want := map[string][]byte{}
	for _, b := range batches {
		for _, r := range b {
			want[r.EventID] = r.Raw
		}
	}
	unlogged := Options{Cold: true, Unlogged: true}
	// readBack checks that st holds last records, each one of the
	// import's, byte for byte, once.
	readBack := func(t *testing.T, st *Store, last int64) {
		t.Helper()
		app, err := st.ReadAppended(context.Background(), 0, n+10)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(app)) != last {
			t.Fatalf("read back %d records; want %d", len(app), last)
		}
		seen := map[string]bool{}
		for _, a := range app {
			raw, ok := want[a.Record.EventID]
			if !ok || seen[a.Record.EventID] || !bytes.Equal(raw, a.Record.Raw) {
				t.Fatalf("record %s (seq %d) read back differs or twice", a.Record.EventID, a.Seq)
			}
			seen[a.Record.EventID] = true
		}
	}
	added := func(got [][]bool) int64 {
		var k int64
		for _, ins := range got {
			for _, ok := range ins {
				if ok {
					k++
				}
			}
		}
		return k
	}
	// importBefore makes the store the crashed import starts from.
	importBefore := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "events.duckdb")
		st, err := Open(path, unlogged)
		if err != nil {
			t.Fatal(err)
		}
		st.BeginImport()
		if _, err := stageGrouped(t, st, batches[:before], nil); err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name       string
		checkpoint bool // checkpoints during the import (every batch)
	}{
		{"no checkpoint since the import began", false},
		{"checkpoints during the import", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := importBefore(t)
			if tc.checkpoint {
				old := bulkCheckpointWAL
				bulkCheckpointWAL = 1
				t.Cleanup(func() { bulkCheckpointWAL = old })
			}
			st, err := Open(path, unlogged)
			if err != nil {
				t.Fatal(err)
			}
			st.BeginImport()
			crash := filepath.Join(t.TempDir(), "events.duckdb")
			got, err := stageGrouped(t, st, batches, func(committed []func() error) {
				// Every batch appended, the first transaction committed,
				// the last still open.
				if err := committed[0](); err != nil {
					t.Fatal(err)
				}
				if _, err := os.Stat(path + ".wal"); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("an unlogged import has a write-ahead log (%v)", err)
				}
				copyAsCrashed(t, path, crash)
			})
			if err != nil {
				t.Fatal(err)
			}
			if k := added(got); k != int64(n)-nBefore {
				t.Fatalf("the import added %d; want %d", k, int64(n)-nBefore)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}

			// After the crash, opened as a server opens it.
			cst, err := Open(crash, Options{Cold: true})
			if err != nil {
				t.Fatal(err)
			}
			defer cst.Close()
			last, err := cst.LastSeq(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !tc.checkpoint && last != nBefore {
				t.Errorf("after the crash LastSeq = %d; want %d, the store as before the import", last, nBefore)
			}
			if tc.checkpoint && (last <= nBefore || last >= int64(n)) {
				t.Errorf("after the crash LastSeq = %d; want the batches checkpointed, more than %d and less than %d", last, nBefore, n)
			}
			readBack(t, cst, last)
			cst.BeginImport()
			got, err = stageGrouped(t, cst, batches, nil)
			if err != nil {
				t.Fatal(err)
			}
			if k := added(got); k != int64(n)-last {
				t.Errorf("importing again after the crash added %d; want %d", k, int64(n)-last)
			}
			readBack(t, cst, int64(n))
			got, err = stageGrouped(t, cst, batches, nil)
			if err != nil {
				t.Fatal(err)
			}
			if k := added(got); k != 0 {
				t.Errorf("a third import added %d; want none", k)
			}
		})
	}
	t.Run("Checkpoint makes the import durable", func(t *testing.T) {
		path := importBefore(t)
		st, err := Open(path, unlogged)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		st.BeginImport()
		if _, err := stageGrouped(t, st, batches, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.Checkpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
		crash := filepath.Join(t.TempDir(), "events.duckdb")
		copyAsCrashed(t, path, crash)
		cst, err := Open(crash, Options{Cold: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cst.Close()
		readBack(t, cst, int64(n))
	})
}
