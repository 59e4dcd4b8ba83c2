package duckdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
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
	b, size, err := readSavedFile(s.warmPath, int64(len(warmFileMagic))+8*maxWarmBlocks)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("duckdb: read the block cache's ids: %w", err)
	}
	if size > int64(len(b)) && (size-int64(len(warmFileMagic)))%8 != 0 {
		// Longer than the ids read, and not whole ids.
		return 0, fmt.Errorf("duckdb: %s: not a block cache file", s.warmPath)
	}
	ids, err := decodeWarmFile(b)
	if err != nil {
		return 0, fmt.Errorf("duckdb: %s: %w", s.warmPath, err)
	}
	plain := make(map[int64][]byte, len(ids))
	for i := 0; i < len(ids); i += warmChunk {
		data, err := fetchBlockRanges(ctx, s.db, ids[i:min(len(ids), i+warmChunk)], warmRangesPerQuery)
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
			s.blocks.put(ids[i], p, len(p))
			n++
		}
	}
	return n, nil
}

// The warm start reads its blocks by ranges of nearby ids, one SELECT a
// range (`id BETWEEN lo AND hi`, which DuckDB pushes into the scan: it
// reads the data of the rows in the range only), not by an `IN` list,
// which DuckDB filters after the scan, reading the data of every row of
// the vectors between the list's least and greatest id: at 10M records the
// 78 blocks a server saved took 1.4-4.4 s by the list and 0.15-0.21 s by
// 53 ranges (a store opened cold, load 7-9; issue 19, session 16). Ids
// at most warmRangeGap apart share a range, so a range holds at most
// warmRangeGap/4 blocks not asked for between two that are (a block's id
// is its first record's sequence number, and it holds at least 4
// records); those are dropped.
const (
	warmRangeGap       = 64
	warmRangesPerQuery = 64
)

// fetchBlockRanges returns the compressed blocks of ids (see above),
// reading at most perQuery ranges a query.
func fetchBlockRanges(ctx context.Context, q queryer, ids []int64, perQuery int) (map[int64][]byte, error) {
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	out := make(map[int64][]byte, len(sorted))
	var sb strings.Builder
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		got, err := scanBlocks(ctx, q, sb.String(), len(sorted))
		if err != nil {
			return err
		}
		for id, d := range got {
			if _, ok := slices.BinarySearch(sorted, id); ok {
				out[id] = d
			}
		}
		sb.Reset()
		n = 0
		return nil
	}
	for i := 0; i < len(sorted); {
		j := i
		for j+1 < len(sorted) && sorted[j+1]-sorted[j] <= warmRangeGap {
			j++
		}
		if n > 0 {
			sb.WriteString(` UNION ALL `)
		}
		fmt.Fprintf(&sb, `SELECT id, data FROM record_blocks WHERE id BETWEEN %d AND %d`, sorted[i], sorted[j])
		n++
		if n == perQuery {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		i = j + 1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
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

// readSavedFile reads at most limit bytes of a file Close saved (the
// warm start's PATH.blocks and PATH.lookups) and returns them with the
// file's size. Close writes both by rename, 0600: anything else in their
// place was not written by cairn and is refused, unread. A symlink (which
// could name another account's file, a FIFO that blocks Open forever or
// /dev/zero), anything but a regular file, and a file others may write
// (which another local user could have put there) give an error; a
// missing file gives one matching fs.ErrNotExist.
func readSavedFile(path string, limit int64) ([]byte, int64, error) {
	f, size, err := openSavedFile(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, 0, err
	}
	return b, max(size, int64(len(b))), nil
}

// openSavedFile opens a file Close saved, refusing what readSavedFile
// refuses, and returns it with its size.
func openSavedFile(path string) (*os.File, int64, error) {
	before, err := os.Lstat(path)
	if err != nil {
		return nil, 0, err
	}
	if err := checkSavedFile(before); err != nil {
		return nil, 0, err
	}
	// O_NONBLOCK: should a FIFO have taken the file's place since Lstat,
	// opening it does not wait for a writer (the checks below refuse it).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err == nil && !os.SameFile(before, st) {
		err = errors.New("replaced while being opened")
	}
	if err == nil {
		err = checkSavedFile(st)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// checkSavedFile refuses what Close never writes (see readSavedFile).
func checkSavedFile(fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by others (mode %v)", fi.Mode().Perm())
	}
	return nil
}

// ids returns the ids of the cached blocks, most recently used first.
func (c *lruCache[V]) ids() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]int64, 0, c.ll.Len())
	for e := c.ll.Front(); e != nil; e = e.Next() {
		out = append(out, e.Value.(*lruEntry[V]).id)
	}
	return out
}

// The lookups across a restart. The block cache holds the records' bytes,
// not what DuckDB reads to find them: after a restart the first lookup of
// a kind still read the `events` columns of its hours from the file (at
// the live 1M store, whose row groups span months, 80–130 ms against a
// steady 13–16 ms). So Close also saves the last distinct lookups
// (PATH.lookups: their audit.Query, JSON) and Open runs them again,
// results discarded, after the blocks: DuckDB then holds the row groups
// they read. A saved lookup is a query like any other (Lookup validates
// it; it only reads), never SQL; the replay stops at replayBudget.

// recentLookupsMax is how many distinct lookups Close saves.
const recentLookupsMax = 32

