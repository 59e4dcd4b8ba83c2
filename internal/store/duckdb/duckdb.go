// Package duckdb is cairn's embedded event store: an audit.Store on DuckDB,
// through the official driver github.com/duckdb/duckdb-go/v2.
//
// One table, events, holds the records: the columns LookupEvents filters
// on, eventTime as Unix seconds, and the original record as a zstd frame
// made with an embedded dictionary. Rows arrive roughly in time order, so
// DuckDB's zone maps on event_time let a query read only the row groups of
// its time range. A bucket index (a record count and a Bloom filter of the
// attribute values of every hour of every account, region and category,
// kept in memory and in the bucket_index_v1 table) tells a lookup which hours
// can hold a match: lookups walk those hours newest first and stop when the
// page is full, so a rare value costs the hours that hold it, not the
// whole table.
// Appends go through DuckDB's Appender, one transaction per batch; DuckDB
// syncs its write-ahead log on commit, so a returned Append is durable.
// See docs/store.md for the design and the measurements.
package duckdb

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Options configures a Store. The zero value works.
type Options struct {
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Threads caps DuckDB's worker threads (default: DuckDB's own, the
	// number of cores).
	Threads int
	// RowGroupSize is the rows per DuckDB row group of a new file
	// (default 16,384; DuckDB's own is 122,880). See docs/store.md.
	RowGroupSize int
	// CheckpointCommits checkpoints the database after this many append
	// transactions (default 100), so a restart after a crash replays a
	// short write-ahead log: replay costs milliseconds per transaction,
	// and DuckDB's own trigger (16MB of log) counts only bytes.
	CheckpointCommits int
	// CheckpointWALBytes checkpoints the database once its write-ahead log
	// is this large (default 16 MiB, DuckDB's own threshold, which the
	// store turns off: see Store).
	CheckpointWALBytes int64
	// Now is the clock that stamps when a record was received (default
	// time.Now); retention counts from it (DeleteReceivedBefore).
	Now func() time.Time
	// ZstdRecords stores new records as zstd frames with the dictionary
	// (6.0x on the real records, about 16 µs of CPU a record) instead of
	// S2 blocks with a dictionary (4.5x, about 2 µs). Frames of both kinds
	// are read whatever it says. See docs/store.md.
	ZstdRecords bool
	// BlockBytes bounds the frame content of a record block: the records
	// of one Append with the same account, region, category and hour are
	// compressed together in blocks of about this size (default 64 KiB,
	// at most 16 MiB; negative: one frame per record, as before). See
	// docs/store.md, "Record blocks".
	BlockBytes int
	// BlockCacheBytes bounds the decoded blocks kept for reads (default
	// 16 MiB).
	BlockCacheBytes int
	// TailBytes is the raw JSON of the newest appended records kept in
	// memory for ReadAppended (default 32 MiB; negative: none), so that
	// the feed's readers that follow the appends read no table.
	TailBytes int64
	// BucketDirBytes bounds the bucket directories kept for lookups
	// (default 64 MiB; negative: none, every bucket the tail does not
	// answer goes to SQL): the rows of recently read buckets, which
	// lookups filter in Go (bucketdir.go, docs/store.md).
	BucketDirBytes int
	// Cold skips the warm start: Open neither reads the blocks nor
	// replays the lookups the last Close saved (PATH.blocks,
	// PATH.lookups), and Close leaves those files as they are; nor does
	// it load the key filter, which the first append then loads. For the
	// offline commands (import, hunt, insights), which scan or write
	// instead of answering lookups: they would pay for the warm-up and
	// leave the next server their own cache instead of its.
	Cold bool
	// Seal makes Compact move the records of every UTC day that ended at
	// least a day before Now into the sealed tier (docs/store.md, "The
	// sealed tier"), and an offline import (BeginImport) append the
	// records of those days to it instead of the table (importseal.go).
	// Other calls ignore it.
	Seal bool
	// MemoryLimit is DuckDB's memory_limit (a size such as 256MB; empty:
	// DuckDB's default, 80% of the machine's memory), set before the file
	// is attached, so that the log's replay and the warm start at Open
	// stay within it too (SetMemoryLimit after Open left cairn serve's
	// start-up peak at 1.4 GB on the 10M store).
	MemoryLimit string
	// StagedAppends appends in stages on two connections (StageEach, as
	// an offline import does): a server's ingest pipeline reserves and
	// appends its next batch while the one before commits (docs/store.md,
	// "Imports through a server, session 18"). Without it StageEach
	// appends as AppendEach, one batch after the other.
	StagedAppends bool
	// Unlogged attaches the file without a write-ahead log (DuckDB's
	// RECOVERY_MODE no_wal_writes): a COMMIT is then durable only at the
	// next checkpoint, and a crash leaves the store as of its last
	// checkpoint. For an offline import only, which acknowledges nothing
	// before it ends and makes itself durable with Checkpoint before its
	// report; never for a server. A log left by an earlier crash is still
	// replayed at Open. See docs/store.md, "Imports", session 26.
	Unlogged bool

	// firstBuckets overrides the const firstBuckets (tests: a lookup
	// that asks the index again after every bucket or two).
	firstBuckets int
}

// defaultRowGroupSize: a lookup reads whole row groups, so smaller groups
// make lookups cheaper; see docs/store.md for the measurements.
const defaultRowGroupSize = 16384

// Store is the DuckDB audit.Store. It is safe for concurrent use: appends
// and deletes are serialised on one connection, lookups run on a pool.
//
// Reads never run during a checkpoint: DuckDB 1.5.6 (duckdb-go
// v2.10506.0) sometimes returns no rows for a query that matches a stored
// row when the query runs while the database checkpoints and appends go on
// (TestLookupsDuringAppendsAndCheckpoints: a few EventId lookups in 4,000
// missed their record; none with appends alone). So DuckDB's own trigger
// (checkpoint_threshold, checked inside any COMMIT) is off, and the store
// checkpoints itself, after an append, holding rw exclusively: appends
// share rw with lookups, so a lookup waits only for a checkpoint, never for
// an append's transaction.
type Store struct {
	db        *sql.DB
	connector *duckdb.Connector
	log       *slog.Logger
	codec     *codec
	index     *bucketIndex

	writeMu sync.Mutex // one writer
	// rw keeps DuckDB reads (Lookup, ReadAppended) apart from writes
	// (Append's transaction, DeleteReceivedBefore, checkpoints): see Store.
	rw      sync.RWMutex
	wconn   *sql.Conn // nil once closed
	lastSeq int64     // the last sequence number given; under writeMu
	// keys holds the key_hash of every stored record (keyfilter.go);
	// built at the first append, under writeMu.
	keys *keyFilter
	// keysMu guards keys for the frames made before writeMu (prefetch).
	keysMu sync.Mutex
	// codecMu is held (shared) by frames made before writeMu, and alone by
	// Close to set codecClosed and close the codec.
	codecMu     sync.RWMutex
	codecClosed bool
	// commits counts append transactions since the last checkpoint;
	// under writeMu.
	commits, checkpointCommits int
	// indexSeq is the sequence number bucket_index_v1 counts up to
	// (written with it); under writeMu. indexLoaded: Open has loaded (or
	// rebuilt) the index, so that Close may write it.
	indexSeq      int64
	indexLoaded   bool
	walPath       string
	checkpointWAL int64
	// unlogged: the file has no write-ahead log (Options.Unlogged);
	// unloggedBytes counts the record blocks appended since the last
	// checkpoint, which stand for the log an import checkpoints at.
	unlogged      bool
	unloggedBytes atomic.Int64
	zstdRecords   bool // new frames in zstd (Options.ZstdRecords)
	blockBytes    int  // Options.BlockBytes; 0: no blocks
	blocks        *blockCache
	tail          tail        // the newest appended records (tail.go)
	dirs          *bucketDirs // nil: none (bucketdir.go)
	now           func() time.Time
	// minReceived is the earliest received time stored (Unix seconds;
	// math.MaxInt64 when empty): a lookup whose ReceivedSince is not after
	// it needs no filter on received.
	minReceived atomic.Int64
	// committed is the last sequence number committed, stored by the
	// COMMIT's writer while it holds rw alone: a lookup (rw shared) reads
	// the number of the last row its DuckDB snapshot holds (a bucket
	// directory's, bucketDir.seq).
	committed    atomic.Int64
	firstBuckets int // Options.firstBuckets or the const
	// queries counts the lookup queries run (queryRange), for tests.
	queries atomic.Int64
	// keysPath is where Close saves the key filter (PATH.keys; "" for an
	// in-memory store); keyFilterBuilds counts its builds from the table,
	// for tests.
	keysPath        string
	keyFilterBuilds atomic.Int64
	// keysSaved: the filter was loaded from PATH.keys and neither an
	// append nor a delete has changed the table since, so the file still
	// describes it and Close leaves it (under writeMu).
	keysSaved bool
	// blocksDecoded counts the record blocks decompressed, for tests.
	blocksDecoded atomic.Int64
	// bulk: an offline import fills the store (BeginImport); under
	// writeMu, read by prefetchEncoded under keysMu as well, so it is
	// set under both. inOrder: the import began on an empty store and
	// each partition's rows came in eventsOrder; last holds each
	// partition's greatest key.
	bulk    bool
	inOrder bool
	// importLevel: an import in order (bulk && inOrder, so not to be
	// compacted) compresses its blocks at importLevel; read before the
	// writer's lock (encodeRecords), set where inOrder is.
	importLevel atomic.Bool
	last        map[partKey]orderKey
	// bulkKeys: the keys an import into an empty store appended (nil
	// otherwise); under writeMu.
	bulkKeys *bulkKeys
	// onCommitted, when set (OnCommitted), is given each append's new
	// records after its COMMIT; under writeMu.
	onCommitted func(first int64, recs []*audit.Record)
	// staged: an import's appends in stages on two connections
	// (staged.go); nil but during an import. Under writeMu.
	staged *stagedWriter
	// warmPath is where Close saves the block cache's ids for the next
	// Open (PATH.blocks, warmblocks.go; "" for an in-memory store), and
	// lookupsPath the recent lookups (PATH.lookups).
	warmPath, lookupsPath string
	// replayed lists the lookups Open's replay ran, in order (for tests).
	replayed []audit.Query
	// saved: the lookups PATH.lookups held at Open (SavedLookups).
	saved  []audit.Query
	recent recentLookups
	// sealed is the sealed tier (sealedtier.go), set at Open;
	// sealedPath the folder of its segments ("" for an in-memory store).
	sealed     *sealedTier
	sealedPath string
	// seal: Options.Seal; impSeal an offline import's sealing
	// (importseal.go; nil but during one), set by BeginImport under
	// writeMu and keysMu.
	seal    bool
	impSeal *importSeal
	// lastSealed is when a serving store's stage last wrote sealed
	// blocks (Unix nanoseconds; LastSealed).
	lastSealed atomic.Int64
}

// eventsColumns is the column list of the events table. The record frames
// are stored uncompressed: they are zstd already, and DuckDB chose FSST
// for some of their segments, which cost a lookup 2x as much to read
// them (see docs/store.md). A row of a record block holds its reference
// in blk_id, blk_off and blk_len and an empty record (refColumns).
const eventsColumns = `(
	account        VARCHAR  NOT NULL,
	region         VARCHAR  NOT NULL,
	category       UTINYINT NOT NULL,
	event_time     BIGINT   NOT NULL,
	event_id       VARCHAR  NOT NULL,
	key_hash       UBIGINT  NOT NULL,
	event_name     VARCHAR,
	event_source   VARCHAR,
	read_only      UTINYINT NOT NULL,
	record         BLOB     NOT NULL USING COMPRESSION uncompressed,
	seq            BIGINT,
	akid_hash      UBIGINT,
	user_hash      UBIGINT,
	res_hashes     UBIGINT[],
	received       BIGINT,
	blk_id         BIGINT,
	blk_off        INTEGER,
	blk_len        INTEGER
)`

