// Package duckdb is CloudTrail Lake's DuckDB engine (engine.Engine): the
// database file (DIR/lake.duckdb), the load of records into Lake's columns,
// the Lake SQL dialect's DuckDB side (Presto functions mapped to macros),
// the statement check (the allow-list of what a statement may bind) and the
// run of checked statements.
//
// One table, events, holds every store's events with the store's ID in
// eds_id and Lake's columns (userIdentity as a STRUCT, requestParameters as
// a MAP of strings, eventTime as a TIMESTAMP...) read once at ingestion from
// the record's unchanged JSON, kept in eventJson (see load.go). The database
// runs with enable_external_access=false, no extension loading and a locked
// configuration, so a query cannot read files or attach databases even if
// the statement check missed something.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

const schema = `
CREATE TABLE IF NOT EXISTS lake_meta (k VARCHAR PRIMARY KEY, v BIGINT NOT NULL);
DROP TABLE IF EXISTS lake_staging;
`

// quote returns s as a SQL string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// blockAllocatorMemory is DuckDB's block_allocator_memory: a pool of
// address space from which DuckDB takes its 256 KB buffer blocks (a
// transaction's row group being filled, the Appender's collection) and to
// which it returns them (madvise MADV_FREE: the kernel takes the pages back
// only when it needs memory). Without it DuckDB's allocator (jemalloc)
// gives a load's freed blocks back to the kernel, and each transaction of
// a load faults fresh, cleared pages in again: ~1.2 page faults and ~5 KB
// of fresh memory an event, and on a virtual machine a fault is dear (the
// kernel's page-fault and page-clearing paths were ~20% of the load's
// CPU). The pool is filled only as blocks are used (at most memory_limit's
// worth: the buffer manager still counts them) and is address space, not
// memory, until then. 512MB: as fast as 1GB in BenchmarkLoad
// (docs/benchmarks.md, lake25).
const blockAllocatorMemory = "512MB"

// openDB opens the Lake database at path ("" = in memory) with the query
// sandbox settings.
func openDB(path string, memoryLimit string, threads int) (*sql.DB, *duckdb.Connector, error) {
	if strings.ContainsAny(path, "?\x00") {
		return nil, nil, fmt.Errorf("lake/duckdb: unusable database path %q", path)
	}
	// integer_division=true: / of two integers truncates, as Trino's does
	// (5 / 2 is 2; DuckDB's default gives 2.5);
	// preserve_insertion_order=false lets DuckDB insert in parallel;
	// checkpoint_threshold=512MB: with DuckDB's 16MB, each checkpoint during
	// a long load rewrote the table's partly filled last row group, and the
	// load's CPU per event grew 2-3x (a crash replays at most 512MB of WAL).
	dsn := path + "?enable_external_access=false&autoinstall_known_extensions=false&autoload_known_extensions=false" +
		"&allow_community_extensions=false&integer_division=true&preserve_insertion_order=false&checkpoint_threshold=512MB&memory_limit=" + memoryLimit +
		// A new database file gets DuckDB 1.2's storage format, the first
		// with zstd for strings (eventJson, below); an existing file keeps
		// the format it was written in.
		"&storage_compatibility_version=v1.2.0" +
		"&block_allocator_memory=" + blockAllocatorMemory
	if threads > 0 {
		dsn += fmt.Sprintf("&threads=%d", threads)
	}
	// lock_configuration is global: the first connection sets it; setting
	// it again (on the pool's next connection) would be refused as a
	// configuration change.
	var locked atomic.Bool
	connector, err := duckdb.NewConnector(dsn, func(ex driver.ExecerContext) error {
		if locked.Load() {
			return nil
		}
		_, err := ex.ExecContext(context.Background(), "SET lock_configuration = true", nil)
		if err == nil {
			locked.Store(true)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lake/duckdb: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	ctx := context.Background()
	if _, err := db.ExecContext(ctx, schema+macros); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("lake/duckdb: schema: %w", err)
	}
	// The events table's columns are exactly what the load's conversion
	// yields (load.go).
	if err := createEvents(ctx, db); err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("lake/duckdb: events table: %w", err)
	}
	// Databases written before the Appender load had two extra columns.
	for _, c := range []string{"eds_id_1", "raw"} {
		if _, err := db.ExecContext(ctx, `ALTER TABLE main.events DROP COLUMN IF EXISTS `+c); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("lake/duckdb: events table: %w", err)
		}
	}
	return db, connector, nil
}

// createEvents creates the events table if it does not exist: the columns
// and types the load's conversion yields (eventsDDL, made in a temporary
// table), and eventJson compressed with zstd. DuckDB stored the records'
// JSON (1.3 KB each) uncompressed, and zstd made it 15x smaller (300,000
// real-shaped records: 529 MB -> 35 MB); only queries that read eventJson
// pay for it (a LIKE over all of it took 2x as long).
func createEvents(ctx context.Context, db *sql.DB) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'events'`).Scan(&n); err != nil {
		return err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ddl := strings.Replace(eventsDDL(), "CREATE TABLE IF NOT EXISTS main.events", "CREATE TEMPORARY TABLE events_shape", 1)
	if _, err := conn.ExecContext(ctx, ddl); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS temp.events_shape`)
	rows, err := conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'temp' AND table_name = 'events_shape' ORDER BY column_index`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var cols, names, types []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return err
		}
		names, types = append(names, name), append(types, typ)
		col := fmt.Sprintf("%q %s", name, typ)
		if name == "eventJson" {
			col += " USING COMPRESSION zstd"
		}
		cols = append(cols, col)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(cols) == 0 {
		return fmt.Errorf("no columns in the events shape")
	}
	if n > 0 {
		return migrateEvents(ctx, conn, names, types)
	}
	_, err = conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS main.events (`+strings.Join(cols, ", ")+`)`)
	return err
}

