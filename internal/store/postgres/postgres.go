// Package postgres is an audit.Store kept in PostgreSQL (15 or later),
// through pgx: Event History shared by every cairn node that names the same
// database. Its schema and choices are in docs/scale.md; it passes the
// conformance suite in internal/store/storetest.
package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/dict"
)

// Options configure a Store. The zero value works.
type Options struct {
	// Now stamps the records an Append receives (retention counts from
	// it); default time.Now.
	Now func() time.Time
	// Logger receives the store's notices; default slog.Default().
	Logger *slog.Logger
	// MaxConns caps the connections to PostgreSQL (default 8).
	MaxConns int32
}

// Store is an audit.Store in PostgreSQL. It is safe for concurrent use, by
// several processes on the same database too.
type Store struct {
	pool *pgxpool.Pool
	now  func() time.Time
	log  *slog.Logger

	mu    sync.Mutex
	parts map[int64]bool // days whose partition exists

	// legacy is the last sequence number of the rows written before
	// schema version 8 (numbered by their seq column, not by a batch).
	legacy int64

	// s2d compresses and restores records (raw_codec 2); zdec restores
	// those of raw_codec 1. Both are safe for concurrent use.
	s2d  *s2.Dict
	zdec *zstd.Decoder
}

// Codecs of events.raw (migration 4).
const (
	codecPlain int16 = 0 // the record as it came (rows before version 4)
	codecZstd  int16 = 1 // a zstd frame of the record (rows before S2)
	codecS2    int16 = 2 // an S2 block of the record made with s2DictV1
)

// s2DictV1Content is the content of the S2 dictionary of codecS2: the
// shared dictionary's (package dict, the last 64 KiB of the zstd
// dictionary: the most frequent shapes of real records), the same as the
// embedded store's S2 frames.
var s2DictV1Content = dict.S2V1()

var _ audit.Store = (*Store)(nil)

// day is one partition's width in microseconds of received time.
const day = int64(24 * time.Hour / time.Microsecond)

// Open connects to the database dsn names, applies pending migrations
// (Migrate) and returns the store. Tables live in the first schema of the
// connection's search_path.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse the connection string: %w", err)
	}
	cfg.MaxConns = 8
	// A lookup's plan depends on its values (a common resource name is
	// read through the time index, a rare one through GIN); PostgreSQL's
	// generic plan for a prepared statement, chosen after five runs,
	// cannot tell them apart: a common ResourceName took 2.7 s with it,
	// 25 ms planned for its value (docs/scale.md).
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, now: opts.Now, log: opts.Logger, parts: map[int64]bool{}}
	if s.s2d = s2.NewDict(append([]byte{0}, s2DictV1Content...)); s.s2d == nil {
		pool.Close()
		return nil, errors.New("postgres: the S2 dictionary is refused")
	}
	if s.zdec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(2*audit.MaxRecordSize)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: zstd: %w", err)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	err = pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		applied, err := migrate(ctx, c.Conn())
		if len(applied) > 0 {
			s.log.Info("postgres: schema migrated", "versions", applied)
		}
		if err != nil {
			return err
		}
		if err := c.QueryRow(ctx, `SELECT legacy_seq FROM store_meta WHERE id = 1`).Scan(&s.legacy); err != nil {
			return fmt.Errorf("postgres: read legacy_seq: %w", err)
		}
		return nil
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error {
	s.pool.Close()
	s.zdec.Close()
	return nil
}

func partName(d int64) string {
	return "events_p" + time.UnixMicro(d*day).UTC().Format("20060102")
}

// postPartName is the partition of event_postings for received day d.
func postPartName(d int64) string {
	return "event_postings_p" + time.UnixMicro(d*day).UTC().Format("20060102")
}

