// Package duckdb is cairn's embedded event store: an audit.Store on DuckDB,
// through the official driver github.com/duckdb/duckdb-go/v2.
//
// One table holds the records: the attribute columns LookupEvents filters
// on, eventTime as epoch seconds, and the original record compressed with
// zstd. Lookups walk time windows newest first and stop when the page is
// full, so a page costs the row groups of its window, not the whole table.
// Appends go through DuckDB's Appender in one transaction per batch; a
// commit is durable (DuckDB syncs its write-ahead log on commit).
// See docs/store.md for the design and the measurements.
package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Options configures a Store. The zero value works.
type Options struct {
	Logger *slog.Logger
	// Threads caps DuckDB's worker threads (default: DuckDB's own, the
	// number of cores).
	Threads int
}

// Store is the DuckDB audit.Store.
type Store struct {
	db        *sql.DB
	connector *duckdb.Connector
	log       *slog.Logger
	enc       *zstd.Encoder
	dec       *zstd.Decoder

	writeMu sync.Mutex // one writer
	wconn   *sql.Conn
}

const schema = `
CREATE TABLE IF NOT EXISTS events (
	account        VARCHAR  NOT NULL,
	region         VARCHAR  NOT NULL,
	category       UTINYINT NOT NULL,
	event_time     BIGINT   NOT NULL,
	event_id       VARCHAR  NOT NULL,
	key_hash       UBIGINT  NOT NULL,
	event_name     VARCHAR,
	event_source   VARCHAR,
	read_only      UTINYINT NOT NULL,
	username       VARCHAR,
	access_key_id  VARCHAR,
	resource_types VARCHAR[],
	resource_names VARCHAR[],
	resource_arns  VARCHAR[],
	raw            BLOB     NOT NULL
);
`

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dsn := path
	if opts.Threads > 0 {
		dsn += "?threads=" + strconv.Itoa(opts.Threads)
	}
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	s := &Store{db: db, connector: connector, log: log}
	if err := s.init(); err != nil {
		db.Close()
		connector.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init() error {
	ctx := context.Background()
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("duckdb: schema: %w", err)
	}
	var err2 error
	if s.enc, err2 = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1)); err2 != nil {
		return err2
	}
	if s.dec, err2 = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0)); err2 != nil {
		return err2
	}
	s.wconn, err2 = s.db.Conn(ctx)
	if err2 != nil {
		return fmt.Errorf("duckdb: writer connection: %w", err2)
	}
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
	return h
}

// Close closes the store.
func (s *Store) Close() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	var errs []error
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
		s.wconn = nil
	}
	errs = append(errs, s.db.Close(), s.connector.Close())
	if s.enc != nil {
		s.enc.Close()
	}
	if s.dec != nil {
		s.dec.Close()
	}
	return errors.Join(errs...)
}

