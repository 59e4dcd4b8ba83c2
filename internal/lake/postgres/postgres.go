// Package postgres is CloudTrail Lake's PostgreSQL engine (engine.Engine):
// event data stores' events in one table of the database that cairn's
// Event History uses in its PostgreSQL mode, and Lake statements translated
// from the Lake dialect to PostgreSQL's.
//
// A statement is read once, by DuckDB's parser (an in-memory
// internal/lake/duckdb engine that holds no events): the DuckDB engine's
// statement check accepts it (same allow-list, same errors), and its parse
// tree is what translate.go renders as PostgreSQL SQL, each node through a
// table of known translations; anything else is refused as the statement's
// fault. PostgreSQL never parses text a tenant wrote, only the translation,
// whose table references are the caller's stores (each a subquery of
// lake_events filtered by the store's ID) and whose functions are
// PostgreSQL built-ins or cairn's functions of the schema lake (lake.sql).
// The layout is in docs/lake.md ("Lake on PostgreSQL").
package postgres

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	storepg "github.com/cairn-audit/cairn/internal/store/postgres"
)

// Options configures a DB; the zero value works.
type Options struct {
	// MaxConns caps the connections to PostgreSQL (default 4).
	MaxConns int32
	// WorkMem is PostgreSQL's work_mem for a statement (default "64MB").
	WorkMem string
	// NoRollup runs every statement over the events, none over
	// lake_rollup (rollup.go), which is kept all the same.
	NoRollup bool
}

// DB is Lake's PostgreSQL engine. It implements engine.Engine.
type DB struct {
	pool    *pgxpool.Pool
	parser  *duckdb.DB
	schema  *schema
	workMem string
	// events is lake_events qualified by its schema (statements run with
	// a search_path of pg_catalog only).
	events  string
	rollup  []string // the rollup's levels' tables (rollupLevels), qualified
	fine    string   // fineLevel's table, qualified
	inserts atomic.Int64
	// noRollup is Options.NoRollup; rollups counts the statements run
	// over lake_rollup.
	noRollup bool
	rollups  atomic.Int64
}

var _ engine.Engine = (*DB)(nil)

//go:embed lake.sql
var functionsSQL string

// Open connects to the database dsn names and creates Lake's tables and
// functions when missing.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("lake/postgres: parse the connection string: %w", err)
	}
	cfg.MaxConns = 4
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	// Trino's session zone for cairn is UTC (timestamps with time zone
	// render with " UTC").
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	cfg.ConnConfig.RuntimeParams["intervalstyle"] = "postgres"
	cfg.ConnConfig.RuntimeParams["datestyle"] = "ISO, YMD"
	// literal (translate.go) escapes quotes only: a backslash must be an
	// ordinary character in string literals, whatever the server's default.
	cfg.ConnConfig.RuntimeParams["standard_conforming_strings"] = "on"
	if opts.WorkMem == "" {
		opts.WorkMem = "64MB"
	}
	sc, err := newSchema()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("lake/postgres: connect: %w", err)
	}
	parser, err := duckdb.Open("", duckdb.Options{MemoryLimit: "64MB"})
	if err != nil {
		pool.Close()
		return nil, err
	}
	d := &DB{pool: pool, parser: parser, schema: sc, workMem: opts.WorkMem, noRollup: opts.NoRollup}
	if err := d.migrate(ctx); err != nil {
		d.Close()
		return nil, err
	}
	var sch string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&sch); err != nil {
		d.Close()
		return nil, fmt.Errorf("lake/postgres: schema: %w", err)
	}
	d.events = ident(sch) + ".lake_events"
	for _, l := range rollupLevels {
		d.rollup = append(d.rollup, ident(sch)+"."+l.table)
	}
	d.fine = ident(sch) + "." + fineLevel.table
	return d, nil
}

