package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
)

// An offline import's batches are appended in stages (StageEach), so that
// one batch's rows go through DuckDB's Appender while the batch before
// commits: the writer's one goroutine was the import's limit, the readers
// idle behind it (docs/store.md, "Imports", seventh step). So are a
// server's (Options.StagedAppends: the ingest pipeline's writer stages its
// next batch while the one before commits; docs/store.md, "Imports through
// a server, session 18"). A serving store also adds each stage's records
// to the feed's tail once committed, in sequence order, and before a
// checkpoint, with every stage committed, rebuilds the grown filters and
// writes the bucket index, as appendEncoded writes it.
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
	conns chan *sql.Conn // the writer's connection and extra, when free
	extra *sql.Conn
	// last is the stage reserved last (nil: none yet); regrow the buckets
	// whose filters outgrew their size meanwhile. Both under writeMu.
	last   *stage
	regrow map[dk]bool

	// open is the group of batches whose transaction is still open
	// (StageGrouped; nil: none), lastBatch the batch reserved last in a
	// group: each batch appends after it. Both under writeMu.
	open      *group
	lastBatch *grouped

	mu  sync.Mutex
	err error // the first stage's error
	// rewind is the last sequence number committed before the first
	// stage that failed (the smallest first-1 of the failed stages:
	// stages commit in order, and those after a failed one fail too).
	rewind int64
}

// stage is one batch's transaction; done is closed once it committed or
// failed (err).
type stage struct {
	done chan struct{}
	err  error
}

// beginStaged gives the store a second writer connection for staged
// appends (BeginImport, Options.StagedAppends); under writeMu. Without it, StageEach appends as
// AppendEach does.
func (s *Store) beginStaged(ctx context.Context) error {
	if s.staged != nil {
		return nil
	}
	extra, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: second writer connection: %w", err)
	}
	w := &stagedWriter{conns: make(chan *sql.Conn, 2), extra: extra, regrow: map[dk]bool{}}
	w.conns <- s.wconn
	w.conns <- extra
	s.staged = w
	return nil
}

// failed returns the first stage's error.
func (w *stagedWriter) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// fail records the error of the stage whose rows were numbered from
// first on.
func (w *stagedWriter) fail(err error, first int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err, w.rewind = err, first-1
	} else {
		w.rewind = min(w.rewind, first-1)
	}
}

// waitStaged waits until every stage reserved has committed or failed;
// under writeMu. Both connections are free after it. An open group is
// committed with the batches it holds (their appends are under way: a
// reserved batch is always appended).
func (s *Store) waitStaged() {
	if w := s.staged; w != nil {
		s.closeGroup()
		if w.last != nil {
			<-w.last.done
		}
	}
}

// settleStaged waits for the stages reserved and rebuilds the bucket
// filters that outgrew their size meanwhile, from the rows they all
// committed; under writeMu. After a failed stage the sequence numbers
// go back to the last one committed (the failed stages' numbers were
// never stored, and nothing after them committed), and stages may be
// reserved again: a server's pipeline appends the failed batches again.
func (s *Store) settleStaged(ctx context.Context) error {
	w := s.staged
	if w == nil {
		return nil
	}
	s.waitStaged()
	w.mu.Lock()
	if w.err != nil {
		s.lastSeq = min(s.lastSeq, w.rewind)
		w.err = nil
	}
	w.mu.Unlock()
	// Every stage is done: the next waits for none (nor fails for one
	// that failed).
	w.last = nil
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
		if err := s.checkpoint(ctx); err != nil {
			s.log.Warn("duckdb: checkpoint before rebuilding the grown filters", "err", err)
		}
	}
	err := s.settleStaged(ctx)
	s.staged = nil
	return errors.Join(err, w.extra.Close())
}

// StageEach is PrepareEach in three steps: calling it prepares the records
// (their blocks compressed, on every core), the function it returns
// reserves their place after the batches reserved before (the caller
// reserves batches one at a time, in their order), and the one that
// returns appends and commits them after those batches, returning what
// AppendEach would. An importer reserves the next batch while this one
// commits, so that its Appender runs beside the commit. Both functions
// must be called once, the second whenever the first succeeded. Without
// BeginImport the reservation appends the records, as AppendEach.
func (s *Store) StageEach(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	return s.stage(records, false)
}

