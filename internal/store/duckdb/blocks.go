package duckdb

import (
	"container/list"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Record blocks (issue 15). One frame per record cannot reach the ratio of
// the .json.gz a record came from: gzip sees hundreds of records at once.
// So the records of one Append that share an account, region, category
// and hour are compressed together, in blocks of up to Options.BlockBytes
// of frame content, as one zstd frame with dictV1 in the record_blocks
// table; each of their rows holds a block reference in its record column:
//
//	frameBlockV1 | uvarint(block id) | uvarint(offset) | uvarint(length)
//
// offset and length locate the row's frame content (frameContent) inside
// the block's decompressed bytes. The block's id is the sequence number of
// its first row, so ids are unique and never reused, and grow with the
// rows: a query by id prunes record_blocks by its zone maps. A block's
// rows and the block are written in the same transaction and carry the
// same received time, so retention deletes them together.
//
// Groups of fewer than minBlockRecords records keep one frame per record
// (S2 or zstd, as before): a block of one record is a frame with extra
// steps. Readers tell the kinds apart by the first byte (codec.go).
const frameBlockV1 = 0x02

// defaultBlockBytes bounds the frame content of a block. The real records
// in blocks of 64 KiB compress 7.5x (zstd SpeedFastest with dictV1),
// against 4.5x for one S2 frame a record; larger blocks gain little
// (128 KiB: 7.7x) and cost a sparse lookup more bytes decoded per record
// returned (docs/store.md, "Record blocks").
const defaultBlockBytes = 64 << 10

// minBlockRecords is the fewest records of a group stored as a block.
const minBlockRecords = 4

// defaultBlockCacheBytes bounds the decoded blocks kept for reads.
const defaultBlockCacheBytes = 16 << 20

const blocksSchema = `
CREATE TABLE IF NOT EXISTS record_blocks (
	id       BIGINT NOT NULL,
	received BIGINT NOT NULL,
	data     BLOB   NOT NULL USING COMPRESSION uncompressed
);`

// block is a compressed block being appended; id is set under writeMu
// when its first row gets its sequence number.
type block struct {
	data []byte
	id   int64
}

// encoded is how one record is stored: a frame of its own, or a place in
// a block.
type encoded struct {
	frame  []byte
	blk    *block
	off, n int
	// vals holds the row's hash columns and bucket index tokens when
	// prefetchEncoded computed them before the writer's lock (ok).
	vals rowValues
}

// rowValues are what a row holds besides its record and what the bucket
// index takes from it, worked out from the record alone.
type rowValues struct {
	ok              bool
	akid, user, res any      // valueHashes
	toks            []uint64 // recordTokens
}

// valuesOf returns r's rowValues, its tokens appended to toks (returned).
// Each token is worked out once: the hash columns are tokens of the
// record too (valueHashes computed them again, 2% of an import's CPU).
func valuesOf(r *audit.Record, toks []uint64) (rowValues, []uint64) {
	v := rowValues{ok: true}
	start := len(toks)
	add := func(k audit.AttributeKey, s string) {
		if s != "" {
			toks = append(toks, token(k, s))
		}
	}
	add(audit.AttrEventID, r.EventID)
	add(audit.AttrEventName, r.EventName)
	add(audit.AttrEventSource, r.EventSource)
	if r.Username != "" {
		t := token(audit.AttrUsername, r.Username)
		toks = append(toks, t)
		v.user = t
	}
	if r.AccessKeyID != "" {
		t := token(audit.AttrAccessKeyID, r.AccessKeyID)
		toks = append(toks, t)
		v.akid = t
	}
	if len(r.Resources) > 0 {
		// recordTokens' order is type, name, ARN of each resource;
		// valueHashes' the types, then the names, then the ARNs.
		var types, names, arns []any
		for _, x := range r.Resources {
			if x.Type != "" {
				t := token(audit.AttrResourceType, x.Type)
				toks = append(toks, t)
				types = append(types, t)
			}
			if x.Name != "" {
				t := token(audit.AttrResourceName, x.Name)
				toks = append(toks, t)
				names = append(names, t)
			}
			if x.ARN != "" {
				t := token(audit.AttrResourceName, x.ARN)
				toks = append(toks, t)
				arns = append(arns, t)
			}
		}
		if n := len(types) + len(names) + len(arns); n > 0 {
			hs := make([]any, 0, n)
			hs = append(hs, types...)
			hs = append(hs, names...)
			v.res = append(hs, arns...)
		}
	}
	v.toks = toks[start:len(toks):len(toks)]
	return v, toks
}

// groupKey is what the records of one block share.
type groupKey struct {
	account, region string
	category        audit.Category
	hour            int64
}

// encodeRecords returns how each of recs is stored: groups of at least
// minBlockRecords records (same account, region, category, hour) as
// blocks of up to s.blockBytes of content (an import's: importBlockBytes),
// the others one frame each.
// Blocks and frames are compressed on every core. With acrossHours (an
// offline import, BeginImport) the hour is not part of the group: recs
// come in eventsOrder, and a block takes consecutive records of one
// account, region and category until it is full, as Compact's do.
func (s *Store) encodeRecords(recs []*audit.Record, acrossHours bool) []encoded {
	out := make([]encoded, len(recs))
	var singles []int
	type pending struct {
		members []int
		content []byte
		blk     *block
	}
	var todo []*pending
	blockBytes := s.blockBytes
	if acrossHours && blockBytes == defaultBlockBytes {
		// An import writes the blocks Compact would (importBlockBytes).
		blockBytes = importBlockBytes
	}
	if blockBytes > 0 {
		// Records come in runs of one group (a file's records are in
		// time order): the map is asked only when the group changes.
		groups := map[groupKey]int{}
		var members [][]int
		var last groupKey
		g := -1
		for i, r := range recs {
			k := groupKey{r.Account, r.Region, r.Category, 0}
			if !acrossHours {
				k.hour = floorDiv(r.Time.Unix(), bucketSeconds)
			}
			if g < 0 || k != last {
				var ok bool
				if g, ok = groups[k]; !ok {
					g = len(members)
					groups[k] = g
					members = append(members, nil)
				}
				last = k
			}
			members[g] = append(members[g], i)
		}
		for _, idx := range members {
			if len(idx) < minBlockRecords {
				singles = append(singles, idx...)
				continue
			}
			var p *pending
			for _, i := range idx {
				if p == nil || len(p.content) >= blockBytes {
					p = &pending{blk: &block{}, content: make([]byte, 0, blockBytes+4096)}
					todo = append(todo, p)
				}
				off := len(p.content)
				p.content = frameContent(p.content, recs[i])
				out[i] = encoded{blk: p.blk, off: off, n: len(p.content) - off}
				p.members = append(p.members, i)
			}
		}
	} else {
		singles = make([]int, len(recs))
		for i := range singles {
			singles[i] = i
		}
	}
	// A block of fewer than minBlockRecords (the tail of a large group)
	// is still a block: its records share the group's hour.
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(todo); j += workers {
				todo[j].blk.data = s.compressBlock(todo[j].content, acrossHours && s.importLevel.Load())
			}
		})
	}
	if len(singles) > 0 {
		frames := s.frames(len(singles), func(j int) *audit.Record { return recs[singles[j]] })
		for j, i := range singles {
			out[i] = encoded{frame: frames[j]}
		}
	}
	wg.Wait()
	return out
}