// migrate creates lake_events, lake_meta and the schema lake's functions,
// under a transaction-scoped advisory lock (nodes starting together).
func (d *DB) migrate(ctx context.Context) error {
	var cols []string
	for _, c := range d.schema.cols {
		cols = append(cols, ident(c.name)+" "+pgType(c.typ))
	}
	ddl := `CREATE TABLE IF NOT EXISTS lake_events (eds_id text NOT NULL, ` + strings.Join(cols, ", ") + `, "eventJson" text NOT NULL);
CREATE INDEX IF NOT EXISTS lake_events_store_time ON lake_events (eds_id, "eventTime");
CREATE TABLE IF NOT EXISTS lake_meta (k text PRIMARY KEY, v bigint NOT NULL);
` + queriesDDL + `
CREATE SCHEMA IF NOT EXISTS lake;
` + functionsSQL
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7391001)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("lake/postgres: schema: %w", err)
		}
		if err := migrateRollup(ctx, tx); err != nil {
			return err
		}
		return migrateFine(ctx, tx)
	})
}

// pgType is a column's type in lake_events: structs and lists as jsonb, maps
// as json (which keeps the record's key order, rendered as DuckDB's MAP).
func pgType(s *shape) string {
	switch s.kind {
	case kBool:
		return "boolean"
	case kTime:
		return "timestamp"
	case kMap:
		return "json"
	case kStruct, kList:
		return "jsonb"
	}
	return "text"
}

// ident quotes a PostgreSQL identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes a PostgreSQL string literal (standard_conforming_strings).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Close closes the pool and the parser.
func (d *DB) Close() error {
	d.pool.Close()
	return d.parser.Close()
}

// Pool is the connection pool, for tests that inspect what the engine
// stored; cairn does not use it.
func (d *DB) Pool() *pgxpool.Pool { return d.pool }

