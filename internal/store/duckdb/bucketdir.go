package duckdb

import (
	"container/list"
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Bucket directories (issue 19, session 13). A lookup's SQL (parse,
// plan, a scan of the hours' row groups, the sort) was 47% of the API
// server's CPU at 1M records. The record frames hold everything a lookup
// filters on and returns except the event time and the event ID, which
// are columns only (frame.go), so a bucket cannot be answered from its
// record blocks alone. A bucket directory is the rest: the rows of one
// bucket (account, region, category, hour), newest first, each with its
// time, event ID, received time, record reference (a block reference or
// a frame of its own) and the values the lookups filter on (event name
// and source, read-only, and the hashes of the user name, access key and
// resources, as the SQL filters on them). It is read with one query of
// the hour, the first time a lookup needs the bucket, and kept (least
// recently used out, within Options.BucketDirBytes); lookups then filter
// its rows in Go, decode only the blocks of the rows they return (the
// block cache), and confirm hashed values on the record's fields, as
// queryRange does.
//
// Exactness: a directory is used only while the bucket index counts as
// many records of the bucket as the directory read. The index counts a
// record before its append's COMMIT, appends are serialised, and a
// lookup reads in one DuckDB snapshot, so a read that finds as many rows
// as the index counted holds every row of the bucket; an append to the
// bucket changes the count, and the directory is read again, unless the
// tail holds the records appended since it was read (dirSince). Retention
// (the only thing that deletes rows while the store is open) empties the
// directories while it holds rw exclusively (DeleteReceivedBefore).
// Compaction rewrites a closed store, whose directories start empty at
// the next Open.

// defaultBucketDirBytes bounds the bucket directories kept (Options.
// BucketDirBytes).
const defaultBucketDirBytes = 64 << 20

// bucketDir holds the rows of one bucket, newest first (event_time DESC,
// event_id DESC, as the lookups order them), column by column.
type bucketDir struct {
	// idxN is the bucket index's count of the bucket when the directory
	// was read; ok: the read found as many rows (the directory is whole).
	idxN int64
	ok   bool
	// seq is the last sequence number committed when it was read (the
	// store's committed: the read ran in a lookup, under rw, so no
	// COMMIT ran meanwhile); -1: unknown (a row without one, or of a
	// larger one). A whole directory holds every record of the bucket up
	// to it. The bucket's records after it, when the tail holds them
	// all, make the directory whole again after an append (dirSince).
	seq int64

	times    []int64
	received []int64  // math.MinInt64 where NULL
	idEnd    []uint32 // row i's event ID is ids[idEnd[i-1]:idEnd[i]]
	ids      string
	frEnd    []uint32 // row i's record column is frames[frEnd[i-1]:frEnd[i]]
	frames   []byte
	// names and sources index strs (strs[0] is "": NULL or empty).
	names, sources []uint32
	strs           []string
	// nameRows lists the rows of each string of strs as their event
	// name, string by string, each string's rows in order: string v's
	// are nameRows[nameEnd[v-1]:nameEnd[v]] (span32). srcRows and
	// srcEnd: the same for the event source. A lookup by name or source
	// visits its rows only: a rare name's bucket holds one or two of
	// 1,344 (the 1M bench store), which a scan of every row compared
	// (issue 19, session 14).
	nameRows, nameEnd []uint32
	srcRows, srcEnd   []uint32
	readOnly          []uint8
	user, akid        []uint64 // 0 where NULL
	resEnd            []uint32 // row i's resource hashes are res[resEnd[i-1]:resEnd[i]]
	res               []uint64
	bytes             int
}

func (d *bucketDir) len() int { return len(d.times) }

func span32(ends []uint32, i int) (int, int) {
	if i == 0 {
		return 0, int(ends[0])
	}
	return int(ends[i-1]), int(ends[i])
}

func (d *bucketDir) id(i int) string {
	a, b := span32(d.idEnd, i)
	return d.ids[a:b]
}

func (d *bucketDir) frame(i int) []byte {
	a, b := span32(d.frEnd, i)
	return d.frames[a:b:b]
}

func (d *bucketDir) resources(i int) []uint64 {
	a, b := span32(d.resEnd, i)
	return d.res[a:b]
}

// str returns the index of v in strs, or -1.
func (d *bucketDir) str(v string) int {
	for i, s := range d.strs {
		if s == v {
			return i
		}
	}
	return -1
}

// bucketDirs keeps bucket directories, least recently used out first,
// within a byte budget.
type bucketDirs struct {
	mu       sync.Mutex
	max, cur int
	ll       *list.List
	m        map[tailBucket]*list.Element
	// loads counts the directories read, for tests.
	loads int64
}

type cachedDir struct {
	b tailBucket
	d *bucketDir
}

func newBucketDirs(max int) *bucketDirs {
	return &bucketDirs{max: max, ll: list.New(), m: map[tailBucket]*list.Element{}}
}

func (c *bucketDirs) get(b tailBucket) *bucketDir {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[b]
	if !ok {
		return nil
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cachedDir).d
}

func (c *bucketDirs) put(b tailBucket, d *bucketDir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads++
	if e, ok := c.m[b]; ok {
		c.cur -= e.Value.(*cachedDir).d.bytes
		c.ll.Remove(e)
		delete(c.m, b)
	}
	if d.bytes > c.max {
		return
	}
	c.m[b] = c.ll.PushFront(&cachedDir{b, d})
	c.cur += d.bytes
	for c.cur > c.max {
		e := c.ll.Back()
		x := e.Value.(*cachedDir)
		c.ll.Remove(e)
		delete(c.m, x.b)
		c.cur -= x.d.bytes
	}
}

// clear forgets every directory (rows were deleted).
func (c *bucketDirs) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	c.m = map[tailBucket]*list.Element{}
	c.cur = 0
}