// replayBudget bounds the time Open spends on the saved lookups.
const replayBudget = 5 * time.Second

// maxLookupsFile bounds the PATH.lookups read.
const maxLookupsFile = 1 << 20

// recentLookups holds the last distinct lookups, newest first.
type recentLookups struct {
	mu sync.Mutex
	qs []audit.Query
}

// add puts q first, in place of an earlier one that differs only in End
// and ReceivedSince (the API sets both from the clock).
func (r *recentLookups) add(q audit.Query) {
	q.Attributes = slices.Clone(q.Attributes)
	if q.After != nil {
		c := *q.After
		q.After = &c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.qs, func(p audit.Query) bool { return sameLookup(&p, &q) })
	if i < 0 {
		i = min(len(r.qs), recentLookupsMax-1)
		if len(r.qs) < recentLookupsMax {
			r.qs = append(r.qs, audit.Query{})
		}
	}
	copy(r.qs[1:i+1], r.qs[:i])
	r.qs[0] = q
}

// set makes qs (newest first) the list.
func (r *recentLookups) set(qs []audit.Query) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.qs = slices.Clone(qs[:min(len(qs), recentLookupsMax)])
}

func (r *recentLookups) list() []audit.Query {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.qs)
}

// sameLookup reports whether a and b ask for the same page but for End
// and ReceivedSince.
func sameLookup(a, b *audit.Query) bool {
	if a.Account != b.Account || a.AnyAccount != b.AnyAccount || a.Region != b.Region || a.AnyRegion != b.AnyRegion ||
		a.Category != b.Category || !a.Start.Equal(b.Start) || a.Limit != b.Limit || !slices.Equal(a.Attributes, b.Attributes) {
		return false
	}
	if a.After == nil || b.After == nil {
		return a.After == b.After
	}
	return a.After.Time.Equal(b.After.Time) && a.After.EventID == b.After.EventID && a.After.Account == b.After.Account
}

// SavedLookups returns the lookups Open read from PATH.lookups (the last
// distinct lookups the store answered before its last Close, newest
// first; nil for none or a Cold store), whatever the replay got through:
// a server runs them through its own LookupEvents path before it answers
// (apiserver.Server.WarmLookups).
func (s *Store) SavedLookups() []audit.Query {
	return slices.Clone(s.saved)
}

// saveLookups writes the recent lookups to PATH.lookups; called by Close.
func (s *Store) saveLookups() error {
	if s.lookupsPath == "" {
		return nil
	}
	b, err := json.Marshal(lookupsFile{Version: 1, Lookups: s.recent.list()})
	if err != nil {
		return fmt.Errorf("duckdb: save the recent lookups: %w", err)
	}
	if err := atomicfile.Write(s.lookupsPath, b, 0o600); err != nil {
		return fmt.Errorf("duckdb: save the recent lookups: %w", err)
	}
	return nil
}

type lookupsFile struct {
	Version int
	Lookups []audit.Query
}

// replayLookups runs the lookups PATH.lookups holds within
// replayBudget, and returns how many ran. A lookup that fails is
// skipped: the replay only warms DuckDB.
//
// Breadth first: every saved lookup first runs for its newest record
// only (Limit 1), newest first, then for its page, oldest first (so that
// the block cache ends in the order it had at Close). The
// first pass reads what each lookup starts with (its newest candidate
// hour's directory, its partition's newest hours, the block of its first
// record), which is what a lookup of the newest page mostly needs; the
// second pass the deep part of the pages (a rare value's tens of hours).
// Run one after the other, oldest first, a rare EventName's page at 10M
// records (18 directories read ahead in 3 queries: 3.3-4.7 s at load 7)
// took the whole budget before the no-attribute lookup's turn, so the
// first such lookup after the restart read its hour cold (55-145 ms in
// the store against 0.1 ms replayed).
func (s *Store) replayLookups(ctx context.Context) (int, error) {
	if s.lookupsPath == "" {
		return 0, nil
	}
	b, size, err := readSavedFile(s.lookupsPath, maxLookupsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("duckdb: read the recent lookups: %w", err)
	}
	var lf lookupsFile
	if size > maxLookupsFile {
		return 0, fmt.Errorf("duckdb: %s: larger than %d bytes", s.lookupsPath, maxLookupsFile)
	}
	if err := json.Unmarshal(b, &lf); err != nil || lf.Version != 1 {
		return 0, fmt.Errorf("duckdb: %s: not a recent lookups file (%v)", s.lookupsPath, err)
	}
	ctx, cancel := context.WithTimeout(ctx, replayBudget)
	defer cancel()
	qs := lf.Lookups[:min(len(lf.Lookups), recentLookupsMax)]
	s.saved = slices.Clone(qs)
	// The replay's own lookups must not change the list the next Close
	// saves: it is the file's, as before the restart.
	defer s.recent.set(qs)
	for _, q := range qs {
		if ctx.Err() != nil {
			break
		}
		if q.Limit > 1 {
			q.Limit = 1
			_, _ = s.Lookup(ctx, q)
			s.replayed = append(s.replayed, q)
		}
	}
	n := 0
	for i := len(qs) - 1; i >= 0 && ctx.Err() == nil; i-- {
		q := qs[i]
		if _, err := s.Lookup(ctx, q); err == nil {
			n++
		}
		s.replayed = append(s.replayed, q)
	}
	return n, nil
}