// Insert stores rows with COPY and records pos in the same transaction.
// Concurrent calls each run their own transaction (PostgreSQL commits them
// concurrently; there is no group to form). With a lease.Fence in ctx (the
// feed's or the imports' lease), the transaction ends with the fence's
// check (store/postgres.CheckFence), whose lock on the lease's row lasts
// to the commit: a node that lost its lease writes nothing, and gets an
// error wrapping lease.ErrFenced.
func (d *DB) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	d.inserts.Add(1)
	names := []string{"eds_id"}
	for _, c := range d.schema.cols {
		names = append(names, c.name)
	}
	names = append(names, "eventJson")
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if len(rows) > 0 {
			src := make([][]any, len(rows))
			for i, r := range rows {
				src[i] = d.values(r)
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"lake_events"}, names, pgx.CopyFromRows(src)); err != nil {
				return fmt.Errorf("lake/postgres: insert: %w", err)
			}
		}
		if pos > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO lake_meta VALUES ('feed_position', $1) ON CONFLICT (k) DO UPDATE SET v = excluded.v`, pos); err != nil {
				return fmt.Errorf("lake/postgres: feed position: %w", err)
			}
		}
		// Last, just before the commit: the check locks the lease's row
		// (FOR SHARE) until then, and a lock held through a long COPY
		// kept the holder's own renewals waiting until the lease expired
		// (TestClusterLakeImportResumes, 131,072-row loads).
		return storepg.CheckFence(ctx, tx)
	})
}

// values is a record's row of lake_events (as the DuckDB load reads it,
// load.go there): scalars as their text, booleans and eventTime typed,
// nested fields normalized to their column's shape.
func (d *DB) values(r engine.Row) []any {
	vals := make([]any, len(d.schema.cols)+2)
	vals[0] = r.Store
	vals[len(vals)-1] = validText(r.Raw)
	m, _, ok := object(bytes.TrimSpace(r.Raw))
	if !ok {
		return vals
	}
	for i, c := range d.schema.cols {
		raw, ok := m[c.name]
		if !ok {
			continue
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] == 'n' {
			continue
		}
		switch c.typ.kind {
		case kText:
			vals[i+1] = validText([]byte(leafTextRaw(raw)))
		case kBool:
			s := leafText(raw)
			if s == "true" || s == "false" {
				vals[i+1] = s == "true"
			}
		case kTime:
			var s string
			if json.Unmarshal(raw, &s) == nil {
				if t, ok := parseTime(s); ok {
					vals[i+1] = t
				}
			}
		default:
			if c.typ.kind == kList && raw[0] != '[' || c.typ.kind != kList && raw[0] != '{' {
				continue
			}
			var b bytes.Buffer
			normalize(&b, raw, c.typ)
			vals[i+1] = validText(b.Bytes())
		}
	}
	return vals
}

// leafTextRaw is a top-level scalar column's text as the DuckDB load keeps
// it: a string unquoted, anything else as written.
func leafTextRaw(raw json.RawMessage) string {
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// validText returns b as text PostgreSQL accepts: invalid UTF-8 replaced,
// as the DuckDB load does, and NUL (which PostgreSQL's text refuses) too.
func validText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// Rollups returns the number of statements Run has answered from
// lake_rollup (rollup.go) instead of the events.
func (d *DB) Rollups() int64 { return d.rollups.Load() }

// Inserts returns the number of transactions Insert has run.
func (d *DB) Inserts() int64 { return d.inserts.Load() }

// Position returns the last feed position Insert recorded.
func (d *DB) Position(ctx context.Context) (int64, error) {
	var p int64
	err := d.pool.QueryRow(ctx, `SELECT v FROM lake_meta WHERE k = 'feed_position'`).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return p, err
}

// EachEventID calls each with the account/eventID key of each of store's
// events.
func (d *DB) EachEventID(ctx context.Context, store string, each func(key []byte)) error {
	rows, err := d.pool.Query(ctx, `SELECT coalesce("recipientAccountId", "userIdentity"->>'accountId', '') || '/' || "eventID" FROM lake_events WHERE eds_id = $1 AND "eventID" IS NOT NULL`, store)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		// RawValues: the row's bytes, valid until Next (text format).
		each(rows.RawValues()[0])
	}
	return rows.Err()
}

// Delete removes store's events older than before (all when before is
// zero). With a lease.Fence in ctx (the feed's lease), the fence is
// checked at the end of the delete's transaction, as Insert's.
func (d *DB) Delete(ctx context.Context, store string, before time.Time) error {
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		var err error
		if before.IsZero() {
			_, err = tx.Exec(ctx, `DELETE FROM lake_events WHERE eds_id = $1`, store)
		} else {
			_, err = tx.Exec(ctx, `DELETE FROM lake_events WHERE eds_id = $1 AND "eventTime" < $2`, store, before.UTC())
		}
		if err != nil {
			return err
		}
		return storepg.CheckFence(ctx, tx) // last, as Insert's
	})
}

// Checkpoint does nothing: PostgreSQL checkpoints on its own.
func (d *DB) Checkpoint(ctx context.Context) error { return nil }

// LogSize is 0: PostgreSQL's WAL is the server's.
func (d *DB) LogSize() int64 { return 0 }

// Functions returns the DuckDB engine's mapping: statements are read by
// DuckDB's parser and checked by its allow-list before translation.
func (d *DB) Functions() map[string]string { return d.parser.Functions() }

// Check is the DuckDB engine's statement check (same allow-list, same
// errors), on DuckDB's reading of the statement.
func (d *DB) Check(ctx context.Context, stmt string, tables map[string]bool) error {
	return d.parser.Check(ctx, stmt, tables)
}

// Run translates a checked statement and runs it in a read-only
// transaction, passing rows to sink as they come.
func (d *DB) Run(ctx context.Context, st engine.Statement, sink engine.RowSink) (int64, error) {
	tree, err := d.parser.Parse(ctx, st.SQL)
	if err != nil {
		return 0, err
	}
	stores := map[string]string{}
	for _, id := range st.Stores {
		stores[strings.ToLower(engine.TableName(id))] = id
	}
	var q *query
	// Parallel workers: the server's setting for a statement over the
	// events; none for one over the rollup, which reads a few thousand
	// rows, fewer than a worker's start costs (docs/lake.md, "Levels").
	serial := false
	if p := planRollup(tree, stores); p != nil && !d.noRollup {
		// Over the rollup when the statement allows, else (any error:
		// the general translation gives the statement's own) over the
		// events. Translated twice: the first finds the level the
		// statement's date_trunc calls allow and the dimensions it
		// reads; the second reads that level and groups the edges'
		// events by those dimensions only.
		tr := &translator{schema: d.schema, stores: stores, events: d.events, rollup: d.rollup, fine: d.fine, roll: p}
		rq, err := tr.statement(tree)
		if err == nil {
			need, used := p.need, p.used
			p = planRollup(tree, stores)
			p.level, p.need, p.only = need, need, used
			tr = &translator{schema: d.schema, stores: stores, events: d.events, rollup: d.rollup, fine: d.fine, roll: p}
			rq, err = tr.statement(tree)
			if err == nil && p.need < p.level {
				err = errNoRollup
			}
		}
		if err == nil {
			q = rq
			serial = true
			d.rollups.Add(1)
		}
	}
	if q == nil {
		tr := &translator{schema: d.schema, stores: stores, events: d.events, rollup: d.rollup, fine: d.fine}
		if q, err = tr.statement(tree); err != nil {
			return 0, err
		}
	}
	var n int64
	err = pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('work_mem', $1, true), set_config('search_path', 'pg_catalog, pg_temp', true),
			set_config('max_parallel_workers_per_gather', CASE WHEN $2 THEN '0' ELSE current_setting('max_parallel_workers_per_gather') END, true)`, d.workMem, serial); err != nil {
			return err
		}
		var err error
		n, err = d.run(ctx, tx, q, st.MaxBytes, sink)
		return err
	})
	if ctx.Err() != nil {
		return n, err
	}
	return n, Classify(err)
}