func (c *bucketDirs) loaded() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads
}

// dir returns the directory of bucket d of k when it is whole for the
// index's count n (read now if it is not held), and nil when the bucket
// must go to SQL (an append to it is under way, or one was rolled back).
// A directory read before appends to the bucket is whole again with the
// records of those appends when the tail holds them (dirSince): newer
// then holds those of them q takes (keep), newest first, at most need.
func (s *Store) dir(ctx context.Context, k partKey, d, n int64, need int, keep func(*audit.Record, int64) bool) (x *bucketDir, newer []audit.Record, err error) {
	b := tailBucket{k, d}
	if x := s.dirs.get(b); x != nil {
		if x.idxN == n {
			if !x.ok {
				return nil, nil, nil // read for this count and not whole: SQL until it changes
			}
			return x, nil, nil
		}
		switch newer, st := s.dirSince(x, b, n, need, keep); st {
		case sinceWhole:
			return x, newer, nil
		case sincePending:
			// An append to the bucket is not committed yet (or was
			// rolled back): a read now would find the directory not
			// whole for n, and SQL would answer the bucket until its
			// count changed. SQL answers this lookup; the directory
			// stays for the lookups after the commit.
			return nil, nil, nil
		}
	}
	x, err = s.readDir(ctx, k, d)
	if err != nil {
		return nil, nil, err
	}
	if x = s.keepDir(b, x, n); !x.ok {
		return nil, nil, nil
	}
	return x, nil, nil
}

// What the tail tells of a directory read before appends to its bucket
// (dirSince).
const (
	sinceNo      = iota // it does not hold every record of the bucket after the directory's: read it again
	sinceWhole          // with them the directory holds the n records the index counts
	sincePending        // it holds them, and the index counts more: an append not committed (or rolled back)
)