// Append stores records not stored before, in one transaction.
func (s *Store) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	var res audit.AppendResult
	if len(records) == 0 {
		return res, nil
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return res, errors.New("duckdb: store closed")
	}
	// Duplicates within the batch.
	type key struct{ a, e string }
	seen := make(map[key]bool, len(records))
	fresh := make([]*audit.Record, 0, len(records))
	hashes := make([]uint64, 0, len(records))
	for i := range records {
		r := &records[i]
		k := key{r.Account, r.EventID}
		if seen[k] {
			res.Duplicates++
			continue
		}
		seen[k] = true
		fresh = append(fresh, r)
		hashes = append(hashes, keyHash(r.Account, r.EventID))
	}
	// Duplicates already stored: candidates by hash, confirmed by key.
	stored, err := s.storedKeys(ctx, hashes)
	if err != nil {
		return audit.AppendResult{}, err
	}
	if len(stored) > 0 {
		kept := fresh[:0]
		keptH := hashes[:0]
		for i, r := range fresh {
			if stored[r.Account+"\x00"+r.EventID] {
				res.Duplicates++
				continue
			}
			kept = append(kept, r)
			keptH = append(keptH, hashes[i])
		}
		fresh, hashes = kept, keptH
	}
	if len(fresh) == 0 {
		return res, nil
	}
	if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return audit.AppendResult{}, fmt.Errorf("duckdb: begin: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			s.wconn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	err = s.wconn.Raw(func(dc any) error {
		app, err := duckdb.NewAppenderFromConn(dc.(driver.Conn), "", "events")
		if err != nil {
			return err
		}
		var buf []byte
		for i, r := range fresh {
			buf = s.enc.EncodeAll(r.Raw, buf[:0])
			types, names, arns := resourceLists(r.Resources)
			if err := app.AppendRow(r.Account, r.Region, uint8(r.Category), r.Time.Unix(), r.EventID, hashes[i],
				nullable(r.EventName), nullable(r.EventSource), uint8(r.ReadOnly), nullable(r.Username),
				nullable(r.AccessKeyID), types, names, arns, append([]byte(nil), buf...)); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close()
	})
	if err != nil {
		return audit.AppendResult{}, fmt.Errorf("duckdb: append: %w", err)
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return audit.AppendResult{}, fmt.Errorf("duckdb: commit: %w", err)
	}
	committed = true
	res.Inserted = len(fresh)
	return res, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func resourceLists(rs []audit.Resource) (types, names, arns []any) {
	if len(rs) == 0 {
		return nil, nil, nil
	}
	types, names, arns = make([]any, len(rs)), make([]any, len(rs)), make([]any, len(rs))
	for i, r := range rs {
		types[i], names[i], arns[i] = r.Type, r.Name, r.ARN
	}
	return types, names, arns
}

// storedKeys returns the "account\x00eventID" keys already stored among
// the candidates whose hash matches.
func (s *Store) storedKeys(ctx context.Context, hashes []uint64) (map[string]bool, error) {
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
	out := map[string]bool{}
	for rows.Next() {
		var a, e string
		if err := rows.Scan(&a, &e); err != nil {
			return nil, err
		}
		out[a+"\x00"+e] = true
	}
	return out, rows.Err()
}

// windows are the widths of the time windows a lookup probes, newest first;
// the last probe covers the rest of the range.
var windows = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 365 * 24 * time.Hour}

