package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// An offline import's batches are appended in stages (StageEach), so that
// one batch's rows go through DuckDB's Appender while the batch before
// commits: the writer's one goroutine was the import's limit, the readers
// idle behind it (docs/store.md, "Imports", seventh step).
//
// A stage is reserved under writeMu, in the batches' order: the duplicate
// check, the rows' order and sequence numbers, the bucket index in memory
// and the keys in the key filters, all as appendEncoded does them. Its
// rows are then appended, without writeMu, in a transaction of their own
// on one of two connections, and committed after the stage before it.
// What a reservation reads from the table (the key filter built or grown,
// a duplicate's candidates) it reads once every stage before it has
// committed, so it sees them all; a bucket filter that outgrew its size is
// rebuilt from the table once they have (settleStaged), not while another
// batch's rows may be uncommitted: until then it answers more false
// positives, never a false negative. A stage that fails fails the stages
// reserved after it; their keys and index entries stay in memory, which
// costs false positives only, as a failed append's do.
type stagedWriter struct {
	s     *Store
	conns chan *sql.Conn // the writer's connection and extra, when free
	extra *sql.Conn
	// last is the stage reserved last (nil: none yet); regrow the buckets
	// whose filters outgrew their size meanwhile. Both under writeMu.
	last   *stage
	regrow map[dk]bool
	// txRows: a transaction takes the stages appended after each other
	// until it holds this many rows (see stagedTx).
	txRows int

	mu  sync.Mutex
	err error // the first stage's error
	// open is the transaction the next stage appends to (nil: none;
	// the next stage begins one), lastTx the last one begun.
	open, lastTx *stagedTx
	// pending counts the StageEach calls whose reservation has not ended;
	// reserved the stages reserved (a stage's n is their count before it).
	pending  int
	reserved int64
	// force: commit the open transaction once the last stage reserved is
	// in it, whatever its rows (waitStaged).
	force bool
	txs   int // transactions committed (tests)
}

// stagedTx is one transaction of an import's stages, on one of the two
// connections. Stages append to it one after the other, in their order,
// and it commits once it holds txRows rows (DuckDB's row group, 122,880:
// a transaction that appends that many writes its rows straight into the
// file, compressed as a checkpoint would, and its COMMIT logs only where
// they are, instead of copying every row into the WAL, keeping them in
// memory, spilling them at the memory limit and writing them again at the
// checkpoint), or earlier when no stage is coming: the last stage reserved
// is in it and no StageEach waits for its reservation, or a reader or
// Close waits for the stages (waitStaged). Transactions commit in their
// order; their stages' answers come after their COMMIT.
type stagedTx struct {
	conn   *sql.Conn
	prev   *stagedTx // committed (or failed) before this one; nil: none
	rows   int
	stages []*stage
	done   chan struct{} // closed once committed or failed (err)
	err    error
	// timer: a look after stageGrace is due; idle: that look is running.
	// Both under stagedWriter.mu.
	timer, idle bool
}

// stage is one batch of an import: reserved under writeMu, then appended
// to a transaction (appended closed, also when it failed), then committed
// with it (done closed, err).
type stage struct {
	n        int64
	appended chan struct{}
	done     chan struct{}
	err      error
	// The rows to append (hashes and encs dropped once appended) and what
	// onCommitted is given after the COMMIT.
	fresh       []*audit.Record
	hashes      []uint64
	encs        []encoded
	first       int64
	received    int64
	onCommitted func(int64, []*audit.Record)
}

// bulkTxRows is stagedWriter.txRows: DuckDB's merge threshold (its
// default row group, 122,880 rows; the attached file's ROW_GROUP_SIZE
// does not change it). docs/store.md, "Imports", session 16.
var bulkTxRows = 122880

// beginStaged gives the store a second writer connection for staged
// appends (BeginImport); under writeMu. Without it, StageEach appends as
// AppendEach does.
func (s *Store) beginStaged(ctx context.Context) error {
	if s.staged != nil {
		return nil
	}
	extra, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: second writer connection: %w", err)
	}
	w := &stagedWriter{s: s, conns: make(chan *sql.Conn, 2), extra: extra, regrow: map[dk]bool{}, txRows: bulkTxRows}
	if s.lastSeq > 0 {
		// Into a store that held rows every batch's duplicate check
		// waits for the stages before it to commit (freshOf): a
		// transaction a stage, committed once appended.
		w.txRows = 0
	}
	w.conns <- s.wconn
	w.conns <- extra
	s.staged = w
	s.stagedNow.Store(w)
	return nil
}

