// Package engine is the port between CloudTrail Lake (internal/lake) and the
// database that holds its events and runs its statements: the Engine
// interface and the few types both sides share. Lake owns stores, channels,
// imports and the query lifecycle; an engine (internal/lake/duckdb today, a
// PostgreSQL engine later) owns the storage layout, the SQL dialect and the
// statement check that keeps a tenant inside its own stores.
package engine

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Row is one event bound for one event data store.
type Row struct {
	// Store is the event data store's ID.
	Store string
	// Raw is the CloudTrail record (or custom event) unchanged.
	Raw []byte
}

// RowSink receives a statement's columns, then its rows (a nil cell is
// NULL). An error from it ends the run with that error.
type RowSink interface {
	SetColumns(cols []string) error
	AddRow(row []*string) error
}

// Statement is a statement ready to run: rewritten so that each event data
// store it reads is named TableName(id), and checked (Engine.Check) for the
// account whose stores they are.
type Statement struct {
	SQL string
	// Stores are the IDs of the event data stores it reads.
	Stores []string
	// MaxBytes fails the run with ErrTooLarge when the rows' cells (values
	// and column names) add up to more.
	MaxBytes int
}

// Engine stores Lake's events and runs its statements. It is safe for
// concurrent use. Lake calls Close only once nothing else runs on it.
type Engine interface {
	// Insert stores rows in one transaction and, when pos > 0, records pos
	// as the position in the event store's feed in the same transaction,
	// so a crash neither loses nor repeats what the feed delivered.
	// Concurrent calls without a position may share one transaction; each
	// returns once its rows are durable, and they are in every Run,
	// EachEventID and Delete that starts after it returns (an engine may
	// keep small calls in a journal first and move them into its tables
	// later: the DuckDB engine does).
	Insert(ctx context.Context, rows []Row, pos int64) error
	// Inserts returns the number of transactions Insert has run since the
	// engine was opened (shared ones count once).
	Inserts() int64
	// Position returns the feed position the last Insert recorded (0:
	// none).
	Position(ctx context.Context) (int64, error)
	// EachEventID calls each with the key "account/eventID" of every
	// event of store (the account being recipientAccountId, else
	// userIdentity.accountId, else empty), for imports to skip what a
	// store holds. The key's bytes are valid only during the call: a
	// store of 10M events is not held as 10M strings.
	EachEventID(ctx context.Context, store string, each func(key []byte)) error
	// Delete removes the events of store whose eventTime is before
	// before, or all of them when before is zero.
	Delete(ctx context.Context, store string, before time.Time) error
	// Functions maps Lake (Presto) function names whose namesake in the
	// engine's dialect means something else to the engine's replacement;
	// the statement's rewrite calls the replacement.
	Functions() map[string]string
	// Check accepts stmt when it is one SELECT whose every part is on the
	// engine's allow-list and whose base tables are in tables (the
	// caller's stores, as TableName names them) or CTEs in scope; else an
	// *audit.Error InvalidQueryStatement (a message for the caller), or
	// another error for the engine's own failures.
	Check(ctx context.Context, stmt string, tables map[string]bool) error
	// Run runs a checked statement where each of its stores is a table of
	// that store's events only, passing the rows to sink as they come. It
	// returns the number of rows given to sink. Errors: *StatementError
	// (the engine objects to the statement itself), ErrTooLarge,
	// ErrOutOfMemory (wrapped), an *audit.Error for a value the engine
	// cannot return, ctx's, or the engine's own failures.
	Run(ctx context.Context, st Statement, sink RowSink) (int64, error)
	// Checkpoint makes the engine's log of recent writes part of its main
	// file and empties the log. It fails, without harm, when running
	// statements keep it from doing so.
	Checkpoint(ctx context.Context) error
	// LogSize is the size of the write-ahead log in bytes (0: none).
	LogSize() int64
	// Close releases the engine.
	Close() error
}

// Loader is an Engine that streams a load (an import into event data
// stores) into its transactions instead of taking it in one Insert per
// transaction: the DuckDB engine, whose load transactions must hold
// whole row groups (internal/lake/duckdb, BeginLoad). An engine without it
// gets a load's batches through Insert.
type Loader interface {
	// BeginLoad starts a load: one transaction open at a time, which
	// concurrent Appends take in turn.
	BeginLoad() Load
}

// Load is a load in progress (Loader). Its rows are stored when Finish
// returns nil; a failed Append or Finish leaves those of the transactions
// committed before it, and nothing of the others.
type Load interface {
	// Append adds rows to the load's open transaction, committing it when
	// full and going on in another. It is safe for concurrent use (the
	// calls take turns).
	Append(ctx context.Context, rows []Row) error
	// Finish commits the load's open transaction, once no Append runs.
	// After it the Load is done, whatever it returned.
	Finish(ctx context.Context) error
}

// TableName is the name a store's ID takes in a statement the engine runs.
func TableName(id string) string { return "eds_" + strings.ReplaceAll(id, "-", "_") }

// StatementError is the engine's objection to a statement itself (syntax,
// names, types, values). Msg names only the caller's statement and the
// tables of its own stores, so the caller may read it.
type StatementError struct {
	Msg string
	Err error
}

func (e *StatementError) Error() string { return e.Msg }
func (e *StatementError) Unwrap() error { return e.Err }

var (
	// ErrTooLarge: the results exceed Statement.MaxBytes.
	ErrTooLarge = errors.New("query results too large")
	// ErrOutOfMemory: the statement needs more memory than the engine may
	// use.
	ErrOutOfMemory = errors.New("out of memory")
)