const schema = `
CREATE TABLE IF NOT EXISTS events ` + eventsColumns + `;
-- Earlier index tables: days (day_index), and filters of other parameters.
-- The version in the name changes whenever the filters' meaning does.
DROP TABLE IF EXISTS day_index;
DROP TABLE IF EXISTS bucket_index;
CREATE TABLE IF NOT EXISTS store_meta (
	last_seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS bucket_index_v1 (
	account  VARCHAR  NOT NULL,
	region   VARCHAR  NOT NULL,
	category UTINYINT NOT NULL,
	day      BIGINT   NOT NULL,
	n        BIGINT   NOT NULL,
	bloom    BLOB     NOT NULL
);
-- The last sequence number bucket_index_v1 counts: rows after it are added
-- to the index at Open (written every few transactions, not in each).
CREATE TABLE IF NOT EXISTS bucket_index_v1_seq (
	seq BIGINT NOT NULL
);
`

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dsn := ""
	if opts.Threads > 0 {
		dsn += "?threads=" + strconv.Itoa(opts.Threads)
	}
	rg := opts.RowGroupSize
	if rg <= 0 {
		rg = defaultRowGroupSize
	}
	lit, ok := sqlString(path)
	if !ok {
		return nil, fmt.Errorf("duckdb: open %q: the path is not valid UTF-8 without NUL", path)
	}
	// The file is attached to an in-memory database, because the row
	// group size is an ATTACH option; every connection then uses it.
	// Late materialization (DuckDB fetching the selected columns of a
	// top-N's rows again by rowid) made a lookup of a day at 10M records
	// 6x slower (24 vs 3.7 ms): each fetched row decompressed its vectors
	// anew. Lookups' pages are small, so the plain top-N is right.
	attach := fmt.Sprintf("ATTACH IF NOT EXISTS %s AS events_db (ROW_GROUP_SIZE %d)", lit, rg)
	if opts.Unlogged {
		attach = fmt.Sprintf("ATTACH IF NOT EXISTS %s AS events_db (ROW_GROUP_SIZE %d, RECOVERY_MODE no_wal_writes)", lit, rg)
	}
	init := []string{attach, "USE events_db", "SET late_materialization_max_rows = 0"}
	// Settings of the database, not of a connection: made by the first
	// connection only, so that one changed since (an offline import's
	// SetMemoryLimit) holds when the pool opens another.
	var once []string
	if opts.MemoryLimit != "" {
		if !memoryLimitRE.MatchString(opts.MemoryLimit) {
			return nil, fmt.Errorf("duckdb: memory limit %q: want a size such as 512MB", opts.MemoryLimit)
		}
		once = append(once, "SET memory_limit = '"+opts.MemoryLimit+"'")
	}
	if path != "" && path != ":memory:" {
		// What DuckDB spills at its memory limit goes beside the store
		// (PATH.tmp, as Compact's), not into the process's working
		// directory: the database the file is attached to is in memory,
		// whose temp_directory is ".tmp" there. An offline import of 1M
		// records spilled about 300 MB into the directory cairn was
		// started from (docs/store.md, "Imports", session 22).
		spill, ok := sqlString(path + ".tmp")
		if !ok {
			return nil, fmt.Errorf("duckdb: open %q: the path is not valid UTF-8 without NUL", path)
		}
		once = append(once, "SET temp_directory = "+spill)
	}
	init = append(once, init...)
	var first atomic.Bool
	connector, err := duckdb.NewConnector(dsn, func(ex driver.ExecerContext) error {
		qs := init
		if first.Swap(true) {
			qs = init[len(once):]
		}
		for _, q := range qs {
			if _, err := ex.ExecContext(context.Background(), q, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("duckdb: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	s := &Store{db: db, connector: connector, log: log, index: newBucketIndex(), checkpointCommits: opts.CheckpointCommits,
		walPath: path + ".wal", checkpointWAL: opts.CheckpointWALBytes, zstdRecords: opts.ZstdRecords, unlogged: opts.Unlogged, seal: opts.Seal}
	if path != "" && path != ":memory:" {
		s.keysPath = path + ".keys"
		s.sealedPath = path + sealedSuffix
		if !opts.Cold {
			s.warmPath = path + ".blocks"
			s.lookupsPath = path + ".lookups"
		}
	}
	if s.checkpointCommits <= 0 {
		s.checkpointCommits = 100
	}
	switch b := opts.BlockBytes; {
	case b < 0:
		s.blockBytes = 0
	case b == 0:
		s.blockBytes = defaultBlockBytes
	default:
		s.blockBytes = min(b, maxBlockBytes)
	}
	cache := opts.BlockCacheBytes
	if cache <= 0 {
		cache = defaultBlockCacheBytes
	}
	s.blocks = newBlockCache(cache)
	s.firstBuckets = firstBuckets
	if opts.firstBuckets > 0 {
		s.firstBuckets = opts.firstBuckets
	}
	switch {
	case opts.BucketDirBytes == 0:
		s.dirs = newBucketDirs(defaultBucketDirBytes)
	case opts.BucketDirBytes > 0:
		s.dirs = newBucketDirs(opts.BucketDirBytes)
	}
	if s.checkpointWAL <= 0 {
		s.checkpointWAL = 16 << 20
	}
	switch {
	case opts.TailBytes == 0:
		s.tail.max = defaultTailBytes
	case opts.TailBytes > 0:
		s.tail.max = opts.TailBytes
	}
	s.now = opts.Now
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.init(!opts.Cold); err != nil {
		s.Close()
		return nil, err
	}
	if opts.StagedAppends {
		s.writeMu.Lock()
		err := s.beginStaged(context.Background())
		if err != nil {
			s.log.Warn("duckdb: appends on one connection", "err", err)
		} else if err := s.beginServeSeal(context.Background()); err != nil {
			// Sealing is only the store's size: the records go to the
			// table, as before.
			s.log.Warn("duckdb: the server's appends do not seal", "err", err)
		}
		s.writeMu.Unlock()
	}
	return s, nil
}

func (s *Store) init(warm bool) error {
	ctx := context.Background()
	// DuckDB checkpoints inside a COMMIT once its log passes this
	// threshold; the store checkpoints itself instead (see Store).
	if _, err := s.db.ExecContext(ctx, "SET checkpoint_threshold = '1000TB'"); err != nil {
		return fmt.Errorf("duckdb: settings: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, schema+blocksSchema+sealedSchema); err != nil {
		return fmt.Errorf("duckdb: schema: %w", err)
	}
	c, err := newCodec(s.zstdRecords)
	if err != nil {
		return err
	}
	s.codec = c
	if s.wconn, err = s.db.Conn(ctx); err != nil {
		return fmt.Errorf("duckdb: writer connection: %w", err)
	}
	if err := s.loadSeq(ctx); err != nil {
		return err
	}
	if err := s.openSealed(ctx, s.sealedPath); err != nil {
		return err
	}
	if err := s.loadReceived(ctx); err != nil {
		return err
	}
	if err := s.ensureLayout(ctx); err != nil {
		return err
	}
	if err := s.deriveStoredResources(ctx); err != nil {
		return err
	}
	if err := s.loadIndex(ctx); err != nil {
		return err
	}
	s.indexLoaded = true
	// Opening replayed the write-ahead log a crash left, and DuckDB keeps
	// it: without a checkpoint now, each crash would add to what the next
	// restart replays.
	if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		s.log.Warn("duckdb: checkpoint at open", "err", err)
	}
	// The key filter, loaded (or built) before the store answers and
	// before the warm start: the first append of a server is the
	// self-record of its first call, which loaded it beside the first
	// lookups (docs/store.md, "Appends"), and its check's scan of
	// key_hash goes through DuckDB's buffer pool before the warm start
	// fills it with what the lookups read.
	if warm && s.keysPath != "" {
		t0 := time.Now()
		s.writeMu.Lock()
		_, err := s.keyFilter(ctx, 0)
		s.writeMu.Unlock()
		if err != nil {
			s.log.Warn("duckdb: the key filter will be loaded at the first append", "err", err)
		} else {
			s.log.Info("duckdb: key filter ready", "built", s.keyFilterBuilds.Load() > 0, "took", time.Since(t0).Round(time.Millisecond))
		}
	}
	// The blocks the lookups before the last Close read, read again
	// before the store answers: a cold block costs 100x a warm one.
	if n, err := s.warmBlockCache(ctx); err != nil {
		s.log.Warn("duckdb: the block cache starts empty", "err", err)
	} else if n > 0 {
		s.log.Info("duckdb: read the blocks cached before the last close", "blocks", n)
	}
	// Then the lookups served before it, so that DuckDB holds the row
	// groups they read.
	if n, err := s.replayLookups(ctx); err != nil {
		s.log.Warn("duckdb: the recent lookups were not run again", "err", err)
	} else if n > 0 {
		s.log.Info("duckdb: ran the lookups served before the last close again", "lookups", n)
	}
	return nil
}

// loadSeq finds the last sequence number given: the greatest stored, or
// the one DeleteReceivedBefore saved when it removed the newest records. Rows of
// a store from before sequence numbers get them in their stored order.
func (s *Store) loadSeq(ctx context.Context) error {
	if _, err := s.wconn.ExecContext(ctx, `ALTER TABLE events ADD COLUMN IF NOT EXISTS seq BIGINT`); err != nil {
		return fmt.Errorf("duckdb: add seq: %w", err)
	}
	var unnumbered int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE seq IS NULL`).Scan(&unnumbered); err != nil {
		return fmt.Errorf("duckdb: read seq: %w", err)
	}
	if unnumbered > 0 {
		s.log.Warn("duckdb: numbering records in stored order", "records", unnumbered)
		if _, err := s.wconn.ExecContext(ctx, `UPDATE events SET seq = rowid + 1 + (SELECT coalesce(max(seq), 0) FROM events) WHERE seq IS NULL`); err != nil {
			return fmt.Errorf("duckdb: number records: %w", err)
		}
	}
	err := s.wconn.QueryRowContext(ctx, `SELECT greatest((SELECT coalesce(max(seq), 0) FROM events),
		(SELECT coalesce(max(last_seq), 0) FROM store_meta))`).Scan(&s.lastSeq)
	if err != nil {
		return fmt.Errorf("duckdb: read seq: %w", err)
	}
	s.committed.Store(s.lastSeq)
	return nil
}

// loadReceived gives a store from before received times one, once (a
// record stored then is taken to have been received at its eventTime,
// which is when the retention of that version counted from), and finds
// the earliest. The column and its values come in one transaction, so a
// store that has the column has every record's.
func (s *Store) loadReceived(ctx context.Context) error {
	var has bool
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) > 0 FROM duckdb_columns()
		WHERE schema_name = 'main' AND table_name = 'events' AND column_name = 'received'`).Scan(&has); err != nil {
		return fmt.Errorf("duckdb: read columns: %w", err)
	}
	if !has {
		if err := s.addReceived(ctx); err != nil {
			_, _ = s.wconn.ExecContext(context.Background(), `ROLLBACK`)
			return err
		}
	}
	return s.loadMinReceived(ctx)
}

// addReceived adds the received column to a store from before it.
func (s *Store) addReceived(ctx context.Context) error {
	for _, q := range []string{`BEGIN TRANSACTION`, `ALTER TABLE events ADD COLUMN received BIGINT`} {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("duckdb: add received: %w", err)
		}
	}
	res, err := s.wconn.ExecContext(ctx, `UPDATE events SET received = event_time`)
	if err != nil {
		return fmt.Errorf("duckdb: set received: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, `COMMIT`); err != nil {
		return fmt.Errorf("duckdb: add received: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.Warn("duckdb: records from before received times are taken as received at their eventTime", "records", n)
	}
	return nil
}

func (s *Store) loadMinReceived(ctx context.Context) error {
	var m int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT coalesce(min(received), 9223372036854775807) FROM events`).Scan(&m); err != nil {
		return fmt.Errorf("duckdb: read received: %w", err)
	}
	s.minReceived.Store(m)
	return nil
}

// loadIndex reads bucket_index_v1, or rebuilds it from events when it does not
// count the same records (a store written before bucket_index_v1 existed).
func (s *Store) loadIndex(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT account, region, category, day, n, bloom FROM bucket_index_v1`)
	if err != nil {
		return fmt.Errorf("duckdb: read bucket index: %w", err)
	}
	defer rows.Close()
	var indexed int64
	for rows.Next() {
		var (
			k    partKey
			cat  uint8
			d, n int64
			b    []byte
		)
		if err := rows.Scan(&k.account, &k.region, &cat, &d, &n, &b); err != nil {
			return fmt.Errorf("duckdb: read bucket index: %w", err)
		}
		k.category = audit.Category(cat)
		sum := s.index.bucket(k, d)
		sum.n, sum.bloom = n, unmarshalBloom(b)
		indexed += n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: read bucket index: %w", err)
	}
	// The rows appended after the table was last written (a crash lost
	// the summaries in memory) are added to it: the catch-up.
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(seq) FROM bucket_index_v1_seq`).Scan(&seq); err != nil {
		return fmt.Errorf("duckdb: read bucket index: %w", err)
	}
	caught := false
	if seq.Valid && seq.Int64 < s.lastSeq {
		n, err := s.catchUpIndex(ctx, seq.Int64)
		if err != nil {
			return err
		}
		indexed += n
		caught = true
		s.log.Info("duckdb: added the records appended since the bucket index was last written", "records", n)
	}
	var stored int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&stored); err != nil {
		return fmt.Errorf("duckdb: count events: %w", err)
	}
	if stored == indexed {
		if caught || !seq.Valid {
			return s.writeIndex(ctx, false)
		}
		s.indexSeq = seq.Int64
		return nil
	}
	s.log.Warn("duckdb: rebuilding the bucket index", "events", stored, "indexed", indexed)
	s.index = newBucketIndex()
	if err := s.rebuildDays(ctx, s.wconn, "", nil); err != nil {
		return err
	}
	return s.writeIndex(ctx, true)
}

// writeIndex writes the dirty summaries (all of them with all) and the
// sequence number they count up to, in a transaction of its own.
func (s *Store) writeIndex(ctx context.Context, all bool) error {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("duckdb: write bucket index: %w", err)
	}
	if err := s.writeDays(ctx, s.wconn, all, s.lastSeq); err != nil {
		_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("duckdb: write bucket index: %w", err)
	}
	s.indexSeq = s.lastSeq
	return nil
}

// indexColumns are the columns of events the bucket index is built from,
// in the order scanIndexRow reads them: the strings it filters on and the
// hash columns, which hold the very tokens the filters take (token), so
// no string column is kept for the index alone.
const indexColumns = `account, region, category, event_time, event_id, event_name, event_source,
	user_hash, akid_hash, res_hashes`

// indexEntry is what the bucket index takes from a record: its bucket and
// its tokens (recordTokens), the eventID's first.
type indexEntry struct {
	k    partKey
	t    int64 // eventTime, Unix seconds
	toks []uint64
}

// entriesOfEncoded returns the index entries of recs: the tokens encs[i]
// holds for recs[i] (prefetchEncoded), worked out here for the others.
func entriesOfEncoded(recs []*audit.Record, encs []encoded) []indexEntry {
	out := make([]indexEntry, len(recs))
	var toks []uint64
	for i, r := range recs {
		e := indexEntry{k: partKey{r.Account, r.Region, r.Category}, t: r.Time.Unix()}
		if encs[i].vals.ok {
			e.toks = encs[i].vals.toks
		} else {
			start := len(toks)
			toks = recordTokens(toks, r)
			e.toks = toks[start:len(toks):len(toks)]
		}
		out[i] = e
	}
	return out
}

// scanIndexRow reads a row of indexColumns into e, its tokens appended to
// toks (returned): the tokens recordTokens gives the row's record.
func scanIndexRow(rows *sql.Rows, e *indexEntry, toks []uint64) ([]uint64, error) {
	var (
		cat       uint8
		id        string
		n, src    sql.NullString
		u, a, res any // the driver hands UBIGINT as uint64, lists as []any
	)
	if err := rows.Scan(&e.k.account, &e.k.region, &cat, &e.t, &id, &n, &src, &u, &a, &res); err != nil {
		return toks, err
	}
	e.k.category = audit.Category(cat)
	start := len(toks)
	add := func(k audit.AttributeKey, v sql.NullString) {
		if v.Valid && v.String != "" {
			toks = append(toks, token(k, v.String))
		}
	}
	add(audit.AttrEventID, sql.NullString{String: id, Valid: true})
	add(audit.AttrEventName, n)
	add(audit.AttrEventSource, src)
	for _, h := range []any{u, a} {
		if v, ok := h.(uint64); ok {
			toks = append(toks, v)
		}
	}
	if list, ok := res.([]any); ok {
		for _, h := range list {
			if v, ok := h.(uint64); ok {
				toks = append(toks, v)
			}
		}
	}
	e.toks = toks[start:len(toks):len(toks)]
	return toks, nil
}

// catchUpIndex adds to the summaries in memory the rows appended after
// sequence number after, as their appends did, and returns their number.
// Appends write bucket_index_v1 only every few transactions (see
// AppendEach), so a crash leaves the table behind the rows by those.
func (s *Store) catchUpIndex(ctx context.Context, after int64) (int64, error) {
	rows, err := s.wconn.QueryContext(ctx, fmt.Sprintf(`SELECT `+indexColumns+` FROM events WHERE seq > %d ORDER BY seq`, after))
	if err != nil {
		return 0, fmt.Errorf("duckdb: catch up bucket index: %w", err)
	}
	var (
		ents []indexEntry
		toks []uint64
	)
	for rows.Next() {
		var e indexEntry
		if toks, err = scanIndexRow(rows, &e, toks); err != nil {
			rows.Close()
			return 0, fmt.Errorf("duckdb: catch up bucket index: %w", err)
		}
		ents = append(ents, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("duckdb: catch up bucket index: %w", err)
	}
	n := int64(len(ents))
	for len(ents) > 0 {
		part := ents[:min(len(ents), 20000)]
		ents = ents[len(part):]
		if err := s.indexEntries(ctx, part); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// rebuildDays recomputes the summaries of the buckets the rows matching where
// (a condition on events, with args) fall in, from the stored rows.
func (s *Store) rebuildDays(ctx context.Context, conn *sql.Conn, where string, args []any) error {
	// floor, as bucketOf: // truncates negative times toward zero.
	q := `SELECT account, region, category, floor(event_time / ` + strconv.Itoa(bucketSeconds) + `)::BIGINT AS bucket, count(*) FROM events`
	if where != "" {
		q += " WHERE " + where
	}
	counts, err := conn.QueryContext(ctx, q+" GROUP BY ALL", args...)
	if err != nil {
		return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
	}
	fresh := map[partKey]map[int64]*bucketSum{}
	for counts.Next() {
		var (
			k    partKey
			cat  uint8
			d, n int64
		)
		if err := counts.Scan(&k.account, &k.region, &cat, &d, &n); err != nil {
			counts.Close()
			return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
		}
		k.category = audit.Category(cat)
		if fresh[k] == nil {
			fresh[k] = map[int64]*bucketSum{}
		}
		// Distinct tokens: every eventID, and room for the other values.
		fresh[k][d] = &bucketSum{n: n, bloom: newBloom(2 * n), dirty: true}
	}
	counts.Close()
	if err := counts.Err(); err != nil {
		return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
	}
	q = `SELECT ` + indexColumns + ` FROM events`
	if where != "" {
		q += " WHERE " + where
	}
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
	}
	defer rows.Close()
	var toks []uint64
	for rows.Next() {
		var e indexEntry
		if toks, err = scanIndexRow(rows, &e, toks[:0]); err != nil {
			return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
		}
		sum := fresh[e.k][bucketOf(e.t)]
		if sum == nil {
			continue // appended between the two queries: impossible under writeMu
		}
		for _, tok := range e.toks {
			sum.bloom.add(tok)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: rebuild bucket index: %w", err)
	}
	s.index.mu.Lock()
	for k, days := range fresh {
		for d, sum := range days {
			s.index.bucket(k, d)
			s.index.parts[k][d] = sum
		}
	}
	s.index.mu.Unlock()
	return nil
}

// writeDays writes the dirty summaries (all of them with all) to
// bucket_index_v1, and seq, the sequence number they count up to, to
// bucket_index_v1_seq, in the caller's transaction.
func (s *Store) writeDays(ctx context.Context, conn *sql.Conn, all bool, seq int64) error {
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DELETE FROM bucket_index_v1_seq; INSERT INTO bucket_index_v1_seq VALUES (%d)`, seq)); err != nil {
		return fmt.Errorf("duckdb: write bucket index: %w", err)
	}
	if all {
		if _, err := conn.ExecContext(ctx, `DELETE FROM bucket_index_v1`); err != nil {
			return fmt.Errorf("duckdb: write bucket index: %w", err)
		}
	}
	s.index.mu.RLock()
	type row struct {
		k   partKey
		d   int64
		sum *bucketSum
	}
	var dirty []row
	for k, days := range s.index.parts {
		for d, sum := range days {
			if sum.dirty || all {
				dirty = append(dirty, row{k, d, sum})
			}
		}
	}
	s.index.mu.RUnlock()
	if len(dirty) == 0 {
		return nil
	}
	// Two statements whatever the number of buckets (one DELETE and one
	// INSERT a bucket made the index most of an import's SQL time when a
	// batch touched hundreds of hours): the old rows go by a join with the
	// list of keys, the new ones in through the Appender.
	if !all {
		accounts, regions := make([]string, len(dirty)), make([]string, len(dirty))
		// ([]uint8 would bind as a BLOB.)
		cats, days := make([]int64, len(dirty)), make([]int64, len(dirty))
		for i, r := range dirty {
			accounts[i], regions[i], cats[i], days[i] = r.k.account, r.k.region, int64(r.k.category), r.d
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM bucket_index_v1 USING
			(SELECT unnest(?::VARCHAR[]) AS a, unnest(?::VARCHAR[]) AS r, unnest(?::BIGINT[]) AS c, unnest(?::BIGINT[]) AS d) AS k
			WHERE account = k.a AND region = k.r AND category = k.c AND day = k.d`,
			accounts, regions, cats, days); err != nil {
			return fmt.Errorf("duckdb: write bucket index: %w", err)
		}
	}
	err := conn.Raw(func(dc any) error {
		dconn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(dconn, "", "bucket_index_v1")
		if err != nil {
			return err
		}
		for _, r := range dirty {
			s.index.mu.RLock()
			n, b := r.sum.n, r.sum.bloom.marshal()
			s.index.mu.RUnlock()
			if err := app.AppendRow(r.k.account, r.k.region, uint8(r.k.category), r.d, n, b); err != nil {
				return errors.Join(err, app.Close())
			}
		}
		return app.Close()
	})
	if err != nil {
		return fmt.Errorf("duckdb: write bucket index: %w", err)
	}
	s.index.mu.Lock()
	for _, r := range dirty {
		r.sum.dirty = false
	}
	s.index.mu.Unlock()
	return nil
}

// keyHash hashes (account, eventID): a fixed function, so stored hashes
// stay valid across processes.
func keyHash(account, eventID string) uint64 {
	// FNV-1a 64: stable, fast enough, no seed to persist.
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(account); i++ {
		h = (h ^ uint64(account[i])) * prime
	}
	h = (h ^ 0) * prime
	for i := 0; i < len(eventID); i++ {
		h = (h ^ uint64(eventID[i])) * prime
	}
	return h & tokenMask
}

// Close closes the store. It is safe to call more than once.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	// A stage still committing takes rw for its COMMIT: waited for
	// before rw is held here.
	s.waitStaged()
	s.rw.Lock() // closing checkpoints
	defer s.rw.Unlock()
	if s.db == nil {
		return nil
	}
	s.tail.clear()
	var errs []error
	if s.wconn != nil {
		// The import's stages committed (or failed) before anything else.
		if err := s.closeStaged(context.Background()); err != nil {
			s.log.Warn("duckdb: staged appends at close", "err", err)
		}
		if s.bulk && s.indexLoaded {
			// An import's filters were sized per batch: folded to what
			// they hold, as Compact writes them.
			s.foldFilters()
		}
		if s.indexLoaded && (s.indexSeq < s.lastSeq || s.bulk) {
			// Not an error to the caller: the next Open catches up.
			if err := s.writeIndex(context.Background(), false); err != nil {
				s.log.Warn("duckdb: write bucket index at close", "err", err)
			}
		}
		// After the last append (writeMu is held): the next Open's first
		// append loads the filter instead of scanning key_hash. A failure
		// costs only that scan.
		if err := s.saveKeyFilter(context.Background()); err != nil {
			s.log.Warn("duckdb: the next start will build the key filter from the table", "err", err)
		}
		s.closeImportSeal()
		errs = append(errs, s.wconn.Close())
		s.wconn = nil
	}
	// A failure costs the next Open's first lookups their cold reads.
	if err := s.saveBlockCache(); err != nil {
		s.log.Warn("duckdb: the next start's block cache will be empty", "err", err)
	}
	if err := s.saveLookups(); err != nil {
		s.log.Warn("duckdb: the next start will not run the recent lookups again", "err", err)
	}
	errs = append(errs, s.db.Close(), s.connector.Close())
	s.db = nil
	if s.sealed != nil && s.sealed.segs != nil {
		errs = append(errs, s.sealed.segs.Close())
	}
	s.codecMu.Lock()
	s.codecClosed = true
	if s.codec != nil {
		s.codec.close()
	}
	s.codecMu.Unlock()
	return errors.Join(errs...)
}

// Checkpoint writes every committed append into the file (DuckDB's
// CHECKPOINT), after the staged batches: with Options.Unlogged a COMMIT is
// durable only then. An offline import calls it before it reports, and
// before the Insights detector saves a state naming the records it saw.
func (s *Store) Checkpoint(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.waitStaged()
	if s.wconn == nil {
		return errClosed
	}
	s.rw.Lock()
	err := s.checkpoint(ctx)
	s.rw.Unlock()
	if err != nil {
		return fmt.Errorf("duckdb: checkpoint: %w", err)
	}
	return nil
}

var errClosed = errors.New("duckdb: store closed")

// checkpoint runs CHECKPOINT on the writer's connection and, once it is
// done, starts the checkpoint policy's counts again. The caller holds
// writeMu, and rw alone where lookups may run.
func (s *Store) checkpoint(ctx context.Context) error {
	if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return err
	}
	s.commits = 0
	s.unloggedBytes.Store(0)
	return nil
}

// beginTx begins a transaction on conn and returns what its caller defers:
// a ROLLBACK unless *committed was set once its COMMIT succeeded, so that
// no failed step leaves the connection in a transaction.
func (s *Store) beginTx(ctx context.Context, conn *sql.Conn, committed *bool) (func(), error) {
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, fmt.Errorf("duckdb: begin: %w", err)
	}
	return func() {
		if *committed {
			return
		}
		if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
			s.log.Warn("duckdb: rollback", "err", err)
		}
	}, nil
}

// foldFilters folds every bucket filter to the size of what it holds
// (bloom.fold), marking those that shrank to be written.
func (s *Store) foldFilters() {
	s.index.mu.Lock()
	defer s.index.mu.Unlock()
	for _, days := range s.index.parts {
		for _, sum := range days {
			n := len(sum.bloom.bits)
			sum.bloom.fold()
			if len(sum.bloom.bits) != n {
				sum.dirty = true
			}
		}
	}
}

// Append stores the records not stored before, in one transaction.
func (s *Store) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	var res audit.AppendResult
	inserted, err := s.AppendEach(ctx, records)
	if err != nil {
		return res, err
	}
	for _, ok := range inserted {
		if ok {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	return res, nil
}

// AppendEach is Append telling per record whether it was inserted
// (inserted[i] for records[i]; false: a duplicate, stored before or
// earlier in records). The ingest pipeline uses it to share one
// transaction between concurrent callers that each want their counts.
func (s *Store) AppendEach(ctx context.Context, records []audit.Record) (inserted []bool, err error) {
	return s.PrepareEach(records)(ctx)
}

// PrepareEach does the part of AppendEach that needs no lock (the blocks
// of the records that are certainly new, compressed on every core) and
// returns the rest: calling it appends the records as AppendEach would.
// An importer prepares the next batch while this one commits, and still
// commits the batches in their order (what BeginImport's order needs).
// The function must be called once.
func (s *Store) PrepareEach(records []audit.Record) func(ctx context.Context) ([]bool, error) {
	if len(records) == 0 {
		return func(context.Context) ([]bool, error) { return nil, nil }
	}
	// The frames of the records that are certainly new are made before
	// the writer's lock: a caller compresses its batch while another's
	// transaction runs.
	pre := s.prefetchEncoded(records)
	return func(ctx context.Context) ([]bool, error) { return s.appendEncoded(ctx, records, pre) }
}

// BeginImport tells the store that an offline import fills it: no server
// holds it, and its records come in batches in the order of the files.
// Each append then writes its rows in eventsOrder (Compact's order) and
// its blocks across hours (filled to Compact's size, importBlockBytes,
// when the store has the default block size; else to BlockBytes),
// and Close folds the bucket filters to what they hold. InOrder tells
// whether the store is then as Compact would write it. On an empty store
// the duplicate check asks the table only about keys this import wrote
// (bulkKeys). The tail of the feed (tail.go) keeps nothing: no reader
// follows an offline import, and it held 32 MB of records.
func (s *Store) BeginImport() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if !s.bulk {
		s.bulk = true
		// No reader follows an offline import's appends: the tail would
		// only hold its newest 32 MiB of records (and the slabs around
		// them) in memory.
		s.tail.disable()
		// Only a store never appended to: rows written before are in no
		// known order.
		s.inOrder = s.lastSeq == 0
		s.importLevel.Store(s.inOrder)
		s.last = map[partKey]orderKey{}
		if s.lastSeq == 0 {
			s.bulkKeys = &bulkKeys{}
		}
		if err := s.beginStaged(context.Background()); err != nil {
			s.log.Warn("duckdb: the import appends on one connection", "err", err)
		} else if err := s.beginImportSeal(context.Background()); err != nil {
			// Sealing is only the store's size: the records go to the
			// table, as Compact found them before import sealing.
			s.log.Warn("duckdb: the import does not seal", "err", err)
		}
		s.tail.mu.Lock()
		s.tail.max = 0
		s.tail.clearLocked()
		s.tail.mu.Unlock()
	}
}

// OnCommitted sets fn to be given the records of each append from now on,
// once they are committed: the new ones (not the duplicates), in
// sequence order, first the sequence number of recs[0] (those of the
// others follow it, one each). They are what ReadAppended returns for
// those sequence numbers, but for Time, which the store keeps in whole
// seconds. fn runs on the writer's goroutine under its lock, so it must
// be quick and must not call the store; the slice recs may be reused once
// fn returns. The records it points to are the Append caller's: a
// server's (the ingest pipeline's groups, each with records of its own)
// are not changed after, which the live Insights runner's Following
// relies on as it keeps them until it converts them (cmd/cairn, serve);
// an offline import's may be reused. An offline import runs the Insights
// detector through it (cmd/cairn, docs/insights.md: "Imports"), so that
// the first serve after it does not read every imported record back. nil
// stops it.
func (s *Store) OnCommitted(fn func(first int64, recs []*audit.Record)) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.onCommitted = fn
}

// InOrder reports whether every row was appended since BeginImport on an
// empty store, each partition's (account, region, category) rows of an
// append after those of the appends before in eventsOrder: then each
// partition's rows are in Compact's order, each append's rows sorted by
// partition, and the blocks are Compact's but for the last of each append
// and partition (docs/store.md, "Imports").
func (s *Store) InOrder() bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.waitStaged()
	return s.bulk && s.inOrder
}

// orderKey is a row's place in eventsOrder.
type orderKey struct {
	account, region string
	category        audit.Category
	t               int64
	id              string
}

func keyOf(r *audit.Record) orderKey {
	return orderKey{r.Account, r.Region, r.Category, r.Time.Unix(), r.EventID}
}

func compareOrder(a, b orderKey) int {
	return cmp.Or(cmp.Compare(a.account, b.account), cmp.Compare(a.region, b.region),
		cmp.Compare(a.category, b.category), cmp.Compare(a.t, b.t), cmp.Compare(a.id, b.id))
}

// orderOf returns the indexes 0..n-1 of the records rec(i) sorted in
// eventsOrder. The partitions are ranked first (a batch has few), so the
// sort compares strings only for event IDs of the same second: comparing
// the account and region of every pair was 4% of an import's CPU.
func orderOf(n int, rec func(i int) *audit.Record) []int {
	rank := map[partKey]int{}
	var parts []partKey
	ranks := make([]int, n)
	var last partKey
	lastRank := -1
	for i := range n {
		r := rec(i)
		k := partKey{r.Account, r.Region, r.Category}
		if lastRank < 0 || k != last {
			p, ok := rank[k]
			if !ok {
				p = len(parts)
				rank[k] = p
				parts = append(parts, k)
			}
			last, lastRank = k, p
		}
		ranks[i] = lastRank
	}
	// Ranks in the partitions' order.
	byKey := make([]int, len(parts))
	for i := range byKey {
		byKey[i] = i
	}
	slices.SortFunc(byKey, func(a, b int) int {
		return cmp.Or(cmp.Compare(parts[a].account, parts[b].account), cmp.Compare(parts[a].region, parts[b].region),
			cmp.Compare(parts[a].category, parts[b].category))
	})
	place := make([]int, len(parts))
	for p, i := range byKey {
		place[i] = p
	}
	type item struct {
		part int
		t    int64
		i    int
	}
	items := make([]item, n)
	for i := range n {
		items[i] = item{place[ranks[i]], rec(i).Time.Unix(), i}
	}
	slices.SortFunc(items, func(a, b item) int {
		if c := cmp.Or(cmp.Compare(a.part, b.part), cmp.Compare(a.t, b.t)); c != 0 {
			return c
		}
		return cmp.Compare(rec(a.i).EventID, rec(b.i).EventID)
	})
	out := make([]int, n)
	for j, it := range items {
		out[j] = it.i
	}
	return out
}

// appendEncoded is AppendEach with the encodings prefetchEncoded made.
func (s *Store) appendEncoded(ctx context.Context, records []audit.Record, pre []encoded) (inserted []bool, err error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return nil, errClosed
	}
	if s.staged != nil {
		// Only the batches staged before, all committed and their
		// grown filters rebuilt, come before this one.
		if err := s.settleStaged(ctx); err != nil {
			return nil, err
		}
	}
	fresh, hashes, idx, kf, err := s.freshOf(ctx, records, nil, false)
	if err != nil {
		return nil, err
	}
	inserted = make([]bool, len(records))
	if len(fresh) == 0 {
		return inserted, nil
	}
	// Appends share rw with lookups; only the checkpoint below takes it
	// alone (see Store).
	s.rw.RLock()
	locked := true
	defer func() {
		if locked {
			s.rw.RUnlock()
		}
	}()
	committed := false
	rollback, err := s.beginTx(ctx, s.wconn, &committed)
	if err != nil {
		return nil, err
	}
	defer rollback()
	received := s.now().Unix()
	encs := make([]encoded, len(fresh))
	if pre != nil {
		for j, i := range idx {
			encs[j] = pre[i]
		}
	}
	if err := s.appendRows(s.wconn, fresh, hashes, encs, s.lastSeq+1, received); err != nil {
		return nil, fmt.Errorf("duckdb: append: %w", err)
	}
	if err := s.indexEntries(ctx, entriesOfEncoded(fresh, encs)); err != nil {
		return nil, err
	}
	// The summaries go to bucket_index_v1 in the transaction before a
	// checkpoint, not in every one: writing them was 11% of live
	// ingest's CPU (a DELETE and an Appender per transaction). A crash
	// leaves the table behind by the transactions since, whose rows
	// Open adds (catchUpIndex): at most CheckpointCommits of them or
	// CheckpointWALBytes of log.
	writeIndex := s.commits+1 >= s.checkpointCommits || s.walSize() >= s.checkpointWAL
	if s.bulk {
		// An import writes it once, at Close: each write before a
		// checkpoint rewrote the hours touched since, and left their old
		// rows as free blocks in the file (26 MB of 240 at 1M records).
		// After a crash, Open adds the rows since the last write, as it
		// does for the transactions of live ingest.
		writeIndex = false
	}
	if writeIndex {
		if err := s.writeDays(ctx, s.wconn, false, s.lastSeq+int64(len(fresh))); err != nil {
			return nil, err
		}
	}
	// Into the key filter before the commit: whatever the commit's
	// outcome, the filter may hold keys not stored, never miss one stored.
	s.addKeys(kf, hashes)
	// The commit merges the transaction's rows into the table: no read
	// runs meanwhile (see Store).
	s.rw.RUnlock()
	err = s.commitAlone(ctx, s.wconn, len(fresh), s.lastSeq+int64(len(fresh)))
	s.rw.RLock()
	if err != nil {
		return nil, fmt.Errorf("duckdb: commit: %w", err)
	}
	committed = true
	s.tail.add(fresh, s.lastSeq+1, received, 0)
	if s.onCommitted != nil && len(fresh) > 0 {
		s.onCommitted(s.lastSeq+1, fresh)
	}
	if received < s.minReceived.Load() {
		s.minReceived.Store(received) // under writeMu
	}
	s.lastSeq += int64(len(fresh))
	if s.bulk {
		for j, r := range fresh {
			if j+1 < len(fresh) && fresh[j+1].Account == r.Account && fresh[j+1].Region == r.Region && fresh[j+1].Category == r.Category {
				continue
			}
			s.last[partKey{r.Account, r.Region, r.Category}] = keyOf(r)
		}
	}
	if writeIndex {
		s.indexSeq = s.lastSeq
	}
	for _, i := range idx {
		inserted[i] = true
	}
	s.rw.RUnlock()
	locked = false
	if s.commits++; s.checkpointDue() {
		// The append is durable already; a failed checkpoint only leaves
		// the log longer.
		s.rw.Lock()
		err := s.checkpoint(context.WithoutCancel(ctx))
		s.rw.Unlock()
		if err != nil {
			s.log.Warn("duckdb: checkpoint", "err", err)
		}
	}
	return inserted, nil
}

// recordKey is a record's identity: its account and event ID.
type recordKey struct{ a, e string }

// freshOf returns the records of records not stored before (the first
// copy of each key), their key hashes, their indexes in records and the
// key filter, under writeMu; in eventsOrder during an import. before, when
// not nil, is called before the table is read (the key filter built or
// grown, candidates checked): the staged appends of an import wait there
// for the batches still committing. checked records are all new, their
// keys distinct (StageChecked): none is looked for.
func (s *Store) freshOf(ctx context.Context, records []audit.Record, before func() error, checked bool) (fresh []*audit.Record, hashes []uint64, idx []int, kf *keyFilter, err error) {
	fresh = make([]*audit.Record, 0, len(records))
	hashes = make([]uint64, 0, len(records))
	idx = make([]int, 0, len(records)) // idx[j]: the index in records of fresh[j]
	// Duplicates within the batch: the first copy wins (checked records
	// are distinct).
	var seen map[recordKey]bool
	if !checked {
		seen = make(map[recordKey]bool, len(records))
	}
	for i := range records {
		r := &records[i]
		if seen != nil {
			k := recordKey{r.Account, r.EventID}
			if seen[k] {
				continue
			}
			seen[k] = true
		}
		fresh = append(fresh, r)
		hashes = append(hashes, keyHash(r.Account, r.EventID))
		idx = append(idx, i)
	}
	// Duplicates already stored: candidates by hash, confirmed by key;
	// only the hashes the key filter holds can be stored.
	if before != nil && (s.keys == nil || s.keys.keys+int64(len(fresh)) > s.keys.limit) {
		// The filter is loaded or built (again) from the table.
		if err := before(); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	kf, err = s.keyFilter(ctx, len(fresh))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if checked {
		return s.freshOrdered(fresh, hashes, idx, kf)
	}
	var (
		maybe []uint64
		cand  []int // the indexes in fresh of maybe's
	)
	s.keysMu.Lock()
	for i, h := range hashes {
		if kf.has(h) && (s.bulkKeys == nil || s.bulkKeys.has(h)) {
			maybe = append(maybe, h)
			cand = append(cand, i)
		}
	}
	s.keysMu.Unlock()
	if before != nil && len(maybe) > 0 {
		if err := before(); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	stored, err := s.storedKeys(ctx, maybe)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	// The candidates the table does not hold may be sealed.
	if stored, err = s.sealedKeys(ctx, stored, len(cand), func(j int) *audit.Record { return fresh[cand[j]] }); err != nil {
		return nil, nil, nil, nil, err
	}
	if len(stored) > 0 {
		kept, keptH, keptI := fresh[:0], hashes[:0], idx[:0]
		for i, r := range fresh {
			if stored[recordKey{r.Account, r.EventID}] {
				continue
			}
			kept = append(kept, r)
			keptH = append(keptH, hashes[i])
			keptI = append(keptI, idx[i])
		}
		fresh, hashes, idx = kept, keptH, keptI
	}
	return s.freshOrdered(fresh, hashes, idx, kf)
}

// freshOrdered ends freshOf: during an import, the new records in
// compact's order.
func (s *Store) freshOrdered(fresh []*audit.Record, hashes []uint64, idx []int, kf *keyFilter) ([]*audit.Record, []uint64, []int, *keyFilter, error) {
	if s.bulk {
		// Compact's order within the append; across appends, inOrder
		// tells whether it holds.
		ord := orderOf(len(fresh), func(j int) *audit.Record { return fresh[j] })
		f2, h2, i2 := make([]*audit.Record, len(fresh)), make([]uint64, len(fresh)), make([]int, len(fresh))
		for j, o := range ord {
			f2[j], h2[j], i2[j] = fresh[o], hashes[o], idx[o]
		}
		fresh, hashes, idx = f2, h2, i2
		for j, r := range fresh {
			if j > 0 && fresh[j-1].Account == r.Account && fresh[j-1].Region == r.Region && fresh[j-1].Category == r.Category {
				continue
			}
			// The partition's first row here.
			if last, ok := s.last[partKey{r.Account, r.Region, r.Category}]; ok && compareOrder(keyOf(r), last) < 0 {
				s.inOrder = false
				s.importLevel.Store(false)
			}
		}
	}
	return fresh, hashes, idx, kf, nil
}

// checkpointDue tells whether an append should checkpoint now: after
// CheckpointCommits transactions or CheckpointWALBytes of log; during an
// import (BeginImport) after bulkCheckpointWAL of log only.
func (s *Store) checkpointDue() bool {
	if s.bulk {
		return s.walSize()+s.unloggedBytes.Load() >= bulkCheckpointWAL
	}
	return s.commits >= s.checkpointCommits || s.walSize() >= s.checkpointWAL
}

// bulkCheckpointWAL is the log an import lets grow before it checkpoints.
// What a checkpoint has not written yet DuckDB holds in memory, about
// twice the log, up to its memory_limit, then spills to PATH.tmp; so the
// import's memory is bounded by that limit (cmd/cairn sets 256MB), not by
// this. Checkpoints every 64 MiB kept DuckDB under 130 MB without a lower
// limit but left the file 13–42% larger (part-filled blocks at the end of
// each checkpoint's segments): docs/store.md, "Memory (session 12)". Since
// an import's events rows go straight to the file (StageGrouped), its log
// holds the record_blocks rows only, and a checkpoint writes just those:
// every 128 MiB, a 10M import spills nothing and writes 3.4 GB instead of
// 5.5 (the file 1% larger; docs/store.md, "Imports", session 23).
var bulkCheckpointWAL int64 = 128 << 20

// walSize is the size of the write-ahead log (0 when there is none).
func (s *Store) walSize() int64 {
	fi, err := os.Stat(s.walPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// prefetchEncoded returns how the records the key filter does not hold
// (certainly new) are stored, by index in records, the zero encoded for
// the others; nil when there is no filter yet (the first append) or too
// few records to pay. Those the filter holds are mostly duplicates, whose
// compression would be wasted; so are later copies of a key in records.
func (s *Store) prefetchEncoded(records []audit.Record) []encoded {
	if len(records) < 64 {
		return nil
	}
	// Later copies are told by their key's hash: a collision only leaves
	// a record to be encoded under writeMu.
	seen := make(map[uint64]struct{}, len(records))
	s.keysMu.Lock()
	kf := s.keys
	is := s.impSeal
	var todo []int
	if kf != nil {
		for i := range records {
			if is.sealable(&records[i]) {
				// Sealed as its batch is appended (encodeSealed).
				continue
			}
			h := keyHash(records[i].Account, records[i].EventID)
			if _, ok := seen[h]; ok {
				continue
			}
			seen[h] = struct{}{}
			if !kf.has(h) {
				todo = append(todo, i)
			}
		}
	}
	bulk := s.bulk
	s.keysMu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	if bulk {
		// In the order the rows will have, so that each block holds
		// consecutive rows (appendEncoded sorts them the same way).
		ord := orderOf(len(todo), func(j int) *audit.Record { return &records[todo[j]] })
		sorted := make([]int, len(todo))
		for j, o := range ord {
			sorted[j] = todo[o]
		}
		todo = sorted
	}
	s.codecMu.RLock()
	defer s.codecMu.RUnlock()
	if s.codecClosed {
		return nil
	}
	recs := make([]*audit.Record, len(todo))
	for j, i := range todo {
		recs[j] = &records[i]
	}
	out := make([]encoded, len(records))
	for j, e := range s.encodeRecords(recs, bulk) {
		out[todo[j]] = e
	}
	// The hash columns and index tokens too: outside the writer's lock
	// they are worked out while another batch commits (4% of an import's
	// CPU, all of it on the writer's goroutine before).
	toks := make([]uint64, 0, 8*len(todo))
	for _, i := range todo {
		out[i].vals, toks = valuesOf(&records[i], toks)
	}
	return out
}

// frames returns the compressed frames of n records, rec(j) the j-th.
func (s *Store) frames(n int, rec func(j int) *audit.Record) [][]byte {
	contents := make([][]byte, n)
	for j := range n {
		r := rec(j)
		contents[j] = frameContent(make([]byte, 0, len(r.Raw)+128), r)
	}
	return s.codec.compressAll(contents)
}

// appendRows writes the rows through DuckDB's Appender, with their frames
// (encs[i] of recs[i]; encoded here where zero), and the record blocks
// they reference. The rows get sequence numbers from first on; a block
// gets its first row's.
func (s *Store) appendRows(conn *sql.Conn, recs []*audit.Record, hashes []uint64, encs []encoded, first, received int64) error {
	var missing []int
	for i, e := range encs {
		if e.frame == nil && e.blk == nil {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		sub := make([]*audit.Record, len(missing))
		for j, i := range missing {
			sub[j] = recs[i]
		}
		for j, e := range s.encodeRecords(sub, s.bulk) {
			encs[missing[j]] = e
		}
	}
	var blocks []*block
	for i, e := range encs {
		if e.blk != nil && e.blk.id == 0 {
			e.blk.id = first + int64(i)
			blocks = append(blocks, e.blk)
		}
	}
	return conn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(conn, "", "events")
		if err != nil {
			return err
		}
		for i, r := range recs {
			v := encs[i].vals
			if !v.ok {
				v, _ = valuesOf(r, nil)
			}
			akid, user, res := v.akid, v.user, v.res
			record, bid, off, n := refValues(&encs[i])
			if err := app.AppendRow(r.Account, r.Region, uint8(r.Category), r.Time.Unix(), r.EventID, hashes[i],
				nullable(r.EventName), nullable(r.EventSource), uint8(r.ReadOnly),
				record, first+int64(i), akid, user, res, received, bid, off, n); err != nil {
				return errors.Join(err, app.Close())
			}
		}
		if err := app.Close(); err != nil || len(blocks) == 0 {
			return err
		}
		bapp, err := duckdb.NewAppenderFromConn(conn, "", "record_blocks")
		if err != nil {
			return err
		}
		var n int64
		for _, b := range blocks {
			if err := bapp.AppendRow(b.id, received, b.data); err != nil {
				return errors.Join(err, bapp.Close())
			}
			n += int64(len(b.data))
		}
		if s.unlogged {
			// What the log would have held (checkpointDue).
			s.unloggedBytes.Add(n)
		}
		return bapp.Close()
	})
}

// indexEntries adds the records' entries to the bucket index in memory (a
// lookup that sees a bucket's filter before the commit finds nothing
// extra), marking the summaries dirty: the caller writes them to
// bucket_index_v1 (writeDays) when it chooses. A filter that outgrew its
// size is rebuilt from the stored rows, which include the records.
func (s *Store) indexEntries(ctx context.Context, ents []indexEntry) error {
	grow := map[dk]bool{}
	// A new bucket's filter is sized for twice the batch's distinct tokens
	// in it (at least two a record, as rebuildDays sizes them), so that an
	// import in time order rarely has to grow one. Sized by records alone,
	// an hour of a few dozen records, whose first records each bring new
	// names, filled its filter in the batch that made it, and was rebuilt
	// from the table.
	bucketNum := map[dk]int{}
	var records []int64
	type bucketToken struct {
		bucket int
		tok    uint64
	}
	distinct := map[bucketToken]struct{}{}
	// Entries come in runs of one bucket (an append's rows are sorted by
	// partition and time): the maps are asked when the bucket changes,
	// not for every row (hashing the partKeys was 2% of an import's CPU,
	// on the writer's goroutine).
	var lastG dk
	lastI := -1
	for _, e := range ents {
		g := dk{e.k, bucketOf(e.t)}
		i := lastI
		if i < 0 || g != lastG {
			var ok bool
			i, ok = bucketNum[g]
			if !ok {
				i = len(records)
				bucketNum[g] = i
				records = append(records, 0)
			}
			lastG, lastI = g, i
		}
		records[i]++
		// The eventID's token (the first) is distinct per record: counted
		// by records.
		for j, t := range e.toks {
			if j > 0 && t != e.toks[0] {
				distinct[bucketToken{i, t}] = struct{}{}
			}
		}
	}
	tokens := make([]int64, len(records))
	for bt := range distinct {
		tokens[bt.bucket]++
	}
	s.index.mu.Lock()
	for g, i := range bucketNum {
		s.index.sized(g.k, g.d, max(2*records[i], 2*(records[i]+tokens[i])))
	}
	var sum *bucketSum
	var sumG dk
	sumGrown := false
	for _, e := range ents {
		d := bucketOf(e.t)
		if g := (dk{e.k, d}); sum == nil || g != sumG {
			sum, sumG, sumGrown = s.index.bucket(e.k, d), g, false
		}
		sum.n++
		sum.dirty = true
		for _, t := range e.toks {
			sum.bloom.add(t)
		}
		if !sumGrown && sum.bloom.full() {
			// The index's own strings: a staged import keeps the grown
			// buckets until Close (bucketIndex.names).
			grow[dk{s.index.own(e.k), d}] = true
			sumGrown = true
		}
	}
	s.index.mu.Unlock()
	if s.staged != nil {
		// Another batch's rows may be uncommitted: rebuilt once every
		// batch before is committed (settleStaged), until then the
		// filter only answers more false positives.
		for g := range grow {
			s.staged.regrow[g] = true
		}
		return nil
	}
	return s.rebuildGrown(ctx, grow)
}

// dk is a bucket: a partition and its bucket number.
type dk struct {
	k partKey
	d int64
}

// rebuildGrown rebuilds the filters of the buckets in grow from the
// stored rows, up to 64 at a time, each query one pass over the rows of
// their time range.
func (s *Store) rebuildGrown(ctx context.Context, grow map[dk]bool) error {
	var grown []dk
	for g := range grow {
		grown = append(grown, g)
	}
	slices.SortFunc(grown, func(a, b dk) int { return cmp.Compare(a.d, b.d) })
	for len(grown) > 0 {
		part := grown[:min(64, len(grown))]
		grown = grown[len(part):]
		var (
			where strings.Builder
			args  []any
		)
		lo, hi := part[0].d*bucketSeconds, part[len(part)-1].d*bucketSeconds+bucketSeconds-1
		// Time bounds as constants, so that DuckDB prunes row groups.
		fmt.Fprintf(&where, "event_time BETWEEN %d AND %d AND (", lo, hi)
		for i, g := range part {
			if i > 0 {
				where.WriteString(" OR ")
			}
			lo := g.d * bucketSeconds
			fmt.Fprintf(&where, "(account = ? AND region = ? AND category = %d AND event_time BETWEEN %d AND %d)",
				uint8(g.k.category), lo, lo+bucketSeconds-1)
			args = append(args, g.k.account, g.k.region)
		}
		where.WriteString(")")
		if err := s.rebuildDays(ctx, s.wconn, where.String(), args); err != nil {
			return err
		}
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// storedKeys returns the keys already stored among the candidates whose
// hash matches.
func (s *Store) storedKeys(ctx context.Context, hashes []uint64) (map[struct{ a, e string }]bool, error) {
	if len(hashes) == 0 {
		return nil, nil
	}
	// The candidates go in as one list parameter: a literal IN list of
	// thousands of values costs DuckDB more to plan than to run.
	list := make([]uint64, len(hashes))
	copy(list, hashes)
	rows, err := s.wconn.QueryContext(ctx,
		`SELECT account, event_id FROM events WHERE key_hash IN (SELECT unnest(?::UBIGINT[]))`, list)
	if err != nil {
		return nil, fmt.Errorf("duckdb: duplicate check: %w", err)
	}
	defer rows.Close()
	out := map[struct{ a, e string }]bool{}
	for rows.Next() {
		var a, e string
		if err := rows.Scan(&a, &e); err != nil {
			return nil, fmt.Errorf("duckdb: duplicate check: %w", err)
		}
		out[struct{ a, e string }{a, e}] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: duplicate check: %w", err)
	}
	return out, nil
}

const (
	minTime = -62135596800 // year 1
	maxTime = 253402300799 // year 9999
	// maxSpanRows caps the records one probe of consecutive candidate
	// buckets may cover, maxGapRows those of the non-candidate buckets it runs
	// through (a query costs about 0.2 ms plus 35 ns per row of its time
	// range here, so a gap of 8,000 rows costs about one more query).
	maxSpanRows = 2 * defaultRowGroupSize
	maxGapRows  = 8_000
	// maxLimit caps a page (CloudTrail's is 50).
	maxLimit = 1 << 20
)

// Lookup returns a page of records matching q, newest first.
// firstBuckets is how many of the newest hours with records a lookup of
// one account and region first asks the bucket index about (Lookup).
// Most pages fill in the newest hour or two; a rare value's page may
// need weeks of hours, asked in 4x steps.
const firstBuckets = 48

func (s *Store) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	if q.Limit < 1 {
		return audit.Page{}, errors.New("duckdb: lookup limit must be at least 1")
	}
	s.recent.add(q)
	s.rw.RLock()
	defer s.rw.RUnlock()
	q.Limit = min(q.Limit, maxLimit)
	var tokens []uint64
	for _, a := range q.Attributes {
		switch a.Key {
		case audit.AttrReadOnly:
			if a.Value != "true" && a.Value != "false" {
				return audit.Page{}, nil
			}
		case audit.AttrEventID, audit.AttrEventName, audit.AttrEventSource, audit.AttrUsername,
			audit.AttrAccessKeyID, audit.AttrResourceType, audit.AttrResourceName:
			if a.Value == "" {
				return audit.Page{}, nil // empty values are never stored
			}
			tokens = append(tokens, token(a.Key, a.Value))
		default:
			return audit.Page{}, nil // no record has an unknown attribute
		}
	}
	lo, hi := int64(minTime), int64(maxTime)
	if !q.Start.IsZero() {
		lo = max(lo, q.Start.Unix())
	}
	if !q.End.IsZero() {
		hi = min(hi, q.End.Unix())
	}
	if q.After != nil {
		hi = min(hi, q.After.Time.Unix())
	}
	if lo > hi {
		return audit.Page{}, nil
	}
	keys := []partKey{{q.Account, q.Region, q.Category}}
	if q.AnyAccount || q.AnyRegion {
		acct, region := q.Account, q.Region
		if q.AnyAccount {
			acct = ""
		}
		if q.AnyRegion {
			region = ""
		}
		keys = s.index.keys(acct, region, q.Category)
	}
	one := !q.AnyAccount && !q.AnyRegion
	// A lookup of one account and region answers its newest buckets from
	// the tail and the directories, and stops once its page is full: it
	// asks the filters of the newest firstBuckets hours only, and of 4x
	// as many below those it answered each time it needs more. The
	// queries (the rest, when a bucket must go to SQL) get every
	// candidate of what is left.
	maxBuckets := 0
	if one && s.dirs != nil {
		maxBuckets = s.firstBuckets
	}
	spans, dens, all, next := s.index.candidates(keys, bucketOf(lo), bucketOf(hi), tokens, maxSpanRows, maxGapRows, maxBuckets)
	need := q.Limit + 1
	// An eventID names at most one record of an account: no window probe.
	byEventID := !q.AnyAccount && slices.ContainsFunc(q.Attributes, func(a audit.Attribute) bool { return a.Key == audit.AttrEventID })
	var recs []audit.Record
	for one {
		// The newest buckets are often the tail's (the appends since the
		// store was opened): those it holds whole are answered without
		// SQL, and the queries start below them.
		var got []audit.Record
		got, spans, hi = s.fromTail(&q, keys[0], spans, lo, hi, need-len(recs))
		recs = append(recs, got...)
		// The buckets below, from their directories while they are whole.
		if s.dirs != nil && len(recs) < need && !(byEventID && len(recs) > 0) {
			var err error
			if recs, spans, hi, err = s.fromDirs(ctx, &q, keys[0], spans, lo, hi, need, recs); err != nil {
				return audit.Page{}, err
			}
		}
		if all || len(recs) >= need || byEventID && len(recs) > 0 || lo > hi {
			break
		}
		if len(spans) > 0 {
			// Stopped at a bucket the tail and the directories cannot
			// answer: the queries take it and every candidate below.
			spans, dens, all, _ = s.index.candidates(keys, bucketOf(lo), bucketOf(hi), tokens, maxSpanRows, maxGapRows, 0)
			break
		}
		// Every candidate looked at is answered (the others hold no
		// match): the buckets from next down, 4x as many.
		hi = min(hi, next*bucketSeconds+bucketSeconds-1)
		maxBuckets *= 4
		spans, dens, all, next = s.index.candidates(keys, bucketOf(lo), bucketOf(hi), tokens, maxSpanRows, maxGapRows, maxBuckets)
	}
	// Spans go in one query while they hold at most budget records, gaps
	// included. After a query that found matches the budget grows to the
	// rows that should hold the rest of the page at the density seen, and
	// at least 4x, so a value that is in every bucket but sparse needs a
	// few queries, not one per span; after one that found none it stays,
	// so the false
	// positives of a rare value are read one by one, not with the gaps
	// between them.
	budget := int64(maxSpanRows)
	// A value in many buckets but sparse in each (an access key of a
	// large pool) gets a first query sized by the share of buckets that
	// may hold it, instead of a window probe and a default span that find
	// a few matches each (at 10M records: one query instead of three or
	// four, each costing 1-3 ms before it reads a row).
	if len(tokens) > 0 && !byEventID {
		if b, ok := dens.sparseBudget(need); ok {
			budget = max(budget, b)
		}
	}
	var scanned, matched int64
	for i := 0; i < len(spans) && len(recs) < need; {
		if byEventID && len(recs) > 0 {
			break // (account, eventID) is unique
		}
		found := len(recs)
		j, rows := i, spans[i].n
		for j+1 < len(spans) && rows+spans[j+1].gap+spans[j+1].n <= budget {
			j++
			rows += spans[j].gap + spans[j].n
		}
		from, to := max(lo, spans[j].last*bucketSeconds), min(hi, spans[i].first*bucketSeconds+bucketSeconds-1)
		// Start with a window expected to hold four pages if every record
		// matched: a common value fills the page there, and DuckDB
		// materialises the matches of the window only, not of whole
		// buckets. Without a selective value matches are dense everywhere,
		// so the window grows 4x per probe; with one, after the first
		// probe the rest goes in one query. Windows are sized by the
		// records of the buckets they cover (windowLow), so a window
		// jumps over hours without records: sized by time over the whole
		// span, one that began in a few newest hours (a server's own
		// calls) walked the empty hours before them in 4x steps, a query
		// each.
		if rows > 0 && (len(tokens) == 0 || i == 0 && dens.everywhere()) && !byEventID {
			want := int64(4 * need)
			for len(recs) < need {
				low, ok := windowLow(spans[i:j+1], to, want)
				if !ok || low <= from {
					break
				}
				got, err := s.lookupRange(ctx, &q, low, to, need-len(recs))
				if err != nil {
					return audit.Page{}, err
				}
				recs = append(recs, got...)
				to = low - 1
				if len(tokens) > 0 {
					break
				}
				want *= 4
			}
		}
		if len(recs) < need {
			got, err := s.lookupRange(ctx, &q, from, to, need-len(recs))
			if err != nil {
				return audit.Page{}, err
			}
			recs = append(recs, got...)
		}
		if m := len(recs) - found; m > 0 {
			// Enough rows for the rest of the page at the density seen
			// so far, with a margin, and at least 4x.
			scanned += rows
			matched += int64(m)
			budget = max(budget*4, (int64(need-len(recs))*scanned/matched)*3/2)
		}
		i = j + 1
	}
	// The sealed tier's page, merged (a record is in one tier only).
	more := false
	if s.hasSealed() && !(byEventID && len(recs) > 0) {
		sq := q
		if len(recs) > q.Limit {
			// The table filled the page and one more: a sealed record
			// older than that one cannot be in the page (a live store's
			// lookups, whose newest days are in the table, skip the
			// sealed tier by its blocks' times).
			sq.Start = recs[q.Limit].Time
		}
		srecs, smore, err := s.sealed.dir.Lookup(ctx, &sq, s.fetchSealed)
		if err != nil {
			return audit.Page{}, err
		}
		recs, more = mergeTiers(recs, srecs), smore
	}
	var p audit.Page
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
		p.Next = q.CursorOf(&recs[len(recs)-1])
	} else if more && len(recs) > 0 {
		p.Next = q.CursorOf(&recs[len(recs)-1])
	}
	p.Records = recs
	return p, nil
}

// fromTail answers the newest candidate buckets of spans (of k) from the
// tail while it holds every record of them (tail.bucketRecords): their
// records within [lo, hi] (Unix seconds), after q.After, received since
// q.ReceivedSince and holding every attribute of q, newest first, at most
// need. It returns them, the spans without the buckets answered, and hi
// lowered below them, so that the queries that follow start where it
// stopped. A lookup of one account and region only.
func (s *Store) fromTail(q *audit.Query, k partKey, spans []span, lo, hi int64, need int) ([]audit.Record, []span, int64) {
	var recs []audit.Record
	for len(spans) > 0 && len(recs) < need {
		sp := spans[0]
		b := sp.buckets[0] // a candidate: a span starts with one
		got, ok := s.tail.newestOf(k, b.d, b.n, need-len(recs), tailKeep(q, lo, hi))
		if !ok {
			break
		}
		recs = append(recs, got...)
		hi = min(hi, b.d*bucketSeconds-1)
		spans = dropAnswered(spans)
	}
	return recs, spans, hi
}

// tailKeep is q's filter on a record of the tail (and its received time,
// Unix seconds), with lo <= time <= hi (Unix seconds).
func tailKeep(q *audit.Query, lo, hi int64) func(r *audit.Record, received int64) bool {
	return func(r *audit.Record, received int64) bool {
		t := r.Time.Unix()
		if t < lo || t > hi {
			return false
		}
		if c := q.After; c != nil && (t > c.Time.Unix() || t == c.Time.Unix() && r.EventID >= c.EventID) {
			return false
		}
		if !q.ReceivedSince.IsZero() && received < q.ReceivedSince.Unix() {
			return false
		}
		return !slices.ContainsFunc(q.Attributes, func(a audit.Attribute) bool { return !r.HasAttribute(a) })
	}
}

// lookupRange returns up to limit matching records with from <= time <= to,
// newest first. The hashed attributes (EventId, Username, AccessKeyId and
// the resources) are filtered in SQL by their 64-bit hashes only and
// confirmed here on the record's fields: DuckDB decompresses a whole
// vector of a string column for any row that passed the hash, which made
// a sparse access key cost 2x its hash scan at 10M records. A row whose
// hash collided is dropped, and the range is asked again after it.
func (s *Store) lookupRange(ctx context.Context, q *audit.Query, from, to int64, limit int) ([]audit.Record, error) {
	var out []audit.Record
	after := q.After
	for {
		want := limit - len(out)
		got, n, last, err := s.queryRange(ctx, q, after, from, to, want)
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
		if n < want || len(got) == want {
			return out, nil // the range is exhausted, or the page full
		}
		// Rows were dropped and the range may hold more: go on after the
		// last row read.
		after = &last
	}
}

// queryRange runs one query of lookupRange. It returns the confirmed
// records, the number of rows the query returned and the last row's
// position.
func (s *Store) queryRange(ctx context.Context, q *audit.Query, after *audit.Cursor, from, to int64, limit int) (out []audit.Record, n int, last audit.Cursor, err error) {
	// Values are written into the SQL as constants. With parameters,
	// DuckDB plans without them: it does not prune row groups by their
	// zone maps (the whole table is scanned) and binding costs more than a
	// small scan; a one-day lookup took 4.5 ms with parameters and 0.5 ms
	// with constants at 1M records. Integers are formatted; strings are
	// quoted by sqlString, and a string it cannot quote exactly (NUL,
	// invalid UTF-8) goes in as a parameter.
	var sb sqlQuery
	str := sb.str
	// Every account's or region's records: the account and region are
	// read back, and the account orders records with the same time and
	// eventID (two accounts may hold the same eventID). One account's
	// lookup reads back only the record (see docs/store.md).
	wide := q.AnyAccount || q.AnyRegion
	if wide {
		sb.WriteString(`SELECT account, region, ` + recordColumns)
	} else {
		sb.WriteString(`SELECT ` + recordColumns)
	}
	sb.WriteString(` FROM events WHERE `)
	if !q.AnyAccount {
		sb.WriteString(`account = `)
		str(q.Account)
		sb.WriteString(` AND `)
	}
	if !q.AnyRegion {
		sb.WriteString(`region = `)
		str(q.Region)
		sb.WriteString(` AND `)
	}
	fmt.Fprintf(&sb, `category = %d AND event_time BETWEEN %d AND %d`, uint8(q.Category), from, to)
	if after != nil {
		t := after.Time.Unix()
		fmt.Fprintf(&sb, ` AND (event_time < %d OR (event_time = %d AND (event_id < `, t, t)
		str(after.EventID)
		if q.AnyAccount {
			sb.WriteString(` OR (event_id = `)
			str(after.EventID)
			sb.WriteString(` AND account < `)
			str(after.Account)
			sb.WriteString(`)`)
		}
		sb.WriteString(`)))`)
	}
	if since := q.ReceivedSince.Unix(); !q.ReceivedSince.IsZero() && since > s.minReceived.Load() {
		fmt.Fprintf(&sb, ` AND received >= %d`, since)
	}
	for _, a := range q.Attributes {
		switch a.Key {
		case audit.AttrEventID:
			if q.AnyAccount {
				// key_hash hashes the account too.
				sb.WriteString(` AND event_id = `)
				str(a.Value)
				continue
			}
			// An integer compare is a pushed-down scan filter and costs a
			// tenth of comparing the unique strings of event_id (0.24 vs
			// 3.4 ms a row group of 122,880).
			fmt.Fprintf(&sb, ` AND key_hash = %d`, keyHash(q.Account, a.Value))
		case audit.AttrEventName:
			sb.WriteString(` AND event_name = `)
			str(a.Value)
		case audit.AttrEventSource:
			sb.WriteString(` AND event_source = `)
			str(a.Value)
		case audit.AttrUsername:
			fmt.Fprintf(&sb, ` AND user_hash = %d`, token(a.Key, a.Value))
		case audit.AttrAccessKeyID:
			fmt.Fprintf(&sb, ` AND akid_hash = %d`, token(a.Key, a.Value))
		case audit.AttrReadOnly:
			v := audit.False
			if a.Value == "true" {
				v = audit.True
			}
			fmt.Fprintf(&sb, ` AND read_only = %d`, uint8(v))
		case audit.AttrResourceType, audit.AttrResourceName:
			// list_contains over integers costs about what the time
			// range scan does; over the strings it doubled it.
			fmt.Fprintf(&sb, ` AND list_contains(res_hashes, %d::UBIGINT)`, token(a.Key, a.Value))
		}
	}
	order := ``
	if q.AnyAccount {
		order = `, account DESC`
	}
	fmt.Fprintf(&sb, ` ORDER BY event_time DESC, event_id DESC%s LIMIT %d`, order, limit)
	s.queries.Add(1)
	rows, err := s.db.QueryContext(ctx, sb.String(), sb.args...)
	if err != nil {
		return nil, 0, last, fmt.Errorf("duckdb: lookup: %w", err)
	}
	defer rows.Close()
	type pageRow struct {
		row          recordRow
		acct, region string
	}
	var read []pageRow
	for rows.Next() {
		var p pageRow
		dst := p.row.targets()
		if wide {
			dst = append([]any{&p.acct, &p.region}, dst...)
		} else {
			p.acct, p.region = q.Account, q.Region
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, 0, last, fmt.Errorf("duckdb: lookup scan: %w", err)
		}
		if err := p.row.scanned(); err != nil {
			return nil, 0, last, err
		}
		read = append(read, p)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, last, fmt.Errorf("duckdb: lookup: %w", err)
	}
	rows.Close()
	// The page's rows share blocks (those of an hour): each block is read
	// and decoded once, or taken from the cache.
	frames := make([][]byte, len(read))
	for i := range read {
		frames[i] = read[i].row.frame
	}
	bs, err := s.blocksOf(frames)
	if err != nil {
		return nil, 0, last, err
	}
	if err := bs.fetchForLookup(ctx, s.db); err != nil {
		return nil, 0, last, err
	}
	contents, err := s.contents(frames, bs)
	if err != nil {
		return nil, 0, last, err
	}
	for i := range read {
		n++
		r, err := read[i].row.record(contents[i])
		if err != nil {
			return nil, 0, last, err
		}
		r.Account, r.Region, r.Category = read[i].acct, read[i].region, q.Category
		last = *q.CursorOf(&r)
		if !confirmed(&r, q.Attributes) {
			continue // a hash collision
		}
		out = append(out, r)
	}
	return out, n, last, nil
}

// confirmed reports whether r holds the values of the attributes that
// queryRange filters by hash only.
func confirmed(r *audit.Record, attrs []audit.Attribute) bool {
	for _, a := range attrs {
		ok := true
		switch a.Key {
		case audit.AttrEventID:
			ok = r.EventID == a.Value
		case audit.AttrUsername:
			ok = r.Username == a.Value
		case audit.AttrAccessKeyID:
			ok = r.AccessKeyID == a.Value
		case audit.AttrResourceType:
			ok = slices.ContainsFunc(r.Resources, func(x audit.Resource) bool { return x.Type == a.Value })
		case audit.AttrResourceName:
			ok = slices.ContainsFunc(r.Resources, func(x audit.Resource) bool { return x.Name == a.Value || x.ARN == a.Value })
		}
		if !ok {
			return false
		}
	}
	return true
}

// sqlString returns v as a DuckDB string constant. DuckDB strings take
// no backslash escapes; a quote is doubled. It refuses values a constant
// cannot carry exactly: NUL ends DuckDB's C strings, and invalid UTF-8 is
// rejected by its parser.
func sqlString(v string) (string, bool) {
	if strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v) {
		return "", false
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'", true
}

// sqlQuery is a query written with its values as constants (queryRange
// says why): a string goes in quoted by sqlString, or as a parameter when
// sqlString cannot quote it exactly.
type sqlQuery struct {
	strings.Builder
	args []any
}

// str writes v as a string constant, or as a parameter.
func (q *sqlQuery) str(v string) {
	if lit, ok := sqlString(v); ok {
		q.WriteString(lit)
		return
	}
	q.WriteByte('?')
	q.args = append(q.args, v)
}

// recordColumns are the columns a recordRow scans.
const recordColumns = `event_time, event_id, ` + refColumns

// recordRow holds the recordColumns of one row.
type recordRow struct {
	t     int64
	id    string
	frame []byte
	ref   rowRef
}

func (w *recordRow) targets() []any {
	return append([]any{&w.t, &w.id, &w.frame}, w.ref.targets()...)
}

// scanned makes frame the row's frame once its columns are scanned: the
// reference its integer columns hold when record is empty (rowRef.frame).
func (w *recordRow) scanned() error {
	f, err := w.ref.frame(w.frame)
	if err != nil {
		return fmt.Errorf("duckdb: record %q: %w", w.id, err)
	}
	w.frame = f
	return nil
}

// record returns the row's record, without Account, Region and Category,
// from its frame's content (Store.contents).
func (w *recordRow) record(content []byte) (audit.Record, error) {
	r := audit.Record{EventID: w.id, Time: time.Unix(w.t, 0).UTC()}
	if err := splitFields(content, &r); err != nil {
		return audit.Record{}, fmt.Errorf("duckdb: record %q: %w", w.id, err)
	}
	return r, nil
}

// LastSeq returns the last sequence number given.
func (s *Store) LastSeq(context.Context) (int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return 0, errClosed
	}
	s.waitStaged()
	if w := s.staged; w != nil {
		// A failed stage's numbers were never stored (settleStaged
		// takes them back at the next append).
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.err != nil {
			return min(s.lastSeq, w.rewind), nil
		}
	}
	return s.lastSeq, nil
}

// ReadAppended returns up to limit records appended after seq after, in
// append order. Sequence numbers grow with the rows, so DuckDB's zone maps
// on seq skip the row groups before after. The rows are read under rw and
// decoded after it: decoding is most of the call's CPU, and its callers
// (Lake, Insights, trails) may run at a low priority, which must not hold
// a commit, and the lookups queued behind it, on a descheduled thread.
//
// The tail, when it holds the record after after, answers alone: it holds
// the records of both tiers a serving store appended (a stage's sealed
// ones too). Otherwise the table and the sealed tier are read one after
// the other, and a stage may commit between the two reads, its sealed
// records seen but not its rows: so both are cut at the last sequence
// number committed before the first read, which both hold in full.
func (s *Store) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	if limit <= 0 {
		return nil, nil
	}
	if recs, ok := s.tail.read(after, limit); ok {
		return recs, nil
	}
	upTo := s.committed.Load()
	hot, err := s.readAppendedHot(ctx, after, limit)
	if err != nil || !s.sealedAfter(after) {
		return hot, err
	}
	es, err := s.readSealed(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	cold := make([]audit.Appended, 0, len(es))
	for i := range es {
		if es[i].Seq <= upTo {
			cold = append(cold, audit.Appended{Seq: es[i].Seq, Record: es[i].Record})
		}
	}
	return mergeSeq(seqUpTo(hot, upTo, func(a *audit.Appended) int64 { return a.Seq }), cold,
		func(a *audit.Appended) int64 { return a.Seq }, limit), nil
}

// readAppendedHot is ReadAppended over the table (the hot tier).
func (s *Store) readAppendedHot(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	if limit <= 0 {
		return nil, nil
	}
	var bs *blockSet
	read := func() ([]appendedRow, error) {
		s.rw.RLock()
		defer s.rw.RUnlock()
		out := make([]appendedRow, 0, limit)
		if err := readSeqPage(after, limit, `seq, account, region, category, `+recordColumns, func(query string) (int, error) {
			err := s.scanAppended(ctx, &out, query)
			return len(out), err
		}); err != nil {
			return nil, err
		}
		// The blocks are read here too, decoded after rw.
		frames := make([][]byte, len(out))
		for i := range out {
			frames[i] = out[i].row.frame
		}
		var err2 error
		if bs, err2 = s.blocksOf(frames); err2 != nil {
			return nil, err2
		}
		// By the range of their ids, not bs.fetch's IN list (rawfeed.go).
		if bs.fetched, err2 = fetchBlockRange(ctx, s.db, bs.missing); err2 != nil {
			return nil, err2
		}
		return out, nil
	}
	raw, err := read()
	if err != nil {
		return nil, err
	}
	// Close may run once rw is released: the codec is held as the
	// frames made before writeMu hold it.
	s.codecMu.RLock()
	defer s.codecMu.RUnlock()
	if s.codecClosed {
		return nil, errClosed
	}
	frames := make([][]byte, len(raw))
	for i := range raw {
		frames[i] = raw[i].row.frame
	}
	contents, err := s.contents(frames, bs)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Appended, len(raw))
	for i := range raw {
		a := &raw[i]
		if out[i].Record, err = a.row.record(contents[i]); err != nil {
			return nil, err
		}
		out[i].Seq = a.seq
		out[i].Record.Account, out[i].Record.Region, out[i].Record.Category = a.acct, a.region, audit.Category(a.cat)
	}
	return out, nil
}

// readSeqPage hands scan the queries (of the columns cols) of the rows
// after sequence number after, up to limit, in seq order; scan appends a
// query's rows and returns how many it holds in all. Sequence numbers are
// dense but for the rows retention deleted and the numbers of rolled-back
// appends: the next limit rows are almost always seqs after+1..after+limit.
// Asked by that range, DuckDB reads only the row groups holding it; "seq >
// after ORDER BY seq LIMIT n" alone keeps a top-n over every row group
// after it, and a sequential reader (cairn hunt, Lake, trails) paid that
// on every page. The rows a gap leaves missing are asked for after the
// range, in the general form: same rows, same order. The values are
// constants, so that DuckDB prunes row groups by their zone maps.
func readSeqPage(after int64, limit int, cols string, scan func(query string) (int, error)) error {
	lo, have := after, 0
	if after <= math.MaxInt64-int64(limit) {
		hi := after + int64(limit)
		var err error
		if have, err = scan(fmt.Sprintf(`SELECT %s FROM events WHERE seq > %d AND seq <= %d ORDER BY seq`, cols, after, hi)); err != nil {
			return err
		}
		lo = hi
	}
	if have < limit {
		_, err := scan(fmt.Sprintf(`SELECT %s FROM events WHERE seq > %d ORDER BY seq LIMIT %d`, cols, lo, limit-have))
		return err
	}
	return nil
}

// appendedRow is one row ReadAppended reads.
type appendedRow struct {
	seq          int64
	acct, region string
	cat          uint8
	row          recordRow
}

// scanAppended appends the rows of query (seq, account, region, category
// and recordColumns) to out.
func (s *Store) scanAppended(ctx context.Context, out *[]appendedRow, query string) error {
	rows, err := s.db.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("duckdb: read appended: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a appendedRow
		if err := rows.Scan(append([]any{&a.seq, &a.acct, &a.region, &a.cat}, a.row.targets()...)...); err != nil {
			return fmt.Errorf("duckdb: read appended: %w", err)
		}
		if err := a.row.scanned(); err != nil {
			return err
		}
		*out = append(*out, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: read appended: %w", err)
	}
	return nil
}

// DeleteReceivedBefore removes the records received before t, whatever
// their eventTime, in one transaction, then checkpoints to give the space
// back. The buckets they leave empty go from the index; the others are
// recounted (their filters keep the deleted values: false positives only).
func (s *Store) DeleteReceivedBefore(ctx context.Context, t time.Time) (int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return 0, errClosed
	}
	if err := s.settleStaged(ctx); err != nil {
		return 0, err
	}
	cut := t.Unix()
	if cut <= s.minReceived.Load() && !s.sealedBefore(cut) {
		return 0, nil // nothing was received before t
	}
	s.keysSaved = false // Close saves the filter for the table left
	s.rw.Lock()         // its checkpoint too (see Store)
	defer s.rw.Unlock()
	committed := false
	rollback, err := s.beginTx(ctx, s.wconn, &committed)
	if err != nil {
		return 0, err
	}
	defer rollback()
	// The newest records may go: keep their number so it is never given again.
	if _, err := s.wconn.ExecContext(ctx, `DELETE FROM store_meta`); err != nil {
		return 0, fmt.Errorf("duckdb: save seq: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, `INSERT INTO store_meta VALUES (?)`, s.lastSeq); err != nil {
		return 0, fmt.Errorf("duckdb: save seq: %w", err)
	}
	// What goes, per bucket. Constants, so that DuckDB prunes row groups
	// by their zone maps (records arrive in received order).
	type bk struct {
		k partKey
		d int64
	}
	gone := map[bk]int64{}
	rows, err := s.wconn.QueryContext(ctx, fmt.Sprintf(`SELECT account, region, category,
		floor(event_time / %d)::BIGINT, count(*) FROM events WHERE received < %d GROUP BY ALL`, bucketSeconds, cut))
	if err != nil {
		return 0, fmt.Errorf("duckdb: count expired: %w", err)
	}
	for rows.Next() {
		var (
			b   bk
			cat uint8
			c   int64
		)
		if err := rows.Scan(&b.k.account, &b.k.region, &cat, &b.d, &c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("duckdb: count expired: %w", err)
		}
		b.k.category = audit.Category(cat)
		gone[b] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("duckdb: count expired: %w", err)
	}
	res, err := s.wconn.ExecContext(ctx, fmt.Sprintf(`DELETE FROM events WHERE received < %d`, cut))
	if err != nil {
		return 0, fmt.Errorf("duckdb: delete: %w", err)
	}
	// A block's rows share its received time: they go together.
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf(`DELETE FROM record_blocks WHERE received < %d`, cut)); err != nil {
		return 0, fmt.Errorf("duckdb: delete blocks: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("duckdb: delete: %w", err)
	}
	sn, sealedDone, err := s.deleteSealed(ctx, cut)
	if err != nil {
		return 0, err
	}
	if n == 0 && sn == 0 {
		return 0, nil
	}
	var emptied []bk
	// Before the counts change, whether or not the commit succeeds: a
	// lookup answers a bucket from the tail when the tail holds as many of
	// its records as the index counts (Store.fromTail), and a directory
	// when it holds as many (Store.dir).
	s.tail.clear()
	s.dirs.clear()
	s.index.mu.Lock()
	for b, c := range gone {
		sum := s.index.parts[b.k][b.d]
		if sum == nil {
			continue
		}
		if sum.n -= c; sum.n <= 0 {
			s.index.drop(b.k, b.d)
			emptied = append(emptied, b)
		} else {
			sum.dirty = true
		}
	}
	s.index.mu.Unlock()
	if len(emptied) > 1000 {
		// Rewriting the table is cheaper than a statement per bucket.
		if err := s.writeDays(ctx, s.wconn, true, s.lastSeq); err != nil {
			return 0, err
		}
	} else {
		for _, b := range emptied {
			if _, err := s.wconn.ExecContext(ctx, `DELETE FROM bucket_index_v1 WHERE account = ? AND region = ? AND category = ? AND day = ?`,
				b.k.account, b.k.region, uint8(b.k.category), b.d); err != nil {
				return 0, fmt.Errorf("duckdb: write bucket index: %w", err)
			}
		}
		if err := s.writeDays(ctx, s.wconn, false, s.lastSeq); err != nil {
			return 0, err
		}
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return 0, fmt.Errorf("duckdb: commit: %w", err)
	}
	committed = true
	sealedDone()
	s.indexSeq = s.lastSeq
	s.tail.clear()
	if err := s.loadMinReceived(ctx); err != nil {
		s.log.Warn("duckdb: after delete", "err", err)
	}
	if err := s.checkpoint(ctx); err != nil {
		s.log.Warn("duckdb: checkpoint after delete", "err", err)
	}
	return n + sn, nil
}

var _ audit.Store = (*Store)(nil)

// commitAlone commits conn's transaction holding rw alone (no lookup runs
// during a COMMIT, see Store); once it is done, last is the newest sequence
// number committed (Store.committed). What each commit held the lookups
// for (its wait for rw and its duration) is logged at level debug.
func (s *Store) commitAlone(ctx context.Context, conn *sql.Conn, records int, last int64) error {
	return s.commitAloneThen(ctx, conn, records, last, nil)
}

// commitAloneThen is commitAlone that runs then (nil: nothing) after a
// successful COMMIT, before rw is released: what a lookup must see
// together with the commit's rows (a stage's sealed blocks).
func (s *Store) commitAloneThen(ctx context.Context, conn *sql.Conn, records int, last int64, then func()) error {
	t0 := time.Now()
	s.rw.Lock()
	t1 := time.Now()
	_, err := conn.ExecContext(ctx, "COMMIT")
	if err == nil {
		if then != nil {
			then()
		}
		s.committed.Store(last)
	}
	s.rw.Unlock()
	s.log.Debug("duckdb: commit", "records", records, "waited", t1.Sub(t0), "took", time.Since(t1))
	return err
}