// dirSince tells whether the whole directory x of bucket b, with the
// tail's records of b after x.seq, holds the n records the index counts,
// and returns those of them keep accepts (see tail.since). Exact as the
// tail's own answers are (tail.newestOf): the records after x.seq are
// not in x, the tail's are distinct and stored, and the index counts
// every stored record, so x's rows and the tail's records make n records
// only when they are every record of the bucket. The index counts a
// record before its COMMIT and the tail after it: fewer means an append
// to the bucket under way, when the tail holds every record after x.seq.
func (s *Store) dirSince(x *bucketDir, b tailBucket, n int64, need int, keep func(*audit.Record, int64) bool) ([]audit.Record, int) {
	if !x.ok || x.seq < 0 || x.idxN > n {
		return nil, sinceNo
	}
	newer, held, reaches := s.tail.since(b.k, b.d, x.seq, s.committed.Load(), need, keep)
	switch {
	case !reaches:
		return nil, sinceNo
	case int64(x.len())+held == n:
		return newer, sinceWhole
	case int64(x.len())+held < n:
		return nil, sincePending
	}
	return nil, sinceNo
}

// keepDir keeps x, read when the index counted n records of bucket b, and
// returns what it kept: x if it holds n rows (whole), else a directory
// that only remembers the count (SQL answers b until it changes).
func (s *Store) keepDir(b tailBucket, x *bucketDir, n int64) *bucketDir {
	x.idxN = n
	x.ok = int64(x.len()) == n
	if !x.ok {
		x = &bucketDir{idxN: n, bytes: 64} // remember the count only
	}
	s.dirs.put(b, x)
	return x
}

// readDir reads the rows of bucket d of k, newest first.
func (s *Store) readDir(ctx context.Context, k partKey, d int64) (*bucketDir, error) {
	xs, err := s.readDirs(ctx, k, []int64{d})
	if err != nil {
		return nil, err
	}
	return xs[0], nil
}

