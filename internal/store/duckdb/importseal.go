package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"
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
	before int64
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
	s.impSeal = &importSeal{before: sealed.Day(s.now().Unix()) - 1, firstID: nextID, nextID: nextID, encs: encs,
		hashed: map[int64]bool{}, parts: map[sealed.Part]sealed.Part{}}
	return nil
}

// sealable reports whether an import seals r (beginImportSeal); read
// outside writeMu by prefetchEncoded, so before is set once.
func (is *importSeal) sealable(r *audit.Record) bool {
	return is != nil && sealed.Day(r.Time.Unix()) < is.before
}

// splitSealable moves fresh's records that the import seals to its
// front, in their order, with their hashes and indexes; the rest keep
// theirs. It returns how many it moved. Under writeMu.
func (s *Store) splitSealable(fresh []*audit.Record, hashes []uint64, idx []int) int {
	is := s.impSeal
	if is == nil {
		return 0
	}
	n := 0
	for _, r := range fresh {
		if is.sealable(r) {
			n++
		}
	}
	if n == 0 || n == len(fresh) {
		return n
	}
	f2, h2, i2 := make([]*audit.Record, 0, len(fresh)), make([]uint64, 0, len(fresh)), make([]int, 0, len(fresh))
	for pass := range 2 {
		for j, r := range fresh {
			if is.sealable(r) == (pass == 0) {
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
	for _, blk := range b.blocks {
		var kx uint64
		for i := range blk {
			// Split reorders the entries; each one's sequence number
			// says which of fresh (and of hashes) it is.
			kx ^= hashes[blk[i].Seq-first]
		}
		b.ids = append(b.ids, is.nextID)
		b.keyXor = append(b.keyXor, kx)
		is.hashed[is.nextID] = true
		is.nextID++
	}
	is.hashes = append(is.hashes, hashes[:n]...)
	return b
}

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
	is, t := s.impSeal, s.sealed
	data, metas, err := is.encs.encode(b.blocks)
	if err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	rows := make([]sealedRow, len(metas))
	for j := range metas {
		metas[j].ID = b.ids[j]
		rows[j] = sealedRow{m: metas[j], keyXor: b.keyXor[j]}
	}
	locs, err := t.segs.Write(data)
	if err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
	for j := range rows {
		rows[j].m.Loc = locs[j]
		rows[j].m.Part = is.own(rows[j].m.Part)
	}
	b.rows = rows
	return nil
}

// addSealed appends the rows of a batch's blocks (encodeSealed) to
// sealed_blocks in conn's open transaction, then adds them to the
// directory and the tier's counts.
func (s *Store) addSealed(conn *sql.Conn, b *sealBatch) error {
	if b == nil {
		return nil
	}
	t := s.sealed
	if err := appendSealed(conn, "", b.rows); err != nil {
		return fmt.Errorf("duckdb: import seal: %w", err)
	}
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
	s.rw.Lock()
	t.dir.Add(ms...)
	t.records += records
	t.keyXor ^= keyXor
	s.rw.Unlock()
	return nil
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
