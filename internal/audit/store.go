package audit

import (
	"context"
	"time"
)

// AppendResult counts what an Append did.
type AppendResult struct {
	// Inserted records were new.
	Inserted int
	// Duplicates were already stored (same Account and EventID) and were
	// left as they were.
	Duplicates int
}

// Appended is a stored record with its place in the store's append order.
type Appended struct {
	Seq    int64
	Record Record
}

// RawAppended is a stored record in the lean form of the append order
// (RawFeed): what a reader of the whole feed that looks only at the JSON
// needs (cairn hunt).
type RawAppended struct {
	Seq int64
	// Time is the record's eventTime, to the second, in UTC.
	Time      time.Time
	EventName string
	// Raw is the record's JSON. It may share memory with the store and
	// with the other records of the page: read it, never change it.
	Raw []byte
}

// RawFeed is the lean form of Store.ReadAppended, for the stores that can
// read it with less work than the whole Record; a reader falls back to
// ReadAppended when its store does not implement it.
type RawFeed interface {
	// ReadRaw returns what ReadAppended(ctx, after, limit) would, the same
	// records in the same order with the same sequence numbers, in the
	// lean form. Its errors are ReadAppended's.
	ReadRaw(ctx context.Context, after int64, limit int) ([]RawAppended, error)
}

// Store keeps records durably and answers lookups. Implementations must pass
// the conformance suite in internal/store/storetest. All methods are safe for
// concurrent use.
type Store interface {
	// Append stores records. It is idempotent: a record whose (Account,
	// EventID) is already stored, or repeats within the batch, is counted as
	// a duplicate and not stored again. When Append returns nil every record
	// is durable: it survives a crash of the process. On error none of the
	// batch may be assumed stored (a retry is safe because of idempotency).
	Append(ctx context.Context, records []Record) (AppendResult, error)

	// Lookup returns up to q.Limit records matching q, newest first (by Time,
	// then EventID, then Account descending: audit.Newer), starting after
	// q.After, leaving out records received before q.ReceivedSince. Page.Next is set
	// when more records may follow.
	Lookup(ctx context.Context, q Query) (Page, error)

	// ReadAppended returns up to limit records appended after sequence
	// number after (0: from the first), in the order they were appended,
	// with their sequence numbers. Sequence numbers are positive, grow
	// with every record stored (duplicates get none) and are never reused,
	// not even after DeleteReceivedBefore or a restart; a record is readable here
	// once the Append that stored it has returned. Removed records are
	// skipped. Readers that deliver what a store holds (trails, Lake,
	// Insights) keep the last number they handled as their position.
	ReadAppended(ctx context.Context, after int64, limit int) ([]Appended, error)

	// DeleteReceivedBefore removes every record the store received
	// (appended) before t, whatever its Time, and returns how many it
	// removed: Event History's retention counts from a record's arrival,
	// so imported old logs are kept for the whole retention.
	DeleteReceivedBefore(ctx context.Context, t time.Time) (int64, error)

	// Close releases the store; pending writes have been made durable by
	// the Append calls that returned.
	Close() error
}
