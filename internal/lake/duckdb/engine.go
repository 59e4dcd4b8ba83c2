package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// Options configures a DB; the zero value works.
type Options struct {
	// MemoryLimit is DuckDB's memory_limit (default "1GB").
	MemoryLimit string
	// Threads is DuckDB's threads (default 1: a query runs on the one
	// thread that runs it, which Lake gives a low CPU priority).
	Threads int
}

// DB is Lake's DuckDB engine. It implements engine.Engine.
type DB struct {
	db   *sql.DB
	path string
	// wmu serializes writes to the events table and checkpoints.
	wmu sync.Mutex
}

var _ engine.Engine = (*DB)(nil)

// Open opens (or creates) the Lake database at path ("" keeps it in
// memory) with the query sandbox settings.
func Open(path string, opts Options) (*DB, error) {
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = "1GB"
	}
	if opts.Threads <= 0 {
		opts.Threads = 1
	}
	db, _, err := openDB(path, opts.MemoryLimit, opts.Threads)
	if err != nil {
		return nil, err
	}
	return &DB{db: db, path: path}, nil
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// SQL is the database itself, for tests that inspect what the engine
// stored; cairn does not use it.
func (d *DB) SQL() *sql.DB { return d.db }

// Position returns the last feed position Insert recorded.
func (d *DB) Position(ctx context.Context) (int64, error) {
	var p int64
	err := d.db.QueryRowContext(ctx, `SELECT v FROM lake_meta WHERE k = 'feed_position'`).Scan(&p)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return p, err
}

// EventIDs returns the account/eventID keys of store's events.
func (d *DB) EventIDs(ctx context.Context, store string) (map[string]bool, error) {
	rs, err := d.db.QueryContext(ctx, `SELECT coalesce(recipientAccountId, userIdentity.accountId, '') || '/' || eventID FROM events WHERE eds_id = ? AND eventID IS NOT NULL`, store)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	m := map[string]bool{}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		m[id] = true
	}
	return m, rs.Err()
}

// Delete removes store's events older than before (all when before is
// zero).
func (d *DB) Delete(ctx context.Context, store string, before time.Time) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	q := `DELETE FROM events WHERE eds_id = ? AND eventTime < ?`
	args := []any{store, before}
	if before.IsZero() {
		q, args = `DELETE FROM events WHERE eds_id = ?`, []any{store}
	}
	_, err := d.db.ExecContext(ctx, q, args...)
	return err
}

// Checkpoint runs DuckDB's CHECKPOINT under the write lock: no write waits
// on it for longer than the checkpoint itself.
func (d *DB) Checkpoint(ctx context.Context) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, err := d.db.ExecContext(ctx, `CHECKPOINT`)
	return err
}

// LogSize is the size of the database's write-ahead log (PATH.wal).
func (d *DB) LogSize() int64 {
	if d.path == "" {
		return 0
	}
	fi, err := os.Stat(d.path + ".wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

// prestoFunctions are Lake (Presto) functions whose DuckDB namesake differs
// in meaning; statements call cairn's macros instead (see macros).
var prestoFunctions = map[string]string{
	"element_at":          "lake_element_at",
	"json_extract_scalar": "lake_json_extract_scalar",
	"json_parse":          "lake_json_parse",
	"json_format":         "lake_json_format",
}

// macros define prestoFunctions' replacements.
const macros = `
CREATE OR REPLACE MACRO lake_element_at(m, k) AS m[k];
CREATE OR REPLACE MACRO lake_json_extract_scalar(j, p) AS json_extract_string(j, p);
CREATE OR REPLACE MACRO lake_json_parse(j) AS json(j);
CREATE OR REPLACE MACRO lake_json_format(j) AS CAST(j AS VARCHAR);
`

// Functions returns the Presto functions DuckDB's namesakes differ from,
// mapped to cairn's macros.
func (d *DB) Functions() map[string]string { return prestoFunctions }

// Run executes a checked statement on its own connection, where each store
// the statement names is a temporary view of its events, passing the rows
// to sink as they are scanned.
func (d *DB) Run(ctx context.Context, st engine.Statement, sink engine.RowSink) (int64, error) {
	n, err := d.run(ctx, st, sink)
	return n, Classify(err)
}

// Classify maps a DuckDB error to the engine port's: DuckDB's objection to
// the statement becomes an *engine.StatementError, running out of memory
// wraps engine.ErrOutOfMemory; any other error is returned as it is.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	if se := statementError(err); se != nil {
		return se
	}
	if isOutOfMemory(err) {
		return fmt.Errorf("%w: %w", engine.ErrOutOfMemory, err)
	}
	return err
}

func (d *DB) run(ctx context.Context, st engine.Statement, sink engine.RowSink) (int64, error) {
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	for _, id := range st.Stores {
		t := engine.TableName(id)
		if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP VIEW "`+t+`" AS SELECT * EXCLUDE (eds_id) FROM main.events WHERE eds_id = `+quote(id)); err != nil {
			return 0, err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `DROP VIEW IF EXISTS temp."`+t+`"`)
	}
	rs, err := conn.QueryContext(ctx, st.SQL)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return 0, err
	}
	if err := sink.SetColumns(cols); err != nil {
		return 0, err
	}
	var n int64
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	size := 0
	for rs.Next() {
		if err := rs.Scan(ptrs...); err != nil {
			return n, resultError(ctx, err)
		}
		row := make([]*string, len(cols))
		for i, v := range vals {
			if v == nil {
				continue
			}
			s := format(v)
			size += len(s) + len(cols[i])
			row[i] = &s
		}
		if size > st.MaxBytes {
			return n, engine.ErrTooLarge
		}
		if err := sink.AddRow(row); err != nil {
			return n, err
		}
		n++
	}
	return n, resultError(ctx, rs.Err())
}

// resultError maps an error met reading a statement's results. Failures
// not DuckDB's own are the Go driver refusing to convert a value (an
// unnamed STRUCT such as ROW(a, b), say): the statement's doing, answered
// as such.
func resultError(ctx context.Context, err error) error {
	if err == nil || isDatabaseError(err) || ctx.Err() != nil {
		return err
	}
	return audit.Errorf(audit.CodeInvalidQueryStatement, "cairn cannot return a value of this query's results (%s); name the fields of a STRUCT or cast the column to VARCHAR.", audit.Clip(lastPart(err.Error()), 64))
}

// lastPart is the last ": "-separated part of a driver error, its cause
// without the driver's prefixes.
func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// format renders a value as Lake's results do: timestamps as
// 'YYYY-MM-DD HH:MM:SS.mmm', nested values as JSON.
func format(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.000")
	case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, float32, float64:
		return fmt.Sprint(x)
	case fmt.Stringer:
		return x.String()
	}
	b, err := json.Marshal(normalize(v))
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// normalize turns DuckDB's MAP values (map[any]any) into JSON-able maps.
func normalize(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = normalize(e)
		}
		return m
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.000")
	}
	return v
}