// migrateEvents brings an events table written by an earlier cairn to the
// shape the load yields (names and types, from events_shape): a missing
// column is added, a column of another type (userIdentity before its
// creationDate was a TIMESTAMP) is converted, both filled from each row's
// eventJson as the load reads it. The table keeps its other columns; rows
// are inserted BY NAME. This rewrites those columns once, at the first
// start of a newer cairn.
func migrateEvents(ctx context.Context, conn *sql.Conn, names, types []string) error {
	rows, err := conn.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = 'main' AND table_name = 'events'`)
	if err != nil {
		return err
	}
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return err
		}
		have[name] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var stmts []string
	for i, name := range names {
		typ, ok := have[name]
		if ok && typ == types[i] || strings.HasSuffix(name, "_migrated") {
			continue
		}
		c, known := columnIndex[name]
		if !known {
			continue
		}
		from := fromEventJSON(columns[c])
		var q []string
		if !ok {
			q = []string{
				fmt.Sprintf(`ALTER TABLE main.events ADD COLUMN %q %s`, name, types[i]),
				fmt.Sprintf(`UPDATE main.events SET %q = %s`, name, from),
			}
		} else {
			// ALTER ... USING sees only the column itself: the new one is
			// made beside it from eventJson and takes its name.
			tmp := name + "_migrated"
			q = []string{
				fmt.Sprintf(`ALTER TABLE main.events ADD COLUMN %q %s`, tmp, types[i]),
				fmt.Sprintf(`UPDATE main.events SET %q = %s`, tmp, from),
				fmt.Sprintf(`ALTER TABLE main.events DROP COLUMN %q`, name),
				fmt.Sprintf(`ALTER TABLE main.events RENAME COLUMN %q TO %q`, tmp, name),
			}
		}
		stmts = append(stmts, q...)
	}
	// DuckDB refuses a transaction that alters, updates and alters the
	// same table; each statement commits on its own. A crash half-way
	// leaves a column to convert again (its _migrated twin is made anew)
	// or a _migrated column, dropped at the next start.
	for name := range have {
		if strings.HasSuffix(name, "_migrated") {
			stmts = append([]string{fmt.Sprintf(`ALTER TABLE main.events DROP COLUMN IF EXISTS %q`, name)}, stmts...)
		}
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate the events table (%s): %w", audit.Clip(s, 80), err)
		}
	}
	return nil
}

// fromEventJSON is the SQL expression that reads column c from a row's
// eventJson as the load does (recordRow, fieldValue).
func fromEventJSON(c column) string {
	path := quote(`$."` + c.name + `"`)
	switch c.kind {
	case kJSON:
		return fmt.Sprintf(`try(from_json(json_extract("eventJson", %s), %s))`, path, quote(c.shape))
	case kBool:
		return fmt.Sprintf(`CASE json_extract_string("eventJson", %s) WHEN 'true' THEN true WHEN 'false' THEN false END`, path)
	case kTime:
		return fmt.Sprintf(`try_cast(json_extract_string("eventJson", %s) AS TIMESTAMP)`, path)
	}
	return fmt.Sprintf(`json_extract_string("eventJson", %s)`, path)
}

// statementErrors are the DuckDB errors that object to the statement
// itself (its syntax, names, types and values): their message names only
// the caller's statement and the columns of its own stores, so the caller
// may read it. Any other DuckDB error (IO, memory, internal, connection,
// transaction...) is cairn's: logged, never sent.
var statementErrors = map[duckdb.ErrorType]bool{
	duckdb.ErrorTypeParser: true, duckdb.ErrorTypeSyntax: true, duckdb.ErrorTypeBinder: true,
	duckdb.ErrorTypeCatalog: true, duckdb.ErrorTypeConversion: true, duckdb.ErrorTypeOutOfRange: true,
	duckdb.ErrorTypeDivideByZero: true, duckdb.ErrorTypeMismatchType: true, duckdb.ErrorTypeInvalidType: true,
	duckdb.ErrorTypeInvalidInput: true, duckdb.ErrorTypeExpression: true, duckdb.ErrorTypeNotImplemented: true,
	duckdb.ErrorTypeDecimal: true, duckdb.ErrorTypeParameterNotResolved: true, duckdb.ErrorTypeParameterNotAllowed: true,
}

// statementError returns err as a *engine.StatementError (the first line
// of DuckDB's message) when it is DuckDB's objection to the statement
// (statementErrors), else nil.
func statementError(err error) *engine.StatementError {
	var de *duckdb.Error
	if !errors.As(err, &de) || !statementErrors[de.Type] {
		return nil
	}
	return &engine.StatementError{Msg: firstLine(de.Msg), Err: err}
}

// isDatabaseError reports whether err is DuckDB's own (rather than the
// Go driver's converting a value).
func isDatabaseError(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de)
}

// isOutOfMemory reports whether err is DuckDB running out of its
// memory_limit.
func isOutOfMemory(err error) bool {
	var de *duckdb.Error
	return errors.As(err, &de) && de.Type == duckdb.ErrorTypeOutOfMemory
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}