// failed returns the first stage's error.
func (w *stagedWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *stagedWriter) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// waitStaged waits until every stage reserved has committed or failed;
// under writeMu. The open transaction commits once the last stage
// reserved is in it, however few its rows. Both connections are free
// after it.
func (s *Store) waitStaged() {
	w := s.staged
	if w == nil || w.last == nil {
		return
	}
	w.mu.Lock()
	w.force = true
	tx := w.dueLocked()
	w.mu.Unlock()
	if tx != nil {
		s.commitTx(tx)
	}
	<-w.last.done
	w.mu.Lock()
	w.force = false
	w.mu.Unlock()
}

// dueLocked returns the open transaction when it must commit now, taken
// from open (see stagedTx); nil otherwise. Under w.mu. A transaction not
// full yet whose stages are all in while no StageEach waits for its
// reservation commits only once the transaction before it has committed
// and nothing came for stageGrace: the importer's appenders wait for the
// transactions they appended to, so while one commits the next one sees
// no StageEach until the commit frees them; committed then, it would be
// small and its rows go through the WAL.
func (w *stagedWriter) dueLocked() *stagedTx {
	tx := w.open
	if tx == nil || len(tx.stages) == 0 {
		return nil
	}
	allIn := tx.stages[len(tx.stages)-1].n+1 == w.reserved
	if tx.rows >= w.txRows || (allIn && w.force) {
		w.open = nil
		return tx
	}
	if !allIn || w.pending > 0 {
		return nil
	}
	if tx.prev != nil {
		select {
		case <-tx.prev.done:
		default:
			return nil // its end looks again (endTx)
		}
	}
	if tx.idle {
		w.open = nil
		return tx
	}
	if !tx.timer {
		tx.timer = true
		time.AfterFunc(stageGrace, func() {
			w.mu.Lock()
			tx.timer = false
			var due *stagedTx
			if w.open == tx {
				tx.idle = true
				due = w.dueLocked()
				tx.idle = false
			}
			w.mu.Unlock()
			if due != nil {
				w.s.commitTx(due)
			}
		})
	}
	return nil
}

// stageGrace is how long a transaction not full yet waits for more stages
// once nothing else would come (dueLocked).
var stageGrace = 50 * time.Millisecond

// settleStaged waits for the stages reserved and rebuilds the bucket
// filters that outgrew their size meanwhile, from the rows they all
// committed; under writeMu.
func (s *Store) settleStaged(ctx context.Context) error {
	w := s.staged
	if w == nil {
		return nil
	}
	s.waitStaged()
	if len(w.regrow) == 0 {
		return nil
	}
	grow := w.regrow
	w.regrow = map[dk]bool{}
	return s.rebuildGrown(ctx, grow)
}

// closeStaged settles the stages and closes the second connection; under
// writeMu, by Close.
func (s *Store) closeStaged(ctx context.Context) error {
	w := s.staged
	if w == nil {
		return nil
	}
	s.waitStaged()
	if len(w.regrow) > 0 {
		// The rebuild's scan reads the rows from the file, not from
		// DuckDB's uncheckpointed table: twice in session 15 that scan,
		// over an import's rows spilled at its memory limit, died by
		// SIGSEGV inside DuckDB (UncompressedStringStorage::
		// ReadStringMarker, docs/store.md, "Imports", session 15). The
		// checkpoint is the one Close makes anyway, made earlier.
		if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
			s.log.Warn("duckdb: checkpoint before rebuilding the grown filters", "err", err)
		} else {
			s.commits = 0
		}
	}
	err := s.settleStaged(ctx)
	s.staged = nil
	s.stagedNow.Store(nil)
	return errors.Join(err, w.extra.Close())
}

