package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// CompactResult tells what Compact did.
type CompactResult struct {
	Records       int64 // records in the store
	Sealed        int64 // of them, in the sealed tier after
	BytesBefore   int64 // the file's size and its sealed segments' before
	BytesAfter    int64 // and after
	Took          time.Duration
	RowGroupsFrom int64 // row groups of events before
	RowGroupsTo   int64 // and after
}

// compactSuffix names the file Compact writes beside the store before it
// takes the store's place.
const compactSuffix = ".compact"

// eventsOrder is the order Compact writes events in: a lookup's account,
// region and category, then time. Row groups then hold one Event History's
// hours each, so zone maps on event_time prune for every lookup (a store
// filled live held a server's records of today between last year's, and
// every row group spanned months: docs/store.md).
const eventsOrder = `account, region, category, event_time, event_id`

// Compact rewrites the store at path into a new file and puts it in the
// old one's place: events ordered by eventsOrder (seq, the feed's
// position, goes with each record unchanged), the other tables as they
// are, and no free blocks. The store must not be open: Compact opens and
// closes it first (migrating it, replaying and checkpointing a write-ahead
// log a crash left), then holds the old file read-only while it copies,
// so a server that opens it meanwhile fails instead of writing to a file
// about to be replaced. The new file replaces the old one by a rename
// after it is complete and synced: a crash leaves the old store or the
// new one, and at most a PATH.compact file, which the next Compact
// removes. See docs/store.md, "Compaction".
func Compact(ctx context.Context, path string, opts Options) (CompactResult, error) {
	return compact(ctx, path, opts, nil)
}

