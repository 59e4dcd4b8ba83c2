package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
)

// txRowGroup is the rows an offline import's transaction holds before it
// commits (StageGrouped): DuckDB's default row group, 122,880 rows. Once
// a transaction has appended that many, DuckDB writes its rows straight
// into the database file a row group at a time, compressed as a
// checkpoint would ("optimistic writes"), and its COMMIT only links them:
// no copy in the WAL, nothing held in memory (and spilled past
// memory_limit) until a checkpoint writes them again. A transaction of
// fewer rows goes through the WAL; the attached file's ROW_GROUP_SIZE
// does not count (docs/store.md, "Imports", session 23).
const txRowGroup = 122880

// group is a transaction that holds several staged batches, appended one
// after the other on one connection and committed together once it holds
// txRowGroup rows, or sooner when something waits for it (waitStaged).
type group struct {
	st    *stage // done once committed or failed
	prev  *stage // the stage or group before (nil: none)
	first int64  // the sequence number of its first record
	// rows: the rows it appends to the events table, records its
	// batches' records (sealed ones included), lastSeq the sequence
	// number of its last record.
	rows    int
	records int
	lastSeq int64
	last    *grouped // the batch reserved last in it
	// conn holds the transaction from its first batch's append on; read
	// by the batches after it and the commit, each after the one before
	// (grouped.appended).
	conn *sql.Conn

	mu  sync.Mutex
	err error // the first of its batches' failures
}

func (g *group) failed(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
	}
}

func (g *group) failure() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// grouped is one batch of a group; appended is closed once its rows are
// appended or it failed (err).
type grouped struct {
	g        *group
	appended chan struct{}
	err      error
}

// StageGrouped is StageEach for an offline import (BeginImport): the
// batches reserved one after the other share a transaction until it holds
// txRowGroup rows (a row group DuckDB writes straight to the file). The
// last function appends the batch's rows to that transaction and returns
// at once, with what AppendEach would answer, and committed, which waits
// for the transaction's COMMIT and returns its error: a batch is stored
// only once committed returns nil. The records are not kept after it
// returns (what the commit needs is their count and sequence numbers).
// EndGroup commits a group that has not filled, as does anything that
// waits for the batches staged (Close, LastSeq, a checkpoint). Without
// BeginImport it is StageEach, committed returning nil.
//
// OnCommitted's function is given a grouped batch's records once they are
// appended, before their COMMIT: the Insights detector of an import saves
// its state only when its records end at LastSeq, which counts committed
// rows only.
func (s *Store) StageGrouped(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, func() error, error), error) {
	var pre []encoded
	if len(records) > 0 {
		pre = s.prefetchEncoded(records)
	}
	return func(ctx context.Context) (func(context.Context) ([]bool, func() error, error), error) {
		return s.reserveGrouped(ctx, records, pre)
	}
}

func committedNow() error { return nil }