// readDirs reads the rows of the buckets ds of k (newest first, each
// once) in one query, and returns their directories in the order of ds.
// A lookup that walks many candidate hours (a rare value) reads their
// directories a few queries at a time instead of one query an hour
// (fromDirs, dirsAhead).
func (s *Store) readDirs(ctx context.Context, k partKey, ds []int64) ([]*bucketDir, error) {
	var sb sqlQuery
	str := sb.str
	sb.WriteString(`SELECT event_time, event_id, ` + refColumns + `, received, event_name, event_source, read_only, user_hash, akid_hash, res_hashes, seq FROM events WHERE account = `)
	str(k.account)
	sb.WriteString(` AND region = `)
	str(k.region)
	// The range of every bucket asked prunes the row groups by their zone
	// maps; the buckets' own ranges keep the rows of those only.
	fmt.Fprintf(&sb, ` AND category = %d AND event_time BETWEEN %d AND %d`,
		uint8(k.category), ds[len(ds)-1]*bucketSeconds, ds[0]*bucketSeconds+bucketSeconds-1)
	if len(ds) > 1 {
		sb.WriteString(` AND (`)
		for i, d := range ds {
			if i > 0 {
				sb.WriteString(` OR `)
			}
			fmt.Fprintf(&sb, `event_time BETWEEN %d AND %d`, d*bucketSeconds, d*bucketSeconds+bucketSeconds-1)
		}
		sb.WriteByte(')')
	}
	sb.WriteString(` ORDER BY event_time DESC, event_id DESC`)
	committed := s.committed.Load()
	s.queries.Add(1)
	rows, err := s.db.QueryContext(ctx, sb.String(), sb.args...)
	if err != nil {
		return nil, fmt.Errorf("duckdb: read bucket: %w", err)
	}
	defer rows.Close()
	out := make([]*bucketDir, len(ds))
	var (
		x      *bucketDir
		strIdx map[string]uint32
		ids    strings.Builder
		at     = -1 // x is out[at]
	)
	intern := func(v sql.NullString) uint32 {
		if !v.Valid {
			return 0
		}
		i, ok := strIdx[v.String]
		if !ok {
			i = uint32(len(x.strs))
			x.strs = append(x.strs, v.String)
			strIdx[v.String] = i
			x.bytes += 16 + len(v.String)
		}
		return i
	}
	// next finishes the directory being read and starts those up to out[i].
	next := func(i int) {
		for ; at < i; at++ {
			if x != nil {
				finishDir(x, &ids)
			}
			x, strIdx = &bucketDir{strs: []string{""}, seq: committed}, map[string]uint32{"": 0}
			ids.Reset()
			out[at+1] = x
		}
	}
	for rows.Next() {
		var (
			t             int64
			id            string
			frame         []byte
			recv          sql.NullInt64
			name, src     sql.NullString
			ro            uint8
			user, akid, r any
			seq           sql.NullInt64
			ref           rowRef
		)
		if err := rows.Scan(&t, &id, &frame, &ref.id, &ref.off, &ref.n, &recv, &name, &src, &ro, &user, &akid, &r, &seq); err != nil {
			return nil, fmt.Errorf("duckdb: read bucket: %w", err)
		}
		// The rows come newest first, so bucket by bucket in the order of
		// ds (newest first).
		i := max(at, 0)
		for i < len(ds) && bucketOf(t) < ds[i] {
			i++
		}
		if i == len(ds) || bucketOf(t) != ds[i] {
			return nil, fmt.Errorf("duckdb: read bucket: a row of hour %d, not asked for", bucketOf(t))
		}
		next(i)
		if ids.Len()+len(id) > math.MaxUint32 || len(x.frames)+len(frame) > math.MaxUint32 {
			return nil, fmt.Errorf("duckdb: read bucket: too large")
		}
		if !seq.Valid || seq.Int64 > committed {
			x.seq = -1 // not the snapshot's last committed: no tail answers with it
		}
		x.times = append(x.times, t)
		if recv.Valid {
			x.received = append(x.received, recv.Int64)
		} else {
			x.received = append(x.received, math.MinInt64)
		}
		ids.WriteString(id)
		x.idEnd = append(x.idEnd, uint32(ids.Len()))
		if x.frames, err = ref.appendFrame(x.frames, frame); err != nil {
			return nil, fmt.Errorf("duckdb: read bucket: record %q: %w", id, err)
		}
		x.frEnd = append(x.frEnd, uint32(len(x.frames)))
		x.names = append(x.names, intern(name))
		x.sources = append(x.sources, intern(src))
		x.readOnly = append(x.readOnly, ro)
		u, _ := user.(uint64)
		a, _ := akid.(uint64)
		x.user = append(x.user, u)
		x.akid = append(x.akid, a)
		if list, ok := r.([]any); ok {
			for _, h := range list {
				if v, ok := h.(uint64); ok {
					x.res = append(x.res, v)
				}
			}
		}
		x.resEnd = append(x.resEnd, uint32(len(x.res)))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("duckdb: read bucket: %w", err)
	}
	next(len(ds) - 1)
	finishDir(x, &ids)
	return out, nil
}

// finishDir completes x, whose event IDs ids holds.
func finishDir(x *bucketDir, ids *strings.Builder) {
	x.ids = ids.String()
	x.frames = slices.Clip(x.frames)
	x.nameRows, x.nameEnd = groupRows(x.names, len(x.strs))
	x.srcRows, x.srcEnd = groupRows(x.sources, len(x.strs))
	// 8 (time) + 8 (received) + 3*4 (ends) + 2*4 (strings) + 1 + 2*8
	// (hashes) + 2*4 (the name and source rows).
	x.bytes += 256 + len(x.times)*61 + len(x.ids) + len(x.frames) + 8*len(x.res) + 8*len(x.strs)
}

// groupRows lists the rows (indexes of vals) by value, values 0 to n-1
// in turn, each value's rows in order: value v's rows are
// rows[ends[v-1]:ends[v]] (span32).
func groupRows(vals []uint32, n int) (rows, ends []uint32) {
	ends = make([]uint32, n)
	for _, v := range vals {
		ends[v]++
	}
	var start uint32
	for v, c := range ends {
		ends[v] = start // the value's start, until the rows are placed
		start += c
	}
	rows = make([]uint32, len(vals))
	for i, v := range vals {
		rows[ends[v]] = uint32(i)
		ends[v]++
	}
	return rows, ends
}