// compact is Compact, sealing as plan says (nil: nothing).
func compact(ctx context.Context, path string, opts Options, plan *sealPlan) (CompactResult, error) {
	var res CompactResult
	t0 := time.Now()
	// Go's share of the memory bound (issue 15: RSS at most 1 GB, DuckDB's
	// sort included): the copy keeps about 60 MB live, and without a limit
	// the heap grew to twice that between collections. A lower limit the
	// caller set stays.
	if prev := debug.SetMemoryLimit(-1); prev > compactGoMemory {
		debug.SetMemoryLimit(compactGoMemory)
		defer debug.SetMemoryLimit(prev)
	}
	st, err := Open(path, opts)
	if err != nil {
		return res, err
	}
	ends := st.sealedEnds()
	if err := st.Close(); err != nil {
		return res, fmt.Errorf("duckdb: compact: close: %w", err)
	}
	if plan == nil && opts.Seal && path != "" && path != ":memory:" {
		// The blocks go to the store's segments; the rows go to the new
		// file only, so until its rename a crash leaves blocks no row
		// references, which the next Open cuts away.
		segs, err := sealed.OpenSegments(path+sealedSuffix, sealedSegmentBytes)
		if err != nil {
			return res, fmt.Errorf("duckdb: compact: %w", err)
		}
		defer segs.Close()
		if err := segs.Recover(ends); err != nil {
			return res, fmt.Errorf("duckdb: compact: %w", err)
		}
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		plan = &sealPlan{sink: segs, before: sealed.Day(now().Unix()) - 1}
	}
	// A clean Close checkpoints and removes the log; the new file must not
	// inherit a log written for the old one.
	if fi, err := os.Stat(path + ".wal"); err == nil && fi.Size() > 0 {
		return res, fmt.Errorf("duckdb: compact: %s.wal remains after a checkpoint", path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return res, fmt.Errorf("duckdb: compact: %w", err)
	}
	res.BytesBefore = fi.Size() + dirBytes(path+sealedSuffix)
	tmp := path + compactSuffix
	for _, p := range []string{tmp, tmp + ".wal", tmp + ".tmp"} {
		if err := os.RemoveAll(p); err != nil {
			return res, fmt.Errorf("duckdb: compact: %w", err)
		}
	}
	rg := opts.RowGroupSize
	if rg <= 0 {
		rg = defaultRowGroupSize
	}
	bb := opts.BlockBytes
	switch {
	case bb <= 0:
		bb = compactBlockBytes
	case bb > maxBlockBytes:
		bb = maxBlockBytes
	}
	if err := copyCompacted(ctx, path, tmp, rg, bb, plan, &res); err != nil {
		_ = os.Remove(tmp)
		_ = os.Remove(tmp + ".wal")
		_ = os.RemoveAll(tmp + ".tmp")
		return res, err
	}
	_ = os.RemoveAll(tmp + ".tmp")
	if fi, err := os.Stat(path); err == nil {
		res.BytesAfter = fi.Size() + dirBytes(path+sealedSuffix)
	}
	res.Took = time.Since(t0)
	return res, nil
}

// copyCompacted copies the store at path into a new file tmp and renames
// it over path, holding path read-only meanwhile.
func copyCompacted(ctx context.Context, path, tmp string, rowGroup, blockBytes int, plan *sealPlan, res *CompactResult) error {
	src, ok1 := sqlString(path)
	dst, ok2 := sqlString(tmp)
	spill, ok3 := sqlString(tmp + ".tmp")
	if !ok1 || !ok2 || !ok3 {
		return fmt.Errorf("duckdb: compact %q: the path is not valid UTF-8 without NUL", path)
	}
	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	defer connector.Close()
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	defer conn.Close()
	exec := func(q string) error {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("duckdb: compact: %w", err)
		}
		return nil
	}
	// A piece's sort spills beside the store rather than holding it in
	// memory.
	for _, q := range []string{
		"SET temp_directory = " + spill,
		// DuckDB evicts and spills rather than grow past this (issue 15:
		// RSS at most 1 GB for 10M records).
		"SET memory_limit = '" + compactDuckDBMemory + "'",
		"SET preserve_insertion_order = true",
		"ATTACH " + src + " AS src (READ_ONLY)",
		fmt.Sprintf("ATTACH %s AS dst (ROW_GROUP_SIZE %d)", dst, rowGroup),
		"USE dst",
		schema + blocksSchema + sealedSchema + `CREATE TABLE IF NOT EXISTS store_migrations (name VARCHAR NOT NULL);`,
	} {
		if err := exec(q); err != nil {
			return err
		}
	}
	tables, err := tableNames(ctx, conn, "src")
	if err != nil {
		return err
	}
	made, err := tableNames(ctx, conn, "dst")
	if err != nil {
		return err
	}
	if !slices.Contains(tables, "events") {
		return errors.New("duckdb: compact: the store has no events table")
	}
	if err := conn.QueryRowContext(ctx, `SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('src.events')`).Scan(&res.RowGroupsFrom); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	for _, t := range tables {
		switch t {
		case "events_next", "events_derived":
			continue // scratch tables of a migration a crash interrupted
		case "events", "record_blocks":
			continue // below
		}
		id := `"` + t + `"` // names from duckdb_tables; none holds a quote
		order := ""
		if t == "bucket_index_v1" {
			// Filters folded to the size of what they hold.
			order = " ORDER BY account, region, category, day"
			if err := registerFold(conn); err != nil {
				return err
			}
			if plan != nil {
				// The index is of the table: the hours sealed are not
				// copied, every record of theirs leaving it. (Copied and
				// then deleted, they left the new file a third free
				// blocks at 10M.)
				where := fmt.Sprintf(" WHERE day >= %d", plan.before*86400/bucketSeconds)
				if err := exec(`INSERT INTO dst.bucket_index_v1 SELECT account, region, category, day, n, cairn_fold(bloom)
					FROM src.bucket_index_v1` + where + order); err != nil {
					return err
				}
				var n1, n2, s1, s2 int64
				if err := conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM src.bucket_index_v1`+where+`), (SELECT coalesce(sum(n), 0) FROM src.bucket_index_v1`+where+`),
					(SELECT count(*) FROM dst.bucket_index_v1), (SELECT coalesce(sum(n), 0) FROM dst.bucket_index_v1)`).Scan(&n1, &s1, &n2, &s2); err != nil {
					return fmt.Errorf("duckdb: compact: %w", err)
				}
				if n1 != n2 || s1 != s2 {
					return fmt.Errorf("duckdb: compact: bucket_index_v1: copied %d rows (%d) of %d (%d)", n2, s2, n1, s1)
				}
				continue
			}
			if err := exec(`INSERT INTO dst.bucket_index_v1 SELECT account, region, category, day, n, cairn_fold(bloom)
				FROM src.bucket_index_v1` + order); err != nil {
				return err
			}
			if err := sameRows(ctx, conn, t, "SELECT count(*), sum(n)::VARCHAR, '' FROM "); err != nil {
				return err
			}
			continue
		}
		q := "INSERT INTO dst." + id + " BY NAME SELECT * FROM src." + id + order
		if !slices.Contains(made, t) {
			q = "CREATE TABLE dst." + id + " AS SELECT * FROM src." + id + order
		}
		if err := exec(q); err != nil {
			return err
		}
		if err := sameRows(ctx, conn, t, "SELECT count(*), '', '' FROM "); err != nil {
			return err
		}
	}
	sw, err := compactEvents(ctx, db, blockBytes, plan)
	if err != nil {
		return err
	}
	// Every record is there, with its key and sequence number: in dst's
	// events, or in the blocks sealed.
	if err := sameRecords(ctx, conn, sw); err != nil {
		return err
	}
	if err := conn.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM dst.events), (SELECT coalesce(sum(n), 0) FROM dst.sealed_blocks)`).Scan(&res.Records, &res.Sealed); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	res.Records += res.Sealed
	if err := conn.QueryRowContext(ctx, `SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('dst.events')`).Scan(&res.RowGroupsTo); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	for _, q := range []string{"CHECKPOINT dst", "USE memory", "DETACH dst"} {
		if err := exec(q); err != nil {
			return err
		}
	}
	if fi, err := os.Stat(tmp + ".wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("duckdb: compact: %s.wal remains after a checkpoint", tmp)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if err := atomicfile.Sync(tmp); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if compactHook != nil {
		if err := compactHook(); err != nil {
			return err
		}
	}
	// src is still attached (read-only): nobody has opened the old file
	// for writing since the copy began.
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if err := atomicfile.Sync(filepath.Dir(path)); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	return nil
}

// compactHook, when set (by tests), runs just before Compact's rename; an
// error from it stops Compact there, as a crash would.
var compactHook func() error

func tableNames(ctx context.Context, conn *sql.Conn, database string) ([]string, error) {
	lit, _ := sqlString(database)
	rows, err := conn.QueryContext(ctx, `SELECT table_name FROM duckdb_tables() WHERE database_name = `+lit+` AND schema_name = 'main' ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// sameRows compares check (a query of a count and two aggregates, ending
// in FROM) over table in src and dst.
func sameRows(ctx context.Context, conn *sql.Conn, table, check string) error {
	id := `"` + table + `"`
	var n1, n2 int64
	var a1, a2, b1, b2 sql.NullString
	if err := conn.QueryRowContext(ctx, check+"src."+id).Scan(&n1, &a1, &b1); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if err := conn.QueryRowContext(ctx, check+"dst."+id).Scan(&n2, &a2, &b2); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if n1 != n2 || a1 != a2 || b1 != b2 {
		return fmt.Errorf("duckdb: compact: table %s: copied %d rows (%s, %s) of %d (%s, %s)", table, n2, a2.String, b2.String, n1, a1.String, b1.String)
	}
	return nil
}

// compactEvents copies src.events to dst.events in eventsOrder, and
// stores the records again in blocks: the records of one account, region
// and category, consecutive in that order, up to blockBytes of content a
// block (across hours, unlike appends, whose blocks hold one append's
// records of an hour: an import of a year's logs made blocks of 3 KB,
// which DuckDB stored with 40% of slack; docs/store.md, "Compaction"). A
// block's id is the least sequence number of its rows (unique, and never
// one a later append gives); its received time the greatest of its rows',
// so that retention deletes it only after every row that references it.
// A block closes too when its rows' received times would span more than a
// day, so that it does not hold space long after most of its rows expired.
func compactEvents(ctx context.Context, db *sql.DB, blockBytes int, plan *sealPlan) (*sealWriter, error) {
	scan, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	defer scan.Close()
	w, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	defer w.Close()
	var sw *sealWriter
	if plan != nil {
		var first int64
		if err := w.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) + 1 FROM src.sealed_blocks`).Scan(&first); err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
		if sw, err = newSealWriter(w, "dst", plan.sink, first); err != nil {
			return nil, err
		}
	}
	// Unqualified names (the block reads) are src's. One transaction:
	// DuckDB writes its row groups to their blocks once.
	for _, q := range []string{"USE src", "BEGIN TRANSACTION"} {
		if _, err := w.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
	}
	c, err := newCodec(false)
	if err != nil {
		return nil, err
	}
	defer c.close()
	enc, err := newBlockEncoder(compactLevel)
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	// The rows come in about the order of the old blocks, so a few blocks
	// decoded at a time serve them.
	rd := &Store{codec: c, blocks: newBlockCache(compactCacheBytes)}
	pieces, err := compactPieces(ctx, scan, compactPieceRows)
	if err != nil {
		return nil, err
	}
	cw := &compactWriter{conn: w, enc: enc, blockBytes: blockBytes}
	var batch []compactRow
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		frames := make([][]byte, len(batch))
		for i := range batch {
			frames[i] = batch[i].record
		}
		bs, err := rd.blocksOf(frames)
		if err != nil {
			return err
		}
		if bs.fetched, err = fetchBlockRuns(ctx, w, bs.missing); err != nil {
			return err
		}
		contents, err := rd.contents(frames, bs)
		if err != nil {
			return err
		}
		for i := range batch {
			batch[i].content = contents[i]
			if sw != nil && sealed.Day(batch[i].eventTime) < plan.before {
				err = sw.add(ctx, &batch[i])
			} else {
				err = cw.add(ctx, &batch[i])
			}
			if err != nil {
				return err
			}
		}
		batch = make([]compactRow, 0, compactBatch) // the blocks hold pointers into the old one
		return nil
	}
	// One piece at a time: DuckDB sorts a piece's rows only, and the
	// pieces, in eventsOrder themselves, make the whole order.
	for _, p := range pieces {
		rows, err := scan.QueryContext(ctx, `SELECT account, region, category, event_time, event_id, key_hash, event_name,
			event_source, read_only, `+refColumns+`, seq, akid_hash, user_hash, res_hashes, received
			FROM src.events WHERE `+p.where()+` ORDER BY `+eventsOrder)
		if err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
		var n int64
		for rows.Next() {
			var (
				r   compactRow
				ref rowRef
			)
			if err := rows.Scan(&r.account, &r.region, &r.category, &r.eventTime, &r.eventID, &r.keyHash, &r.eventName,
				&r.eventSource, &r.readOnly, &r.record, &ref.id, &ref.off, &ref.n, &r.seq, &r.akid, &r.user, &r.res, &r.received); err != nil {
				rows.Close()
				return nil, fmt.Errorf("duckdb: compact: %w", err)
			}
			// Rows of either form (refColumns); the copy writes every
			// row's reference as integers.
			if r.record, err = ref.frame(r.record); err != nil {
				rows.Close()
				return nil, fmt.Errorf("duckdb: compact: record %d: %w", r.seq, err)
			}
			n++
			batch = append(batch, r)
			if len(batch) == compactBatch {
				if err := flush(); err != nil {
					rows.Close()
					return nil, err
				}
			}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
		if n != p.rows {
			return nil, fmt.Errorf("duckdb: compact: piece %s read %d rows of %d", p.where(), n, p.rows)
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if err := cw.finish(ctx); err != nil {
		return nil, err
	}
	if sw != nil {
		if err := sw.finish(ctx); err != nil {
			return nil, err
		}
	}
	if _, err := w.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	return sw, nil
}

// compactFetchGap is the widest gap between two ids of blocks that
// fetchBlockRuns reads with one range (a variable so that tests make it
// small). At 10M imported records a batch's blocks came in clusters of
// three or four within a few hundred ids, the clusters 30,000-40,000
// apart (the import's batches of 10,000 records of all partitions); 40
// such blocks took 80-100 ms by ranges cut at 4096, 1.2 s by their one
// range (5,026 blocks read) and 1.8 s (22 s cold) by an IN list.
var compactFetchGap int64 = 4096

// fetchBlockRuns reads the compressed blocks of ids, as fetchBlocks does,
// by ranges of ids (one SELECT each, in one query): the sorted ids cut
// where two are more than compactFetchGap apart. DuckDB prunes
// record_blocks by zone maps on a range, while an IN list of the ids was
// a join over the whole table: at 10M records a batch's fetch of about 40
// blocks took 2.5 s (docs/store.md, "Compaction"). The other blocks in a
// range (other partitions' rows' blocks, whose ids interleave) are read
// and dropped.
func fetchBlockRuns(ctx context.Context, q queryer, ids []int64) (map[int64][]byte, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	var sb strings.Builder
	lo := sorted[0]
	for i, id := range sorted {
		if i+1 < len(sorted) && sorted[i+1]-id <= compactFetchGap {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&sb, "SELECT id, data FROM record_blocks WHERE id >= %d AND id <= %d", lo, id)
		if i+1 < len(sorted) {
			lo = sorted[i+1]
		}
	}
	rows, err := q.QueryContext(ctx, sb.String())
	if err != nil {
		return nil, fmt.Errorf("duckdb: compact: read blocks: %w", err)
	}
	defer rows.Close()
	out := make(map[int64][]byte, len(ids))
	var data sql.RawBytes
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id, &data); err != nil {
			return nil, fmt.Errorf("duckdb: compact: read blocks: %w", err)
		}
		if _, ok := slices.BinarySearch(sorted, id); ok {
			out[id] = append([]byte(nil), data...)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: compact: read blocks: %w", err)
	}
	return out, nil
}

// compactCommitRows is the rows of events the compaction's copy writes
// between commits (a multiple of the default row group size), and
// compactWriteBytes the block content it gathers before it compresses and
// writes; variables so that tests make them small.
var (
	compactCommitRows = 16 * defaultRowGroupSize
	compactWriteBytes = 32 << 20
	compactPieceRows  = int64(16 * defaultRowGroupSize)
)

// compactPiece is the rows of events one query of compactEvents reads
// and DuckDB sorts: one account, region and category, event times from lo
// to hi (whole hours of the store's rows).
type compactPiece struct {
	account, region string
	category        uint8
	lo, hi          int64
	rows            int64
}

func (p compactPiece) where() string {
	a, _ := sqlString(p.account)
	r, _ := sqlString(p.region)
	return fmt.Sprintf("account = %s AND region = %s AND category = %d AND event_time BETWEEN %d AND %d",
		a, r, p.category, p.lo, p.hi)
}

// compactPieces cuts src.events into pieces of about maxRows rows (more
// when one hour of a partition holds more), in eventsOrder: the rows of
// one piece all sort before the next piece's. DuckDB sorted the whole
// table in one ORDER BY beyond its memory_limit (issue 15: the 10M
// compaction held 3.3 GB RSS; docs/store.md, "Compaction").
func compactPieces(ctx context.Context, conn *sql.Conn, maxRows int64) ([]compactPiece, error) {
	rows, err := conn.QueryContext(ctx, `SELECT account, region, category, min(event_time), max(event_time), count(*)
		FROM src.events GROUP BY account, region, category, floor(event_time / 3600)
		ORDER BY account, region, category, min(event_time)`)
	if err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	defer rows.Close()
	var out []compactPiece
	for rows.Next() {
		var h compactPiece
		if err := rows.Scan(&h.account, &h.region, &h.category, &h.lo, &h.hi, &h.rows); err != nil {
			return nil, fmt.Errorf("duckdb: compact: %w", err)
		}
		if _, ok := sqlString(h.account); !ok {
			return nil, fmt.Errorf("duckdb: compact: account %q is not valid UTF-8 without NUL", h.account)
		}
		if _, ok := sqlString(h.region); !ok {
			return nil, fmt.Errorf("duckdb: compact: region %q is not valid UTF-8 without NUL", h.region)
		}
		if n := len(out); n > 0 {
			p := &out[n-1]
			if p.account == h.account && p.region == h.region && p.category == h.category && p.rows+h.rows <= maxRows {
				p.hi, p.rows = h.hi, p.rows+h.rows
				continue
			}
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: compact: %w", err)
	}
	return out, nil
}

// The compaction's memory (issue 15: RSS at most 1 GB for 10M records):
// DuckDB's memory_limit (its sort spills beyond it), the Go heap's soft
// limit while Compact runs, and the decoded old blocks kept. With 8 MiB
// write batches and a 384 MB limit the 1M copy, which commits several
// times, left 215 free blocks (56 MB) in the new file; with 32 MiB and
// 512 MB none (docs/benchmarks.md, "Storage and memory, session 11").
// Since the copy reads in pieces (compactPieces) DuckDB's part is mostly
// the file's blocks it read (BASE_TABLE), which the limit evicts: at 10M
// records 256MB held the RSS under 1 GB where 512MB reached 1.2 GB, and
// the 1M copy's file came out the same size (docs/store.md, "Compaction").
const (
	compactDuckDBMemory = "256MB"
	compactGoMemory     = 256 << 20
	compactCacheBytes   = 8 << 20
)

// compactLevel is the zstd level of the blocks Compact makes. Records are
// compressed for speed at ingest (SpeedFastest) and once more, smaller,
// here: on the year-spread import set SpeedBetterCompression made the
// blocks 9% smaller for about 3x the encode CPU, and they decode as fast
// (docs/store.md, "Compaction").
const compactLevel = zstd.SpeedBetterCompression

// compactBlockBytes is the block content Compact gathers unless
// Options.BlockBytes says otherwise: twice an append's. On the year-spread
// import set 128 KiB blocks with compactLevel made the file 10% smaller
// than 64 KiB ones (42.5 -> 38.5 MB; 64 KiB blocks at that level did not
// shrink it, as more of them fell under DuckDB's 4 KB limit for strings
// kept in the segment), and a block decodes in about 0.1 ms instead of
// 0.05 (docs/store.md, "Compaction").
const compactBlockBytes = 128 << 10

// compactBatch is the rows compactEvents decodes at a time.
const compactBatch = 4096

// compactRow is a row of events as Compact copies it.
type compactRow struct {
	account, region        string
	category, readOnly     uint8
	eventTime, seq         int64
	eventID                string
	keyHash                uint64
	eventName, eventSource sql.NullString
	record                 []byte // the row's frame as read; nil once in a new block
	off, n                 int    // the row's place in its new block
	akid, user, res        any
	received               sql.NullInt64
	content                []byte
}

// compactWriter gathers compactEvents' rows into blocks and writes them,
// a few hundred blocks at a time, compressed on every core.
type compactWriter struct {
	conn       *sql.Conn
	enc        *zstd.Encoder
	blockBytes int
	cur        *compactBlock
	done       []*compactBlock
	pending    int // content bytes of done
	// uncommitted counts the rows written since the last commit.
	uncommitted int
}

type compactBlock struct {
	k                partKey
	rows             []*compactRow
	content          []byte
	id               int64
	minRecv, maxRecv int64
	data             []byte
}

func (cw *compactWriter) add(ctx context.Context, r *compactRow) error {
	k := partKey{r.account, r.region, audit.Category(r.category)}
	recv := r.received.Int64
	b := cw.cur
	if b != nil && (b.k != k || len(b.content) >= cw.blockBytes || recv-b.minRecv > 86400 || b.maxRecv-recv > 86400) {
		if err := cw.close(ctx); err != nil {
			return err
		}
		b = nil
	}
	if b == nil {
		b = &compactBlock{k: k, id: r.seq, minRecv: recv, maxRecv: recv, content: make([]byte, 0, cw.blockBytes+4096)}
		cw.cur = b
	}
	b.rows = append(b.rows, r)
	b.id = min(b.id, r.seq)
	b.minRecv, b.maxRecv = min(b.minRecv, recv), max(b.maxRecv, recv)
	off := len(b.content)
	b.content = append(b.content, r.content...)
	r.record, r.off, r.n = nil, off, len(r.content) // the block's id is set when it closes
	r.content = nil
	return nil
}

// close ends the current block; the blocks closed are written once they
// hold enough.
func (cw *compactWriter) close(ctx context.Context) error {
	b := cw.cur
	cw.cur = nil
	if b == nil {
		return nil
	}
	cw.done = append(cw.done, b)
	cw.pending += len(b.content)
	if cw.pending >= compactWriteBytes {
		return cw.write(ctx)
	}
	return nil
}

func (cw *compactWriter) finish(ctx context.Context) error {
	if err := cw.close(ctx); err != nil {
		return err
	}
	return cw.write(ctx)
}

// write compresses the closed blocks and appends them and their rows to
// dst.
func (cw *compactWriter) write(ctx context.Context) error {
	if len(cw.done) == 0 {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), len(cw.done))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(cw.done); j += workers {
				cw.done[j].data = compressBlockWith(cw.enc, cw.done[j].content)
				cw.done[j].content = nil
			}
		})
	}
	wg.Wait()
	err := cw.conn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdb.NewAppender(conn, "dst", "main", "events")
		if err != nil {
			return err
		}
		for _, b := range cw.done {
			for _, r := range b.rows {
				var recv any
				if r.received.Valid {
					recv = r.received.Int64
				}
				if err := app.AppendRow(r.account, r.region, r.category, r.eventTime, r.eventID, r.keyHash,
					nullString(r.eventName), nullString(r.eventSource), r.readOnly, []byte{}, r.seq,
					r.akid, r.user, r.res, recv, b.id, int32(r.off), int32(r.n)); err != nil {
					return errors.Join(err, app.Close())
				}
			}
		}
		if err := app.Close(); err != nil {
			return err
		}
		bapp, err := duckdb.NewAppender(conn, "dst", "main", "record_blocks")
		if err != nil {
			return err
		}
		for _, b := range cw.done {
			if err := bapp.AppendRow(b.id, b.maxRecv, b.data); err != nil {
				return errors.Join(err, bapp.Close())
			}
		}
		return bapp.Close()
	})
	if err != nil {
		return fmt.Errorf("duckdb: compact: write: %w", err)
	}
	for _, b := range cw.done {
		cw.uncommitted += len(b.rows)
	}
	cw.done, cw.pending = cw.done[:0], 0
	// DuckDB keeps a transaction's appended rows in memory until its
	// commit (RSS grew with the store: 585 MB at 200k records, 1.2 GB at
	// 1M in one transaction), so the copy commits every compactCommitRows.
	if cw.uncommitted >= compactCommitRows {
		for _, q := range []string{"COMMIT", "BEGIN TRANSACTION"} {
			if _, err := cw.conn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("duckdb: compact: %w", err)
			}
		}
		cw.uncommitted = 0
	}
	return nil
}

func nullString(v sql.NullString) any {
	if !v.Valid {
		return nil
	}
	return v.String
}

// foldUDF is cairn_fold(bloom): a stored filter folded (bloom.fold). A
// filter that does not decode stays as it is (it matches everything).
type foldUDF struct{}

func (foldUDF) Config() duckdb.ScalarFuncConfig {
	blob, _ := duckdb.NewTypeInfo(duckdb.TYPE_BLOB)
	return duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{blob}, ResultTypeInfo: blob}
}

func (foldUDF) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(values []driver.Value) (any, error) {
		p, _ := values[0].([]byte)
		b := unmarshalBloom(p)
		if len(b.bits) == 0 {
			return p, nil
		}
		b.fold()
		return b.marshal(), nil
	}}
}

func registerFold(conn *sql.Conn) error {
	if err := duckdb.RegisterScalarUDF(conn, "cairn_fold", foldUDF{}); err != nil {
		return fmt.Errorf("duckdb: compact: register cairn_fold: %w", err)
	}
	return nil
}
