package sealed

import (
	"cmp"
	"container/heap"
	"context"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Fetch returns the entries of the block whose Meta is m, newest first (as
// Decoder.Decode returns them). The store reads and caches blocks; the Dir
// only asks. The Dir does not change the entries; the records it returns
// share their memory.
type Fetch func(ctx context.Context, m *Meta) ([]Entry, error)

// Dir is the sealed tier's directory: every block's Meta, in memory, and
// the lookups, the append-order feed, the duplicate check and retention's
// plan answered from them, fetching only the blocks they cannot rule out.
// It holds no block's bytes. Safe for concurrent use: lookups run beside
// Add and Remove and see the blocks held when they started.
//
// The Metas given to Add belong to the Dir: they must not be changed
// after.
type Dir struct {
	mu sync.RWMutex
	// parts holds each part's blocks newest first (TMax, then ID,
	// descending). A slice stored here is never changed: Add and Remove
	// store a new one, so a lookup can walk it without the lock.
	parts map[Part][]*Meta
	// idFilters holds each part's blocks' ID filters in its parts order,
	// side by side: Find reads them without each block's Meta.
	idFilters map[Part][]Bloom
	// accounts lists each account's parts, sorted (a new slice on change).
	accounts map[string][]Part
	byID     map[int64]*Meta
	// seq holds every block by SeqMin (then ID) and seqMax[i] the largest
	// SeqMax of seq[:i+1] (new slices on change).
	seq     []*Meta
	seqMax  []int64
	records int
	live    map[uint32]int64
	// span is the largest TMax - TMin of a block ever added (under a day:
	// a block's records share one UTC day).
	span int64
}

// NewDir returns an empty directory.
func NewDir() *Dir {
	return &Dir{
		parts:     map[Part][]*Meta{},
		idFilters: map[Part][]Bloom{},
		accounts:  map[string][]Part{},
		byID:      map[int64]*Meta{},
		live:      map[uint32]int64{},
	}
}

// newestFirst orders blocks as a part holds them: TMax, then ID, descending.
func newestFirst(a, b *Meta) int {
	if c := cmp.Compare(b.TMax, a.TMax); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

func bySeqMin(a, b *Meta) int {
	if c := cmp.Compare(a.SeqMin, b.SeqMin); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func comparePart(a, b Part) int {
	if c := cmp.Compare(a.Account, b.Account); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Region, b.Region); c != 0 {
		return c
	}
	return cmp.Compare(a.Category, b.Category)
}

// Add adds the blocks of ms. A block whose ID the Dir holds replaces it.
func (d *Dir) Add(ms ...*Meta) {
	if len(ms) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var replaced []int64
	for _, m := range ms {
		if _, ok := d.byID[m.ID]; ok {
			replaced = append(replaced, m.ID)
		}
	}
	if len(replaced) > 0 {
		d.remove(replaced)
	}
	added := map[Part][]*Meta{}
	for _, m := range ms {
		if old, ok := d.byID[m.ID]; ok { // twice in ms: the last one stays
			d.unaccount(old)
			added[old.Part] = slices.DeleteFunc(added[old.Part], func(x *Meta) bool { return x == old })
		}
		d.byID[m.ID] = m
		d.span = max(d.span, m.TMax-m.TMin)
		d.records += m.N
		d.live[m.Loc.Seg] += int64(m.Loc.Len)
		added[m.Part] = append(added[m.Part], m)
	}
	var fresh []*Meta
	for p, ns := range added {
		fresh = append(fresh, ns...)
		old, had := d.parts[p]
		// old is sorted: the new blocks sorted and merged into it, not
		// the whole part sorted again (a server's import adds a stage's
		// blocks to every part at a time: at 10M records that sort was
		// 13 of the server's 137 CPU-s).
		slices.SortFunc(ns, newestFirst)
		d.setPart(p, mergeSorted(old, ns, newestFirst))
		if !had {
			ps := append(slices.Clone(d.accounts[p.Account]), p)
			slices.SortFunc(ps, comparePart)
			d.accounts[p.Account] = ps
		}
	}
	slices.SortFunc(fresh, bySeqMin)
	d.setSeq(mergeSorted(d.seq, fresh, bySeqMin))
}

// mergeSorted returns a new slice of the elements of a and b, both sorted
// by cmp, sorted by cmp (a's first among equals). The run of a before b's
// first element is copied without comparing: new blocks mostly follow the
// old ones by SeqMin.
func mergeSorted(a, b []*Meta, cmp func(x, y *Meta) int) []*Meta {
	out := make([]*Meta, 0, len(a)+len(b))
	i := 0
	if len(b) > 0 {
		i, _ = slices.BinarySearchFunc(a, b[0], func(x, y *Meta) int {
			if cmp(x, y) <= 0 {
				return -1
			}
			return 1
		})
	}
	out = append(out, a[:i]...)
	j := 0
	for j < len(b) {
		if i < len(a) && cmp(a[i], b[j]) <= 0 {
			out = append(out, a[i])
			i++
		} else {
			out = append(out, b[j])
			j++
		}
	}
	return append(out, a[i:]...)
}

// setPart stores p's blocks, newest first, and their ID filters.
func (d *Dir) setPart(p Part, bs []*Meta) {
	fs := make([]Bloom, len(bs))
	for i, m := range bs {
		fs[i] = m.IDFilter
	}
	d.parts[p], d.idFilters[p] = bs, fs
}

// unaccount takes m out of the counts (Records, LiveBytes).
func (d *Dir) unaccount(m *Meta) {
	d.records -= m.N
	if d.live[m.Loc.Seg] -= int64(m.Loc.Len); d.live[m.Loc.Seg] <= 0 {
		delete(d.live, m.Loc.Seg)
	}
}

func (d *Dir) setSeq(seq []*Meta) {
	seqMax := make([]int64, len(seq))
	top := int64(0)
	for i, m := range seq {
		top = max(top, m.SeqMax)
		seqMax[i] = top
	}
	d.seq, d.seqMax = seq, seqMax
}

// Remove removes the blocks of ids; an ID the Dir does not hold is left
// out.
func (d *Dir) Remove(ids ...int64) {
	if len(ids) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.remove(ids)
}

func (d *Dir) remove(ids []int64) {
	gone := map[*Meta]bool{}
	parts := map[Part]bool{}
	for _, id := range ids {
		m, ok := d.byID[id]
		if !ok {
			continue
		}
		delete(d.byID, id)
		d.unaccount(m)
		gone[m] = true
		parts[m.Part] = true
	}
	if len(gone) == 0 {
		return
	}
	drop := func(m *Meta) bool { return gone[m] }
	for p := range parts {
		bs := slices.DeleteFunc(slices.Clone(d.parts[p]), drop)
		if len(bs) > 0 {
			d.setPart(p, bs)
			continue
		}
		delete(d.parts, p)
		delete(d.idFilters, p)
		ps := slices.DeleteFunc(slices.Clone(d.accounts[p.Account]), func(q Part) bool { return q == p })
		if len(ps) > 0 {
			d.accounts[p.Account] = ps
		} else {
			delete(d.accounts, p.Account)
		}
	}
	d.setSeq(slices.DeleteFunc(slices.Clone(d.seq), drop))
}

// Block returns the Meta of block id, when the Dir holds it.
func (d *Dir) Block(id int64) (*Meta, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m, ok := d.byID[id]
	return m, ok
}

// Len returns the number of blocks held.
func (d *Dir) Len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.byID)
}

// Records returns the number of records in the blocks held.
func (d *Dir) Records() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.records
}

