package duckdb

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// sealedSuffix names the folder of the sealed tier's segments beside the
// store (PATH.sealed).
const sealedSuffix = ".sealed"

// sealedCacheBytes bounds the decoded sealed blocks kept in memory (the
// record blocks' cache is the same size).
const sealedCacheBytes = 16 << 20

// sealedSegmentBytes is the size past which the segments start a new file (0:
// sealed.DefaultSegmentBytes); a variable, so that tests make it small.
var sealedSegmentBytes int64

// sealedTier is the store's sealed tier (docs/store.md, "The sealed
// tier"): the blocks' rows in memory (dir), their bytes (segs, nil while
// the store has none), and a cache of decoded blocks. Its records are
// counted in records and keyXor (the count and XOR of their key_hash), so
// that the key filter's check covers both tiers; those two and the rows
// change under the store's writeMu with rw held alone.
type sealedTier struct {
	dir     *sealed.Dir
	segs    *sealed.Segments
	dec     *sealed.Decoder
	cache   *lruCache[[]sealed.Entry]
	records int64
	keyXor  uint64
	// pending lists the blocks an offline import wrote at
	// sealed.ImportLevel that RecompressSealed has not yet encoded again
	// (the file pendingFile in the segments' folder); pendingN counts
	// those the directory holds. Both under rw.
	pending      idRanges
	pendingN     int
	pendingSaves int // RecompressSealed's batches (under writeMu)
	// rotated: RecompressSealed has started a segment of its own in this
	// process (under writeMu).
	rotated bool
	// activeLevel: the active segment holds blocks RecompressSealed
	// wrote; activePending: blocks a serving store's stages wrote
	// (pending). Each writer starts a segment of its own before writing
	// beside the other's (writeSealedSegs, relocateSealed). Under segMu.
	segMu                      sync.Mutex
	activeLevel, activePending bool
	// recEnc is RecompressSealed's encoder, made at its first block.
	recMu  sync.Mutex
	recEnc *sealed.Encoder
}

// openSealed loads the sealed tier whose segments are in folder ("" for
// an in-memory store: none). The segments are opened only when the store's
// rows reference blocks or the folder exists, and made what the rows
// reference (Segments.Recover: a crash between a seal's writes and its
// commit leaves bytes no row references).
func (s *Store) openSealed(ctx context.Context, folder string) error {
	dec, err := sealed.NewDecoder()
	if err != nil {
		return err
	}
	t := &sealedTier{dir: sealed.NewDir(), dec: dec, cache: newLRUCache[[]sealed.Entry](sealedCacheBytes)}
	ms, n, kx, err := loadSealed(ctx, s.wconn)
	if err != nil {
		return err
	}
	t.records, t.keyXor = n, kx
	if folder != "" {
		_, statErr := os.Stat(folder)
		if len(ms) > 0 || statErr == nil {
			if statErr != nil && errors.Is(statErr, fs.ErrNotExist) {
				return fmt.Errorf("duckdb: the store has %d sealed blocks but %s is missing", len(ms), folder)
			}
			if t.segs, err = sealed.OpenSegments(folder, sealedSegmentBytes); err != nil {
				return err
			}
			ends := map[uint32]int64{}
			for _, m := range ms {
				ends[m.Loc.Seg] = max(ends[m.Loc.Seg], m.Loc.End())
			}
			if err := t.segs.Recover(ends); err != nil {
				t.segs.Close()
				return err
			}
		}
	} else if len(ms) > 0 {
		return errors.New("duckdb: an in-memory store with sealed blocks")
	}
	t.dir.Add(ms...)
	if t.segs != nil {
		var top int64
		for _, m := range ms {
			top = max(top, m.ID)
		}
		t.pending = s.loadPending(folder).clamp(top)
		for _, m := range ms {
			if t.pending.has(m.ID) {
				t.pendingN++
			}
		}
	}
	s.sealed = t
	s.lastSeq = max(s.lastSeq, t.dir.MaxSeq())
	s.committed.Store(s.lastSeq)
	return nil
}

// fetchSealed returns a sealed block's entries, newest first: from the
// cache, or read and decoded. The entries are shared: never changed.
func (s *Store) fetchSealed(_ context.Context, m *sealed.Meta) ([]sealed.Entry, error) {
	t := s.sealed
	if es, ok := t.cache.get(m.ID); ok {
		return es, nil
	}
	if t.segs == nil {
		return nil, fmt.Errorf("duckdb: sealed block %d: no segments", m.ID)
	}
	data, err := t.segs.Read(m.Loc, nil)
	if err != nil {
		return nil, err
	}
	es, err := t.dec.Decode(data, m)
	if err != nil {
		return nil, err
	}
	size := 0
	for i := range es {
		size += len(es[i].Record.Raw) + 256
	}
	t.cache.put(m.ID, es, size)
	return es, nil
}

// hasSealed reports whether the store holds sealed records.
func (s *Store) hasSealed() bool { return s.sealed != nil && s.sealed.dir.Len() > 0 }

