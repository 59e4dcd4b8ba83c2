package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// importSeal is an offline import's sealing (Options.Seal with
// BeginImport; docs/store.md, "Sealing during an import"): the records of
// the UTC days that ended at least a day before the import began go
// straight to the sealed tier, as Compact would seal them, instead of to
// the events table, so that an import ends at the sealed tier's size
// (about 1.0x the .json.gz) without a second pass. Each batch's records
// of those days are cut into blocks when the batch is reserved (their
// sequence numbers are known then); the blocks are encoded, written to
// the segments (durable before their rows' COMMIT) and their rows
// appended in the batch's transaction by the function that appends the
// batch's rows, on every core, outside the writer's lock. They join the
// directory there, before the batch's transaction commits: the duplicate
// check of a later batch that finds a candidate waits for every batch
// before it (waitStaged), and then finds the candidate in them.
//
// A block holds one batch's records of its part and day: an import in
// the order of a trail's files brings a part's day in consecutive
// batches, so a day's records end up in a few more blocks than Compact
// makes (one more at each batch's edge).
type importSeal struct {
	// before: the records of UTC days (sealed.Day) before it are sealed.
	// Fixed at BeginImport for an import; a serving store's moves with
	// its clock (set under writeMu at each reservation, read outside it
	// by prefetchEncoded as a hint).
	before atomic.Int64
	// serving: a serving store's sealing (its staged appends, Options.
	// Seal with StagedAppends; docs/store.md, "Sealing during a server's
	// import"): its blocks join the directory and the pending list when
	// their stage commits, under rw with the COMMIT, instead of before;
	// minRun is then the records of one part and day a batch must hold
	// for them to be sealed (fewer stay in the table).
	serving bool
	minRun  int
	// nextID is the next block's ID; under writeMu. The import's blocks
	// are firstID to nextID-1, at sealed.ImportLevel: Close lists them
	// for RecompressSealed.
	firstID, nextID int64
	encs            encoderPool

	// hashes holds the key_hash of every record this import sealed, and
	// hashed the IDs of their blocks, so that the key filter, when it is
	// built again (it grows with the import), takes their keys from here
	// instead of decoding the blocks (addSealedKeys). Under writeMu.
	hashes []uint64
	hashed map[int64]bool

	// parts holds each part with strings of its own: a record's account
	// and region are substrings of the slab the importer read it into,
	// and a block's Meta, kept in the directory for as long as the
	// store, would pin that slab (a 10M import held 3.3 GB so).
	partsMu sync.Mutex
	parts   map[sealed.Part]sealed.Part
}

// own returns p with strings the import keeps for it.
func (is *importSeal) own(p sealed.Part) sealed.Part {
	is.partsMu.Lock()
	defer is.partsMu.Unlock()
	q, ok := is.parts[p]
	if !ok {
		q = sealed.Part{Account: strings.Clone(p.Account), Region: strings.Clone(p.Region), Category: p.Category}
		is.parts[q] = q
	}
	return q
}

// sealBatch is a reserved batch's blocks: the records, with their
// sequence numbers and received time, and each block's ID and the XOR of
// its records' key_hash.
type sealBatch struct {
	blocks [][]sealed.Entry
	ids    []int64
	keyXor []uint64
	// rows: the blocks' rows, their bytes written (encodeSealed).
	rows []sealedRow
}

