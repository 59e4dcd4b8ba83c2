package duckdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"strings"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// keyFilter is a Bloom filter of the key_hash of every stored record,
// kept by the writer so that Append asks DuckDB about the records that may
// be stored already, not all of them: an import of new records skips the
// duplicate check's scan of key_hash, which grew with the store (one scan
// of the whole column per transaction). A record the filter does not hold
// is certainly new; one it holds is checked in the table as before, so
// false positives (records deleted by retention, a rolled-back append, a
// filter past its capacity) only cost that query.
//
// It is built at the first append after Open from the table, sized for
// twice the rows stored, and rebuilt twice as large when it passes its
// capacity. 16 bits a key, 2 MB a million records; each key sets 8 bits
// of one 512-bit block (a cache line), so a probe costs one cache miss
// however large the filter. Its blocks are as many as its keys need (v3,
// session 31): a v2 filter's were a power of two, up to twice that (32
// MiB at 10M records where 10.9M keys need 21.8 MB). False positives:
// under 0.1% at capacity, about 0.02% on average between half full and
// full, where 4 probes across the whole filter gave 0.24% and 0.1%: each
// false positive of an ImportRecords call (500 records a log file) or an
// append cost a scan of the whole key_hash column, a quarter of a 1M
// import through a server's duplicate checks (docs/store.md, "Imports
// through a server, session 16"). Close saves it beside the store
// (PATH.keys) and the first append after Open loads it from there when
// the table is still the one it was saved for (saveKeyFilter): building
// it scanned the whole key_hash column, which took a third of a
// restarted server's CPU in its first second at 1M records, beside its
// first lookups.
type keyFilter struct {
	bits   []uint64
	blocks uint64 // len(bits) / keyFilterBlockWords
	keys   int64  // keys added
	limit  int64  // keys it is sized for
	// pow2: a v2 filter (loaded from a v2 file; a power of two of blocks,
	// picked by the hash's low bits), whose probes differ (probes).
	pow2 bool
}

const (
	keyFilterBitsPerKey = 16
	keyFilterProbes     = 8
	keyFilterMinKeys    = 1 << 16
	// keyFilterBlockWords is a block's words: 512 bits, one cache line.
	keyFilterBlockWords = 8
)

// keyFilterBlockKeys is the keys a block holds at capacity.
const keyFilterBlockKeys = keyFilterBlockWords * 64 / keyFilterBitsPerKey

func newKeyFilter(keys int64) *keyFilter {
	keys = max(keys, keyFilterMinKeys)
	blocks := uint64((keys + keyFilterBlockKeys - 1) / keyFilterBlockKeys)
	return &keyFilter{bits: make([]uint64, blocks*keyFilterBlockWords), blocks: blocks, limit: int64(blocks * keyFilterBlockKeys)}
}

// probes derives a key's block and its bits in the block from its hash
// (FNV-1a, whose low bits are weak, so it is mixed first: splitmix64's
// finalizer, twice). The block is the first mix scaled to the number of
// blocks (the high word of h1 × blocks: Lemire's multiply-shift, for any
// number of blocks); the eight 9-bit positions are seven from the second
// mix and one from the first's low bits, which the block index hardly
// uses. A v2 filter (pow2) takes the block from h1's low bits and the
// eighth position from its top bits.
func (f *keyFilter) probes(h uint64) (block int, pos [keyFilterProbes]uint16) {
	h1 := mix64(h)
	h2 := mix64(h1 ^ 0x9e3779b97f4a7c15)
	for i := range keyFilterProbes - 1 {
		pos[i] = uint16(h2 >> (9 * i) & 511)
	}
	if f.pow2 {
		block = int(h1&(f.blocks-1)) * keyFilterBlockWords
		pos[keyFilterProbes-1] = uint16(h1 >> 55)
		return block, pos
	}
	hi, _ := bits.Mul64(h1, f.blocks)
	block = int(hi) * keyFilterBlockWords
	pos[keyFilterProbes-1] = uint16(h1 & 511)
	return block, pos
}

