package duckdb

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// rawRow is one row ReadRaw reads: its block reference parsed, or its
// frame of its own.
type rawRow struct {
	seq, t     int64
	blk        int64 // block id, when frame is nil
	off, n     int
	frame      []byte // a frame of its own (not a block reference)
	inBlockRef bool
}

// ReadRaw implements audit.RawFeed: the records ReadAppended(ctx, after,
// limit) returns, in the same order, in the lean form cairn hunt reads.
// It differs from ReadAppended in what it leaves out, all of it per-row
// work a whole-history reader pays 10M times:
//   - three columns (seq, event_time, record), not seven: no account,
//     region or event ID string is made per row;
//   - a block reference is parsed as its row is scanned, without a copy of
//     the frame;
//   - each block is decompressed once per page, the page's blocks and
//     frames on every core, and its records are returned in place (Raw
//     aliases the block) instead of copied out;
//   - of the stored fields only eventName is read (audit.SplitBinary), and
//     the page's names share their strings.
//
// The blocks it decompresses do not go to the block cache: a sequential
// reader would evict from it the blocks lookups reread, for nothing.
//
// The tail and the two tiers answer as for ReadAppended.
func (s *Store) ReadRaw(ctx context.Context, after int64, limit int) ([]audit.RawAppended, error) {
	if limit <= 0 {
		return nil, nil
	}
	if recs, ok := s.tail.read(after, limit); ok {
		out := make([]audit.RawAppended, len(recs))
		for i, a := range recs {
			out[i] = audit.RawAppended{Seq: a.Seq, Time: a.Record.Time, EventName: a.Record.EventName, Raw: a.Record.Raw}
		}
		return out, nil
	}
	upTo := s.committed.Load()
	hot, err := s.readRawHot(ctx, after, limit)
	if err != nil || !s.sealedAfter(after) {
		return hot, err
	}
	es, err := s.readSealed(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	cold := make([]audit.RawAppended, 0, len(es))
	for i := range es {
		if es[i].Seq <= upTo {
			r := &es[i].Record
			cold = append(cold, audit.RawAppended{Seq: es[i].Seq, Time: r.Time, EventName: r.EventName, Raw: r.Raw})
		}
	}
	return mergeSeq(seqUpTo(hot, upTo, func(a *audit.RawAppended) int64 { return a.Seq }), cold,
		func(a *audit.RawAppended) int64 { return a.Seq }, limit), nil
}

// readRawHot is ReadRaw over the table (the hot tier).
func (s *Store) readRawHot(ctx context.Context, after int64, limit int) ([]audit.RawAppended, error) {
	if limit <= 0 {
		return nil, nil
	}
	var (
		rows    []rawRow
		plain   map[int64][]byte // blocks the cache held
		fetched map[int64][]byte // the others, compressed
	)
	read := func() error {
		s.rw.RLock()
		defer s.rw.RUnlock()
		rows = make([]rawRow, 0, limit)
		if err := readSeqPage(after, limit, `seq, event_time, `+refColumns, func(query string) (int, error) {
			err := scanRaw(ctx, s.db, &rows, query)
			return len(rows), err
		}); err != nil {
			return err
		}
		var missing []int64
		plain = map[int64][]byte{}
		last := int64(-1)
		for i := range rows {
			r := &rows[i]
			if !r.inBlockRef || r.blk == last {
				continue
			}
			last = r.blk
			if _, ok := plain[r.blk]; ok {
				continue
			}
			if p, ok := s.blocks.get(r.blk); ok {
				plain[r.blk] = p
				continue
			}
			if !contains(missing, r.blk) {
				missing = append(missing, r.blk)
			}
		}
		var err error
		fetched, err = fetchBlockRange(ctx, s.db, missing)
		return err
	}
	if err := read(); err != nil {
		return nil, err
	}
	// Decompression after rw, as ReadAppended's; the codec is held as it
	// holds it.
	s.codecMu.RLock()
	defer s.codecMu.RUnlock()
	if s.codecClosed {
		return nil, errClosed
	}
	type job struct {
		blk  int64
		data []byte // a block, or a frame of its own (row >= 0)
		row  int
	}
	var jobs []job
	for id, data := range fetched {
		jobs = append(jobs, job{blk: id, data: data, row: -1})
	}
	for i := range rows {
		if !rows[i].inBlockRef {
			jobs = append(jobs, job{data: rows[i].frame, row: i})
		}
	}
	results := make([][]byte, len(jobs))
	errs := make([]error, len(jobs))
	workers := min(runtime.GOMAXPROCS(0), len(jobs))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(jobs); j += workers {
				if jobs[j].row >= 0 {
					results[j], errs[j] = s.codec.decompress(jobs[j].data)
					continue
				}
				results[j], errs[j] = s.codec.decompressBlock(jobs[j].data)
				if errs[j] != nil {
					errs[j] = fmt.Errorf("duckdb: record block %d: %w", jobs[j].blk, errs[j])
				}
			}
		})
	}
	wg.Wait()
	own := make(map[int][]byte)
	for j, jb := range jobs {
		if errs[j] != nil {
			return nil, errs[j]
		}
		if jb.row >= 0 {
			own[jb.row] = results[j]
			continue
		}
		s.blocksDecoded.Add(1)
		plain[jb.blk] = results[j]
	}
	names := map[string]string{}
	out := make([]audit.RawAppended, len(rows))
	for i := range rows {
		r := &rows[i]
		var content []byte
		if r.inBlockRef {
			p, ok := plain[r.blk]
			if !ok {
				return nil, fmt.Errorf("duckdb: record block %d missing", r.blk)
			}
			if r.off+r.n > len(p) {
				return nil, fmt.Errorf("duckdb: record block %d: reference past its end", r.blk)
			}
			content = p[r.off : r.off+r.n : r.off+r.n]
		} else {
			content = own[i]
		}
		raw, name, err := audit.SplitBinary(content)
		if err != nil {
			return nil, fmt.Errorf("duckdb: record %d: stored fields: %w", r.seq, err)
		}
		en, ok := names[string(name)]
		if !ok {
			en = string(name)
			names[en] = en
		}
		out[i] = audit.RawAppended{Seq: r.seq, Time: time.Unix(r.t, 0).UTC(), EventName: en, Raw: raw}
	}
	return out, nil
}