// compressBlock compresses a block's content: an offline import's in
// order (imported: InOrder so far, so it will not be compacted) at
// importLevel, others at the appends' SpeedFastest (an import out of order
// is compacted, which compresses its blocks again at compactLevel). An
// import whose encoder could not be made (never seen: it is made as the
// codec's own are) falls back to SpeedFastest, which every reader reads
// alike.
func (s *Store) compressBlock(content []byte, imported bool) []byte {
	if imported {
		if data, err := s.codec.compressImportBlock(content); err == nil {
			return data
		}
	}
	return s.codec.compressBlock(content)
}

// importBlockBytes is the block content of an offline import's appends
// (BeginImport: blocks across hours, in Compact's order) when the store has
// the default block size (a store opened with another Options.BlockBytes, or
// none, keeps it): Compact's, so that an import in order, which is not
// compacted, has the blocks' size a compaction would have made (its level
// is importLevel's, SpeedFastest, below Compact's). On the 1M year-spread set the size
// made the store 6% smaller and the import no slower (docs/store.md,
// "Imports", session 19).
const importBlockBytes = compactBlockBytes

// floorDiv is a/b rounded down (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// appendBlockRef appends the reference frame of a place in block id.
func appendBlockRef(dst []byte, id int64, off, n int) []byte {
	dst = append(dst, frameBlockV1)
	dst = binary.AppendUvarint(dst, uint64(id))
	dst = binary.AppendUvarint(dst, uint64(off))
	return binary.AppendUvarint(dst, uint64(n))
}