// StageEach is PrepareEach in three steps: calling it prepares the records
// (their blocks compressed, on every core), the function it returns
// reserves their place after the batches reserved before (the caller
// reserves batches one at a time, in their order), and the one that
// returns appends them after those batches and returns what AppendEach
// would once they are committed. An importer reserves the next batch while
// this one is appended or waits for its commit: the batches of an import
// share transactions of about a row group (stagedTx), so the caller must
// call the first function once (with a cancelled context when it gives the
// batch up: then nothing waits for its reservation) and the second
// whenever the first succeeded, without waiting for another batch's
// answer in between. Without BeginImport the reservation appends the
// records, as AppendEach.
func (s *Store) StageEach(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	w := s.stagedNow.Load()
	if w != nil {
		w.mu.Lock()
		w.pending++
		w.mu.Unlock()
	}
	var pre []encoded
	if len(records) > 0 {
		pre = s.prefetchEncoded(records)
	}
	return func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
		var st *stage
		if w != nil {
			defer func() {
				// This reservation is over: the open transaction may
				// wait for nothing else (dueLocked).
				w.mu.Lock()
				w.pending--
				tx := w.dueLocked()
				w.mu.Unlock()
				if tx != nil {
					go s.commitTx(tx)
				}
			}()
		}
		return s.reserveStaged(ctx, records, pre, &st)
	}
}

// reserveStaged reserves a stage for records (see stagedWriter); *made is
// set to it.
func (s *Store) reserveStaged(ctx context.Context, records []audit.Record, pre []encoded, made **stage) (func(context.Context) ([]bool, error), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.writeMu.Lock()
	if s.staged == nil || len(records) == 0 {
		s.writeMu.Unlock()
		ins, err := s.appendEncoded(ctx, records, pre)
		if err != nil {
			return nil, err
		}
		return func(context.Context) ([]bool, error) { return ins, nil }, nil
	}
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return nil, errClosed
	}
	w := s.staged
	if err := w.failed(); err != nil {
		return nil, err
	}
	fresh, hashes, idx, kf, err := s.freshOf(ctx, records, func() error {
		s.waitStaged()
		return w.failed()
	})
	if err != nil {
		return nil, err
	}
	inserted := make([]bool, len(records))
	if len(fresh) == 0 {
		return func(context.Context) ([]bool, error) { return inserted, nil }, nil
	}
	if s.checkpointDue() {
		// No transaction may be open during a checkpoint.
		s.waitStaged()
		if err := w.failed(); err != nil {
			return nil, err
		}
		s.rw.Lock()
		_, err := s.wconn.ExecContext(context.WithoutCancel(ctx), "CHECKPOINT")
		s.rw.Unlock()
		if err != nil {
			s.log.Warn("duckdb: checkpoint", "err", err)
		} else {
			s.commits = 0
		}
	}
	received := s.now().Unix()
	encs := make([]encoded, len(fresh))
	if pre != nil {
		for j, i := range idx {
			encs[j] = pre[i]
		}
	}
	// The index entries before the encodings the stage makes: those
	// without prefetched values get theirs here.
	if err := s.indexEntries(ctx, entriesOfEncoded(fresh, encs)); err != nil {
		return nil, err
	}
	// Into the key filters before the commit, as appendEncoded: they may
	// hold keys not stored, never miss one stored.
	s.addKeys(kf, hashes)
	first := s.lastSeq + 1
	s.lastSeq += int64(len(fresh))
	if received < s.minReceived.Load() {
		s.minReceived.Store(received)
	}
	if s.bulk {
		for j, r := range fresh {
			if j+1 < len(fresh) && fresh[j+1].Account == r.Account && fresh[j+1].Region == r.Region && fresh[j+1].Category == r.Category {
				continue
			}
			s.last[partKey{r.Account, r.Region, r.Category}] = keyOf(r)
		}
	}
	s.commits++
	for _, i := range idx {
		inserted[i] = true
	}
	st := &stage{appended: make(chan struct{}), done: make(chan struct{}), fresh: fresh, hashes: hashes, encs: encs,
		first: first, received: received, onCommitted: s.onCommitted} // onCommitted under writeMu
	w.mu.Lock()
	st.n = w.reserved
	w.reserved++
	w.mu.Unlock()
	*made = st
	prev := w.last
	w.last = st
	return func(ctx context.Context) ([]bool, error) {
		if err := s.commitStage(ctx, prev, st); err != nil {
			return nil, err
		}
		return inserted, nil
	}, nil
}