// ensurePartition creates the partition of received day d (and the next
// day's, so midnight does not wait on DDL) unless it is known to exist.
func (s *Store) ensurePartition(ctx context.Context, d int64) error {
	s.mu.Lock()
	ok := s.parts[d]
	s.mu.Unlock()
	if ok {
		return nil
	}
	for _, x := range []int64{d, d + 1} {
		for _, t := range []struct{ parent, name string }{{"events", partName(x)}, {"event_postings", postPartName(x)}} {
			// Two nodes may race: IF NOT EXISTS makes the loser a no-op.
			sql := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF %s FOR VALUES FROM (%d) TO (%d)`,
				t.name, t.parent, x*day, (x+1)*day)
			if _, err := s.pool.Exec(ctx, sql); err != nil {
				// A concurrent creator on another node can make IF NOT
				// EXISTS fail on the catalog's unique index; the partition
				// then exists.
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || (pe.Code != pgerrcode.DuplicateTable && pe.Code != pgerrcode.UniqueViolation) {
					return fmt.Errorf("postgres: create partition %s: %w", t.name, err)
				}
			}
		}
	}
	s.mu.Lock()
	s.parts[d] = true
	s.mu.Unlock()
	return nil
}

// Append stores records in one transaction: it takes a batch number (a
// sequence: no lock), inserts the keys into event_keys with the place each
// record would have in the batch (the ones already there are duplicates),
// copies the new records in with COPY under that batch number, and last
// hands the batch its range of sequence numbers under store_meta's row
// lock, held only from that statement to the commit (so ranges commit in
// the order they are handed out, on every node). Appends from several
// nodes (or several connections of one) do their keys, rows and indexes
// side by side; only the last statement and the commit wait for one
// another. The rows (the record's S2 block, its binary fields, its
// postings) are made by a goroutine while the server takes the keys, and
// handed to the events COPY as they are made (streamRows).
//
// A batch's places are dense (a record's sequence number is its batch's
// first plus its place): when some of the records were duplicates, the
// new ones' keys are given their final places before the COPY, in the
// same transaction (rare: a retried append, a journal replayed).
func (s *Store) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	var res audit.AppendResult
	if len(records) == 0 {
		return res, nil
	}
	type key struct{ account, id string }
	seen := make(map[key]bool, len(records))
	batch := make([]*audit.Record, 0, len(records))
	for i := range records {
		k := key{records[i].Account, records[i].EventID}
		if seen[k] {
			res.Duplicates++
			continue
		}
		seen[k] = true
		batch = append(batch, &records[i])
	}
	received := s.now().UnixMicro()
	if err := s.ensurePartition(ctx, floorDiv(received, day)); err != nil {
		return audit.AppendResult{}, err
	}
	accts := make([][]byte, len(batch))
	ids := make([][]byte, len(batch))
	for i, r := range batch {
		accts[i], ids[i] = []byte(r.Account), []byte(r.EventID)
	}
	inserted := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		if err := tx.QueryRow(ctx, `SELECT nextval('event_batch_ids')`).Scan(&id); err != nil {
			return fmt.Errorf("batch number: %w", err)
		}
		// The rows are made (record i at place i) while the server takes
		// the keys, and streamed to the events COPY as they are made.
		rows := s.streamRows(batch, id, received)
		defer rows.Close()
		// Usually every key is new: COPY them in, in a savepoint. Only
		// when one exists already (a retried append, a journal replayed,
		// another node's copy) is the savepoint rolled back and the keys
		// inserted ON CONFLICT DO NOTHING, which returns the new ones.
		copied, err := copyKeys(ctx, tx, accts, ids, received, id)
		if err != nil {
			return err
		}
		var posts [][]any
		if copied {
			inserted = len(batch)
			if _, err := tx.CopyFrom(ctx, eventsTable, columns, rows); err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
			if posts, err = rows.Postings(); err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
		} else {
			rows.Close() // made for places the new records do not have
			fresh := make([]bool, len(batch))
			n, err := insertKeys(ctx, tx, accts, ids, received, id, fresh)
			if err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
			stored := make([]*audit.Record, 0, n)
			var moveIDs, moveAccts [][]byte
			var moveTo []int32
			for i, r := range batch {
				if !fresh[i] {
					continue
				}
				o := int32(len(stored))
				if o != int32(i) {
					moveIDs, moveAccts, moveTo = append(moveIDs, ids[i]), append(moveAccts, accts[i]), append(moveTo, o)
				}
				stored = append(stored, r)
			}
			if len(moveTo) > 0 {
				tag, err := tx.Exec(ctx, `UPDATE event_keys k SET ord = m.o
				FROM unnest($1::bytea[], $2::bytea[], $3::int[]) AS m(e, a, o)
				WHERE k.event_id = m.e AND k.account = m.a AND k.batch = $4`, moveIDs, moveAccts, moveTo, id)
				if err != nil {
					return fmt.Errorf("renumber keys: %w", err)
				}
				if tag.RowsAffected() != int64(len(moveTo)) {
					return fmt.Errorf("renumber keys: %d of %d keys", tag.RowsAffected(), len(moveTo))
				}
			}
			inserted = len(stored)
			// The new records' rows with their final places.
			again := s.streamRows(stored, id, received)
			defer again.Close()
			if _, err := tx.CopyFrom(ctx, eventsTable, columns, again); err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
			if posts, err = again.Postings(); err != nil {
				return fmt.Errorf("copy events: %w", err)
			}
		}
		if _, err := tx.CopyFrom(ctx, postingsTable, postingColumns, pgx.CopyFromRows(posts)); err != nil {
			return fmt.Errorf("copy event_postings: %w", err)
		}
		// The range, under the row lock until the commit.
		if _, err := tx.Exec(ctx, `WITH m AS (UPDATE store_meta SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq)
			INSERT INTO event_batches (seq_hi, n, batch, received) SELECT last_seq, $1, $2, $3 FROM m`,
			int64(inserted), id, received); err != nil {
			return fmt.Errorf("number the batch: %w", err)
		}
		return nil
	})
	if err != nil {
		return audit.AppendResult{}, fmt.Errorf("postgres: append: %w", err)
	}
	res.Inserted = inserted
	res.Duplicates += len(batch) - inserted
	return res, nil
}

// copyKeys copies a batch's keys into event_keys (the place of the i-th
// is i), sorted in the index's order as insertKeys sorts them: two appends
// of the same records wait for each other instead of deadlocking. It
// runs in a savepoint and returns false, the savepoint rolled back, when
// a key is there already (unique_violation): then insertKeys tells the
// new ones from the others.
func copyKeys(ctx context.Context, tx pgx.Tx, accts, ids [][]byte, received, batch int64) (bool, error) {
	order := make([]int, len(ids))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := bytes.Compare(ids[a], ids[b]); c != 0 {
			return c
		}
		return bytes.Compare(accts[a], accts[b])
	})
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("copy keys: %w", err)
	}
	_, err = sp.CopyFrom(ctx, keysTable, keyColumns, newKeyRows(accts, ids, order, received, batch))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		if err := sp.Rollback(ctx); err != nil {
			return false, fmt.Errorf("copy keys: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("copy keys: %w", err)
	}
	if err := sp.Commit(ctx); err != nil {
		return false, fmt.Errorf("copy keys: %w", err)
	}
	return true, nil
}

// insertKeys inserts a batch's keys that event_keys does not hold (the
// place of the i-th is i, as copyKeys gives it), in the index's order,
// marks them in fresh and returns how many there were.
func insertKeys(ctx context.Context, tx pgx.Tx, accts, ids [][]byte, received, batch int64, fresh []bool) (int, error) {
	rows, err := tx.Query(ctx, `INSERT INTO event_keys (event_id, account, received, batch, ord)
		SELECT e, a, $3, $4, (o - 1)::int FROM unnest($1::bytea[], $2::bytea[]) WITH ORDINALITY AS k(a, e, o) ORDER BY e, a
		ON CONFLICT DO NOTHING RETURNING ord`, accts, ids, received, batch)
	if err != nil {
		return 0, fmt.Errorf("insert keys: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var o int32
		if err := rows.Scan(&o); err != nil {
			return 0, err
		}
		if o < 0 || int(o) >= len(fresh) || fresh[o] {
			return 0, fmt.Errorf("insert keys: place %d returned out of the batch of %d", o, len(fresh))
		}
		fresh[o] = true
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("insert keys: %w", err)
	}
	return n, nil
}

var columns = []string{"account", "region", "category", "event_time", "event_id", "event_name", "event_source",
	"username", "access_key_id", "read_only", "received", "batch", "ord", "raw", "fields", "raw_codec"}

// batchColumn is the index of batch in columns (and in row's values); ord
// is the next.
const batchColumn = 11

var postingColumns = []string{"account", "region", "category", "kind", "value", "batch", "received", "t_min", "t_max", "ords", "times", "read_only"}

// Kinds of postings: the attributes a lookup reads through them.
const (
	kindType        int16 = 1
	kindName        int16 = 2 // a resource's name or ARN
	kindEventName   int16 = 3
	kindEventSource int16 = 4
	kindUsername    int16 = 5
	kindAccessKey   int16 = 6
)

// postingKind is the kind of postings that serve lookups by key (false for
// the keys that have none: EventId has its own index, ReadOnly filters).
func postingKind(key audit.AttributeKey) (int16, bool) {
	switch key {
	case audit.AttrResourceType:
		return kindType, true
	case audit.AttrResourceName:
		return kindName, true
	case audit.AttrEventName:
		return kindEventName, true
	case audit.AttrEventSource:
		return kindEventSource, true
	case audit.AttrUsername:
		return kindUsername, true
	case audit.AttrAccessKeyID:
		return kindAccessKey, true
	}
	return 0, false
}

// postings returns the rows of event_postings for one batch (recs[i] has
// place i in it): one per distinct (account, region, category, kind,
// value), with the places of the records that hold it, ascending, each
// once however often a record holds the value, their eventTimes and
// their ReadOnly.
// EventName and EventSource are posted even when empty (a lookup of ""
// matches them, as a column comparison does); Username, AccessKeyId and
// resources only when set (a lookup of "" matches nothing).
func postings(recs []*audit.Record, batch, received int64) [][]any {
	keys, lists := collectPostings(recs)
	rows := make([][]any, len(keys))
	for i, k := range keys {
		l := lists[i]
		lo, hi := l.bounds()
		rows[i] = []any{[]byte(k.account), []byte(k.region), k.category, k.kind, []byte(k.value), batch, received, lo, hi, l.ords, l.times, l.readOnly}
	}
	return rows
}

// A postingKey is what a posting is of; a postingList its records.
type postingKey struct {
	account, region string
	category, kind  int16
	value           string
}

type postingList struct {
	ords     []int32
	times    []int64
	readOnly []byte // audit.Tri of each place (version 10)
}

// bounds are the first and last eventTime of the list.
func (l *postingList) bounds() (lo, hi int64) {
	lo, hi = l.times[0], l.times[0]
	for _, t := range l.times {
		lo, hi = min(lo, t), max(hi, t)
	}
	return lo, hi
}

// collectPostings groups the places of recs (recs[i] has place i) by
// posting, in the order the postings first occur (see postings).
func collectPostings(recs []*audit.Record) ([]postingKey, []*postingList) {
	idx := make(map[postingKey]int, len(recs))
	var keys []postingKey
	var lists []*postingList
	for ord, r := range recs {
		t := r.Time.Unix()
		add := func(kind int16, v string) {
			k := postingKey{r.Account, r.Region, int16(r.Category), kind, v}
			i, ok := idx[k]
			if !ok {
				i = len(keys)
				idx[k] = i
				keys = append(keys, k)
				lists = append(lists, &postingList{})
			}
			l := lists[i]
			if n := len(l.ords); n > 0 && l.ords[n-1] == int32(ord) {
				return // the record holds the value twice
			}
			l.ords = append(l.ords, int32(ord))
			l.times = append(l.times, t)
			l.readOnly = append(l.readOnly, byte(r.ReadOnly))
		}
		add(kindEventName, r.EventName)
		add(kindEventSource, r.EventSource)
		if r.Username != "" {
			add(kindUsername, r.Username)
		}
		if r.AccessKeyID != "" {
			add(kindAccessKey, r.AccessKeyID)
		}
		for _, x := range r.Resources {
			for _, v := range []struct {
				kind int16
				v    string
			}{{kindType, x.Type}, {kindName, x.Name}, {kindName, x.ARN}} {
				if v.v != "" {
					add(v.kind, v.v)
				}
			}
		}
	}
	return keys, lists
}

func (s *Store) row(r *audit.Record, received int64) []any {
	noRaw := *r
	noRaw.Raw = nil
	fields := audit.AppendBinary(nil, &noRaw)
	return []any{[]byte(r.Account), []byte(r.Region), int16(r.Category), r.Time.Unix(), []byte(r.EventID),
		[]byte(r.EventName), []byte(r.EventSource), nullable(r.Username), nullable(r.AccessKeyID), int16(r.ReadOnly),
		received, int64(0), int32(0), s.s2d.Encode(nil, r.Raw), fields, codecS2}
}

func nullable(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// decode rebuilds a record from its stored bytes.
func (s *Store) decode(raw, fields []byte, codec int16) (audit.Record, error) {
	switch codec {
	case codecPlain:
	case codecZstd:
		var err error
		if raw, err = s.zdec.DecodeAll(raw, nil); err != nil {
			return audit.Record{}, fmt.Errorf("postgres: a stored record does not decompress: %w", err)
		}
	case codecS2:
		n, k := binary.Uvarint(raw)
		if k <= 0 || n > 2*audit.MaxRecordSize {
			return audit.Record{}, errors.New("postgres: a stored record does not decompress: S2 block of invalid length")
		}
		var err error
		if raw, err = s.s2d.Decode(make([]byte, 0, n), raw); err != nil {
			return audit.Record{}, fmt.Errorf("postgres: a stored record does not decompress: %w", err)
		}
	default:
		return audit.Record{}, fmt.Errorf("postgres: a stored record has codec %d, unknown to this cairn", codec)
	}
	buf := make([]byte, 0, len(raw)+len(fields))
	buf = append(append(buf, raw...), fields...)
	var r audit.Record
	if err := audit.DecodeBinary(buf, &r); err != nil {
		return r, fmt.Errorf("postgres: a stored record does not decode: %w", err)
	}
	return r, nil
}

// pgerrcode holds the SQLSTATEs the store tells apart.
var pgerrcode = struct{ DuplicateTable, UniqueViolation string }{"42P07", "23505"}

// errNoMatch marks a query that can match nothing (an empty value, an
// unknown key): the lookup answers an empty page without asking.
var errNoMatch = errors.New("matches nothing")

// where builds the conditions of q (without the cursor) and their
// arguments. Values always travel as parameters. Columns are named through
// col, which qualifies them for the table that holds them in the query.
// skip, when set, is an attribute left out: the one whose postings drive
// the query (its records hold it). A resource attribute otherwise is an
// EXISTS on the postings of the record's batch.
func where(q *audit.Query, col func(string) string, skip *audit.Attribute) ([]string, []any, error) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !q.AnyAccount {
		conds = append(conds, col("account")+" = "+arg([]byte(q.Account)))
	}
	if !q.AnyRegion {
		conds = append(conds, col("region")+" = "+arg([]byte(q.Region)))
	}
	conds = append(conds, col("category")+" = "+arg(int16(q.Category)))
	if !q.Start.IsZero() {
		start := q.Start.Unix()
		if q.Start.Nanosecond() > 0 {
			start++ // eventTime has whole seconds
		}
		conds = append(conds, col("event_time")+" >= "+arg(start))
	}
	if !q.End.IsZero() {
		conds = append(conds, col("event_time")+" <= "+arg(q.End.Unix()))
	}
	if !q.ReceivedSince.IsZero() {
		conds = append(conds, col("received")+" >= "+arg(q.ReceivedSince.UnixMicro()))
	}
	for i, a := range q.Attributes {
		v := []byte(a.Value)
		if skip != nil && &q.Attributes[i] == skip {
			if a.Value == "" && a.Key != audit.AttrEventName && a.Key != audit.AttrEventSource {
				return nil, nil, errNoMatch
			}
			continue
		}
		switch a.Key {
		case audit.AttrEventID:
			conds = append(conds, col("event_id")+" = "+arg(v))
		case audit.AttrEventName:
			conds = append(conds, col("event_name")+" = "+arg(v))
		case audit.AttrEventSource:
			conds = append(conds, col("event_source")+" = "+arg(v))
		case audit.AttrUsername, audit.AttrAccessKeyID:
			if a.Value == "" {
				return nil, nil, errNoMatch
			}
			c := map[audit.AttributeKey]string{audit.AttrUsername: "username", audit.AttrAccessKeyID: "access_key_id"}[a.Key]
			conds = append(conds, col(c)+" = "+arg(v))
		case audit.AttrResourceType, audit.AttrResourceName:
			if a.Value == "" {
				return nil, nil, errNoMatch
			}
			kind := kindType
			if a.Key == audit.AttrResourceName {
				kind = kindName
			}
			conds = append(conds, "EXISTS (SELECT 1 FROM event_postings x WHERE x.account = "+col("account")+
				" AND x.region = "+col("region")+" AND x.category = "+col("category")+
				" AND x.kind = "+arg(kind)+" AND x.value = "+arg(v)+
				" AND x.batch = "+col("batch")+" AND x.received = "+col("received")+" AND "+col("ord")+" = ANY (x.ords))")
		case audit.AttrReadOnly:
			switch a.Value {
			case "true":
				conds = append(conds, col("read_only")+" = "+arg(int16(audit.True)))
			case "false":
				conds = append(conds, col("read_only")+" = "+arg(int16(audit.False)))
			default:
				return nil, nil, errNoMatch
			}
		default:
			return nil, nil, errNoMatch
		}
	}
	return conds, args, nil
}

// Lookup answers q. A lookup by an attribute that has postings (every one
// but EventId and ReadOnly) reads them (lookupPostings); the others run
// one query: the conditions, the cursor as a row comparison, newest first,
// Limit+1 rows (the extra one says whether Next is set).
func (s *Store) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	if q.Limit < 1 {
		return audit.Page{}, errors.New("postgres: lookup limit must be at least 1")
	}
	var page audit.Page
	var err error
	if drive := driving(&q); drive != nil {
		page.Records, err = s.lookupPostings(ctx, &q, drive)
	} else {
		page.Records, err = s.lookupRows(ctx, &q)
	}
	if errors.Is(err, errNoMatch) {
		return audit.Page{}, nil
	}
	if err != nil {
		return audit.Page{}, fmt.Errorf("postgres: lookup: %w", err)
	}
	if len(page.Records) > q.Limit {
		page.Records = page.Records[:q.Limit]
		page.Next = q.CursorOf(&page.Records[q.Limit-1])
	}
	return page, nil
}

// driving is the attribute whose postings drive q: the first that has
// postings, unless q also looks up an EventId (its index finds the one or
// few records at once).
func driving(q *audit.Query) *audit.Attribute {
	var drive *audit.Attribute
	for i, a := range q.Attributes {
		if a.Key == audit.AttrEventID {
			return nil
		}
		if _, ok := postingKind(a.Key); ok && drive == nil {
			drive = &q.Attributes[i]
		}
	}
	return drive
}

func (s *Store) lookupRows(ctx context.Context, q *audit.Query) ([]audit.Record, error) {
	sql, args, err := lookupSQL(q)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var raw, fields []byte
		var codec int16
		if err := rows.Scan(&raw, &fields, &codec); err != nil {
			return nil, err
		}
		r, err := s.decode(raw, fields, codec)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// cursorCond appends the condition of q's cursor (if any) to conds: the
// rows after it in the order of the lookup.
func cursorCond(q *audit.Query, col func(string) string, conds []string, args []any) ([]string, []any) {
	c := q.After
	if c == nil {
		return conds, args
	}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	timeID := col("event_time") + ", " + col("event_id")
	if q.AnyAccount && c.Account != "" {
		conds = append(conds, "("+timeID+", "+col("account")+") < ("+arg(c.Time.Unix())+", "+arg([]byte(c.EventID))+", "+arg([]byte(c.Account))+")")
	} else {
		// Without an account (or in one account) the cursor resumes
		// after every record of its (time, eventID).
		conds = append(conds, "("+timeID+") < ("+arg(c.Time.Unix())+", "+arg([]byte(c.EventID))+")")
	}
	return conds, args
}

// lookupSQL is the query for a q without postings to drive it (no
// attribute, EventId, ReadOnly) and its arguments (errNoMatch when q can
// match nothing): the time index, or, for an EventId, event_keys (version
// 11: its key leads with the eventID, with or without an account), each
// key joined to its row through events_batch.
func lookupSQL(q *audit.Query) (string, []any, error) {
	var id *audit.Attribute
	for i, a := range q.Attributes {
		if a.Key == audit.AttrEventID {
			id = &q.Attributes[i]
			break
		}
	}
	col := func(c string) string { return c }
	if id != nil {
		col = func(c string) string { return "e." + c }
	}
	conds, args, err := where(q, col, nil)
	if err != nil {
		return "", nil, err
	}
	conds, args = cursorCond(q, col, conds, args)
	order := col("event_time") + " DESC, " + col("event_id") + " DESC"
	if q.AnyAccount {
		order += ", " + col("account") + " DESC"
	}
	from := "events"
	if id != nil {
		args = append(args, []byte(id.Value))
		keys := "k.event_id = $" + strconv.Itoa(len(args))
		if !q.AnyAccount {
			args = append(args, []byte(q.Account))
			keys += " AND k.account = $" + strconv.Itoa(len(args))
		}
		// OFFSET 0 keeps the row's conditions out of the subquery: with
		// them inside, PostgreSQL may read a time index for the eventID
		// (a constant there) instead of each key's row (1.9M records:
		// events_every_account's whole range for the region).
		from = "event_keys k CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.batch = k.batch AND e.received = k.received" +
			" AND e.ord = k.ord AND e.batch IS NOT NULL OFFSET 0) e"
		conds = append([]string{keys}, conds...)
	}
	sql := "SELECT " + col("raw") + ", " + col("fields") + ", " + col("raw_codec") + " FROM " + from + " WHERE " +
		strings.Join(conds, " AND ") + " ORDER BY " + order + " LIMIT " + strconv.Itoa(q.Limit+1)
	return sql, args, nil
}

// A candidate is a record a posting names: its eventTime and where it is.
type candidate struct {
	time, batch, received int64
	ord                   int32
}

// A fetched record, with the columns that order a page; decoded only
// if the page keeps it.
type fetched struct {
	time        int64
	id, account []byte
	raw, fields []byte
	codec       int16
}

// Chunks of postings a lookup reads at a time: the first page of a value
// written live needs one or two; imports of old logs overlap, and a deep
// cursor passes many.
const (
	postingsFirst = 2
	postingsMax   = 512
	maxFetch      = 8192 // candidates fetched at a time, at most (but a second's ties)
)

// lookupPostings answers q through the postings of drive: it reads the
// value's postings newest first by t_max, keeps the places whose eventTime
// is within q's bounds (and not after the cursor's time) and, when q asks
// for a ReadOnly and the posting holds its records' (version 10), whose
// ReadOnly is the one asked for, and fetches
// records once they are settled: newer than every posting not read yet
// (whose records are at most its t_max). It fetches the newest settled
// candidates it needs (and every candidate of the same second, which
// eventID orders), with q's other conditions and the cursor on the rows,
// and goes on until it has Limit+1 records or no posting is left.
func (s *Store) lookupPostings(ctx context.Context, q *audit.Query, drive *audit.Attribute) ([]audit.Record, error) {
	kind, _ := postingKind(drive.Key)
	col := func(c string) string { return "e." + c }
	conds, args, err := where(q, col, drive)
	if err != nil {
		return nil, err
	}
	conds, args = cursorCond(q, col, conds, args)
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.Start.IsZero() {
		lo = q.Start.Unix()
		if q.Start.Nanosecond() > 0 {
			lo++ // eventTime has whole seconds
		}
	}
	if !q.End.IsZero() {
		hi = q.End.Unix()
	}
	if q.After != nil {
		hi = min(hi, q.After.Time.Unix())
	}
	if lo > hi {
		return nil, nil
	}

	// The ReadOnly values q asks for: postings since version 10 hold
	// their records' ReadOnly, so the others are left out unfetched
	// (older postings' records are tested by the fetch's conditions).
	var readOnly []byte
	for _, a := range q.Attributes {
		if a.Key == audit.AttrReadOnly {
			switch a.Value {
			case "true":
				readOnly = append(readOnly, byte(audit.True))
			case "false":
				readOnly = append(readOnly, byte(audit.False))
			default:
				return nil, errNoMatch // where refused it already
			}
		}
	}
	psql, pargs := postingsSQL(q, kind, drive.Value, lo, hi)
	order := " ORDER BY t_max DESC, batch DESC, account DESC, region DESC LIMIT "
	var last struct {
		tmax, batch     int64
		account, region []byte
	}
	started, exhausted := false, false
	chunk := postingsFirst
	bound := int64(math.MaxInt64) // no record of a posting not read is newer
	var pending []candidate       // newest first once sorted
	need := q.Limit + 1
	var out []fetched
	readPostings := func() error {
		sql, a := psql, pargs
		if started {
			a = append(slices.Clip(a), last.tmax, last.batch, last.account, last.region)
			n := len(a)
			sql += fmt.Sprintf(" AND (t_max, batch, account, region) < ($%d, $%d, $%d, $%d)", n-3, n-2, n-1, n)
		}
		rows, err := s.pool.Query(ctx, sql+order+strconv.Itoa(chunk), a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		read := 0
		var ords []int32
		var times []int64
		var ro []byte
		var received int64
		for rows.Next() {
			if err := rows.Scan(&last.tmax, &last.batch, &last.account, &last.region, &received, &ords, &times, &ro); err != nil {
				return err
			}
			if len(ords) != len(times) || ro != nil && len(ro) != len(ords) {
				return errors.New("a posting's ords, times and read_only differ in length")
			}
			read++
		places:
			for i, t := range times {
				if t < lo || t > hi {
					continue
				}
				if ro != nil {
					for _, w := range readOnly {
						if ro[i] != w {
							continue places
						}
					}
				}
				pending = append(pending, candidate{t, last.batch, received, ords[i]})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		started = true
		if read < chunk {
			exhausted, bound = true, math.MinInt64
		} else {
			bound = last.tmax
		}
		chunk = min(2*chunk, postingsMax)
		return nil
	}
	// grow is the number of candidates to fetch next when q's other
	// conditions (or the cursor) refused some of the last ones: twice as
	// many each time, so that a rare combination (ReadOnly=false of a
	// common EventSource) takes a few round trips, not one per page.
	grow := 0
	sorted := 0 // pending[:sorted] is sorted and none after it is newer
	for len(out) < need {
		// The newest first; settled: the prefix newer than bound.
		if sorted < len(pending) {
			slices.SortFunc(pending, func(a, b candidate) int { return cmp.Compare(b.time, a.time) })
			sorted = len(pending)
		}
		settled, _ := slices.BinarySearchFunc(pending, bound, func(c candidate, b int64) int {
			return cmp.Compare(b, c.time) // pending is descending
		})
		if settled < need-len(out) && !exhausted {
			if err := readPostings(); err != nil {
				return nil, err
			}
			continue
		}
		if settled == 0 {
			break // exhausted, nothing left
		}
		// (grow fetches more of what is settled; it reads no more postings)
		k := min(max(need-len(out), grow), settled)
		for k < settled && pending[k].time == pending[k-1].time {
			k++
		}
		got, err := s.fetch(ctx, pending[:k], conds, args)
		if err != nil {
			return nil, err
		}
		if len(got) < k {
			grow = min(2*k, maxFetch)
		}
		pending = pending[k:]
		sorted -= k
		out = append(out, got...)
	}
	out = out[:min(len(out), need)]
	recs := make([]audit.Record, len(out))
	for i := range out {
		if recs[i], err = s.decode(out[i].raw, out[i].fields, out[i].codec); err != nil {
			return nil, err
		}
	}
	return recs, nil
}

// postingsSQL is the query of the postings of (kind, value) in q's
// accounts, regions and category that may hold records of eventTime lo to
// hi, without its order; a lookup resumes it after the last posting read.
func postingsSQL(q *audit.Query, kind int16, value string, lo, hi int64) (string, []any) {
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !q.AnyAccount {
		conds = append(conds, "account = "+arg([]byte(q.Account)))
	}
	if !q.AnyRegion {
		conds = append(conds, "region = "+arg([]byte(q.Region)))
	}
	conds = append(conds, "category = "+arg(int16(q.Category)), "kind = "+arg(kind), "value = "+arg([]byte(value)),
		"t_max >= "+arg(lo), "t_min <= "+arg(hi))
	if !q.ReceivedSince.IsZero() {
		conds = append(conds, "received >= "+arg(q.ReceivedSince.UnixMicro()))
	}
	return "SELECT t_max, batch, account, region, received, ords, times, read_only FROM event_postings WHERE " + strings.Join(conds, " AND "), args
}

// fetch returns the records of cands that meet conds (on e, the events
// row), newest first in a lookup's order, through events_batch.
func (s *Store) fetch(ctx context.Context, cands []candidate, conds []string, args []any) ([]fetched, error) {
	batches := make([]int64, len(cands))
	receiveds := make([]int64, len(cands))
	ords := make([]int32, len(cands))
	for i, c := range cands {
		batches[i], receiveds[i], ords[i] = c.batch, c.received, c.ord
	}
	n := len(args)
	a := append(slices.Clip(args), batches, receiveds, ords)
	cond := ""
	if len(conds) > 0 {
		cond = " AND " + strings.Join(conds, " AND ")
	}
	sql := fmt.Sprintf(`SELECT e.event_time, e.event_id, e.account, e.raw, e.fields, e.raw_codec
		FROM unnest($%d::bigint[], $%d::bigint[], $%d::int[]) AS c(batch, received, ord)
		CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.batch = c.batch AND e.received = c.received AND e.ord = c.ord
			AND e.batch IS NOT NULL%s) e`, n+1, n+2, n+3, cond)
	rows, err := s.pool.Query(ctx, sql, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []fetched
	for rows.Next() {
		var f fetched
		if err := rows.Scan(&f.time, &f.id, &f.account, &f.raw, &f.fields, &f.codec); err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b fetched) int {
		if c := cmp.Compare(b.time, a.time); c != 0 {
			return c
		}
		if c := bytes.Compare(b.id, a.id); c != 0 {
			return c
		}
		return bytes.Compare(b.account, a.account)
	})
	return out, nil
}

// ReadAppended returns the records appended after sequence number after,
// in append order: the rows written before version 8 by their seq (up to
// legacy_seq), then the batches in the order of their ranges, each
// batch's rows by their place in it.
func (s *Store) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	if limit < 1 {
		return nil, nil
	}
	var out []audit.Appended
	if after < s.legacy {
		page, err := s.readAppended(ctx, limit, `SELECT seq, raw, fields, raw_codec FROM events
			WHERE seq > $1 AND seq <= $3 ORDER BY seq LIMIT $2`, after, limit, s.legacy)
		if err != nil {
			return nil, err
		}
		out = page
		if len(out) == limit {
			return out, nil
		}
		after = s.legacy
	}
	// The batches after after (a batch's range ends at seq_hi) that the
	// page needs (those that begin before limit records are counted),
	// each joined to its rows in its one partition (received), from its
	// place after after on: fewer than twice limit rows, however large
	// the batches. They come in the batches' order, each batch's rows
	// in their order, but PostgreSQL cannot know it and would sort the
	// rows, records and all, spilling to disk (a page of 5,000 records
	// outgrows work_mem): readAppended orders them by number instead,
	// and keeps the first limit.
	page, err := s.readAppended(ctx, limit-len(out), `SELECT b.seq_hi - b.n + 1 + e.ord, e.raw, e.fields, e.raw_codec
		FROM (SELECT * FROM (
			SELECT *, sum(least(n, seq_hi - $1)) OVER (ORDER BY seq_hi) - least(n, seq_hi - $1) AS before
			FROM (SELECT * FROM event_batches WHERE seq_hi > $1 ORDER BY seq_hi LIMIT $2) x) y
			WHERE before < $2) b
		CROSS JOIN LATERAL (SELECT ord, raw, fields, raw_codec FROM events
			WHERE batch = b.batch AND received = b.received AND ord > $1 - (b.seq_hi - b.n + 1)
			ORDER BY ord LIMIT $2) e`, after, limit-len(out))
	if err != nil {
		return nil, err
	}
	return append(out, page...), nil
}

// readAppended runs a query of (seq, raw, fields, raw_codec) rows and
// returns the first limit records by seq.
func (s *Store) readAppended(ctx context.Context, limit int, sql string, args ...any) ([]audit.Appended, error) {
	type row struct {
		seq         int64
		raw, fields []byte
		codec       int16
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: read appended: %w", err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.seq, &r.raw, &r.fields, &r.codec); err != nil {
			return nil, fmt.Errorf("postgres: read appended: %w", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: read appended: %w", err)
	}
	bySeq := func(a, b row) int { return cmp.Compare(a.seq, b.seq) }
	if !slices.IsSortedFunc(got, bySeq) {
		slices.SortFunc(got, bySeq)
	}
	got = got[:min(len(got), limit)]
	out := make([]audit.Appended, len(got))
	for i, r := range got {
		out[i].Seq = r.seq
		if out[i].Record, err = s.decode(r.raw, r.fields, r.codec); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DeleteReceivedBefore drops the partitions (of events and of
// event_postings) received wholly before t, deletes the rows before t
// from the partitions t falls in, and their keys,
// in one transaction. The count is the keys deleted: one per record.
func (s *Store) DeleteReceivedBefore(ctx context.Context, t time.Time) (int64, error) {
	cut := t.UnixMicro()
	var n int64
	var dropped []int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Retention runs under a lease when nodes share the database: a
		// node that lost it deletes nothing.
		if err := CheckFence(ctx, tx); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = 'events'::regclass`)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, name := range names {
			d, ok := partDay(name)
			if !ok {
				continue
			}
			switch {
			case (d+1)*day <= cut:
				for _, n := range []string{name, postPartName(d)} {
					if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
						return fmt.Errorf("drop %s: %w", n, err)
					}
				}
				dropped = append(dropped, d)
			case d*day < cut:
				for _, n := range []string{name, postPartName(d)} {
					if _, err := tx.Exec(ctx, "DELETE FROM "+pgx.Identifier{n}.Sanitize()+" WHERE received < $1", cut); err != nil {
						return fmt.Errorf("delete from %s: %w", n, err)
					}
				}
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_batches WHERE received < $1`, cut); err != nil {
			return fmt.Errorf("delete batches: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM event_keys WHERE received < $1`, cut)
		if err != nil {
			return fmt.Errorf("delete keys: %w", err)
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: delete received before %v: %w", t, err)
	}
	s.mu.Lock()
	for _, d := range dropped {
		delete(s.parts, d)
	}
	s.mu.Unlock()
	return n, nil
}

// partDay parses a partition's name back to its day.
func partDay(name string) (int64, bool) {
	ts, ok := strings.CutPrefix(name, "events_p")
	if !ok {
		return 0, false
	}
	t, err := time.Parse("20060102", ts)
	if err != nil {
		return 0, false
	}
	return floorDiv(t.UnixMicro(), day), true
}

// LastSeq returns the last sequence number handed out by a committed
// Append (0 for none).
func (s *Store) LastSeq(ctx context.Context) (int64, error) {
	var last int64
	if err := s.pool.QueryRow(ctx, `SELECT last_seq FROM store_meta WHERE id = 1`).Scan(&last); err != nil {
		return 0, fmt.Errorf("postgres: read last_seq: %w", err)
	}
	return last, nil
}