// beginImportSeal starts sealing during the import when the store was
// opened with Options.Seal and has segment files (not in memory); under
// writeMu, by BeginImport.
func (s *Store) beginImportSeal(ctx context.Context) error {
	if !s.seal || s.sealedPath == "" || s.sealed == nil {
		return nil
	}
	t := s.sealed
	if t.segs == nil {
		segs, err := sealed.OpenSegments(s.sealedPath, sealedSegmentBytes)
		if err != nil {
			return err
		}
		s.rw.Lock() // SealedStats reads it under rw
		t.segs = segs
		s.rw.Unlock()
	}
	var nextID int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM sealed_blocks`).Scan(&nextID); err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	encs, err := newEncoderPool(sealed.ImportLevel)
	if err != nil {
		return err
	}
	is := &importSeal{firstID: nextID, nextID: nextID, encs: encs,
		hashed: map[int64]bool{}, parts: map[sealed.Part]sealed.Part{}}
	is.before.Store(sealed.Day(s.now().Unix()) - 1)
	s.impSeal = is // under keysMu too: prefetchEncoded reads it so
	return nil
}

// serveMinRun is the records of one part (account, region, category) and
// day a serving store's batch must hold for them to be sealed: a file of
// an import brings hundreds, while the few late records of a live batch
// (PutAuditEvents, a gateway's clock behind, a trail's late file) would
// make blocks of a few records each, whose rows, filters and zstd frames
// cost more than the records; they stay in the table, for Compact.
var serveMinRun = 64

// beginServeSeal makes a serving store (Options.Seal with StagedAppends)
// seal the records of complete days in its staged appends; under
// writeMu, by Open. The store's sealed tier needs its segment files (not
// in memory).
func (s *Store) beginServeSeal(ctx context.Context) error {
	if s.staged == nil {
		return nil
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if err := s.beginImportSeal(ctx); err != nil || s.impSeal == nil {
		return err
	}
	s.impSeal.serving = true
	s.impSeal.minRun = serveMinRun
	return nil
}

// sealable reports whether an import seals r (beginImportSeal); read
// outside writeMu by prefetchEncoded, so before is set once.
func (is *importSeal) sealable(r *audit.Record) bool {
	return is != nil && sealed.Day(r.Time.Unix()) < is.before.Load()
}

// partDay is one part and UTC day of records.
type partDay struct {
	k partKey
	d int64
}

// sealableIn returns what of fresh the store seals: records of complete
// days, and for a serving store only those of a part and day fresh holds
// at least minRun of. Under writeMu.
func (is *importSeal) sealableIn(fresh []*audit.Record) func(*audit.Record) bool {
	if is.minRun <= 1 {
		return is.sealable
	}
	var runs map[partDay]int
	for _, r := range fresh {
		if is.sealable(r) {
			if runs == nil {
				runs = map[partDay]int{}
			}
			runs[partDay{partKey{r.Account, r.Region, r.Category}, sealed.Day(r.Time.Unix())}]++
		}
	}
	return func(r *audit.Record) bool {
		return is.sealable(r) && runs[partDay{partKey{r.Account, r.Region, r.Category}, sealed.Day(r.Time.Unix())}] >= is.minRun
	}
}

// splitSealable moves fresh's records that the import seals to its
// front, in their order, with their hashes and indexes; the rest keep
// theirs. It returns how many it moved. Under writeMu.
func (s *Store) splitSealable(fresh []*audit.Record, hashes []uint64, idx []int) int {
	is := s.impSeal
	if is == nil {
		return 0
	}
	if is.serving {
		// Compact's rule at this batch's time: a live record is never
		// sealed.
		is.before.Store(sealed.Day(s.now().Unix()) - 1)
	}
	sealable := is.sealableIn(fresh)
	n := 0
	for _, r := range fresh {
		if sealable(r) {
			n++
		}
	}
	if n == 0 || n == len(fresh) {
		return n
	}
	f2, h2, i2 := make([]*audit.Record, 0, len(fresh)), make([]uint64, 0, len(fresh)), make([]int, 0, len(fresh))
	for pass := range 2 {
		for j, r := range fresh {
			if sealable(r) == (pass == 0) {
				f2, h2, i2 = append(f2, r), append(h2, hashes[j]), append(i2, idx[j])
			}
		}
	}
	copy(fresh, f2)
	copy(hashes, h2)
	copy(idx, i2)
	return n
}

// reserveSealed cuts the first n records of fresh (numbered from first
// on, received at received; hashes[j] is fresh[j]'s key_hash) into blocks
// and gives them their IDs; their keys go to the import's list
// (importSeal.hashes). Under writeMu.
func (s *Store) reserveSealed(fresh []*audit.Record, hashes []uint64, n int, first, received int64) *sealBatch {
	if n == 0 {
		return nil
	}
	is := s.impSeal
	es := make([]sealed.Entry, n)
	for j := range n {
		es[j] = sealed.Entry{Record: *fresh[j], Seq: first + int64(j), Received: received}
		// The store keeps times in whole seconds, as the table does.
		es[j].Record.Time = time.Unix(fresh[j].Time.Unix(), 0).UTC()
	}
	b := &sealBatch{blocks: sealed.Split(es)}
	// Kept up to maxSealedHashes keys (a server lives on: the list must
	// not grow with every record it ever seals); a block whose keys are
	// not kept is decoded by the key filter's rebuild instead.
	keep := len(is.hashes)+n <= maxSealedHashes
	for _, blk := range b.blocks {
		var kx uint64
		for i := range blk {
			// Split reorders the entries; each one's sequence number
			// says which of fresh (and of hashes) it is.
			kx ^= hashes[blk[i].Seq-first]
		}
		b.ids = append(b.ids, is.nextID)
		b.keyXor = append(b.keyXor, kx)
		if keep {
			is.hashed[is.nextID] = true
		}
		is.nextID++
	}
	if keep {
		is.hashes = append(is.hashes, hashes[:n]...)
	}
	return b
}

// maxSealedHashes bounds importSeal.hashes: 16M keys, 128 MiB (a var for
// tests).
var maxSealedHashes = 1 << 24

// encodeSealed encodes a batch's blocks on every core and writes their
// bytes to the segments (durable once Write returns): before the batch
// waits for the one before it to append, so that one batch encodes while
// the other appends. Like the append, it is not given up when the import
// is interrupted (its batch is reserved). A failure leaves bytes no row
// references (cut at the next Open).
func (s *Store) encodeSealed(b *sealBatch) error {
	if b == nil {
		return nil
	}
	is := s.impSeal
	data, metas, err := is.encs.encode(b.blocks)
	if err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	rows := make([]sealedRow, len(metas))
	for j := range metas {
		metas[j].ID = b.ids[j]
		rows[j] = sealedRow{m: metas[j], keyXor: b.keyXor[j]}
	}
	locs, err := s.writeSealedSegs(data)
	if err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	for j := range rows {
		rows[j].m.Loc = locs[j]
		rows[j].m.Part = is.own(rows[j].m.Part)
	}
	b.rows = rows
	if is.serving {
		s.lastSealed.Store(s.now().UnixNano())
	}
	return nil
}

// writeSealedSegs writes an import's or a server's blocks to the
// segments. A server's blocks (at sealed.ImportLevel, pending) do not go
// beside the ones RecompressSealed wrote (at sealed.Level, for good), nor
// its beside them (relocateSealed): a segment of pending blocks empties
// out as they are encoded again, and is removed whole then, which one
// that also held blocks for good would never be.
func (s *Store) writeSealedSegs(data [][]byte) ([]sealed.Loc, error) {
	t := s.sealed
	if !s.impSeal.serving {
		return t.segs.Write(data)
	}
	t.segMu.Lock()
	defer t.segMu.Unlock()
	if t.activeLevel {
		if err := t.segs.Rotate(); err != nil {
			return nil, err
		}
		t.activeLevel = false
	}
	locs, err := t.segs.Write(data)
	if err == nil {
		t.activePending = true
	}
	return locs, err
}

// addSealed appends the rows of a batch's blocks (encodeSealed) to
// sealed_blocks in conn's open transaction, then, with publish, adds them
// to the directory and the tier's counts (an offline import's grouped
// batches: a later batch's duplicate check waits for their COMMIT all the
// same). A stage publishes its blocks with its COMMIT instead
// (publishSealed): before it, a lookup would find records the table does
// not yet show beside them, and after a failed COMMIT ones never stored.
func (s *Store) addSealed(conn *sql.Conn, b *sealBatch, publish bool) error {
	if b == nil {
		return nil
	}
	if err := appendSealed(conn, "", b.rows); err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	if publish {
		s.rw.Lock()
		s.publishSealed(b)
		s.rw.Unlock()
	}
	return nil
}

// publishSealed adds a batch's blocks, their rows committed, to the
// directory and the tier's counts, and a serving store's to the pending
// list (their IDs ascend from stage to stage). Under rw held alone.
func (s *Store) publishSealed(b *sealBatch) {
	if b == nil {
		return
	}
	t := s.sealed
	ms := make([]*sealed.Meta, len(b.rows))
	var (
		records int64
		keyXor  uint64
	)
	for j := range b.rows {
		ms[j] = &b.rows[j].m
		records += int64(b.rows[j].m.N)
		keyXor ^= b.rows[j].keyXor
	}
	t.dir.Add(ms...)
	t.records += records
	t.keyXor ^= keyXor
	if s.impSeal.serving && len(b.ids) > 0 {
		lo, hi := b.ids[0], b.ids[len(b.ids)-1]
		if n := len(t.pending); n > 0 && t.pending[n-1][1]+1 >= lo {
			t.pending[n-1][1] = max(t.pending[n-1][1], hi)
		} else {
			t.pending = append(t.pending, [2]int64{lo, hi})
		}
		t.pendingN += len(b.ids)
	}
}

// sealedHashed reports whether the import sealed block id and holds its
// keys (importSeal.hashes).
func (s *Store) sealedHashed(id int64) bool {
	return s.impSeal != nil && s.impSeal.hashed[id]
}

// importSealedKeys returns the keys of the records the import sealed.
func (s *Store) importSealedKeys() []uint64 {
	if s.impSeal == nil {
		return nil
	}
	return slices.Clip(s.impSeal.hashes)
}

// LastSealed returns when a serving store's appends last wrote sealed
// blocks (the zero time: never since Open). A server's recompression
// waits while they do (cmd/cairn's recompressSealed): both write to the
// segments, and each starts a segment of its own when the other wrote
// last (writeSealedSegs).
func (s *Store) LastSealed() time.Time {
	ns := s.lastSealed.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