func mix64(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

func (f *keyFilter) add(h uint64) {
	block, pos := f.probes(h)
	b := f.bits[block : block+keyFilterBlockWords : block+keyFilterBlockWords]
	for _, p := range pos {
		b[p/64] |= 1 << (p % 64)
	}
	f.keys++
}

func (f *keyFilter) has(h uint64) bool {
	block, pos := f.probes(h)
	b := f.bits[block : block+keyFilterBlockWords : block+keyFilterBlockWords]
	for _, p := range pos {
		if b[p/64]&(1<<(p%64)) == 0 {
			return false
		}
	}
	return true
}

// keyFilter returns the writer's key filter, building it from the table when
// there is none or the one there is passed its capacity (room for extra
// more keys is made first). Called under writeMu; s.keys is set under
// keysMu too, as its keys are added.
func (s *Store) keyFilter(ctx context.Context, extra int) (*keyFilter, error) {
	if s.keys != nil && s.keys.keys+int64(extra) <= s.keys.limit {
		return s.keys, nil
	}
	if s.keys == nil {
		if f := s.loadKeyFilter(ctx); f != nil && f.keys+int64(extra) <= f.limit {
			s.keysMu.Lock()
			s.keys = f
			s.keysMu.Unlock()
			s.keysSaved = true
			return f, nil
		}
	}
	s.keysSaved = false
	s.keyFilterBuilds.Add(1)
	var n int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return nil, fmt.Errorf("duckdb: key filter: %w", err)
	}
	if s.sealed != nil {
		n += s.sealed.records
	}
	f := newKeyFilter(2 * (n + int64(extra)))
	if err := s.addTableKeys(ctx, f); err != nil {
		return nil, err
	}
	if err := s.addSealedKeys(ctx, f); err != nil {
		return nil, err
	}
	s.keysMu.Lock()
	s.keys = f
	s.keysMu.Unlock()
	return f, nil
}

