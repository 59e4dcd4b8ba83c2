package duckdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// recompressBatch is how many blocks RecompressSealed encodes again at
// most per call: about 10 ms of encoding on one core, so that a server's
// appends wait for its commit only briefly.
const recompressBatch = 16

// recompressJob is a block encoded again: m its Meta when read (nil when
// the Dir no longer held it), data its new bytes.
type recompressJob struct {
	id   int64
	m    *sealed.Meta
	data []byte
}

// PendingSealed returns how many sealed blocks wait to be encoded again
// at sealed.Level (RecompressSealed).
func (s *Store) PendingSealed() int {
	if s.sealed == nil {
		return 0
	}
	s.rw.RLock()
	defer s.rw.RUnlock()
	return max(0, s.sealed.pendingN)
}

// RecompressSealed encodes again, at sealed.Level, up to max of the sealed
// blocks an offline import wrote at sealed.ImportLevel (pendingFile;
// docs/store.md, "Sealing at import speed, compressed later"), and returns
// how many it did and how many are left. The records, their order and
// every Meta but its Loc stay as they were; only the bytes change.
//
// The blocks are read under rw shared (beside lookups; retention waits)
// and encoded outside it and the writer's lock. Then, under writeMu, the
// blocks retention removed meanwhile are left out, the new bytes are
// written to the segments (durable before the commit; the first segment
// they go to is a new one, so that the segments the import filled empty
// out and are removed whole), and each block's row takes its new place
// in one transaction, committed with rw held alone; the pending list
// loses them. A crash before the commit leaves the rows where they were and
// the new bytes unreferenced (Segments.Recover cuts them at the next
// Open); after it, the old segment no row references is removed then.
func (s *Store) RecompressSealed(ctx context.Context, max int) (done, left int, err error) {
	return s.recompressSealed(ctx, max, nil)
}

// RecompressAllSealed is RecompressSealed until no pending block is left,
// encoding on every core (`cairn compact`, with no server: nothing else
// waits for the store); progress, when not nil, is called after each
// batch with the blocks done so far and those left. It returns how many
// blocks it encoded again.
func (s *Store) RecompressAllSealed(ctx context.Context, progress func(done, left int)) (int, error) {
	if s.PendingSealed() == 0 {
		return 0, nil
	}
	pool, err := newEncoderPool(sealed.Level)
	if err != nil {
		return 0, err
	}
	// 32 blocks a core: each holds up to 128 KiB of content decoded, and
	// a batch's rows move in one transaction.
	batch := 32 * cap(pool)
	done, before := 0, s.PendingSealed()
	for {
		n, left, err := s.recompressSealed(ctx, batch, pool)
		if err != nil {
			return done, err
		}
		done += n
		if progress != nil {
			progress(done, left)
		}
		if left == 0 || left >= before { // none left, or none it can do
			return done, nil
		}
		before = left
	}
}

// recompressSealed is RecompressSealed, encoding on pool's cores when pool
// is not nil, else on the caller's goroutine with the tier's one encoder.
func (s *Store) recompressSealed(ctx context.Context, max int, pool encoderPool) (done, left int, err error) {
	if s.sealed == nil || max <= 0 {
		return 0, s.PendingSealed(), nil
	}
	t := s.sealed
	var jobs []recompressJob
	var last int64 // the last ID looked at
	type block struct {
		m  *sealed.Meta
		es []sealed.Entry
	}
	var blocks []block
	// Read under rw (retention removes segments under it alone), encoded
	// outside it: the entries are never changed (decoded here, or the
	// cache's), and a block retention removes meanwhile is left out by
	// relocateSealed.
	err = func() error {
		s.rw.RLock()
		defer s.rw.RUnlock()
		if len(t.pending) == 0 || t.segs == nil {
			return nil
		}
	pick:
		for _, r := range t.pending {
			for id := r[0]; id <= r[1]; id++ {
				if len(blocks) == max {
					break pick
				}
				last = id
				m, ok := t.dir.Block(id)
				if !ok {
					continue
				}
				es, _ := t.cache.get(id)
				blocks = append(blocks, block{m, es})
			}
		}
		// The blocks the cache did not hold, read and decoded: on every
		// core with a pool (the decoder is safe for concurrent use).
		workers := 1
		if pool != nil {
			workers = cap(pool)
		}
		next := make(chan int, len(blocks))
		for i, b := range blocks {
			if b.es == nil {
				next <- i
			}
		}
		close(next)
		errs := make([]error, len(blocks))
		var wg sync.WaitGroup
		for range min(workers, len(next)) {
			wg.Go(func() {
				for i := range next {
					b := &blocks[i]
					data, err := t.segs.Read(b.m.Loc, nil)
					if err == nil {
						b.es, err = t.dec.Decode(data, b.m)
					}
					errs[i] = err
				}
			})
		}
		wg.Wait()
		return errors.Join(errs...)
	}()
	if err == nil && len(blocks) > 0 && pool != nil {
		es := make([][]sealed.Entry, len(blocks))
		for i, b := range blocks {
			es[i] = slices.Clone(b.es) // Encode sorts in place: not the shared entries
		}
		var (
			data  [][]byte
			metas []sealed.Meta
		)
		if data, metas, err = pool.encode(es); err == nil {
			for i, b := range blocks {
				if err = sameBounds(&metas[i], b.m); err != nil {
					break
				}
				jobs = append(jobs, recompressJob{id: b.m.ID, m: b.m, data: data[i]})
			}
		}
	} else if err == nil && len(blocks) > 0 {
		t.recMu.Lock()
		if t.recEnc == nil {
			t.recEnc, err = sealed.NewEncoder()
		}
		for _, b := range blocks {
			if err != nil {
				break
			}
			// Encode sorts in place: not the shared entries.
			var (
				data []byte
				meta sealed.Meta
			)
			data, meta, err = t.recEnc.Encode(slices.Clone(b.es))
			if err == nil {
				err = sameBounds(&meta, b.m)
			}
			jobs = append(jobs, recompressJob{id: b.m.ID, m: b.m, data: data})
		}
		t.recMu.Unlock()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("duckdb: recompress sealed blocks: %w", err)
	}
	if last == 0 {
		return 0, s.PendingSealed(), nil
	}
	n, err := s.relocateSealed(ctx, jobs, last)
	if err != nil {
		return 0, 0, fmt.Errorf("duckdb: recompress sealed blocks: %w", err)
	}
	return n, s.PendingSealed(), nil
}