// Block references as integer columns (issue 15, session 23). A row
// appended since holds its reference in blk_id, blk_off and blk_len and an
// empty record; a row with a frame of its own holds the frame in record
// and NULLs there. As a BLOB in record (stored uncompressed) a reference
// cost 16 bytes a record; as integers DuckDB keeps the id, which repeats
// for a block's rows, run-length encoded and the offset and length
// bit-packed (about 4 bytes), besides the 4 bytes the empty record still
// takes in the uncompressed column (docs/store.md). Rows written before
// keep their references in record: every reader selects refColumns and
// takes the frame from refFrame, which gives the reference of either form
// as appendBlockRef makes it, so the paths after it are those of before.

// refColumns are the columns a row's frame is read from, in refTargets'
// order.
const refColumns = `record, blk_id, blk_off, blk_len`

// rowRef holds the integer reference columns of one row (NULL for a row
// with a frame of its own and for rows written before them).
type rowRef struct{ id, off, n sql.NullInt64 }

// targets are rowRef's scan destinations, after record's.
func (r *rowRef) targets() []any { return []any{&r.id, &r.off, &r.n} }

// appendFrame appends to dst the row's frame: record when it holds one
// (a frame of its own or a reference written before), else the reference
// the integer columns hold, in appendBlockRef's form. Values parseBlockRef
// would refuse (negative, or past its bounds) are an error here.
func (r *rowRef) appendFrame(dst, record []byte) ([]byte, error) {
	if len(record) > 0 || !r.id.Valid {
		return append(dst, record...), nil
	}
	if !r.off.Valid || !r.n.Valid || r.id.Int64 < 0 || r.id.Int64 > 1<<62 ||
		r.off.Int64 < 0 || r.off.Int64 > maxBlockContent || r.n.Int64 < 0 || r.n.Int64 > maxBlockContent {
		return nil, errors.New("duckdb: block reference: out of range")
	}
	return appendBlockRef(dst, r.id.Int64, int(r.off.Int64), int(r.n.Int64)), nil
}

// frame returns the row's frame (appendFrame), record itself when it
// holds one.
func (r *rowRef) frame(record []byte) ([]byte, error) {
	if len(record) > 0 || !r.id.Valid {
		return record, nil
	}
	return r.appendFrame(record[:0:0], nil)
}

// refValues are the values Append writes in refColumns for a record
// stored as e: its frame and NULLs, or an empty record and the place in
// its block (whose id is set).
func refValues(e *encoded) (record []byte, id, off, n any) {
	if e.blk == nil {
		return e.frame, nil, nil, nil
	}
	return []byte{}, e.blk.id, int32(e.off), int32(e.n)
}