// StageChecked is StageEach for records the caller has checked (the
// ingest pipeline's in-flight set, ingest.CheckedStager): their keys are
// distinct, not stored, and in no other append until this one returns.
// Its reservation looks for none of them, in the batch or the store: the
// pipeline's check already did, and the store's would find nothing. Every
// record is inserted. Without StagedAppends the records are appended as by
// AppendEach, checked.
func (s *Store) StageChecked(records []audit.Record) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	return s.stage(records, true)
}

// stage prepares records and returns the function that reserves them
// (StageEach, StageChecked).
func (s *Store) stage(records []audit.Record, checked bool) func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
	var pre []encoded
	if len(records) > 0 {
		pre = s.prefetchEncoded(records)
	}
	return func(ctx context.Context) (func(context.Context) ([]bool, error), error) {
		return s.reserveStaged(ctx, records, pre, checked)
	}
}

// stageSealedHook, when set (by tests), runs in a stage whose sealed
// blocks are written to the segments and appended to its transaction,
// before its COMMIT; an error fails the stage there, as a crash would
// stop it.
var stageSealedHook func() error

// reservation is a staged batch's place: its new records, in the order
// and with the sequence numbers (from first on) their rows get.
type reservation struct {
	fresh    []*audit.Record
	hashes   []uint64
	encs     []encoded
	first    int64
	received int64
	// The first sealed of fresh are sealed (importseal.go), in the
	// blocks of sealedB; the rest are the rows.
	sealed  int
	sealedB *sealBatch
}

// rows returns the records of res that go to the table, their hashes
// and encodings, and the sequence number of the first.
func (res *reservation) rows() ([]*audit.Record, []uint64, []encoded, int64) {
	n := res.sealed
	return res.fresh[n:], res.hashes[n:], res.encs[n:], res.first + int64(n)
}

// reserveStaged reserves a stage for records (see stagedWriter).
func (s *Store) reserveStaged(ctx context.Context, records []audit.Record, pre []encoded, checked bool) (func(context.Context) ([]bool, error), error) {
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
	// A stage commits alone, after the batches of a group before it.
	s.closeGroup()
	res, inserted, err := s.reserve(ctx, records, pre, checked)
	if err != nil || res == nil {
		return func(context.Context) ([]bool, error) { return inserted, nil }, err
	}
	w := s.staged
	st := &stage{done: make(chan struct{})}
	prev := w.last
	w.last = st
	onCommitted := s.onCommitted // under writeMu
	return func(ctx context.Context) ([]bool, error) {
		st.err = s.encodeSealed(res.sealedB)
		if st.err == nil {
			st.err = s.commitStage(ctx, w, prev, res, onCommitted)
		}
		if st.err != nil {
			w.fail(st.err, res.first)
		}
		close(st.done)
		if st.err != nil {
			return nil, st.err
		}
		return inserted, nil
	}, nil
}