// dirFilter is a lookup's filter over the rows of a directory.
type dirFilter struct {
	q          *audit.Query
	lo, hi     int64
	since      int64 // received >= since; math.MinInt64: no filter
	byEventID  string
	name, src  string
	hasName    bool
	hasSrc     bool
	user, akid uint64
	hasUser    bool
	hasAkid    bool
	readOnly   int // -1: any
	res        []uint64
}

func (s *Store) dirFilterOf(q *audit.Query, lo, hi int64) dirFilter {
	f := dirFilter{q: q, lo: lo, hi: hi, since: math.MinInt64, readOnly: -1}
	// As queryRange: the filter on received only when some record was
	// received before it (a NULL received then fails it, as in SQL).
	if since := q.ReceivedSince.Unix(); !q.ReceivedSince.IsZero() && since > s.minReceived.Load() {
		f.since = since
	}
	for _, a := range q.Attributes {
		switch a.Key {
		case audit.AttrEventID:
			f.byEventID = a.Value
		case audit.AttrEventName:
			f.name, f.hasName = a.Value, true
		case audit.AttrEventSource:
			f.src, f.hasSrc = a.Value, true
		case audit.AttrUsername:
			f.user, f.hasUser = token(a.Key, a.Value), true
		case audit.AttrAccessKeyID:
			f.akid, f.hasAkid = token(a.Key, a.Value), true
		case audit.AttrReadOnly:
			v := audit.False
			if a.Value == "true" {
				v = audit.True
			}
			f.readOnly = int(v)
		case audit.AttrResourceType, audit.AttrResourceName:
			f.res = append(f.res, token(a.Key, a.Value))
		}
	}
	return f
}

// matches appends to out, newest first, the rows of x that f accepts, up
// to want of them, starting at row from; it returns them and the row to
// go on from (x.len() when the bucket is done).
func (f *dirFilter) matches(x *bucketDir, from, want int, out []int) ([]int, int) {
	name, src := -1, -1
	if f.hasName {
		if name = x.str(f.name); name <= 0 {
			return out, x.len() // no row holds it (an empty value is never stored)
		}
	}
	if f.hasSrc {
		if src = x.str(f.src); src <= 0 {
			return out, x.len()
		}
	}
	var ct int64
	var cid string
	if c := f.q.After; c != nil {
		ct, cid = c.Time.Unix(), c.EventID
	}
	// With a name or a source, only its rows (the fewer of the two).
	var group []uint32
	if name >= 0 {
		a, b := span32(x.nameEnd, name)
		group = x.nameRows[a:b]
	}
	if src >= 0 {
		if a, b := span32(x.srcEnd, src); name < 0 || b-a < len(group) {
			group = x.srcRows[a:b]
		}
	}
	got := 0
	// visit takes row i if f accepts it; it stops the walk when the rows
	// are older than f's range (next: none) or the page is full (next:
	// the row after i).
	visit := func(i int) (next int, stop bool) {
		ok, older := f.row(x, i, ct, cid, name, src)
		switch {
		case older:
			return x.len(), true
		case ok:
			out = append(out, i)
			if got++; got == want {
				return i + 1, true
			}
		}
		return 0, false
	}
	if name >= 0 || src >= 0 {
		k, _ := slices.BinarySearch(group, uint32(from))
		for _, r := range group[k:] {
			if next, stop := visit(int(r)); stop {
				return out, next
			}
		}
		return out, x.len()
	}
	for i := from; i < x.len(); i++ {
		if next, stop := visit(i); stop {
			return out, next
		}
	}
	return out, x.len()
}