// parseBlockRef reads a reference frame.
func parseBlockRef(frame []byte) (id int64, off, n int, err error) {
	if len(frame) == 0 || frame[0] != frameBlockV1 {
		return 0, 0, 0, errors.New("not a block reference")
	}
	b := frame[1:]
	var v [3]uint64
	for i := range v {
		x, k := binary.Uvarint(b)
		if k <= 0 {
			return 0, 0, 0, errors.New("block reference: bad varint")
		}
		v[i], b = x, b[k:]
	}
	if len(b) != 0 || v[0] > 1<<62 || v[1] > maxBlockContent || v[2] > maxBlockContent {
		return 0, 0, 0, errors.New("block reference: out of range")
	}
	return int64(v[0]), int(v[1]), int(v[2]), nil
}

// maxBlockContent bounds a block's decompressed size: a block is closed
// once it reaches blockBytes, so it holds at most that plus one record's
// content.
const maxBlockContent = maxBlockBytes + 2*audit.MaxRecordSize

// maxBlockBytes is the largest Options.BlockBytes taken.
const maxBlockBytes = 16 << 20

// queryer runs a query: a *sql.DB or a *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// blockSet holds the blocks the frames of one read reference: those the
// cache held (decoded) and those fetched from the table (compressed).
type blockSet struct {
	plain   map[int64][]byte
	missing []int64
	fetched map[int64][]byte
}

// blocksOf returns the blocks the frames reference, those the cache holds
// already taken from it (so that an eviction meanwhile cannot lose them)
// and the others listed in missing, for fetchBlocks.
func (s *Store) blocksOf(frames [][]byte) (*blockSet, error) {
	bs := &blockSet{plain: map[int64][]byte{}}
	seen := map[int64]bool{}
	for _, f := range frames {
		if len(f) == 0 || f[0] != frameBlockV1 {
			continue
		}
		id, _, _, err := parseBlockRef(f)
		if err != nil {
			return nil, fmt.Errorf("duckdb: %w", err)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if plain, ok := s.blocks.get(id); ok {
			bs.plain[id] = plain
			continue
		}
		bs.missing = append(bs.missing, id)
	}
	return bs, nil
}

// fetch reads the missing blocks.
func (bs *blockSet) fetch(ctx context.Context, q queryer) error {
	var err error
	bs.fetched, err = fetchBlocks(ctx, q, bs.missing)
	return err
}

// fetchForLookup reads the missing blocks of a lookup's page
// (fetchBlocksEach).
func (bs *blockSet) fetchForLookup(ctx context.Context, q queryer) error {
	var err error
	bs.fetched, err = fetchBlocksEach(ctx, q, bs.missing)
	return err
}

// maxEachBlocks is the most ids fetchBlocksEach reads with one SELECT
// each; more go to fetchBlocks. Each SELECT is a scan of its own: for 30
// to 50 ids spread over the 1M store (a cold rare lookup's page) the
// union took 0.8 s against 0.4-0.7 s for the IN list (load 10-14), while
// a page's fetch after the server appended its own records is one to
// five fresh blocks.
const maxEachBlocks = 8

// fetchBlocksEach reads the compressed blocks of a few ids in one query
// of one SELECT an id (UNION ALL). DuckDB takes `id IN (...)` as an
// optional (zone map) filter and filters after the scan: it read the
// data of every row of the vectors the ids fall in (11,022 rows for two
// ids at 1M records, each a compressed block) and a lookup's fetch of
// two or three fresh blocks cost 24-412 ms at load 17, 11% of the
// server's CPU under the API benchmark. `id = X` is pushed into the scan,
// which reads data for the matching row only: 4.5-40 ms for the same
// three blocks in the same run (docs/store.md, "Record blocks").
func fetchBlocksEach(ctx context.Context, q queryer, ids []int64) (map[int64][]byte, error) {
	if len(ids) == 0 || len(ids) > maxEachBlocks {
		return fetchBlocks(ctx, q, ids)
	}
	var sb strings.Builder
	for i, id := range ids {
		if i > 0 {
			sb.WriteString(` UNION ALL `)
		}
		sb.WriteString(`SELECT id, data FROM record_blocks WHERE id = `)
		sb.WriteString(strconv.FormatInt(id, 10))
	}
	return scanBlocks(ctx, q, sb.String(), len(ids))
}

// fetchBlocks reads the compressed blocks of ids, in one query. The ids
// go in as constants, so that DuckDB prunes record_blocks by zone maps.
func fetchBlocks(ctx context.Context, q queryer, ids []int64) (map[int64][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var sb strings.Builder
	sb.WriteString(`SELECT id, data FROM record_blocks WHERE id IN (`)
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(id, 10))
	}
	sb.WriteString(`)`)
	return scanBlocks(ctx, q, sb.String(), len(ids))
}