// sameBounds checks that a block encoded again (meta) has its old Meta's
// counts and bounds: its records, not others.
func sameBounds(meta, m *sealed.Meta) error {
	if meta.N != m.N || meta.TMin != m.TMin || meta.TMax != m.TMax || meta.SeqMin != m.SeqMin || meta.SeqMax != m.SeqMax {
		return fmt.Errorf("block %d encodes to other bounds", m.ID)
	}
	return nil
}

// relocateSealed writes the jobs' bytes and moves their blocks' rows to
// them (RecompressSealed), then takes the IDs up to last off the pending
// list; it returns how many blocks moved.
func (s *Store) relocateSealed(ctx context.Context, jobs []recompressJob, last int64) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return 0, errClosed
	}
	if err := s.settleStaged(ctx); err != nil {
		return 0, err
	}
	t := s.sealed
	var (
		data  [][]byte
		moved []recompressJob
	)
	active := uint32(0)
	for seg := range t.segs.Sizes() {
		active = max(active, seg)
	}
	// The first batch of a process starts a segment of its own: the
	// active one may hold pending blocks of the import that are not in
	// this batch, and new bytes beside them would keep it from emptying.
	rotate := !t.rotated
	for _, j := range jobs {
		if cur, ok := t.dir.Block(j.id); j.m == nil || !ok || cur != j.m {
			continue // retention removed or wrote it again meanwhile
		}
		data = append(data, j.data)
		moved = append(moved, j)
		rotate = rotate || j.m.Loc.Seg == active
	}
	var locs []sealed.Loc
	if len(moved) > 0 {
		// Not beside a serving store's pending blocks either
		// (writeSealedSegs); its stages are settled (no Write meanwhile).
		t.segMu.Lock()
		rotate = rotate || t.activePending
		if rotate {
			if err := t.segs.Rotate(); err != nil {
				t.segMu.Unlock()
				return 0, err
			}
			t.rotated = true
		}
		var err error
		locs, err = t.segs.Write(data)
		if err == nil {
			t.activeLevel, t.activePending = true, false
		}
		t.segMu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			if _, err := s.wconn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
				s.log.Warn("duckdb: rollback", "err", err)
			}
		}
	}()
	if len(moved) > 0 {
		// One statement for the batch: an UPDATE a block cost about 0.5 ms
		// (half of `cairn compact`'s time at 1M). The values are integers.
		var q strings.Builder
		q.WriteString(`UPDATE sealed_blocks SET seg = v.seg, off = v.off, len = v.len, crc = v.crc FROM (VALUES `)
		for i, j := range moved {
			l := locs[i]
			if i > 0 {
				q.WriteString(", ")
			}
			fmt.Fprintf(&q, "(%d::BIGINT, %d::UINTEGER, %d::BIGINT, %d::UINTEGER, %d::UINTEGER)", j.id, l.Seg, l.Off, l.Len, l.CRC)
		}
		q.WriteString(`) AS v(id, seg, off, len, crc) WHERE sealed_blocks.id = v.id`)
		res, err := s.wconn.ExecContext(ctx, q.String())
		if err != nil {
			return 0, err
		}
		if n, err := res.RowsAffected(); err != nil || n != int64(len(moved)) {
			return 0, fmt.Errorf("moved %d blocks' rows of %d (%v)", n, len(moved), err)
		}
	}
	ms := make([]*sealed.Meta, len(moved))
	for i, j := range moved {
		m := *j.m
		m.Loc = locs[i]
		ms[i] = &m
	}
	s.rw.Lock()
	defer s.rw.Unlock()
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	committed = true
	t.dir.Add(ms...) // the same IDs: each replaces its block
	for _, id := range t.pending.upTo(last) {
		if _, ok := t.dir.Block(id); ok {
			t.pendingN--
		}
	}
	t.pending = t.pending.after(last)
	t.pendingSaves++
	if len(t.pending) == 0 || t.pendingSaves%pendingSaveEvery == 0 {
		// Not an error: a list behind the blocks only costs their
		// encoding again after a restart.
		if err := s.savePending(); err != nil {
			s.log.Warn("duckdb: saving the sealed blocks left to recompress", "err", err)
		}
	}
	live := t.dir.LiveBytes()
	for seg := range t.segs.Sizes() {
		if live[seg] == 0 {
			// The active segment stays (Remove refuses it).
			if err := t.segs.Remove(seg); err != nil {
				s.log.Debug("duckdb: sealed segment kept", "segment", seg, "err", err)
			}
		}
	}
	return len(moved), nil
}