// row reports whether f accepts row i of x (name and src: the indexes of
// its name and source in x.strs, or -1), and whether the row is older
// than f's range (so are the rows after it).
func (f *dirFilter) row(x *bucketDir, i int, ct int64, cid string, name, src int) (ok, older bool) {
	t := x.times[i]
	if t > f.hi {
		return false, false
	}
	if t < f.lo {
		return false, true
	}
	if f.q.After != nil && t == ct && x.id(i) >= cid {
		return false, false
	}
	if x.received[i] < f.since {
		return false, false
	}
	if name >= 0 && x.names[i] != uint32(name) || src >= 0 && x.sources[i] != uint32(src) {
		return false, false
	}
	if f.readOnly >= 0 && int(x.readOnly[i]) != f.readOnly {
		return false, false
	}
	if f.hasUser && x.user[i] != f.user || f.hasAkid && x.akid[i] != f.akid {
		return false, false
	}
	if f.byEventID != "" && x.id(i) != f.byEventID {
		return false, false
	}
	if len(f.res) > 0 {
		rs := x.resources(i)
		if slices.ContainsFunc(f.res, func(h uint64) bool { return !slices.Contains(rs, h) }) {
			return false, false
		}
	}
	return true, false
}

// fromDirs answers the newest candidate buckets of spans (of k) from
// their directories, after the tail (fromTail) and before the queries:
// it appends to recs the matching records of each bucket, newest first,
// until recs holds need, and returns them, the spans without the
// buckets answered, and hi lowered below them. It stops at a bucket
// whose directory is not whole (SQL answers it and the rest). A lookup
// of one account and region only.
func (s *Store) fromDirs(ctx context.Context, q *audit.Query, k partKey, spans []span, lo, hi int64, need int, recs []audit.Record) ([]audit.Record, []span, int64, error) {
	byEventID := slices.ContainsFunc(q.Attributes, func(a audit.Attribute) bool { return a.Key == audit.AttrEventID })
	ahead := 1
	var err error
	for len(spans) > 0 && len(recs) < need && lo <= hi {
		if byEventID && len(recs) > 0 {
			break // (account, eventID) is unique
		}
		sp := spans[0]
		b := sp.buckets[0] // a candidate: a span starts with one
		if ahead, err = s.readAhead(ctx, k, spans, ahead); err != nil {
			return nil, nil, 0, err
		}
		want := need - len(recs)
		x, newer, err := s.dir(ctx, k, b.d, b.n, want, tailKeep(q, lo, hi))
		if err != nil {
			return nil, nil, 0, err
		}
		if x == nil {
			break
		}
		f := s.dirFilterOf(q, lo, hi)
		var rows []int
		var got []audit.Record
		for from := 0; from < x.len() && len(got) < want; {
			rows, from = f.matches(x, from, want-len(got), rows[:0])
			if len(rows) == 0 {
				break
			}
			if len(newer) == want {
				// The page ends at the tail's want-th match or above:
				// the rows older than it are not decoded.
				oldest := &newer[want-1]
				if c := cutOlder(x, rows, oldest.Time.Unix(), oldest.EventID); c < len(rows) {
					rows, from = rows[:c], x.len()
				}
			}
			dec, err := s.dirRecords(ctx, q, k, x, rows)
			if err != nil {
				return nil, nil, 0, err
			}
			got = append(got, dec...)
		}
		recs = append(recs, mergeNewest(got, newer, want)...)
		hi = min(hi, b.d*bucketSeconds-1)
		spans = dropAnswered(spans)
	}
	return recs, spans, hi, nil
}

// Directories read ahead (fromDirs): a lookup whose next candidate
// bucket has no directory reads it with the directories of the next
// candidates that have none, in one query: 1 bucket the first time, 4x
// as many each time after (the page was not full), at most
// maxDirsAhead buckets and maxDirAheadRows rows (by the index's counts),
// and a quarter of Options.BucketDirBytes at dirRowBytes a row (so that
// what is read ahead is not evicted before it is used).
// A common value reads the one hour that fills its page, as before; a
// rare value, whose page takes tens of hours, reads their directories in
// a few queries instead of one an hour: the first lookups after a start
// (or their replay at Open, replayBudget) and a deep page pay a query's
// planning and its scan of the row groups once for many hours.
const (
	maxDirsAhead    = 64
	maxDirAheadRows = 4 * maxSpanRows
	dirRowBytes     = 100
)