// mergeTiers merges two lists in newest-first order (audit.Newer, the
// account included: a lookup of every account).
func mergeTiers(a, b []audit.Record) []audit.Record {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	out := make([]audit.Record, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if audit.Newer(&a[i], &b[j]) <= 0 {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// mergeSeq merges two lists in sequence order and keeps the first limit.
func mergeSeq[T any](a, b []T, seq func(*T) int64, limit int) []T {
	if len(b) == 0 {
		return a
	}
	out := make([]T, 0, min(limit, len(a)+len(b)))
	i, j := 0, 0
	for len(out) < limit && (i < len(a) || j < len(b)) {
		if j == len(b) || i < len(a) && seq(&a[i]) < seq(&b[j]) {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return out
}

// seqUpTo returns the start of a, in sequence order, up to upTo.
func seqUpTo[T any](a []T, upTo int64, seq func(*T) int64) []T {
	n := len(a)
	for n > 0 && seq(&a[n-1]) > upTo {
		n--
	}
	return a[:n]
}

// addSealedKeys adds the key of every sealed record to f: the blocks are
// read and decoded (a key filter is built from the tables only when none
// was saved or the saved one no longer matches, or when an import's
// filter grows), but for the blocks an import sealed, whose keys it keeps
// (importSeal.hashes). Under writeMu.
func (s *Store) addSealedKeys(ctx context.Context, f *keyFilter) error {
	if !s.hasSealed() {
		return nil
	}
	for _, h := range s.importSealedKeys() {
		f.add(h)
	}
	for _, m := range s.sealed.dir.Blocks() {
		if s.sealedHashed(m.ID) {
			continue
		}
		es, err := s.fetchSealed(ctx, m)
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("duckdb: key filter: %w", err)
		}
		for i := range es {
			f.add(keyHash(es[i].Record.Account, es[i].Record.EventID))
		}
	}
	return nil
}

// sealedKeys adds to found the keys of the n candidates (rec(j)) that
// the sealed tier holds and found does not (the table's answer): a
// candidate of the key filter is stored in one tier or the other, or not
// at all. Under writeMu or rw, which keep retention from removing blocks
// meanwhile.
func (s *Store) sealedKeys(ctx context.Context, found map[struct{ a, e string }]bool, n int, rec func(j int) *audit.Record) (map[struct{ a, e string }]bool, error) {
	if !s.hasSealed() {
		return found, nil
	}
	for j := range n {
		r := rec(j)
		k := struct{ a, e string }{r.Account, r.EventID}
		if found[k] {
			continue
		}
		ok, err := s.sealed.dir.Find(ctx, r.Account, r.EventID, r.Time, s.fetchSealed)
		if err != nil {
			return nil, fmt.Errorf("duckdb: duplicate check: %w", err)
		}
		if ok {
			if found == nil {
				found = map[struct{ a, e string }]bool{}
			}
			found[k] = true
		}
	}
	return found, nil
}

// sealedAfter reports whether the sealed tier holds records appended
// after sequence number after: a feed's reader at the head never reads it.
func (s *Store) sealedAfter(after int64) bool {
	return s.hasSealed() && after < s.sealed.dir.MaxSeq()
}

// readSealed returns the sealed tier's part of a feed's page, under rw
// (shared), which keeps retention from removing its blocks meanwhile.
func (s *Store) readSealed(ctx context.Context, after int64, limit int) ([]sealed.Entry, error) {
	s.rw.RLock()
	defer s.rw.RUnlock()
	if s.db == nil {
		return nil, errClosed
	}
	return s.sealed.dir.ReadAppended(ctx, after, limit, s.fetchSealed)
}

// sealedBefore reports whether the sealed tier holds records received
// before cut (Unix seconds).
func (s *Store) sealedBefore(cut int64) bool {
	if !s.hasSealed() {
		return false
	}
	whole, straddling := s.sealed.dir.ReceivedBefore(cut)
	return len(whole)+len(straddling) > 0
}

// deleteSealed is DeleteReceivedBefore's part in the sealed tier, in the
// writer's open transaction (under writeMu and rw held alone): the blocks
// received wholly before cut lose their rows; those that straddle it are
// written again with the records received since (their bytes durable
// before the commit) and lose theirs. It returns the records removed and
// what to do once the transaction has committed: the directory, the cache
// and the counts brought up to date, and the segments no block references
// any more removed. A failure or a rollback leaves the rows as they were
// (bytes written for nothing are cut at the next Open).
func (s *Store) deleteSealed(ctx context.Context, cut int64) (int64, func(), error) {
	nothing := func() {}
	if !s.hasSealed() {
		return 0, nothing, nil
	}
	t := s.sealed
	whole, straddling := t.dir.ReceivedBefore(cut)
	if len(whole)+len(straddling) == 0 {
		return 0, nothing, nil
	}
	var removed int64
	gone := make([]int64, 0, len(whole)+len(straddling))
	for _, m := range whole {
		gone = append(gone, m.ID)
		removed += int64(m.N)
	}
	var (
		keep  []sealed.Entry
		added []*sealed.Meta
	)
	for _, m := range straddling {
		es, err := s.fetchSealed(ctx, m)
		if err != nil {
			return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
		}
		gone = append(gone, m.ID)
		for i := range es {
			if es[i].Received >= cut {
				keep = append(keep, es[i])
			} else {
				removed++
			}
		}
	}
	if len(keep) > 0 {
		enc, err := sealed.NewEncoder()
		if err != nil {
			return 0, nil, err
		}
		var nextID int64
		if err := s.wconn.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM sealed_blocks`).Scan(&nextID); err != nil {
			return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
		}
		if is := s.impSeal; is != nil {
			// A serving store's stages number their blocks from
			// is.nextID (under writeMu, held here): no ID twice.
			nextID = max(nextID, is.nextID)
			defer func() { is.nextID = max(is.nextID, nextID) }()
		}
		var (
			data [][]byte
			rows []sealedRow
		)
		for _, b := range sealed.Split(keep) {
			d, m, err := enc.Encode(b)
			if err != nil {
				return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
			}
			var kx uint64
			for i := range b {
				kx ^= keyHash(b[i].Record.Account, b[i].Record.EventID)
			}
			m.ID = nextID
			nextID++
			data = append(data, d)
			rows = append(rows, sealedRow{m: m, keyXor: kx})
		}
		locs, err := t.segs.Write(data)
		if err != nil {
			return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
		}
		for i := range rows {
			rows[i].m.Loc = locs[i]
			added = append(added, &rows[i].m)
		}
		if err := appendSealed(s.wconn, "", rows); err != nil {
			return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
		}
	}
	if _, err := s.wconn.ExecContext(ctx, `DELETE FROM sealed_blocks WHERE id IN (SELECT unnest(?::BIGINT[]))`, gone); err != nil {
		return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
	}
	var (
		records int64
		keyXor  uint64
	)
	if err := s.wconn.QueryRowContext(ctx, `SELECT coalesce(sum(n), 0), coalesce(bit_xor(key_xor), 0) FROM sealed_blocks`).Scan(&records, &keyXor); err != nil {
		return 0, nil, fmt.Errorf("duckdb: retention: %w", err)
	}
	done := func() {
		t.dir.Remove(gone...)
		t.dir.Add(added...)
		t.cache.drop(gone...)
		t.records, t.keyXor = records, keyXor
		for _, id := range gone {
			if t.pending.has(id) {
				t.pendingN--
			}
		}
		live := t.dir.LiveBytes()
		for seg := range t.segs.Sizes() {
			if live[seg] == 0 {
				// The active segment stays (Remove refuses it): later
				// seals append to it.
				if err := t.segs.Remove(seg); err != nil {
					s.log.Debug("duckdb: sealed segment kept", "segment", seg, "err", err)
				}
			}
		}
	}
	return removed, done, nil
}

// sealedEnds returns, for each segment the sealed blocks reference, the
// end of the bytes referenced (what Segments.Recover takes).
func (s *Store) sealedEnds() map[uint32]int64 {
	ends := map[uint32]int64{}
	if !s.hasSealed() {
		return ends
	}
	for _, m := range s.sealed.dir.Blocks() {
		ends[m.Loc.Seg] = max(ends[m.Loc.Seg], m.Loc.End())
	}
	return ends
}

// StoreBytes is the bytes of the store at path: its file and its sealed
// blocks' segments (what Compact reports before and after).
func StoreBytes(path string) int64 {
	var n int64
	if fi, err := os.Stat(path); err == nil {
		n = fi.Size()
	}
	return n + dirBytes(path+sealedSuffix)
}

// dirBytes is the bytes of the files in dir (0 when it does not exist).
func dirBytes(dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n
}

// SealedStats is what the sealed tier holds and what its segment files
// have done since Open, for /metrics.
type SealedStats struct {
	// Blocks and Records held; SegmentBytes the segment files' bytes and
	// LiveBytes those the blocks reference (the rest dead, until a
	// rewrite).
	Blocks, Records, SegmentBytes, LiveBytes int64
	// Pending: the blocks an offline import wrote at its faster level
	// that wait to be encoded again (Store.RecompressSealed).
	Pending int64
	sealed.SegmentStats
}

// SealedStats returns the sealed tier's figures (zero for a store
// without one).
func (s *Store) SealedStats() SealedStats {
	var st SealedStats
	t := s.sealed
	if t == nil {
		return st
	}
	// Under rw, as the directory and the segments change together
	// (retention, RecompressSealed): the live bytes never pass the
	// segments' here.
	s.rw.RLock()
	defer s.rw.RUnlock()
	st.Blocks, st.Records = int64(t.dir.Len()), int64(t.dir.Records())
	for _, n := range t.dir.LiveBytes() {
		st.LiveBytes += n
	}
	st.Pending = int64(max(0, t.pendingN))
	if t.segs != nil {
		for _, n := range t.segs.Sizes() {
			st.SegmentBytes += n
		}
		st.SegmentStats = t.segs.Stats()
	}
	return st
}