// addTableKeys adds the key_hash of every row of the table to f.
func (s *Store) addTableKeys(ctx context.Context, f *keyFilter) error {
	rows, err := s.wconn.QueryContext(ctx, `SELECT key_hash FROM events`)
	if err != nil {
		return fmt.Errorf("duckdb: key filter: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h uint64
		if err := rows.Scan(&h); err != nil {
			return fmt.Errorf("duckdb: key filter: %w", err)
		}
		f.add(h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: key filter: %w", err)
	}
	return nil
}

// A saved key filter (PATH.keys) is the magic, then little-endian uint64s:
// the store's last sequence number, its row count and the XOR of its
// key_hash column when the filter was saved, the filter's keys and limit,
// the number of words, then the words. It is used only while all three
// still match the table: an append raises the last sequence number for
// good (numbers are never reused, docs/store.md), a delete changes the
// count and the XOR, and a different store file of the same size has
// other keys. A filter that might miss a stored key is never loaded; one
// that holds keys no longer stored only costs the duplicate check a query.
//
// v3 (session 31) is the blocked filter of 8 probes with as many blocks
// as its keys need; v2 (session 16) the same with a power of two of
// blocks, read as one (pow2) and saved as one while it lasts; a v1 file
// (4 probes over the whole filter) is not read as one: the filter is
// built from the table once, as for a store without a file.
const keyFileMagic = "cairn-keyfilter-v3\n"

// keyFileMagicV2 starts a filter of a power of two of blocks.
const keyFileMagicV2 = "cairn-keyfilter-v2\n"

// keyFileMagicV1 starts a filter of 4 probes, which v2 reads differently.
const keyFileMagicV1 = "cairn-keyfilter-v1\n"

// errOldKeyFilter is decodeKeyFilter's error for a v1 file.
var errOldKeyFilter = errors.New("a key filter of an earlier version")

// keyFileHeader is the number of uint64s after the magic, before the words.
const keyFileHeader = 6

// tableKeys returns the row count and the XOR of key_hash of the table (a
// vectorized aggregate: milliseconds where building the filter from the
// rows took a third of a second at 1M records).
func (s *Store) tableKeys(ctx context.Context) (rows int64, xor uint64, err error) {
	err = s.wconn.QueryRowContext(ctx, `SELECT count(*), coalesce(bit_xor(key_hash), 0) FROM events`).Scan(&rows, &xor)
	if t := s.sealed; err == nil && t != nil {
		// The sealed tier's records too: a filter saved before a seal
		// still holds their keys, and one built after holds them
		// (keyFilter).
		rows, xor = rows+t.records, xor^t.keyXor
	}
	return rows, xor, err
}

// saveKeyFilter writes the writer's key filter to PATH.keys, atomically;
// called by Close under writeMu, after the last append. A store without a
// filter (no append since Open) leaves the file as it is: it still
// describes the table, or no longer matches it.
func (s *Store) saveKeyFilter(ctx context.Context) error {
	f := s.keys
	if f == nil || s.keysPath == "" || s.keysSaved {
		return nil
	}
	rows, xor, err := s.tableKeys(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: save key filter: %w", err)
	}
	b := make([]byte, 0, len(keyFileMagic)+8*(keyFileHeader+len(f.bits)))
	if f.pow2 {
		b = append(b, keyFileMagicV2...)
	} else {
		b = append(b, keyFileMagic...)
	}
	for _, v := range []uint64{uint64(s.lastSeq), uint64(rows), xor, uint64(f.keys), uint64(f.limit), uint64(len(f.bits))} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	for _, w := range f.bits {
		b = binary.LittleEndian.AppendUint64(b, w)
	}
	if err := atomicfile.Write(s.keysPath, b, 0o600); err != nil {
		return fmt.Errorf("duckdb: save key filter: %w", err)
	}
	return nil
}

// loadKeyFilter returns the filter saved at PATH.keys when it matches the
// table (see keyFileMagic), else nil: the caller builds it from the table.
// The file is read as the warm start's files are (readSavedFile: a
// symlink, a FIFO or a file others may write is refused unread), its
// header first: the words (20–40 MB at 10M records) are read only for a
// filter of the table's last sequence number, row count and XOR.
func (s *Store) loadKeyFilter(ctx context.Context) *keyFilter {
	if s.keysPath == "" {
		return nil
	}
	file, size, err := openSavedFile(s.keysPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("duckdb: reading the saved key filter; building it from the table", "err", err)
		}
		return nil
	}
	defer file.Close()
	h, err := readKeyFileHeader(file, size)
	if errors.Is(err, errOldKeyFilter) {
		return nil // built again, once, in the current layout
	}
	if err != nil {
		s.log.Warn("duckdb: the saved key filter is damaged; building it from the table", "err", err)
		return nil
	}
	if h.seq != s.lastSeq {
		return nil // appended to since (a crash, or another version)
	}
	n, x, err := s.tableKeys(ctx)
	if err != nil || n != h.rows || x != h.xor {
		return nil
	}
	f := &keyFilter{bits: make([]uint64, h.words), blocks: uint64(h.words / keyFilterBlockWords), keys: h.keys, limit: h.limit, pow2: h.pow2}
	if err := readKeyWords(file, f.bits); err != nil {
		s.log.Warn("duckdb: the saved key filter is damaged; building it from the table", "err", err)
		return nil
	}
	return f
}

// keyFileHead is a saved key filter's header (see keyFileMagic).
type keyFileHead struct {
	seq, rows   int64
	xor         uint64
	keys, limit int64
	words       int
	pow2        bool // a v2 file
}

// readKeyFileHeader reads the magic and the header of a saved key filter
// of size bytes, and checks that the sizes agree with each other and with
// the file's.
func readKeyFileHeader(r io.Reader, size int64) (keyFileHead, error) {
	b := make([]byte, len(keyFileMagic)+8*keyFileHeader)
	n, err := io.ReadFull(r, b)
	if strings.HasPrefix(string(b[:n]), keyFileMagicV1) {
		return keyFileHead{}, errOldKeyFilter
	}
	magic := string(b[:n])[:min(n, len(keyFileMagic))]
	pow2 := magic == keyFileMagicV2
	if err != nil || (magic != keyFileMagic && !pow2) {
		return keyFileHead{}, errors.New("not a key filter")
	}
	h := make([]uint64, keyFileHeader)
	for i := range h {
		h[i] = binary.LittleEndian.Uint64(b[len(keyFileMagic)+8*i:])
	}
	words := h[5]
	if words < keyFilterBlockWords || words%keyFilterBlockWords != 0 || (pow2 && words&(words-1) != 0) || words > 1<<40 ||
		uint64(size) != uint64(len(b))+8*words || h[4] != words*64/keyFilterBitsPerKey || h[3] > h[4] {
		return keyFileHead{}, errors.New("inconsistent sizes")
	}
	return keyFileHead{seq: int64(h[0]), rows: int64(h[1]), xor: h[2], keys: int64(h[3]), limit: int64(h[4]), words: int(words), pow2: pow2}, nil
}

// readKeyWords reads len(words) little-endian words from r, in one read.
// Read a MiB at a time instead (no copy of the filter beside it at 10M
// records), the server's 8 clients cost it more CPU a request (0.93-1.46
// ms against 0.62-0.82, docs/benchmarks.md, "The key filter at Open"),
// perhaps because the copy's freed pages stay in the Go heap for the
// lookups' allocations.
func readKeyWords(r io.Reader, words []uint64) error {
	b := make([]byte, 8*len(words))
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	for i := range words {
		words[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	return nil
}

// StoredKeys reports, for each record, whether a record of its account and
// event ID is stored (stored[i] for records[i]). It asks the table only
// about the keys the key filter holds: a key it does not hold is certainly
// not stored, which for new records is all but a fraction of a percent.
// It sees every append that has returned (the filter takes an append's
// keys before its COMMIT, and the table check runs between commits). The
// ingest pipeline calls it to answer ImportRecords from its journal with
// exact counts. It fails only if the store is closed or the table check
// fails.
func (s *Store) StoredKeys(ctx context.Context, records []audit.Record) ([]bool, error) {
	stored := make([]bool, len(records))
	if len(records) == 0 {
		return stored, nil
	}
	s.keysMu.Lock()
	built := s.keys != nil
	s.keysMu.Unlock()
	if !built {
		// No append since Open: the filter is loaded or built by the
		// writer, under its lock.
		s.writeMu.Lock()
		if s.wconn == nil {
			s.writeMu.Unlock()
			return nil, errClosed
		}
		_, err := s.keyFilter(ctx, 0)
		s.writeMu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	var (
		maybe []uint64
		cand  []int
	)
	s.keysMu.Lock()
	kf := s.keys
	for i := range records {
		if h := keyHash(records[i].Account, records[i].EventID); kf.has(h) {
			maybe = append(maybe, h)
			cand = append(cand, i)
		}
	}
	s.keysMu.Unlock()
	if len(maybe) == 0 {
		return stored, nil
	}
	s.rw.RLock()
	defer s.rw.RUnlock()
	if s.db == nil {
		return nil, errClosed
	}
	rows, err := s.db.QueryContext(ctx,
		`SELECT account, event_id FROM events WHERE key_hash IN (SELECT unnest(?::UBIGINT[]))`, maybe)
	if err != nil {
		return nil, fmt.Errorf("duckdb: key check: %w", err)
	}
	defer rows.Close()
	found := map[struct{ a, e string }]bool{}
	for rows.Next() {
		var a, e string
		if err := rows.Scan(&a, &e); err != nil {
			return nil, fmt.Errorf("duckdb: key check: %w", err)
		}
		found[struct{ a, e string }{a, e}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: key check: %w", err)
	}
	if found, err = s.sealedKeys(ctx, found, len(cand), func(j int) *audit.Record { return &records[cand[j]] }); err != nil {
		return nil, err
	}
	for i := range records {
		stored[i] = found[struct{ a, e string }{records[i].Account, records[i].EventID}]
	}
	return stored, nil
}

// addKeys adds the keys' hashes to kf and, during an import into an empty
// store, to bulkKeys: before the commit of their rows, so that whatever
// the commit's outcome the filters may hold keys not stored but never miss
// one stored.
func (s *Store) addKeys(kf *keyFilter, hashes []uint64) {
	if len(hashes) > 0 {
		s.keysSaved = false // under writeMu, as every append
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	for _, h := range hashes {
		kf.add(h)
		if s.bulkKeys != nil {
			s.bulkKeys.add(h)
		}
	}
}