// Lookup returns a page of records matching q, newest first.
func (s *Store) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	if q.Limit < 1 {
		return audit.Page{}, errors.New("duckdb: lookup limit must be at least 1")
	}
	lo, hi := int64(minTime), int64(maxTime)
	if !q.Start.IsZero() {
		lo = q.Start.Unix()
	}
	if !q.End.IsZero() {
		hi = q.End.Unix()
	}
	if q.After != nil && q.After.Time.Unix() < hi {
		hi = q.After.Time.Unix()
	}
	if lo > hi {
		return audit.Page{}, nil
	}
	// Start the windows at the newest record in range, not at the end of
	// the range: imported history may be years old.
	var newest sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT max(event_time) FROM events
		WHERE account = ? AND region = ? AND category = ? AND event_time BETWEEN ? AND ?`,
		q.Account, q.Region, uint8(q.Category), lo, hi).Scan(&newest); err != nil {
		return audit.Page{}, fmt.Errorf("duckdb: lookup: %w", err)
	}
	if !newest.Valid {
		return audit.Page{}, nil
	}
	var recs []audit.Record
	upper := newest.Int64
	for i := 0; ; i++ {
		from := lo
		if i < len(windows) {
			if w := upper - int64(windows[i]/time.Second); w > lo {
				from = w
			}
		}
		got, err := s.lookupRange(ctx, &q, from, upper, q.Limit+1-len(recs))
		if err != nil {
			return audit.Page{}, err
		}
		recs = append(recs, got...)
		if len(recs) > q.Limit || from <= lo {
			break
		}
		upper = from - 1
	}
	var p audit.Page
	if len(recs) > q.Limit {
		recs = recs[:q.Limit]
		last := recs[len(recs)-1]
		p.Next = &audit.Cursor{Time: last.Time, EventID: last.EventID}
	}
	p.Records = recs
	return p, nil
}

const (
	minTime = -62135596800 // year 1
	maxTime = 253402300799 // year 9999
)

// lookupRange returns up to limit matching records with from <= time <= to.
func (s *Store) lookupRange(ctx context.Context, q *audit.Query, from, to int64, limit int) ([]audit.Record, error) {
	var sb strings.Builder
	args := []any{q.Account, q.Region, uint8(q.Category), from, to}
	sb.WriteString(`SELECT event_time, event_id, event_name, event_source, read_only, username, access_key_id,
		resource_types, resource_names, resource_arns, raw
		FROM events WHERE account = ? AND region = ? AND category = ? AND event_time BETWEEN ? AND ?`)
	if q.After != nil {
		sb.WriteString(` AND (event_time < ? OR (event_time = ? AND event_id < ?))`)
		t := q.After.Time.Unix()
		args = append(args, t, t, q.After.EventID)
	}
	for _, a := range q.Attributes {
		switch a.Key {
		case audit.AttrEventID:
			sb.WriteString(` AND event_id = ?`)
		case audit.AttrEventName:
			sb.WriteString(` AND event_name = ?`)
		case audit.AttrEventSource:
			sb.WriteString(` AND event_source = ?`)
		case audit.AttrUsername:
			sb.WriteString(` AND username = ?`)
		case audit.AttrAccessKeyID:
			sb.WriteString(` AND access_key_id = ?`)
		case audit.AttrReadOnly:
			sb.WriteString(` AND read_only = ?`)
			v := audit.False
			if a.Value == "true" {
				v = audit.True
			} else if a.Value != "false" {
				return nil, nil
			}
			args = append(args, uint8(v))
			continue
		case audit.AttrResourceType:
			sb.WriteString(` AND list_contains(resource_types, ?)`)
		case audit.AttrResourceName:
			sb.WriteString(` AND (list_contains(resource_names, ?) OR list_contains(resource_arns, ?))`)
			args = append(args, a.Value)
		default:
			return nil, fmt.Errorf("duckdb: unknown attribute %q", a.Key)
		}
		args = append(args, a.Value)
	}
	sb.WriteString(` ORDER BY event_time DESC, event_id DESC LIMIT ` + strconv.Itoa(limit))
	rows, err := s.db.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("duckdb: lookup: %w", err)
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var (
			t                    int64
			id                   string
			name, src, user, key sql.NullString
			ro                   uint8
			types, names, arns   duckdb.Composite[[]*string]
			raw                  []byte
		)
		if err := rows.Scan(&t, &id, &name, &src, &ro, &user, &key, &types, &names, &arns, &raw); err != nil {
			return nil, fmt.Errorf("duckdb: lookup scan: %w", err)
		}
		plain, err := s.dec.DecodeAll(raw, nil)
		if err != nil {
			return nil, fmt.Errorf("duckdb: record %s: %w", id, err)
		}
		r := audit.Record{
			Raw: plain, Account: q.Account, Region: q.Region, Category: q.Category,
			EventID: id, Time: time.Unix(t, 0).UTC(), EventName: name.String, EventSource: src.String,
			ReadOnly: audit.Tri(ro), Username: user.String, AccessKeyID: key.String,
		}
		ts, ns, as := types.Get(), names.Get(), arns.Get()
		for i := range ts {
			r.Resources = append(r.Resources, audit.Resource{Type: deref(ts, i), Name: deref(ns, i), ARN: deref(as, i)})
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func deref(s []*string, i int) string {
	if i < len(s) && s[i] != nil {
		return *s[i]
	}
	return ""
}

// DeleteBefore removes records older than t.
func (s *Store) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.wconn == nil {
		return 0, errors.New("duckdb: store closed")
	}
	res, err := s.wconn.ExecContext(ctx, `DELETE FROM events WHERE event_time < ?`, t.Unix())
	if err != nil {
		return 0, fmt.Errorf("duckdb: delete: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		// Reclaim the space of the deleted rows.
		if _, err := s.wconn.ExecContext(ctx, `CHECKPOINT`); err != nil {
			s.log.Warn("duckdb: checkpoint after delete", "err", err)
		}
	}
	return n, nil
}

var _ audit.Store = (*Store)(nil)
