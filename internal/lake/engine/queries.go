package engine

import (
	"context"
	"time"
)

// QueryStore keeps Lake's queries where every node of a cluster reads
// them: their state and, once finished, their results
// (internal/lake/postgres). A query is
// run by one node, which saves it; any node reads it and may cancel it.
type QueryStore interface {
	// SaveQuery stores q (inserting or replacing it), unless the stored
	// query was cancelled: a CANCELLED query stays so.
	SaveQuery(ctx context.Context, q QueryRecord) error
	// LoadQuery returns the query id; ok false when it is not stored.
	LoadQuery(ctx context.Context, id string) (q QueryRecord, ok bool, err error)
	// CancelQuery makes account's stored query id CANCELLED when it is
	// QUEUED or RUNNING and returns it; ok false (and the query as stored,
	// or a zero one when absent or another account's) otherwise.
	CancelQuery(ctx context.Context, account, id string) (q QueryRecord, ok bool, err error)
	// ListQueries returns account's queries of store (an ID).
	ListQueries(ctx context.Context, account, store string) ([]QueryRecord, error)
	// SaveResult stores rows as the result rows first, first+1... of the
	// query id; a query's result is saved before the query is saved
	// FINISHED.
	SaveResult(ctx context.Context, id string, first int, rows [][]*string) error
	// ResultPage returns rows [start, end) of the result of id, fewer when
	// their cells add up to more than maxBytes (at least one row).
	ResultPage(ctx context.Context, id string, start, end, maxBytes int) ([][]*string, error)
	// ForgetQueries removes the queries ids and those that ended before
	// endedBefore, with their results.
	ForgetQueries(ctx context.Context, ids []string, endedBefore time.Time) error
}

// QueryRecord is a query as a QueryStore keeps it.
type QueryRecord struct {
	ID, Account, Statement, State, ErrorMessage string
	// Node is the node that runs it.
	Node string
	// Stores are the IDs of the event data stores it reads.
	Stores         []string
	Created, Ended time.Time
	Scanned, Rows  int64
	// Columns are a finished query's result columns.
	Columns []string
}
