package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/ingest/journal"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// Options configures a DB; the zero value works.
type Options struct {
	// MemoryLimit is DuckDB's memory_limit (default "448MB", as
	// config.DefaultLakeMemoryLimit).
	MemoryLimit string
	// Threads is DuckDB's threads (default 1: a query runs on the one
	// thread that runs it, which Lake gives a low CPU priority).
	Threads int
	// NoJournal makes every Insert its own transaction (or its group's)
	// instead of acknowledging small ones from the journal (journal.go).
	NoJournal bool
}

// DB is Lake's DuckDB engine. It implements engine.Engine.
type DB struct {
	db   *sql.DB
	path string
	// wmu keeps CHECKPOINT and Delete apart from every write: they hold
	// it alone, and every write transaction (a load's batch, the feed's
	// insert, the journal's writer, a direct insert) holds it shared, so
	// that writes run side by side, each in its own transaction (DuckDB
	// appends concurrent transactions' rows without conflict). No write
	// takes it alone: a sync.RWMutex lets no reader in past a waiting
	// writer, so a small insert waiting for a load's transaction in
	// progress held off the load's next one, and a load's two appenders
	// took turns (issue 15, session 22).
	wmu sync.RWMutex
	// posmu orders the feed's inserts, which record the feed position
	// (lake_meta's 'feed_position'): two of them side by side would both
	// write that row, a write-write conflict in DuckDB, and a later
	// position could be overwritten by an earlier one. The journal's
	// writer records 'journal_seq', a row of its own, and is ordered by
	// fmu (Flush).
	posmu sync.Mutex
	// loads are the streamed loads in progress (BeginLoad to Finish), and
	// aloneWaiting counts the callers of lockAlone waiting for wmu: a
	// load's transaction stays open between its Appends, holding wmu
	// shared, so a CHECKPOINT or Delete has the loads commit their idle
	// transactions first and their Appends meanwhile commit rather than
	// keep theirs open (lockAlone).
	loadsMu      sync.Mutex
	loads        map[*Load]struct{}
	aloneWaiting atomic.Int32
	// direct and journaled merge concurrent Insert calls into one commit:
	// a transaction, or the journal's append (see Insert).
	direct, journaled grouper
	// inserts counts the transactions of Insert and of the writer
	// (Inserts).
	inserts atomic.Int64

	// The journal (journal.go); nil for a database in memory or with
	// Options.NoJournal. jmu orders appends (and guards seq, the last
	// row's sequence number); pmu guards the rows waiting for the writer
	// (pend, their size pendBytes, their sequence numbers pendSeqs, their journal
	// segments pendSegs, the time the first of them came pendSince, and
	// room, closed whenever the writer has taken some); fmu serializes
	// Flush. jappend is the journal's Append (tests make it fail).
	jn         *journal.Journal
	jappend    func([]audit.Record) (uint64, int, error)
	lim        journalLimits
	jmu        sync.Mutex
	seq        uint64
	pmu        sync.Mutex
	pend       []engine.Row
	pendBytes  int
	pendSeqs   []uint64
	pendSegs   []segCount
	pendSince  time.Time
	room       chan struct{}
	fmu        sync.Mutex
	kick       chan struct{}
	stopw      chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
}

var _ engine.Engine = (*DB)(nil)

// Open opens (or creates) the Lake database at path ("" keeps it in
// memory) with the query sandbox settings.
func Open(path string, opts Options) (*DB, error) {
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = "448MB"
	}
	if opts.Threads <= 0 {
		opts.Threads = 1
	}
	db, _, err := openDB(path, opts.MemoryLimit, opts.Threads)
	if err != nil {
		return nil, err
	}
	d := &DB{db: db, path: path}
	if path != "" && !opts.NoJournal {
		if err := d.openJournal(path); err != nil {
			db.Close()
			return nil, err
		}
	}
	return d, nil
}

// Close moves the journaled rows into the table and closes the database.
func (d *DB) Close() error {
	jerr := d.closeJournal()
	return errors.Join(jerr, d.db.Close())
}

// SQL is the database itself, for tests that inspect what the engine
// stored (the journaled rows moved into the table first); cairn does not
// use it.
func (d *DB) SQL() *sql.DB {
	d.Flush(context.Background())
	return d.db
}

// Position returns the last feed position Insert recorded.
func (d *DB) Position(ctx context.Context) (int64, error) {
	var p int64
	err := d.db.QueryRowContext(ctx, `SELECT v FROM lake_meta WHERE k = 'feed_position'`).Scan(&p)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return p, err
}