// scanBlocks runs query, which selects (id, data) of record_blocks, and
// returns the blocks by id.
func scanBlocks(ctx context.Context, q queryer, query string, n int) (map[int64][]byte, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("duckdb: read blocks: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][]byte, n)
	for rows.Next() {
		var (
			id   int64
			data []byte
		)
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("duckdb: read blocks: %w", err)
		}
		out[id] = data
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: read blocks: %w", err)
	}
	return out, nil
}

// contents returns the frame content of each frame: frames of their own
// are decompressed, references are cut from their blocks (bs, from
// blocksOf and fetch). Each content is the caller's own.
func (s *Store) contents(frames [][]byte, bs *blockSet) ([][]byte, error) {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		if len(f) == 0 || f[0] != frameBlockV1 {
			c, err := s.codec.decompress(f)
			if err != nil {
				return nil, err
			}
			out[i] = c
			continue
		}
		id, off, n, err := parseBlockRef(f)
		if err != nil {
			return nil, fmt.Errorf("duckdb: %w", err)
		}
		plain, ok := bs.plain[id]
		if !ok {
			data, ok := bs.fetched[id]
			if !ok {
				return nil, fmt.Errorf("duckdb: record block %d missing", id)
			}
			if plain, err = s.codec.decompressBlock(data); err != nil {
				return nil, fmt.Errorf("duckdb: record block %d: %w", id, err)
			}
			s.blocksDecoded.Add(1)
			bs.plain[id] = plain
			s.blocks.put(id, plain, len(plain))
		}
		if off+n > len(plain) {
			return nil, fmt.Errorf("duckdb: record block %d: reference past its end", id)
		}
		// A copy: the block is shared through the cache.
		out[i] = append([]byte(nil), plain[off:off+n]...)
	}
	return out, nil
}

// blockCache keeps recently decoded blocks, least recently used out
// first, within a byte budget. Blocks never change and their ids are
// never reused, so an entry is never stale.
type blockCache = lruCache[[]byte]

func newBlockCache(max int) *blockCache { return newLRUCache[[]byte](max) }

// lruCache keeps values by id, least recently used out first, within a
// budget of the sizes put gives: the record blocks' cache (blockCache)
// and the sealed tier's decoded blocks' (sealedTier.cache).
type lruCache[V any] struct {
	mu       sync.Mutex
	max, cur int
	ll       *list.List
	m        map[int64]*list.Element
}

type lruEntry[V any] struct {
	id   int64
	v    V
	size int
}

func newLRUCache[V any](max int) *lruCache[V] {
	return &lruCache[V]{max: max, ll: list.New(), m: map[int64]*list.Element{}}
}

func (c *lruCache[V]) has(id int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[id]
	return ok
}

func (c *lruCache[V]) get(id int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		var zero V
		return zero, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*lruEntry[V]).v, true
}

// put keeps v, of size bytes, unless id is held or v alone passes the
// budget.
func (c *lruCache[V]) put(id int64, v V, size int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[id]; ok || size > c.max {
		return
	}
	c.m[id] = c.ll.PushFront(&lruEntry[V]{id, v, size})
	c.cur += size
	for c.cur > c.max {
		c.remove(c.ll.Back())
	}
}

// drop removes ids' values.
func (c *lruCache[V]) drop(ids ...int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if e, ok := c.m[id]; ok {
			c.remove(e)
		}
	}
}

func (c *lruCache[V]) remove(e *list.Element) {
	x := e.Value.(*lruEntry[V])
	c.ll.Remove(e)
	delete(c.m, x.id)
	c.cur -= x.size
}