// MaxSeq returns the largest sequence number held (0 when empty): a feed
// reader past it has nothing to read from the tier.
func (d *Dir) MaxSeq() int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(d.seqMax) == 0 {
		return 0
	}
	return d.seqMax[len(d.seqMax)-1]
}

// Blocks returns every block held, by SeqMin. The slice is the
// directory's own and is never changed by it (Add and Remove store a new
// one): read it, never change it.
func (d *Dir) Blocks() []*Meta {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.seq
}

// LiveBytes returns the bytes the blocks held reference in each segment
// (the sum of their Loc.Len by Loc.Seg): what a segment's reclaiming
// compares with its size.
func (d *Dir) LiveBytes() map[uint32]int64 {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return maps.Clone(d.live)
}

// ReceivedBefore returns retention's plan for a cut at t (Unix seconds):
// the blocks whose every record was received before t (RecvMax < t), to
// drop whole, and those with records on both sides (RecvMin < t <=
// RecvMax), whose records received at or after t the store writes again
// in new blocks. Both are in ID order.
func (d *Dir) ReceivedBefore(t int64) (whole, straddling []*Meta) {
	d.mu.RLock()
	for _, m := range d.byID {
		switch {
		case m.RecvMax < t:
			whole = append(whole, m)
		case m.RecvMin < t:
			straddling = append(straddling, m)
		}
	}
	d.mu.RUnlock()
	byID := func(a, b *Meta) int { return cmp.Compare(a.ID, b.ID) }
	slices.SortFunc(whole, byID)
	slices.SortFunc(straddling, byID)
	return whole, straddling
}

