package main

import (
	"cmp"
	"container/list"
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

const schema = `CREATE TABLE blocks(
	id BIGINT, account VARCHAR, region VARCHAR, category UTINYINT, hour BIGINT,
	tmin BIGINT, tmax BIGINT, n INTEGER, ro_true INTEGER, ro_false INTEGER,
	filter BLOB USING COMPRESSION uncompressed,
	id_filter BLOB USING COMPRESSION uncompressed,
	data BLOB USING COMPRESSION uncompressed,
	data_off BIGINT, data_len INTEGER)`

// writer groups records into blocks and writes them as rows.
type writer struct {
	opts Options
	enc  *zstd.Encoder
	tx   *sql.Tx
	ins  *sql.Stmt
	open map[groupKey]*group
	next int64
	// side, with Options.SideFile, holds the blocks' bytes (the rows
	// their place); off is its length.
	side  *os.File
	off   int64
	stats writeStats
}

type groupKey struct {
	part partKey
	hour int64
}

type group struct {
	recs  []*audit.Record
	bytes int
}

type writeStats struct {
	records, blocks, content, compressed, filters, idFilters int64
	flaggedID, flaggedTime                                   int64
}

func newWriter(ctx context.Context, db *sql.DB, side string, opts Options) (*writer, error) {
	var f *os.File
	if opts.SideFile {
		var err error
		if f, err = os.OpenFile(side, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
			return nil, err
		}
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return nil, err
	}
	enc, err := newEncoder(opts.Level)
	if err != nil {
		return nil, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tx.Rollback()
		return nil, err
	}
	return &writer{opts: opts, enc: enc, tx: tx, ins: ins, open: map[groupKey]*group{}, next: 1, side: f}, nil
}

// add takes one record (a copy of it is kept until its block is written).
func (w *writer) add(ctx context.Context, r *audit.Record) error {
	k := groupKey{partKey{r.Account, r.Region, r.Category}, floorDiv(r.Time.Unix(), 3600*int64(max(w.opts.GroupHours, 1)))}
	g := w.open[k]
	if g == nil {
		g = &group{}
		w.open[k] = g
	}
	c := *r
	g.recs = append(g.recs, &c)
	g.bytes += len(r.Raw) + len(r.EventName) + len(r.EventSource) + len(r.Username) + len(r.AccessKeyID) + 8
	for _, x := range r.Resources {
		g.bytes += len(x.Type) + len(x.Name) + len(x.ARN) + 3
	}
	if g.bytes >= w.opts.BlockBytes {
		delete(w.open, k)
		return w.write(ctx, g)
	}
	return nil
}

// flushBefore writes the open groups of hours before hour (the input is
// in about time order: an import's files).
func (w *writer) flushBefore(ctx context.Context, hour int64) error {
	keys := make([]groupKey, 0)
	for k := range w.open {
		if k.hour*int64(max(w.opts.GroupHours, 1)) < hour {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b groupKey) int {
		return cmp.Or(cmp.Compare(a.hour, b.hour), cmp.Compare(a.part.account, b.part.account), cmp.Compare(a.part.region, b.part.region))
	})
	for _, k := range keys {
		g := w.open[k]
		delete(w.open, k)
		if err := w.write(ctx, g); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) write(ctx context.Context, g *group) error {
	content, m, ids, times := encodeBlock(g.recs, w.opts)
	w.stats.flaggedID += int64(ids)
	w.stats.flaggedTime += int64(times)
	data := w.enc.EncodeAll(content, nil)
	m.id = w.next
	w.next++
	f, idf := m.filter.Marshal(), m.idFilter.Marshal()
	w.stats.records += int64(m.n)
	w.stats.blocks++
	w.stats.content += int64(len(content))
	w.stats.compressed += int64(len(data))
	w.stats.filters += int64(len(f))
	w.stats.idFilters += int64(len(idf))
	var blob, off, n any = data, nil, nil
	if w.side != nil {
		if _, err := w.side.Write(data); err != nil {
			return err
		}
		blob, off, n = nil, w.off, len(data)
		w.off += int64(len(data))
	}
	_, err := w.ins.ExecContext(ctx, m.id, m.key.account, m.key.region, uint8(m.key.category), m.hour,
		m.tmin, m.tmax, m.n, m.roTrue, m.roFalse, f, idf, blob, off, n)
	return err
}

func (w *writer) close(ctx context.Context) error {
	if err := w.flushBefore(ctx, 1<<62); err != nil {
		w.tx.Rollback()
		return err
	}
	w.ins.Close()
	w.enc.Close()
	if w.side != nil {
		if err := w.side.Close(); err != nil {
			w.tx.Rollback()
			return err
		}
	}
	return w.tx.Commit()
}

// reader answers lookups from a blocks file: the blocks' rows without
// their data are held in memory (as the store holds its bucket index),
// the data read by id and decoded into a cache.
type reader struct {
	db    *sql.DB
	get   *sql.Stmt
	dec   *zstd.Decoder
	parts map[partKey][]*blockMeta
	// side holds the blocks' bytes when the rows hold their place.
	side *os.File
	// metaBytes: the filters held in memory.
	metaBytes int64
	cache     *blockCache
}

type lookupStats struct {
	considered, decoded, fetched int
	fetch                        time.Duration
}

func openReader(ctx context.Context, path string, cacheBytes int) (*reader, error) {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return nil, err
	}
	rd := &reader{db: db, parts: map[partKey][]*blockMeta{}, cache: newBlockCache(cacheBytes)}
	rows, err := db.QueryContext(ctx, `SELECT id, account, region, category, hour, tmin, tmax, n, ro_true, ro_false, filter, id_filter, data_off, data_len FROM blocks`)
	if err != nil {
		db.Close()
		return nil, err
	}
	for rows.Next() {
		m := &blockMeta{}
		var cat uint8
		var f, idf []byte
		if err := rows.Scan(&m.id, &m.key.account, &m.key.region, &cat, &m.hour, &m.tmin, &m.tmax, &m.n, &m.roTrue, &m.roFalse, &f, &idf, &m.off, &m.len); err != nil {
			rows.Close()
			db.Close()
			return nil, err
		}
		m.key.category = audit.Category(cat)
		m.filter, err = sealed.UnmarshalBloom(f)
		if err == nil {
			m.idFilter, err = sealed.UnmarshalBloom(idf)
		}
		if err != nil {
			rows.Close()
			db.Close()
			return nil, err
		}
		rd.metaBytes += int64(len(f)+len(idf)) + 80
		rd.parts[m.key] = append(rd.parts[m.key], m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		db.Close()
		return nil, err
	}
	for _, bs := range rd.parts {
		slices.SortFunc(bs, func(a, b *blockMeta) int { return cmp.Or(cmp.Compare(b.tmax, a.tmax), cmp.Compare(b.id, a.id)) })
	}
	if f, err := os.Open(path + ".data"); err == nil {
		rd.side = f
	}
	if rd.get, err = db.PrepareContext(ctx, `SELECT data FROM blocks WHERE id = ?`); err != nil {
		db.Close()
		return nil, err
	}
	if rd.dec, err = newDecoder(); err != nil {
		db.Close()
		return nil, err
	}
	return rd, nil
}

func (rd *reader) Close() error {
	rd.dec.Close()
	rd.get.Close()
	if rd.side != nil {
		rd.side.Close()
	}
	return rd.db.Close()
}

// lookup answers q (one account and region, no cursor, ReceivedSince
// unset) newest first: the blocks of its partition by descending tmax,
// skipped by time, readOnly counts and filter, decoded, matched, until
// the page is full and the next block ends before its last record.
func (rd *reader) lookup(ctx context.Context, q *audit.Query) ([]audit.Record, lookupStats, error) {
	var st lookupStats
	if q.AnyAccount || q.AnyRegion || q.After != nil || !q.ReceivedSince.IsZero() {
		return nil, st, fmt.Errorf("blocklayout: lookup shape not measured")
	}
	var toks, ids []uint64
	ro := audit.Unset
	var eventID bool
	for _, a := range q.Attributes {
		switch {
		case a.Key == audit.AttrReadOnly && a.Value == "true":
			ro = audit.True
		case a.Key == audit.AttrReadOnly && a.Value == "false":
			ro = audit.False
		case a.Key == audit.AttrReadOnly || a.Value == "" || !a.Key.Valid():
			return nil, st, nil
		case a.Key == audit.AttrEventID:
			ids = append(ids, sealed.Token(a.Key, a.Value))
			eventID = true
		default:
			toks = append(toks, sealed.Token(a.Key, a.Value))
		}
	}
	var lo, hi int64 = -1 << 62, 1 << 62
	if !q.Start.IsZero() {
		lo = q.Start.Unix()
	}
	if !q.End.IsZero() {
		hi = q.End.Unix()
	}
	var out []audit.Record
	for _, b := range rd.parts[partKey{q.Account, q.Region, q.Category}] {
		if len(out) >= q.Limit && b.tmax < out[q.Limit-1].Time.Unix() || b.tmax < lo {
			break
		}
		st.considered++
		if b.tmin > hi || ro == audit.True && b.roTrue == 0 || ro == audit.False && b.roFalse == 0 {
			continue
		}
		hit := true
		for _, t := range toks {
			if !b.filter.Has(t) {
				hit = false
				break
			}
		}
		for _, t := range ids {
			if !b.idFilter.Has(t) {
				hit = false
				break
			}
		}
		if !hit {
			continue
		}
		recs, err := rd.block(ctx, b, &st)
		if err != nil {
			return nil, st, err
		}
		before := len(out)
		for i := range recs {
			if q.Matches(&recs[i]) {
				out = append(out, recs[i])
			}
		}
		if len(out) > before {
			slices.SortFunc(out, func(a, b audit.Record) int { return newer(&a, &b) })
			out = out[:min(len(out), q.Limit)]
		}
		if eventID && len(out) > 0 {
			break
		}
	}
	return out, st, nil
}

func (rd *reader) block(ctx context.Context, b *blockMeta, st *lookupStats) ([]audit.Record, error) {
	if recs, ok := rd.cache.get(b.id); ok {
		return recs, nil
	}
	var data []byte
	t0 := time.Now()
	defer func() { st.fetch += time.Since(t0) }()
	if b.off.Valid {
		if rd.side == nil {
			return nil, fmt.Errorf("blocklayout: block %d: no side file", b.id)
		}
		data = make([]byte, b.len.Int64)
		if _, err := rd.side.ReadAt(data, b.off.Int64); err != nil {
			return nil, fmt.Errorf("blocklayout: block %d: %w", b.id, err)
		}
	} else if err := rd.get.QueryRowContext(ctx, b.id).Scan(&data); err != nil {
		return nil, fmt.Errorf("blocklayout: block %d: %w", b.id, err)
	}
	st.fetched++
	content, err := rd.dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("blocklayout: block %d: %w", b.id, err)
	}
	st.decoded++
	recs, err := decodeBlock(content, b)
	if err != nil {
		return nil, err
	}
	rd.cache.put(b.id, recs, len(content))
	return recs, nil
}

// blockCache keeps decoded blocks, least recently used out, within a
// budget of their content's bytes (the store's block cache: 16 MiB).
type blockCache struct {
	mu    sync.Mutex
	max   int
	bytes int
	ll    *list.List
	m     map[int64]*list.Element
}

type cached struct {
	id   int64
	recs []audit.Record
	n    int
}

func newBlockCache(max int) *blockCache {
	return &blockCache{max: max, ll: list.New(), m: map[int64]*list.Element{}}
}

func (c *blockCache) get(id int64) ([]audit.Record, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cached).recs, true
}

func (c *blockCache) put(id int64, recs []audit.Record, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > c.max {
		return
	}
	c.m[id] = c.ll.PushFront(&cached{id, recs, n})
	c.bytes += n
	for c.bytes > c.max {
		e := c.ll.Back()
		x := e.Value.(*cached)
		c.ll.Remove(e)
		delete(c.m, x.id)
		c.bytes -= x.n
	}
}

// fileSize is the size of path.
func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
