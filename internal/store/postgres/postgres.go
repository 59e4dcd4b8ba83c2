// Package postgres is an audit.Store kept in PostgreSQL (15 or later),
// through pgx: Event History shared by every cairn node that names the same
// database. Its schema and choices are in docs/scale.md; it passes the
// conformance suite in internal/store/storetest.
package postgres

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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

// resPartName is the partition of event_resources for received day d.
func resPartName(d int64) string {
	return "event_resources_p" + time.UnixMicro(d*day).UTC().Format("20060102")
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
		for _, t := range []struct{ parent, name string }{{"events", partName(x)}, {"event_resources", resPartName(x)}} {
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

// Append stores records in one transaction: it inserts the keys into
// event_keys (the ones already there are duplicates), copies the new
// records in with COPY under a batch number of their own, and last hands
// the batch its range of sequence numbers under store_meta's row lock,
// held only from that statement to the commit (so ranges commit in the
// order they are handed out, on every node). Appends from several nodes
// (or several connections of one) do their keys, rows and indexes side by
// side; only the last statement and the commit wait for one another. The
// rows (the record's zstd frame, its binary fields, its resources) are made
// before the transaction.
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
	prepared := make([][]any, len(batch))
	prepRes := make([][][]any, len(batch))
	for i, r := range batch {
		accts[i], ids[i] = []byte(r.Account), []byte(r.EventID)
		prepared[i] = s.row(r, received)
		prepRes[i] = appendResources(nil, r, received)
	}
	inserted := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The keys in one order on every node: two appends of the same
		// records wait for each other instead of deadlocking.
		rows, err := tx.Query(ctx, `INSERT INTO event_keys (account, event_id, received)
			SELECT a, e, $3 FROM unnest($1::bytea[], $2::bytea[]) AS k(a, e) ORDER BY a, e
			ON CONFLICT DO NOTHING RETURNING account, event_id`, accts, ids, received)
		if err != nil {
			return fmt.Errorf("insert keys: %w", err)
		}
		fresh := map[key]bool{}
		for rows.Next() {
			var a, e []byte
			if err := rows.Scan(&a, &e); err != nil {
				rows.Close()
				return err
			}
			fresh[key{string(a), string(e)}] = true
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("insert keys: %w", err)
		}
		if len(fresh) == 0 {
			return nil
		}
		var id int64
		if err := tx.QueryRow(ctx, `SELECT nextval('event_batch_ids')`).Scan(&id); err != nil {
			return fmt.Errorf("batch number: %w", err)
		}
		var copyRows, resRows [][]any
		for i, r := range batch {
			if !fresh[key{r.Account, r.EventID}] {
				continue
			}
			prepared[i][batchColumn] = id
			prepared[i][batchColumn+1] = int32(len(copyRows))
			copyRows = append(copyRows, prepared[i])
			resRows = append(resRows, prepRes[i]...)
		}
		inserted = len(copyRows)
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, columns, pgx.CopyFromRows(copyRows)); err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
		if len(resRows) > 0 {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"event_resources"}, resColumns, pgx.CopyFromRows(resRows)); err != nil {
				return fmt.Errorf("copy event_resources: %w", err)
			}
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

var columns = []string{"account", "region", "category", "event_time", "event_id", "event_name", "event_source",
	"username", "access_key_id", "read_only", "received", "batch", "ord", "raw", "fields", "raw_codec"}

// batchColumn is the index of batch in columns (and in row's values); ord
// is the next.
const batchColumn = 11

var resColumns = []string{"account", "region", "category", "kind", "value", "event_time", "event_id", "received"}

// Kinds of event_resources rows.
const (
	kindType int16 = 1
	kindName int16 = 2 // a resource's name or ARN
)

