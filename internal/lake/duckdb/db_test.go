package duckdb

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestEventJSONCompressed: a new Lake database keeps eventJson with zstd
// (DuckDB left the records' JSON uncompressed), and reopening it keeps the
// table as it is.
func TestEventJSONCompressed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	for round := range 2 {
		db, _, err := openDB(path, "1GB", 0)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if round == 0 {
			if _, err := db.ExecContext(ctx, `INSERT INTO main.events (eds_id, "eventJson") SELECT 'eds', '{"eventVersion":"1.08","eventName":"GetObject","requestParameters":{"bucketName":"b-' || i || '"}}' FROM range(20000) t(i)`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
				t.Fatal(err)
			}
		}
		var comp string
		var n int
		if err := db.QueryRowContext(ctx, `SELECT string_agg(DISTINCT compression) FROM pragma_storage_info('events') WHERE column_name = 'eventJson' AND segment_type = 'VARCHAR'`).Scan(&comp); err != nil {
			t.Fatal(err)
		}
		if comp != "ZSTD" {
			t.Errorf("round %d: eventJson stored as %q; want ZSTD", round, comp)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM main.events WHERE "eventJson" LIKE '%b-19999%'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("round %d: %d rows, %v", round, n, err)
		}
		db.Close()
	}
}

// TestOlderLakeFileOpens: a lake.duckdb written before the v1.2.0 storage
// format and the compressed eventJson (DuckDB's default format, the events
// table made by eventsDDL) opens and keeps working.
func TestOlderLakeFileOpens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	old, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(eventsDDL()); err != nil {
		t.Fatal(err)
	}
	// An events table of an earlier shape: no vpcEndpointAccountId, a
	// userIdentity of another type.
	for _, q := range []string{`ALTER TABLE main.events DROP COLUMN "vpcEndpointAccountId"`,
		`ALTER TABLE main.events DROP COLUMN "userIdentity"`, `ALTER TABLE main.events ADD COLUMN "userIdentity" VARCHAR`} {
		if _, err := old.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.Exec(`INSERT INTO main.events (eds_id, "eventJson") VALUES ('eds', '{"eventName":"GetObject","vpcEndpointAccountId":"123456789012",` +
		`"userIdentity":{"type":"AssumedRole","sessionContext":{"attributes":{"creationDate":"2023-06-07T23:59:12Z"}}}}')`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, _, err := openDB(path, "1GB", 0)
	if err != nil {
		t.Fatalf("opening an older file: %v", err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM main.events WHERE "eventJson" LIKE '%GetObject%'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d rows, %v", n, err)
	}
	if _, err := db.Exec(`INSERT INTO main.events (eds_id, "eventJson") VALUES ('eds', '{}')`); err != nil {
		t.Errorf("insert into an older file: %v", err)
	}
	// The columns it lacked, or had of another type, are read from each
	// row's eventJson.
	var acct, typ string
	var created time.Time
	if err := db.QueryRow(`SELECT "vpcEndpointAccountId", "userIdentity".type, "userIdentity".sessionContext.attributes.creationDate FROM main.events WHERE "eventJson" LIKE '%GetObject%'`).Scan(&acct, &typ, &created); err != nil {
		t.Fatalf("migrated columns: %v", err)
	}
	if want := time.Date(2023, 6, 7, 23, 59, 12, 0, time.UTC); acct != "123456789012" || typ != "AssumedRole" || !created.Equal(want) {
		t.Errorf("migrated row: %q %q %v; want 123456789012 AssumedRole %v", acct, typ, created, want)
	}
	// And the load's rows go in BY NAME.
	d := &DB{db: db}
	if err := d.Insert(context.Background(), []engine.Row{{Store: "eds", Raw: []byte(`{"eventName":"PutObject","vpcEndpointAccountId":"1"}`)}}, 0); err != nil {
		t.Errorf("load into a migrated file: %v", err)
	}
}

// TestBlockAllocatorPool: the Lake database takes its buffer blocks from
// DuckDB's block allocator pool (blockAllocatorMemory), so a load's
// transactions reuse the memory the previous one freed instead of faulting
// fresh pages in.
func TestBlockAllocatorPool(t *testing.T) {
	db, _, err := openDB(filepath.Join(t.TempDir(), "lake.duckdb"), "1GB", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got string
	if err := db.QueryRow(`SELECT current_setting('block_allocator_memory')`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	// DuckDB's default is no pool ("0 bytes").
	if got == "" || strings.HasPrefix(got, "0 ") {
		t.Errorf("block_allocator_memory = %q; want %s (blockAllocatorMemory)", got, blockAllocatorMemory)
	}
}

// openTemp opens a database in a temporary dir with opts, closed at the
// test's end.
func openTemp(t *testing.T, opts Options) *DB {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "lake.duckdb"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}