// EachEventID calls each with the account/eventID key of each of store's
// events.
func (d *DB) EachEventID(ctx context.Context, store string, each func(key []byte)) error {
	if err := d.Flush(ctx); err != nil {
		return err
	}
	rs, err := d.db.QueryContext(ctx, `SELECT coalesce(recipientAccountId, userIdentity.accountId, '') || '/' || eventID FROM events WHERE eds_id = ? AND eventID IS NOT NULL`, store)
	if err != nil {
		return err
	}
	defer rs.Close()
	var id sql.RawBytes
	for rs.Next() {
		if err := rs.Scan(&id); err != nil {
			return err
		}
		each(id)
	}
	return rs.Err()
}

// Delete removes store's events older than before (all when before is
// zero).
func (d *DB) Delete(ctx context.Context, store string, before time.Time) error {
	if err := d.Flush(ctx); err != nil {
		return err
	}
	d.lockAlone()
	defer d.wmu.Unlock()
	q := `DELETE FROM events WHERE eds_id = ? AND eventTime < ?`
	args := []any{store, before}
	if before.IsZero() {
		q, args = `DELETE FROM events WHERE eds_id = ?`, []any{store}
	}
	_, err := d.db.ExecContext(ctx, q, args...)
	return err
}

// Checkpoint runs DuckDB's CHECKPOINT under the write lock, held alone: it
// waits for the write transactions in progress, and no write waits on it
// for longer than the checkpoint itself. While it waits no write starts
// (sync.RWMutex), so during a load a caller should checkpoint between the
// load's transactions, not beside one (lake's checkpoint policy).
func (d *DB) Checkpoint(ctx context.Context) error {
	d.lockAlone()
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

// prestoFunctions are Lake's (Trino's) functions that DuckDB lacks or
// whose DuckDB namesake means something else, mapped to the DuckDB function
// or cairn macro (see macros) with Trino's semantics. Each is tested for
// Trino's documented value (internal/lake: TestTrinoFunctions).
var prestoFunctions = map[string]string{
	// Maps and arrays.
	"element_at":     "lake_element_at",
	"cardinality":    "lake_cardinality",
	"array_distinct": "lake_array_distinct",
	"array_max":      "lake_array_max",
	"array_min":      "lake_array_min",
	"slice":          "lake_slice",
	// JSON.
	"json_extract_scalar": "lake_json_extract_scalar",
	"json_parse":          "lake_json_parse",
	"json_format":         "lake_json_format",
	"is_json_scalar":      "lake_is_json_scalar",
	"json_array_contains": "lake_json_array_contains",
	"json_array_get":      "lake_json_array_get",
	"json_array_length":   "lake_json_array_length",
	// Dates and times: Trino's day_of_week is ISO (Monday 1 .. Sunday 7),
	// its week and year_of_week ISO; millisecond is the second's
	// milliseconds (DuckDB's counts the minute's); date is a DATE;
	// date_add takes (unit, value, timestamp); date_diff counts whole units
	// (DuckDB's date_diff counts boundaries, its date_sub whole units).
	"millisecond":            "lake_millisecond",
	"date":                   "lake_date",
	"day_of_month":           "dayofmonth",
	"day_of_week":            "isodow",
	"dow":                    "isodow",
	"day_of_year":            "dayofyear",
	"doy":                    "dayofyear",
	"week_of_year":           "weekofyear",
	"year_of_week":           "isoyear",
	"yow":                    "isoyear",
	"date_add":               "lake_date_add",
	"date_diff":              "date_sub",
	"from_iso8601_timestamp": "lake_from_iso8601_timestamp",
	"from_iso8601_date":      "lake_from_iso8601_date",
	"from_unixtime":          "to_timestamp",
	"to_unixtime":            "epoch",
	"last_day_of_month":      "last_day",
	// Arrays.
	"array_join": "array_to_string",
	"transform":  "list_transform",
	"sequence":   "generate_series",
	// Strings and aggregates: Trino's format is Java's (%s), DuckDB's
	// format is fmt's ({}) and its printf Java's; Trino's replace may
	// take two arguments (removing the search string).
	"format":          "printf",
	"replace":         "lake_replace",
	"regexp_like":     "regexp_matches",
	"regexp_extract":  "lake_regexp_extract",
	"approx_distinct": "approx_count_distinct",
}

// macros define prestoFunctions' replacements.
const macros = `
CREATE OR REPLACE MACRO lake_element_at(m, k) AS m[k];
CREATE OR REPLACE MACRO lake_cardinality(x) AS CASE json_type(to_json(x)) WHEN 'ARRAY' THEN json_array_length(to_json(x)) ELSE len(json_keys(to_json(x))) END;
CREATE OR REPLACE MACRO lake_array_distinct(x) AS list_filter(x, (e, i) -> list_position(x, e) = i);
CREATE OR REPLACE MACRO lake_array_max(x) AS CASE WHEN list_count(x) < len(x) THEN NULL ELSE list_max(x) END;
CREATE OR REPLACE MACRO lake_array_min(x) AS CASE WHEN list_count(x) < len(x) THEN NULL ELSE list_min(x) END;
CREATE OR REPLACE MACRO lake_slice_begin(x, s) AS CASE WHEN s > 0 THEN s WHEN -s > len(x) THEN len(x) + 1 ELSE len(x) + s + 1 END;
CREATE OR REPLACE MACRO lake_slice(x, s, n) AS list_slice(x, lake_slice_begin(x, s), lake_slice_begin(x, s) + n - 1);
CREATE OR REPLACE MACRO lake_json_extract_scalar(j, p) AS CASE WHEN json_type(json_extract(j, p)) IN ('OBJECT', 'ARRAY') THEN NULL ELSE json_extract_string(j, p) END;
CREATE OR REPLACE MACRO lake_json_parse(j) AS json(j);
CREATE OR REPLACE MACRO lake_json_format(j) AS CAST(j AS VARCHAR);
CREATE OR REPLACE MACRO lake_is_json_scalar(j) AS json_type(json(j)) NOT IN ('OBJECT', 'ARRAY');
CREATE OR REPLACE MACRO lake_json_array_contains(j, v) AS CASE WHEN json_type(json(j)) = 'ARRAY' THEN list_contains(list_transform(json_extract(j, '$[*]'), e -> CAST(e AS VARCHAR)), CAST(to_json(v) AS VARCHAR)) END;
CREATE OR REPLACE MACRO lake_json_array_get(j, i) AS CASE WHEN json_type(json(j)) = 'ARRAY' THEN json_extract(j, CASE WHEN i >= 0 THEN '$[' || i || ']' ELSE '$[#' || i || ']' END) END;
CREATE OR REPLACE MACRO lake_json_array_length(j) AS CASE WHEN json_type(json(j)) = 'ARRAY' THEN json_array_length(j) END;
CREATE OR REPLACE MACRO lake_millisecond(t) AS millisecond(t) % 1000;
CREATE OR REPLACE MACRO lake_date(x) AS CAST(x AS DATE);
CREATE OR REPLACE MACRO lake_date_add(u, n, t) AS t + CAST(CAST(n AS VARCHAR) || ' ' || u AS INTERVAL);
CREATE OR REPLACE MACRO lake_from_iso8601_timestamp(s) AS CAST(s AS TIMESTAMPTZ);
CREATE OR REPLACE MACRO lake_from_iso8601_date(s) AS CAST(s AS DATE);
CREATE OR REPLACE MACRO lake_replace(s, a) AS replace(s, a, ''), (s, a, b) AS replace(s, a, b);
CREATE OR REPLACE MACRO lake_regexp_extract(s, p) AS CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p) END,
  (s, p, g) AS CASE WHEN regexp_matches(s, p) THEN regexp_extract(s, p, g) END;
`

// Functions returns the Presto functions DuckDB's namesakes differ from,
// mapped to cairn's macros.
func (d *DB) Functions() map[string]string { return prestoFunctions }

// eventJSONChecksum is Lake's eventJsonChecksum column, computed when a
// statement reads it: the SHA-256 (hex) of eventJson. AWS does not publish
// how it computes its checksum (docs/compatibility.md).
const eventJSONChecksum = `sha256("eventJson") AS "eventJsonChecksum"`

// Run executes a checked statement on its own connection, where each store
// the statement names is a temporary view of its events, passing the rows
// to sink as they are scanned.
func (d *DB) Run(ctx context.Context, st engine.Statement, sink engine.RowSink) (int64, error) {
	// A query sees every row acknowledged before it started.
	if err := d.Flush(ctx); err != nil {
		return 0, err
	}
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
		if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP VIEW "`+t+`" AS SELECT * EXCLUDE (eds_id), `+eventJSONChecksum+` FROM main.events WHERE eds_id = `+quote(id)); err != nil {
			return 0, err
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `DROP VIEW IF EXISTS temp."`+t+`"`)
	}
	// Trino's column names, read from the statement before it runs (the
	// connection runs one statement at a time).
	trinoNames, _ := selectListNames(ctx, conn, st.SQL)
	rs, err := conn.QueryContext(ctx, st.SQL)
	if err != nil {
		return 0, err
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return 0, err
	}
	if err := sink.SetColumns(applyNames(trinoNames, cols)); err != nil {
		return 0, err
	}
	cts, err := rs.ColumnTypes()
	if err != nil {
		return 0, err
	}
	types := make([]*valueType, len(cts))
	for i, ct := range cts {
		types[i] = parseType(ct.DatabaseTypeName())
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
			s := render(v, types[i])
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