// pendingFile is the list of the sealed blocks left to recompress, in the
// segments' folder: lines of "FIRST LAST" block IDs, ascending. It is a
// hint, not a record: a block listed that is at sealed.Level already is
// only encoded again, and one left off stays at sealed.ImportLevel, both
// readable; so it is written outside the store's transactions (by an
// import's Close, and every pendingSaveEvery batches RecompressSealed
// does), and removed once empty.
const (
	pendingFile      = "pending"
	pendingSaveEvery = 8
)

// idRanges are inclusive ranges of block IDs, ascending and apart.
type idRanges [][2]int64

func (r idRanges) has(id int64) bool {
	for _, x := range r {
		if x[0] <= id && id <= x[1] {
			return true
		}
	}
	return false
}

// upTo returns the IDs of r up to last (the blocks it may hold).
func (r idRanges) upTo(last int64) []int64 {
	var ids []int64
	for _, x := range r {
		for id := x[0]; id <= min(x[1], last); id++ {
			ids = append(ids, id)
		}
	}
	return ids
}

// after returns the ranges of r past last.
func (r idRanges) after(last int64) idRanges {
	var out idRanges
	for _, x := range r {
		if x[1] > last {
			out = append(out, [2]int64{max(x[0], last+1), x[1]})
		}
	}
	return out
}

// clamp returns r without the IDs past top (the largest block ID held):
// a list is never walked past the blocks.
func (r idRanges) clamp(top int64) idRanges {
	var out idRanges
	for _, x := range r {
		if x[0] <= top {
			out = append(out, [2]int64{x[0], min(x[1], top)})
		}
	}
	return out
}

// loadPending reads folder's pendingFile (none: nothing pending). A
// damaged file is logged and taken as empty.
func (s *Store) loadPending(folder string) idRanges {
	b, err := os.ReadFile(filepath.Join(folder, pendingFile))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("duckdb: the sealed blocks left to recompress", "err", err)
		}
		return nil
	}
	var r idRanges
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var lo, hi int64
		if _, err := fmt.Sscanf(line, "%d %d", &lo, &hi); err != nil || lo <= 0 || hi < lo || len(r) > 0 && lo <= r[len(r)-1][1] {
			s.log.Warn("duckdb: the sealed blocks left to recompress: a damaged list, left alone", "line", line)
			return nil
		}
		r = append(r, [2]int64{lo, hi})
	}
	return r
}

// savePending writes the tier's pending list (removes the file when it is
// empty). Under writeMu.
func (s *Store) savePending() error {
	t := s.sealed
	path := filepath.Join(s.sealedPath, pendingFile)
	if len(t.pending) == 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	var b strings.Builder
	for _, x := range t.pending {
		fmt.Fprintf(&b, "%d %d\n", x[0], x[1])
	}
	return atomicfile.Write(path, []byte(b.String()), 0o600)
}

// closeImportSeal adds the blocks an import sealed (at
// sealed.ImportLevel) to the pending list and saves it: at Close, once
// they are durable. Under writeMu and rw (Close holds both).
func (s *Store) closeImportSeal() {
	is, t := s.impSeal, s.sealed
	if is == nil || t == nil || is.nextID <= is.firstID {
		return
	}
	if is.serving {
		// Its blocks joined the list as their stages committed.
		if err := s.savePending(); err != nil {
			s.log.Warn("duckdb: the sealed blocks left to recompress", "err", err)
		}
		return
	}
	t.pending = append(t.pending, [2]int64{is.firstID, is.nextID - 1})
	t.pendingN += int(is.nextID - is.firstID)
	if err := s.savePending(); err != nil {
		s.log.Warn("duckdb: the import's sealed blocks stay at its faster level", "err", err)
	}
}