// commitStage appends a stage's rows to the open transaction (beginning
// one when there is none) once the stage before (prev, nil: none) has
// appended its own, commits the transaction when it is due (dueLocked),
// and returns once it committed or failed.
func (s *Store) commitStage(ctx context.Context, prev *stage, st *stage) error {
	w := s.staged
	if prev != nil {
		<-prev.appended
	}
	fail := func(err error) error {
		// The open transaction fails with it: its stages were appended
		// before this one, and no later stage joins it.
		w.fail(err)
		w.mu.Lock()
		tx := w.open
		w.open = nil
		w.mu.Unlock()
		st.err = err
		close(st.appended)
		close(st.done)
		if tx != nil {
			s.endTx(tx, err)
		}
		return err
	}
	if err := w.failed(); err != nil {
		return fail(fmt.Errorf("duckdb: an earlier batch failed: %w", err))
	}
	w.mu.Lock()
	tx := w.open
	w.mu.Unlock()
	if tx == nil {
		conn := <-w.conns
		if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
			w.conns <- conn
			return fail(fmt.Errorf("duckdb: begin: %w", err))
		}
		w.mu.Lock()
		tx = &stagedTx{conn: conn, prev: w.lastTx, done: make(chan struct{})}
		w.open, w.lastTx = tx, tx
		w.mu.Unlock()
	}
	err := s.appendRows(tx.conn, st.fresh, st.hashes, st.encs, st.first, st.received)
	st.hashes, st.encs = nil, nil
	w.mu.Lock()
	tx.stages = append(tx.stages, st)
	if err != nil {
		if w.err == nil {
			w.err = fmt.Errorf("duckdb: append: %w", err)
		}
		w.open = nil
		w.mu.Unlock()
		close(st.appended)
		s.endTx(tx, fmt.Errorf("duckdb: append: %w", err))
		return st.err
	}
	tx.rows += len(st.fresh)
	close(st.appended)
	due := w.dueLocked()
	w.mu.Unlock()
	if due != nil {
		s.commitTx(due)
	}
	<-st.done
	return st.err
}

// commitTx commits tx after the transaction before it, gives its stages'
// rows to their onCommitted (in sequence order, before the next
// transaction may commit) and answers its stages.
func (s *Store) commitTx(tx *stagedTx) {
	var err error
	if tx.prev != nil {
		<-tx.prev.done
		if tx.prev.err != nil {
			err = fmt.Errorf("duckdb: an earlier batch failed: %w", tx.prev.err)
		}
	}
	if err == nil {
		// The commit merges the rows into the table: no read runs
		// meanwhile (see Store).
		s.rw.Lock()
		_, err = tx.conn.ExecContext(context.Background(), "COMMIT")
		s.rw.Unlock()
		if err != nil {
			err = fmt.Errorf("duckdb: commit: %w", err)
		}
	}
	if err == nil {
		for _, st := range tx.stages {
			if st.onCommitted != nil {
				st.onCommitted(st.first, st.fresh)
			}
		}
	}
	s.endTx(tx, err)
}

// endTx ends tx: rolled back when err is not nil; then its connection is
// given back and its stages answered.
func (s *Store) endTx(tx *stagedTx, err error) {
	w := s.staged
	if err != nil {
		w.fail(err)
		if _, rerr := tx.conn.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
			s.log.Warn("duckdb: rollback", "err", rerr)
		}
	} else {
		w.mu.Lock()
		w.txs++
		w.mu.Unlock()
	}
	w.conns <- tx.conn
	tx.err = err
	for _, st := range tx.stages {
		st.err, st.fresh = err, nil
		close(st.done)
	}
	close(tx.done)
	// The next transaction may be due now that this one is over.
	w.mu.Lock()
	due := w.dueLocked()
	w.mu.Unlock()
	if due != nil {
		go s.commitTx(due)
	}
}