func (d *DB) run(ctx context.Context, tx pgx.Tx, q *query, maxBytes int, sink engine.RowSink) (int64, error) {
	rows, err := tx.Query(ctx, q.sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	fds := rows.FieldDescriptions()
	cols := make([]string, len(fds))
	shapes := make([]*shape, len(fds))
	for i, fd := range fds {
		cols[i] = fd.Name
		if len(q.names) == len(fds) && q.names[i] != "" {
			cols[i] = q.names[i]
		}
		if len(q.shapes) == len(fds) {
			shapes[i] = q.shapes[i]
		} else if c, ok := d.schema.lookup(fd.Name); ok && q.star {
			shapes[i] = c.typ
		}
	}
	if err := sink.SetColumns(cols); err != nil {
		return 0, err
	}
	var n int64
	size := 0
	for rows.Next() {
		raw := rows.RawValues()
		row := make([]*string, len(raw))
		for i, v := range raw {
			if v == nil {
				continue
			}
			s := renderText(v, fds[i].DataTypeOID, shapes[i])
			size += len(s) + len(cols[i])
			row[i] = &s
		}
		if size > maxBytes {
			return n, engine.ErrTooLarge
		}
		if err := sink.AddRow(row); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

// Classify maps PostgreSQL's errors to the port's: its objections to the
// statement's data and types (SQLSTATE classes 22 and 42, whose message
// names only the translated statement: the caller's columns, aliases and
// values) become an *engine.StatementError with that message (not its
// detail or hint); running out of memory (53200) wraps
// engine.ErrOutOfMemory. Anything else (connection, disk, internal,
// privileges of cairn's role...) is returned as it is: logged, never sent.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53200":
			return fmt.Errorf("%w: %w", engine.ErrOutOfMemory, err)
		case pe.Code == "42501": // insufficient_privilege: cairn's role, not the statement
		case strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "42"):
			// cairn's function schema is an implementation detail.
			return &engine.StatementError{Msg: strings.ReplaceAll(pe.Message, "lake.", ""), Err: err}
		}
	}
	return err
}