// readAhead reads, when the first candidate bucket of spans has no
// directory for its count, the directories of up to ahead candidates
// without one (see maxDirsAhead) and keeps them, and returns the next
// ahead.
func (s *Store) readAhead(ctx context.Context, k partKey, spans []span, ahead int) (int, error) {
	held := func(b bucketRows) bool {
		x := s.dirs.get(tailBucket{k, b.d})
		if x == nil {
			return false
		}
		if x.idxN == b.n {
			return true
		}
		_, st := s.dirSince(x, tailBucket{k, b.d}, b.n, 0, nil)
		return st != sinceNo // dir answers it, or leaves it to SQL
	}
	if held(spans[0].buckets[0]) {
		return ahead, nil
	}
	var want []bucketRows
	var rows int64
gather:
	for _, sp := range spans {
		for _, b := range sp.buckets {
			if len(want) == ahead || len(want) > 0 && (rows+b.n > maxDirAheadRows || (rows+b.n)*dirRowBytes > int64(s.dirs.max)/4) {
				break gather
			}
			if !b.cand || len(want) > 0 && held(b) {
				continue
			}
			want = append(want, b)
			rows += b.n
		}
	}
	if len(want) < 2 {
		return min(4*ahead, maxDirsAhead), nil // dir reads the one bucket
	}
	ds := make([]int64, len(want))
	for i, b := range want {
		ds[i] = b.d
	}
	xs, err := s.readDirs(ctx, k, ds)
	if err != nil {
		return 0, err
	}
	for i, x := range xs {
		s.keepDir(tailBucket{k, want[i].d}, x, want[i].n)
	}
	return min(4*ahead, maxDirsAhead), nil
}

// dirRecords returns the records of rows of x, decoded (their blocks from
// the cache or the table) and confirmed on their fields (a hash
// collision is dropped), in the rows' order.
func (s *Store) dirRecords(ctx context.Context, q *audit.Query, k partKey, x *bucketDir, rows []int) ([]audit.Record, error) {
	frames := make([][]byte, len(rows))
	for j, i := range rows {
		frames[j] = x.frame(i)
	}
	bs, err := s.blocksOf(frames)
	if err != nil {
		return nil, err
	}
	if err := bs.fetchForLookup(ctx, s.db); err != nil {
		return nil, err
	}
	contents, err := s.contents(frames, bs)
	if err != nil {
		return nil, err
	}
	out := make([]audit.Record, 0, len(rows))
	for j, i := range rows {
		w := recordRow{t: x.times[i], id: x.id(i)}
		r, err := w.record(contents[j])
		if err != nil {
			return nil, err
		}
		r.Account, r.Region, r.Category = k.account, k.region, k.category
		if !confirmed(&r, q.Attributes) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// cutOlder returns how many of rows (rows of x, newest first) are newer
// than a record of time t (Unix seconds) and event ID id, in the lookups'
// order (time, then event ID, both descending).
func cutOlder(x *bucketDir, rows []int, t int64, id string) int {
	for j, i := range rows {
		if x.times[i] < t || x.times[i] == t && x.id(i) < id {
			return j
		}
	}
	return len(rows)
}

// mergeNewest merges a and b, each newest first in the lookups' order
// (time, then event ID, both descending), and returns the newest n.
func mergeNewest(a, b []audit.Record, n int) []audit.Record {
	if len(b) == 0 {
		return a[:min(len(a), n)]
	}
	out := make([]audit.Record, 0, min(n, len(a)+len(b)))
	for len(out) < n && (len(a) > 0 || len(b) > 0) {
		if len(b) == 0 || len(a) > 0 && newerThan(&a[0], &b[0]) {
			out, a = append(out, a[0]), a[1:]
		} else {
			out, b = append(out, b[0]), b[1:]
		}
	}
	return out
}

// newerThan reports whether r comes before o in the lookups' order.
func newerThan(r, o *audit.Record) bool {
	if t, u := r.Time.Unix(), o.Time.Unix(); t != u {
		return t > u
	}
	return r.EventID > o.EventID
}