// fetchBlockRange reads the compressed blocks of ids (fetchBlocks'), by
// the range of their ids: DuckDB prunes record_blocks by its zone maps on
// a range, while an IN list of a page's hundreds of ids became a join over
// the whole table (at 1M records 290-510 ms a page of 8,192 records
// against 10-13 ms by the range, on the loaded 2-core machine). A page's
// blocks are about all those in its range: a block's id is its first
// row's sequence number, so the others there are blocks whose rows an
// earlier page read (interleaved groups of one append) or whose rows
// were deleted without them; they are read and dropped.
func fetchBlockRange(ctx context.Context, q queryer, ids []int64) (map[int64][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	lo, hi := slices.Min(ids), slices.Max(ids)
	rows, err := q.QueryContext(ctx, fmt.Sprintf(`SELECT id, data FROM record_blocks WHERE id >= %d AND id <= %d`, lo, hi))
	if err != nil {
		return nil, fmt.Errorf("duckdb: read blocks: %w", err)
	}
	defer rows.Close()
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	out := make(map[int64][]byte, len(ids))
	var data sql.RawBytes
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("duckdb: read blocks: %w", err)
		}
		if want[id] {
			out[id] = append([]byte(nil), data...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: read blocks: %w", err)
	}
	return out, nil
}

func contains(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// scanRaw appends the rows of query (seq, event_time and refColumns) to
// out, block references parsed.
func scanRaw(ctx context.Context, q queryer, out *[]rawRow, query string) error {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("duckdb: read raw: %w", err)
	}
	defer rows.Close()
	var (
		frame sql.RawBytes
		ref   rowRef
		buf   []byte
	)
	for rows.Next() {
		var r rawRow
		if err := rows.Scan(append([]any{&r.seq, &r.t, &frame}, ref.targets()...)...); err != nil {
			return fmt.Errorf("duckdb: read raw: %w", err)
		}
		if len(frame) == 0 && ref.id.Valid {
			if buf, err = ref.appendFrame(buf[:0], nil); err != nil {
				return fmt.Errorf("duckdb: record %d: %w", r.seq, err)
			}
			frame = buf
		}
		if len(frame) > 0 && frame[0] == frameBlockV1 {
			if r.blk, r.off, r.n, err = parseBlockRef(frame); err != nil {
				return fmt.Errorf("duckdb: record %d: %w", r.seq, err)
			}
			r.inBlockRef = true
		} else {
			r.frame = append([]byte(nil), frame...)
		}
		*out = append(*out, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: read raw: %w", err)
	}
	return nil
}

// LimitFeedMemory caps DuckDB's buffer pool at bytes (at least 64 MiB) for
// a process that only reads the whole feed (cairn hunt, cairn who): DuckDB
// keeps every block it reads in its buffer pool up to its memory limit
// (80% of RAM by default), so a read of all history otherwise grows as
// large as the data file (3.0 GB of RSS at 10M records). A sequential
// reader rereads nothing; the pool can be small.
func (s *Store) LimitFeedMemory(ctx context.Context, bytes int64) error {
	mib := max(bytes>>20, 64)
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("SET memory_limit = '%dMiB'", mib)); err != nil {
		return fmt.Errorf("duckdb: limit memory: %w", err)
	}
	return nil
}