// ReadAppended returns the entries held with the smallest sequence numbers
// after after, at most limit of them, in sequence order: the tier's part of
// the store's ReadAppended. It fetches the blocks that hold sequence
// numbers after after by their SeqMin, and stops once the next block's
// SeqMin is past the limit-th smallest number found. Its errors are
// fetch's and ctx's.
func (d *Dir) ReadAppended(ctx context.Context, after int64, limit int, fetch Fetch) ([]Entry, error) {
	if limit <= 0 {
		return nil, nil
	}
	d.mu.RLock()
	seq, seqMax := d.seq, d.seqMax
	d.mu.RUnlock()
	// The first block that may hold a number after after: seqMax grows.
	i := sort.Search(len(seqMax), func(i int) bool { return seqMax[i] > after })
	var out []Entry
	bySeq := func(a, b Entry) int { return cmp.Compare(a.Seq, b.Seq) }
	sorted := true
	for ; i < len(seq); i++ {
		m := seq[i]
		if m.SeqMax <= after {
			continue
		}
		if len(out) >= limit {
			if !sorted {
				slices.SortFunc(out, bySeq)
				out, sorted = out[:limit], true
			}
			if m.SeqMin > out[limit-1].Seq {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		es, err := fetch(ctx, m)
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Seq > after && (len(out) < limit || !sorted || e.Seq < out[limit-1].Seq) {
				out = append(out, e)
				sorted = false
			}
		}
	}
	slices.SortFunc(out, bySeq)
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Find reports whether the tier holds a record of account with eventID,
// whatever its time: the duplicate check's confirmation. It first tests
// the ID filters of the blocks whose [TMin, TMax] holds t, found in each
// of the account's parts by TMax (no block spans more than the Dir's
// span), and fetches those whose filter may hold the ID: a duplicate is
// found there, in a few filters however many blocks the account holds.
// Only then does it test the ID filter of every other block of the
// account and fetch its candidates. So a miss tests every block (and
// fetches only its filters' false positives). Its errors are fetch's and
// ctx's.
func (d *Dir) Find(ctx context.Context, account, eventID string, t time.Time, fetch Fetch) (bool, error) {
	tok := Token(audit.AttrEventID, eventID)
	d.mu.RLock()
	lists := make([][]*Meta, 0, len(d.accounts[account]))
	filters := make([][]Bloom, 0, len(d.accounts[account]))
	for _, p := range d.accounts[account] {
		lists = append(lists, d.parts[p])
		filters = append(filters, d.idFilters[p])
	}
	span := d.span
	d.mu.RUnlock()
	ts := t.Unix()
	// A part's blocks are newest first by TMax; those that may hold ts
	// have TMax in [ts, ts+span]: bs[lo[j]:hi[j]].
	lo := make([]int, len(lists))
	hi := make([]int, len(lists))
	for j, bs := range lists {
		lo[j] = sort.Search(len(bs), func(i int) bool { return bs[i].TMax <= ts+span })
		hi[j] = lo[j] + sort.Search(len(bs)-lo[j], func(i int) bool { return bs[lo[j]+i].TMax < ts })
	}
	holds := func(j, i int) bool { return lo[j] <= i && i < hi[j] && lists[j][i].TMin <= ts }
	find := func(cands []*Meta) (bool, error) {
		for _, m := range cands {
			if err := ctx.Err(); err != nil {
				return false, err
			}
			es, err := fetch(ctx, m)
			if err != nil {
				return false, err
			}
			for i := range es {
				if es[i].Record.EventID == eventID {
					return true, nil
				}
			}
		}
		return false, nil
	}
	var cands []*Meta
	for j, bs := range lists {
		fs := filters[j]
		for i := lo[j]; i < hi[j]; i++ {
			if holds(j, i) && fs[i].Has(tok) {
				cands = append(cands, bs[i])
			}
		}
	}
	if ok, err := find(cands); ok || err != nil {
		return ok, err
	}
	cands = cands[:0]
	for j, bs := range lists {
		fs := filters[j]
		for i := range fs {
			if !holds(j, i) && fs[i].Has(tok) {
				cands = append(cands, bs[i])
			}
		}
	}
	return find(cands)
}

// Lookup answers q over the records held: up to q.Limit records that
// q.Matches, strictly after q.After (Cursor.Before) and received at or
// after q.ReceivedSince's second (as the store's table compares them),
// newest first (audit.Newer); more reports that another such record
// follows the page. The records share memory with fetch's entries.
//
// It walks the blocks of q's parts merged by TMax, newest first, and
// fetches only those it cannot rule out by their Meta: the part, [TMin,
// TMax] against Start, End and the cursor, RecvMax against ReceivedSince,
// the readOnly counts, the ID filter for EventId and the value filter for
// the other attributes. It stops once it holds the page and one more record
// and the next block ends before the last of them, or, in one account, at
// an EventId's first match. Its errors are fetch's and ctx's.
func (d *Dir) Lookup(ctx context.Context, q *audit.Query, fetch Fetch) (recs []audit.Record, more bool, err error) {
	limit := max(q.Limit, 1)
	pr, ok := newPrune(q)
	if !ok {
		return nil, false, nil // no record can match
	}
	d.mu.RLock()
	span := d.span
	var lists [][]*Meta
	want := func(p Part) bool {
		return p.Category == q.Category && (q.AnyRegion || p.Region == q.Region)
	}
	if q.AnyAccount {
		for p, bs := range d.parts {
			if want(p) {
				lists = append(lists, bs)
			}
		}
	} else {
		for _, p := range d.accounts[q.Account] {
			if want(p) {
				lists = append(lists, d.parts[p])
			}
		}
	}
	d.mu.RUnlock()

	// A part's blocks that end more than the longest span after the newest
	// time a record may have start after it: skip them by their TMax.
	w := &walk{}
	for _, bs := range lists {
		i := 0
		if pr.hi < maxTime-span {
			i = sort.Search(len(bs), func(i int) bool { return bs[i].TMax <= pr.hi+span })
		}
		if i < len(bs) {
			w.heads = append(w.heads, head{bs, i})
		}
	}
	heap.Init(w)
	var since int64
	if !q.ReceivedSince.IsZero() {
		since = q.ReceivedSince.Unix()
	}
	page := make([]audit.Record, 0, min(limit, 63)+1)
	full := func() bool { return len(page) > limit }
	for w.Len() > 0 {
		m := w.heads[0].bs[w.heads[0].i]
		if m.TMax < pr.lo {
			break // every block left ends before Start
		}
		if full() && time.Unix(m.TMax, 0).Before(page[limit].Time) {
			break // none left holds a record before the page's last
		}
		w.next()
		if m.TMin > pr.hi || !pr.keep(m) || !q.ReceivedSince.IsZero() && m.RecvMax < since {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		es, err := fetch(ctx, m)
		if err != nil {
			return nil, false, err
		}
		found := false
		for i := range es {
			e := &es[i]
			r := &e.Record
			if full() && audit.Newer(r, &page[limit]) >= 0 {
				break // the block is newest first: the rest are older
			}
			if !q.ReceivedSince.IsZero() && e.Received < since || q.After != nil && !q.After.Before(r) || !q.Matches(r) {
				continue
			}
			j, _ := slices.BinarySearchFunc(page, r, func(a audit.Record, b *audit.Record) int { return audit.Newer(&a, b) })
			if full() {
				page = page[:limit]
			}
			page = slices.Insert(page, j, *r)
			found = true
		}
		if found && pr.unique {
			break
		}
	}
	if len(page) > limit {
		return page[:limit], true, nil
	}
	return page, false, nil
}

const maxTime = 1<<63 - 1

// prune is what a lookup rules blocks out by.
type prune struct {
	// lo and hi bound the records' times in Unix seconds (Start, End and
	// the cursor).
	lo, hi int64
	// ro is the readOnly asked: audit.True, audit.False or audit.Unset
	// (any).
	ro audit.Tri
	// ids are the EventIds' tokens (the ID filter), toks the other
	// attributes' (the value filter).
	ids, toks []uint64
	// unique: the page holds at most one record (an EventId in one
	// account).
	unique bool
}

// newPrune returns q's prune, and false when no record can match q.
func newPrune(q *audit.Query) (prune, bool) {
	pr := prune{lo: -maxTime - 1, hi: maxTime}
	if !q.Start.IsZero() {
		pr.lo = q.Start.Unix()
		if q.Start.Nanosecond() != 0 {
			pr.lo++
		}
	}
	if !q.End.IsZero() {
		pr.hi = q.End.Unix()
	}
	if q.After != nil {
		pr.hi = min(pr.hi, q.After.Time.Unix())
	}
	for _, a := range q.Attributes {
		switch a.Key {
		case audit.AttrEventID:
			pr.ids = append(pr.ids, Token(a.Key, a.Value))
			pr.unique = !q.AnyAccount
		case audit.AttrReadOnly:
			var ro audit.Tri
			switch a.Value {
			case audit.True.String():
				ro = audit.True
			case audit.False.String():
				ro = audit.False
			default:
				return pr, false
			}
			if pr.ro != audit.Unset && pr.ro != ro {
				return pr, false
			}
			pr.ro = ro
		case audit.AttrEventName, audit.AttrEventSource:
			// A record without the field matches "": the filter holds no
			// token for an empty value.
			if a.Value != "" {
				pr.toks = append(pr.toks, Token(a.Key, a.Value))
			}
		case audit.AttrUsername, audit.AttrAccessKeyID, audit.AttrResourceType, audit.AttrResourceName:
			if a.Value == "" {
				return pr, false // HasAttribute never matches an empty one
			}
			pr.toks = append(pr.toks, Token(a.Key, a.Value))
		default:
			return pr, false // HasAttribute matches no other key
		}
	}
	return pr, pr.lo <= pr.hi
}

// keep reports whether m may hold a record of the lookup by its readOnly
// counts and filters.
func (pr *prune) keep(m *Meta) bool {
	switch pr.ro {
	case audit.True:
		if m.ROTrue == 0 {
			return false
		}
	case audit.False:
		if m.ROFalse == 0 {
			return false
		}
	}
	for _, t := range pr.ids {
		if !m.IDFilter.Has(t) {
			return false
		}
	}
	for _, t := range pr.toks {
		if !m.Filter.Has(t) {
			return false
		}
	}
	return true
}

// head is a part's next block in a walk.
type head struct {
	bs []*Meta
	i  int
}

// walk merges parts' blocks by TMax, newest first: a heap of their heads.
type walk struct{ heads []head }

func (w *walk) Len() int { return len(w.heads) }
func (w *walk) Less(i, j int) bool {
	return newestFirst(w.heads[i].bs[w.heads[i].i], w.heads[j].bs[w.heads[j].i]) < 0
}
func (w *walk) Swap(i, j int) { w.heads[i], w.heads[j] = w.heads[j], w.heads[i] }
func (w *walk) Push(x any)    { w.heads = append(w.heads, x.(head)) }
func (w *walk) Pop() any {
	h := w.heads[len(w.heads)-1]
	w.heads = w.heads[:len(w.heads)-1]
	return h
}

// next moves past the newest head block.
func (w *walk) next() {
	if h := &w.heads[0]; h.i+1 < len(h.bs) {
		h.i++
		heap.Fix(w, 0)
	} else {
		heap.Pop(w)
	}
}
