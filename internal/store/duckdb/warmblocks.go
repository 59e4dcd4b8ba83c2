package duckdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cairn-audit/cairn/internal/atomicfile"
)

// The block cache across a restart (issue 19). A cold read of a record
// block costs far more than a warm one: DuckDB reads the data column of
// a whole vector (2,048 blocks, about 12 MB at the 1M import) to return
// one block of it, and each vector once from the file. After a restart the
// first lookups of the newest hours and of a rare EventName took 0.4–0.8 s
// through the API (steady: 4–7 ms), nearly all of it fetching a few
// blocks. So Close saves the ids of the cached blocks (PATH.blocks, most
// recently used first) and Open reads those blocks again, in one query,
// before the store answers: the working set of the lookups served before
// the restart. The ids are only hints: every block is read from the
// table by its id, so a list from another store or one naming blocks
// removed since (retention, a compaction) costs a read, never a wrong
// record; a missing or damaged file starts with an empty cache.

// warmFileMagic starts a PATH.blocks file; the ids follow, 8 bytes each,
// little-endian.
const warmFileMagic = "cairn-block-cache-v1\n"

// maxWarmBlocks bounds the ids read from PATH.blocks.
const maxWarmBlocks = 1 << 16

// warmChunk is how many blocks one query of the warm-up reads.
const warmChunk = 1024

// saveBlockCache writes the ids of the cached blocks to PATH.blocks,
// most recently used first; called by Close.
func (s *Store) saveBlockCache() error {
	if s.warmPath == "" {
		return nil
	}
	ids := s.blocks.ids()
	b := make([]byte, 0, len(warmFileMagic)+8*len(ids))
	b = append(b, warmFileMagic...)
	for _, id := range ids {
		b = binary.LittleEndian.AppendUint64(b, uint64(id))
	}
	if err := atomicfile.Write(s.warmPath, b, 0o600); err != nil {
		return fmt.Errorf("duckdb: save the block cache's ids: %w", err)
	}
	return nil
}

// warmBlockCache reads the blocks PATH.blocks names into the cache (see
// above). It returns how many it cached; an error leaves the cache as it
// got.
func (s *Store) warmBlockCache(ctx context.Context) (int, error) {
	if s.warmPath == "" {
		return 0, nil
	}
	b, err := os.ReadFile(s.warmPath)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("duckdb: read the block cache's ids: %w", err)
	}
	ids, err := decodeWarmFile(b)
	if err != nil {
		return 0, fmt.Errorf("duckdb: %s: %w", s.warmPath, err)
	}
	plain := make(map[int64][]byte, len(ids))
	for i := 0; i < len(ids); i += warmChunk {
		data, err := fetchBlocks(ctx, s.db, ids[i:min(len(ids), i+warmChunk)])
		if err != nil {
			return 0, err
		}
		for id, d := range data {
			p, err := s.codec.decompressBlock(d)
			if err != nil {
				return 0, fmt.Errorf("duckdb: record block %d: %w", id, err)
			}
			plain[id] = p
		}
	}
	// Least recently used first: each put goes to the front, so the
	// most recently used end there, and those the cache has no room for
	// (a smaller BlockCacheBytes than before) are the least used.
	n := 0
	for i := len(ids) - 1; i >= 0; i-- {
		if p, ok := plain[ids[i]]; ok {
			s.blocks.put(ids[i], p)
			n++
		}
	}
	return n, nil
}

// decodeWarmFile returns the ids of a PATH.blocks file, without
// duplicates, at most maxWarmBlocks.
func decodeWarmFile(b []byte) ([]int64, error) {
	rest, ok := bytes.CutPrefix(b, []byte(warmFileMagic))
	if !ok || len(rest)%8 != 0 {
		return nil, errors.New("not a block cache file")
	}
	n := min(len(rest)/8, maxWarmBlocks)
	ids := make([]int64, 0, n)
	seen := make(map[int64]bool, n)
	for i := range n {
		v := binary.LittleEndian.Uint64(rest[8*i:])
		if v > 1<<62 {
			return nil, fmt.Errorf("block id %d out of range", v)
		}
		if id := int64(v); !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// ids returns the ids of the cached blocks, most recently used first.
func (c *blockCache) ids() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int64, 0, c.ll.Len())
	for e := c.ll.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*cachedBlock).id)
	}
	return out
}