// reserveGrouped reserves records' place in the open group (see
// StageGrouped).
func (s *Store) reserveGrouped(ctx context.Context, records []audit.Record, pre []encoded) (func(context.Context) ([]bool, func() error, error), error) {
	s.writeMu.Lock()
	if s.staged == nil || !s.bulk || len(records) == 0 {
		s.writeMu.Unlock()
		commit, err := s.reserveStaged(ctx, records, pre, false)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) ([]bool, func() error, error) {
			ins, err := commit(ctx)
			return ins, committedNow, err
		}, nil
	}
	defer s.writeMu.Unlock()
	res, inserted, err := s.reserve(ctx, records, pre, false)
	if err != nil || res == nil {
		return func(context.Context) ([]bool, func() error, error) { return inserted, committedNow, nil }, err
	}
	w := s.staged
	g := w.open
	if g == nil {
		g = &group{st: &stage{done: make(chan struct{})}, prev: w.last, first: res.first}
		w.open, w.last = g, g.st
	}
	b := &grouped{g: g, appended: make(chan struct{})}
	prevB := w.lastBatch
	w.lastBatch, g.last = b, b
	// The rows the transaction writes to the table (its sealed records'
	// blocks are not rows of it); it commits once it holds txRowGroup
	// records all the same, sealed or not: what waits for its COMMIT (the
	// importer's count of each batch, which names its accounts and
	// regions in the batch's memory) would otherwise wait for the end of
	// an import that seals everything (a 10M import held 500 MB so).
	g.rows += len(res.fresh) - res.sealed
	g.records += len(res.fresh)
	g.lastSeq = res.first + int64(len(res.fresh)) - 1
	if g.records >= txRowGroup {
		s.closeGroup()
	}
	onCommitted := s.onCommitted // under writeMu
	return func(context.Context) ([]bool, func() error, error) {
		// Its sealed blocks encoded while the batch before appends.
		encErr := s.encodeSealed(res.sealedB)
		if prevB != nil {
			<-prevB.appended
		}
		b.err = encErr
		if b.err == nil {
			b.err = s.appendGrouped(w, b, prevB, res)
		}
		if b.err == nil && onCommitted != nil {
			onCommitted(res.first, res.fresh)
		}
		if b.err != nil {
			g.failed(b.err)
		}
		close(b.appended)
		if b.err != nil {
			return nil, nil, b.err
		}
		return inserted, func() error {
			<-g.st.done
			return g.st.err
		}, nil
	}, nil
}

// appendGrouped appends a batch's rows to its group's transaction, which
// its group's first batch begins; prevB (nil: none) appended before it.
func (s *Store) appendGrouped(w *stagedWriter, b *grouped, prevB *grouped, res *reservation) error {
	g := b.g
	if err := g.failure(); err != nil {
		return fmt.Errorf("duckdb: an earlier batch of the transaction failed: %w", err)
	}
	if prevB != nil && prevB.g != g {
		// A group before failed: what would follow it is not stored.
		if err := w.failed(); err != nil {
			return fmt.Errorf("duckdb: an earlier batch failed: %w", err)
		}
	}
	if g.conn == nil {
		conn := <-w.conns
		if _, err := conn.ExecContext(context.Background(), "BEGIN TRANSACTION"); err != nil {
			w.conns <- conn
			return fmt.Errorf("duckdb: begin: %w", err)
		}
		g.conn = conn
	}
	return s.appendReserved(context.Background(), g.conn, res, true)
}

// closeGroup closes the open group, if any: no batch joins it after, and
// it commits once its batches are appended and the stage before it has
// committed. Under writeMu.
func (s *Store) closeGroup() {
	w := s.staged
	if w == nil || w.open == nil {
		return
	}
	g := w.open
	w.open = nil
	go s.commitGroup(w, g)
}

// commitGroup commits g after its last batch's append and the stage
// before it, or rolls it back when one of its batches or an earlier stage
// failed.
func (s *Store) commitGroup(w *stagedWriter, g *group) {
	<-g.last.appended
	err := g.failure()
	if g.prev != nil {
		<-g.prev.done
		if err == nil && g.prev.err != nil {
			err = fmt.Errorf("duckdb: an earlier batch failed: %w", g.prev.err)
		}
	}
	if err == nil {
		// The COMMIT of what the import appended is not given up when the
		// import is interrupted: the report counts what committed.
		if cerr := s.commitAlone(context.Background(), g.conn, g.rows, g.lastSeq); cerr != nil {
			err = fmt.Errorf("duckdb: commit: %w", cerr)
		}
	}
	if g.conn != nil {
		if err != nil {
			if _, rerr := g.conn.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				s.log.Warn("duckdb: rollback", "err", rerr)
			}
		}
		w.conns <- g.conn
	}
	if err != nil {
		w.fail(err, g.first)
	}
	g.st.err = err
	close(g.st.done)
}

// EndGroup commits the open group of StageGrouped's batches (their
// committed functions return once it has), without waiting for it. An
// importer calls it after its last batch.
func (s *Store) EndGroup() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.closeGroup()
}