// appendResources appends r's rows of event_resources: one for each
// distinct non-empty resource type, and each distinct name or ARN, so that
// a lookup's join meets each record once.
func appendResources(rows [][]any, r *audit.Record, received int64) [][]any {
	type kv struct {
		kind  int16
		value string
	}
	var seen []kv
	add := func(kind int16, v string) {
		if v == "" || slices.Contains(seen, kv{kind, v}) {
			return
		}
		seen = append(seen, kv{kind, v})
		rows = append(rows, []any{[]byte(r.Account), []byte(r.Region), int16(r.Category), kind, []byte(v),
			r.Time.Unix(), []byte(r.EventID), received})
	}
	for _, x := range r.Resources {
		add(kindType, x.Type)
		add(kindName, x.Name)
		add(kindName, x.ARN)
	}
	return rows
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
// A resource attribute is a condition on event_resources: on its row res
// when res is set (the table the query is driven from, which holds that
// attribute's value), else an EXISTS.
func where(q *audit.Query, col func(string) string, res *audit.Attribute) ([]string, []any, error) {
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
			if res != nil && &q.Attributes[i] == res {
				conds = append(conds, "r.kind = "+arg(kind), "r.value = "+arg(v))
				continue
			}
			conds = append(conds, "EXISTS (SELECT 1 FROM event_resources x WHERE x.account = "+col("account")+
				" AND x.event_id = "+col("event_id")+" AND x.received = "+col("received")+
				" AND x.kind = "+arg(kind)+" AND x.value = "+arg(v)+")")
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

// Lookup answers q with one query: the conditions, the cursor as a row
// comparison, newest first, Limit+1 rows (the extra one says whether Next
// is set).
func (s *Store) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	if q.Limit < 1 {
		return audit.Page{}, errors.New("postgres: lookup limit must be at least 1")
	}
	sql, args, err := lookupSQL(&q)
	if errors.Is(err, errNoMatch) {
		return audit.Page{}, nil
	}
	if err != nil {
		return audit.Page{}, err
	}
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return audit.Page{}, fmt.Errorf("postgres: lookup: %w", err)
	}
	defer rows.Close()
	var page audit.Page
	for rows.Next() {
		var raw, fields []byte
		var codec int16
		if err := rows.Scan(&raw, &fields, &codec); err != nil {
			return audit.Page{}, fmt.Errorf("postgres: lookup: %w", err)
		}
		r, err := s.decode(raw, fields, codec)
		if err != nil {
			return audit.Page{}, err
		}
		page.Records = append(page.Records, r)
	}
	if err := rows.Err(); err != nil {
		return audit.Page{}, fmt.Errorf("postgres: lookup: %w", err)
	}
	if len(page.Records) > q.Limit {
		page.Records = page.Records[:q.Limit]
		page.Next = q.CursorOf(&page.Records[q.Limit-1])
	}
	return page, nil
}

// lookupSQL is the query Lookup runs for q and its arguments (errNoMatch
// when q can match nothing). A lookup by resource is driven from
// event_resources, whose indexes hold each value's rows newest first, and
// joins each row it reads to its record.
func lookupSQL(q *audit.Query) (string, []any, error) {
	var res *audit.Attribute
	for i, a := range q.Attributes {
		if a.Key == audit.AttrResourceType || a.Key == audit.AttrResourceName {
			res = &q.Attributes[i]
			break
		}
	}
	from := "events"
	col := func(c string) string { return c }
	if res != nil {
		from = "event_resources r JOIN events e ON e.event_id = r.event_id AND e.account = r.account AND e.received = r.received"
		col = func(c string) string {
			switch c {
			case "account", "region", "category", "event_time", "event_id", "received":
				return "r." + c
			}
			return "e." + c
		}
	}
	conds, args, err := where(q, col, res)
	if err != nil {
		return "", nil, err
	}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	timeID := col("event_time") + ", " + col("event_id")
	order := col("event_time") + " DESC, " + col("event_id") + " DESC"
	if q.AnyAccount {
		order += ", " + col("account") + " DESC"
	}
	if c := q.After; c != nil {
		if q.AnyAccount && c.Account != "" {
			conds = append(conds, "("+timeID+", "+col("account")+") < ("+arg(c.Time.Unix())+", "+arg([]byte(c.EventID))+", "+arg([]byte(c.Account))+")")
		} else {
			// Without an account (or in one account) the cursor resumes
			// after every record of its (time, eventID).
			conds = append(conds, "("+timeID+") < ("+arg(c.Time.Unix())+", "+arg([]byte(c.EventID))+")")
		}
	}
	sql := "SELECT " + col("raw") + ", " + col("fields") + ", " + col("raw_codec") + " FROM " + from + " WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY " + order + " LIMIT " + strconv.Itoa(q.Limit+1)
	return sql, args, nil
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
// event_resources) received wholly before t, deletes the rows before t
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
				for _, n := range []string{name, resPartName(d)} {
					if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
						return fmt.Errorf("drop %s: %w", n, err)
					}
				}
				dropped = append(dropped, d)
			case d*day < cut:
				for _, n := range []string{name, resPartName(d)} {
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