// reserve does a staged batch's work under writeMu (see stagedWriter):
// its new records' order, sequence numbers, index entries and keys. It
// returns what records[i] is (inserted[i]: new), and no reservation
// when none is. checked records are not looked for (StageChecked).
func (s *Store) reserve(ctx context.Context, records []audit.Record, pre []encoded, checked bool) (*reservation, []bool, error) {
	if s.wconn == nil {
		return nil, nil, errClosed
	}
	w := s.staged
	if err := w.failed(); err != nil {
		return nil, nil, err
	}
	fresh, hashes, idx, kf, err := s.freshOf(ctx, records, func() error {
		s.waitStaged()
		return w.failed()
	}, checked)
	if err != nil {
		return nil, nil, err
	}
	inserted := make([]bool, len(records))
	if len(fresh) == 0 {
		return nil, inserted, nil
	}
	// An import's records of complete days first: they are sealed, the
	// rest go to the table (importseal.go).
	nSealed := s.splitSealable(fresh, hashes, idx)
	if s.checkpointDue() {
		// No transaction may be open during a checkpoint.
		s.waitStaged()
		if err := w.failed(); err != nil {
			return nil, nil, err
		}
		if !s.bulk {
			// A serving store's bucket index goes to bucket_index_v1
			// before its checkpoints, as appendEncoded writes it (an
			// import's at Close): its filters that outgrew their size
			// rebuilt first, now that every stage has committed.
			if err := s.settleStaged(ctx); err != nil {
				return nil, nil, err
			}
			if s.indexLoaded {
				if err := s.writeIndex(ctx, false); err != nil {
					return nil, nil, err
				}
			}
		}
		s.rw.Lock()
		err := s.checkpoint(context.WithoutCancel(ctx))
		s.rw.Unlock()
		if err != nil {
			s.log.Warn("duckdb: checkpoint", "err", err)
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
	if err := s.indexEntries(ctx, entriesOfEncoded(fresh[nSealed:], encs[nSealed:])); err != nil {
		return nil, nil, err
	}
	// Into the key filters before the commit, as appendEncoded: they may
	// hold keys not stored, never miss one stored.
	s.addKeys(kf, hashes)
	first := s.lastSeq + 1
	s.lastSeq += int64(len(fresh))
	sb := s.reserveSealed(fresh, hashes, nSealed, first, received)
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
	return &reservation{fresh: fresh, hashes: hashes, encs: encs, first: first, received: received,
		sealed: nSealed, sealedB: sb}, inserted, nil
}

// appendReserved appends a reservation's rows and its sealed blocks'
// (encoded by encodeSealed) in conn's open transaction.
func (s *Store) appendReserved(ctx context.Context, conn *sql.Conn, res *reservation, publish bool) error {
	if err := s.addSealed(conn, res.sealedB, publish); err != nil {
		return err
	}
	if recs, hashes, encs, first := res.rows(); len(recs) > 0 {
		if err := s.appendRows(conn, recs, hashes, encs, first, res.received); err != nil {
			return fmt.Errorf("duckdb: append: %w", err)
		}
	}
	return nil
}

// commitStage appends a stage's rows on a free connection of w and
// commits them once the stage before (prev, nil: none) has committed;
// then it adds them to the feed's tail and gives them to onCommitted
// (nil: none) before the next stage may commit, so that both see every
// stage's records once, in sequence order, as appendEncoded gives them.
func (s *Store) commitStage(ctx context.Context, w *stagedWriter, prev *stage, res *reservation, onCommitted func(int64, []*audit.Record)) (err error) {
	fresh, first, received := res.fresh, res.first, res.received
	conn := <-w.conns
	defer func() { w.conns <- conn }()
	committed := false
	rollback, err := s.beginTx(ctx, conn, &committed)
	if err != nil {
		return err
	}
	defer rollback()
	if err := s.appendReserved(ctx, conn, res, false); err != nil {
		return err
	}
	if stageSealedHook != nil && res.sealedB != nil {
		if err := stageSealedHook(); err != nil {
			return err
		}
	}
	if prev != nil {
		<-prev.done
		if prev.err != nil {
			return fmt.Errorf("duckdb: an earlier batch failed: %w", prev.err)
		}
	}
	// The commit merges the rows into the table: no read runs meanwhile
	// (see Store).
	// Its sealed blocks join the directory with the rows, under rw.
	err = s.commitAloneThen(ctx, conn, len(fresh), first+int64(len(fresh))-1, func() { s.publishSealed(res.sealedB) })
	if err != nil {
		return fmt.Errorf("duckdb: commit: %w", err)
	}
	committed = true
	// An import's tail keeps nothing (BeginImport). A server's keeps the
	// sealed records too, for the feed, but not in its buckets: the
	// bucket index does not count them (tail.add).
	s.tail.add(fresh, first, received, res.sealed)
	if onCommitted != nil {
		onCommitted(first, fresh)
	}
	return nil
}
