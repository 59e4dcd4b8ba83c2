package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func TestSetMemoryLimit(t *testing.T) {
	ctx := context.Background()
	st, _ := openTemp(t)
	if err := st.SetMemoryLimit(ctx, "300MB"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := st.db.QueryRowContext(ctx, `SELECT current_setting('memory_limit')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "286.1 MiB" && got != "300.0 MB" {
		t.Errorf("memory_limit = %q after SetMemoryLimit(300MB)", got)
	}
	for _, bad := range []string{"", "1GB'; DROP TABLE events; --", "-1GB", "lots", "512", "1TB"} {
		if err := st.SetMemoryLimit(ctx, bad); err == nil {
			t.Errorf("SetMemoryLimit(%q) accepted", bad)
		}
	}
}

// TestOpenMemoryLimit: Options.MemoryLimit holds from the first query on,
// on every connection of the pool, until SetMemoryLimit changes it (a
// connection the pool opens after that keeps the new value); a value that
// is not a size is refused by Open.
func TestOpenMemoryLimit(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{MemoryLimit: "300MB"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	limits := func() map[string]bool {
		// Connections held at once: the pool opens new ones.
		seen := map[string]bool{}
		var conns []*sql.Conn
		for range 4 {
			c, err := st.db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			var got string
			if err := c.QueryRowContext(ctx, `SELECT current_setting('memory_limit')`).Scan(&got); err != nil {
				t.Fatal(err)
			}
			seen[got] = true
		}
		for _, c := range conns {
			c.Close()
		}
		return seen
	}
	if got := limits(); len(got) != 1 || !got["286.1 MiB"] && !got["300.0 MB"] {
		t.Errorf("memory_limit after Open(MemoryLimit: 300MB) = %v", got)
	}
	if err := st.SetMemoryLimit(ctx, "200MB"); err != nil {
		t.Fatal(err)
	}
	st.db.SetMaxIdleConns(0) // the next connections are new ones
	st.db.SetMaxIdleConns(2)
	if got := limits(); len(got) != 1 || !got["190.7 MiB"] && !got["200.0 MB"] {
		t.Errorf("memory_limit after SetMemoryLimit(200MB) = %v", got)
	}
	for _, bad := range []string{"1GB'; DROP TABLE events; --", "lots", "512"} {
		if st, err := Open(filepath.Join(t.TempDir(), "x.duckdb"), Options{MemoryLimit: bad}); err == nil {
			st.Close()
			t.Errorf("Open(MemoryLimit: %q) accepted", bad)
		}
	}
}

// TestImportMemory: during an import (BeginImport) the store keeps no
// tail and checkpoints once the log passes bulkCheckpointWAL, so that what
// DuckDB holds unwritten stays bounded; MemoryUse reports each part, and
// the records read back from the table as they were appended.
func TestImportMemory(t *testing.T) {
	defer func(v int64) { bulkCheckpointWAL = v }(bulkCheckpointWAL)
	bulkCheckpointWAL = 256 << 10
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sh := storetest.NewShapes(t, 3)
	first := sh.Records(200, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC), "111111111111", "eu-west-1")
	if _, err := st.Append(ctx, first); err != nil {
		t.Fatal(err)
	}
	u, err := st.MemoryUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Tail == 0 || u.KeyFilter == 0 || u.BucketIndex == 0 || u.Buckets == 0 || u.DuckDBTotal <= 0 {
		t.Fatalf("MemoryUse after a live append = %+v: want every part counted", u)
	}
	st.BeginImport()
	if u, _ := st.MemoryUse(ctx); u.Tail != 0 {
		t.Fatalf("tail after BeginImport: %d bytes", u.Tail)
	}
	all := first
	for i := range 10 {
		from := time.Date(2025, 3, 2+i, 0, 0, 0, 0, time.UTC)
		b := sh.Records(500, from, from.Add(24*time.Hour), "111111111111", "eu-west-1")
		all = append(all, b...)
		if _, err := st.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
		if n := st.walSize(); n > bulkCheckpointWAL+4<<20 {
			t.Fatalf("append %d: log %d bytes, past the import's checkpoint size %d and one batch", i, n, bulkCheckpointWAL)
		}
	}
	u, err = st.MemoryUse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Tail != 0 || u.Partitions != 1 {
		t.Errorf("MemoryUse during an import = %+v: want no tail and one partition", u)
	}
	got, err := st.ReadAppended(ctx, 0, len(all)+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("ReadAppended: %d records, want %d", len(got), len(all))
	}
	raws := map[string]bool{}
	for _, r := range all {
		raws[string(r.Raw)] = true
	}
	for _, a := range got {
		if !raws[string(a.Record.Raw)] {
			t.Fatalf("record %d read back differs from every appended one", a.Seq)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MemoryUse(ctx); err == nil {
		t.Error("MemoryUse after Close: no error")
	}
}

// TestSpillBesideStore: what DuckDB spills at its memory limit goes to
// PATH.tmp beside the store, not to the process's working directory
// (where the in-memory database the file is attached to would put it:
// ".tmp"); an offline import spilled there, wherever cairn was started.
func TestSpillBesideStore(t *testing.T) {
	ctx := context.Background()
	cwd := t.TempDir()
	t.Chdir(cwd)
	path := filepath.Join(t.TempDir(), "events.duckdb")
	st, err := Open(path, Options{MemoryLimit: "16MB"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var dir string
	if err := st.db.QueryRowContext(ctx, `SELECT current_setting('temp_directory')`).Scan(&dir); err != nil {
		t.Fatal(err)
	}
	if want := path + ".tmp"; dir != want {
		t.Errorf("temp_directory = %q; want %q", dir, want)
	}
	// An import's rows stay in memory until its checkpoint: past the
	// limit, DuckDB spills them.
	st.BeginImport()
	sh := storetest.NewShapes(t, 5)
	spilled := false
	for i := 0; i < 40 && !spilled; i++ {
		from := time.Date(2025, 4, 1+i/4, 6*(i%4), 0, 0, 0, time.UTC)
		if _, err := st.Append(ctx, sh.Records(2000, from, from.Add(6*time.Hour), "111111111111", "eu-west-1")); err != nil {
			t.Fatal(err)
		}
		var files []string
		rows, err := st.db.QueryContext(ctx, `SELECT path FROM duckdb_temporary_files()`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				t.Fatal(err)
			}
			files = append(files, p)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		for _, p := range files {
			spilled = true
			if filepath.Dir(p) != path+".tmp" {
				t.Errorf("DuckDB spilled to %s; want it in %s", p, path+".tmp")
			}
		}
	}
	if !spilled {
		t.Fatal("nothing spilled at a 16MB limit: the test no longer tests the spill")
	}
	if _, err := os.Stat(filepath.Join(cwd, ".tmp")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the working directory holds DuckDB's .tmp (stat: %v); want nothing there", err)
	}
}
