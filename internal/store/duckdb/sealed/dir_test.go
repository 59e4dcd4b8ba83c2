package sealed

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// The oracle's values: few of each, so that lookups match many records
// and several attributes at once still match some.
var (
	oAccounts   = []string{"111111111111", "222222222222", "333333333333"}
	oRegions    = []string{"us-east-1", "eu-west-1"}
	oCategories = []audit.Category{audit.CategoryManagement, audit.CategoryInsight}
	oNames      = []string{"GetObject", "PutObject", "ListBuckets", "AssumeRole", ""}
	oSources    = []string{"s3.amazonaws.com", "sts.amazonaws.com", "iam.amazonaws.com"}
	oUsers      = []string{"", "alice", "bob", "carol"}
	oKeys       = []string{"", "AKIA1", "AKIA2", "ASIA3"}
	oTypes      = []string{"", "AWS::S3::Bucket", "AWS::IAM::Role"}
	oResNames   = []string{"", "bucket-a", "bucket-b", "role-x"}
	oARNs       = []string{"", "arn:aws:s3:::bucket-a", "arn:aws:iam::1:role/x", "bucket-b"}
	oBase       = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC).Unix()
)

const oDays = 4

// oracleEntries returns n random entries: several accounts, regions and
// categories over oDays days, times from a few seconds a day (many equal
// ones, cut across blocks), IDs that sort across blocks and repeat across
// accounts, JSON of a few KiB (several blocks a part and day), sequence
// numbers shuffled against the times, received times spread.
func oracleEntries(rng *rand.Rand, n int) []Entry {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	seqs := rng.Perm(n)
	held := map[[2]string]bool{}
	var ids []string
	es := make([]Entry, 0, n)
	for len(es) < n {
		acct := pick(oAccounts)
		id := fmt.Sprintf("%04x-%d", rng.IntN(1<<16), rng.IntN(3))
		if len(ids) > 0 && rng.IntN(4) == 0 {
			id = ids[rng.IntN(len(ids))] // another account's ID
		}
		if held[[2]string{acct, id}] {
			continue
		}
		held[[2]string{acct, id}] = true
		ids = append(ids, id)
		day := int64(rng.IntN(oDays))
		sec := oBase + day*86400 + int64(rng.IntN(12))*7000 + int64(rng.IntN(3))
		if rng.IntN(50) == 0 {
			sec = oBase + day*86400 + 86399 // the day's last second
		}
		r := audit.Record{
			Account: acct, Region: pick(oRegions), Category: oCategories[rng.IntN(len(oCategories))],
			EventID: id, Time: time.Unix(sec, 0).UTC(),
			EventName: pick(oNames), EventSource: pick(oSources), Username: pick(oUsers), AccessKeyID: pick(oKeys),
			ReadOnly: audit.Tri(rng.IntN(3)),
		}
		for range rng.IntN(3) {
			r.Resources = append(r.Resources, audit.Resource{Type: pick(oTypes), Name: pick(oResNames), ARN: pick(oARNs)})
		}
		pad := strings.Repeat(string(rune('a'+rng.IntN(26))), 500+rng.IntN(4000))
		if rng.IntN(4) == 0 {
			r.Raw = fmt.Appendf(nil, `{"pad":%q}`, pad) // ID and time kept in the block
		} else {
			r.Raw = fmt.Appendf(nil, `{"eventTime":%q,"eventID":%q,"pad":%q}`, r.Time.Format(time.RFC3339), r.EventID, pad)
		}
		es = append(es, Entry{Record: r, Seq: int64(seqs[len(es)]) + 1, Received: 1_800_000_000 + int64(rng.IntN(10))*100})
	}
	return es
}

// store is a tier in memory: the blocks of es, encoded and decoded back,
// held by ID, and a fetch that counts its calls.
type store struct {
	blocks  map[int64][]Entry
	metas   []*Meta
	fetches atomic.Int64
}

func newStore(t testing.TB, es []Entry) *store {
	t.Helper()
	enc, err := NewEncoder()
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	s := &store{blocks: map[int64][]Entry{}}
	for i, b := range Split(slices.Clone(es)) {
		data, m, err := enc.Encode(b)
		if err != nil {
			t.Fatal(err)
		}
		m.ID = int64(i + 1)
		m.Loc = Loc{Seg: uint32(i % 3), Off: int64(i) * 1000, Len: uint32(len(data))}
		got, err := dec.Decode(data, &m)
		if err != nil {
			t.Fatal(err)
		}
		s.blocks[m.ID] = got
		s.metas = append(s.metas, &m)
	}
	return s
}

func (s *store) fetch(ctx context.Context, m *Meta) ([]Entry, error) {
	s.fetches.Add(1)
	es, ok := s.blocks[m.ID]
	if !ok {
		return nil, fmt.Errorf("no block %d", m.ID)
	}
	return es, nil
}

// entries returns the entries of the blocks dir holds.
func (s *store) entries(held map[int64]bool) []Entry {
	var out []Entry
	for id, es := range s.blocks {
		if held[id] {
			out = append(out, es...)
		}
	}
	return out
}

// partRecords counts the records q matches.
func (s *store) partRecords(q audit.Query) int {
	n := 0
	for _, es := range s.blocks {
		for i := range es {
			if q.Matches(&es[i].Record) {
				n++
			}
		}
	}
	return n
}

// bruteLookup is Lookup's reference: every entry filtered, sorted, paged.
func bruteLookup(es []Entry, q *audit.Query) ([]audit.Record, bool) {
	var all []audit.Record
	for i := range es {
		e := &es[i]
		if !q.Matches(&e.Record) || q.After != nil && !q.After.Before(&e.Record) ||
			!q.ReceivedSince.IsZero() && e.Received < q.ReceivedSince.Unix() {
			continue
		}
		all = append(all, e.Record)
	}
	slices.SortFunc(all, func(a, b audit.Record) int { return audit.Newer(&a, &b) })
	if len(all) > q.Limit {
		return all[:q.Limit], true
	}
	return all, false
}

func samePage(got, want []audit.Record) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		if d := sameRecord(&got[i], &want[i]); d != "" {
			return fmt.Sprintf("record %d (%s %s, want %s %s): %s differs", i, got[i].Account, got[i].EventID, want[i].Account, want[i].EventID, d)
		}
	}
	return ""
}

// randomQuery returns a lookup with random scope, attributes (values of a
// random entry, or from the pools), range, received time and limit.
func randomQuery(rng *rand.Rand, es []Entry) audit.Query {
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	e := &es[rng.IntN(len(es))].Record
	q := audit.Query{
		Account: e.Account, Region: e.Region, Category: e.Category,
		AnyAccount: rng.IntN(5) == 0, AnyRegion: rng.IntN(5) == 0,
		Limit: 1 + rng.IntN(50),
	}
	if rng.IntN(10) == 0 {
		q.Account = "999999999999"
	}
	if rng.IntN(10) == 0 {
		q.Category = audit.CategoryData
	}
	for range rng.IntN(3) {
		var a audit.Attribute
		switch rng.IntN(9) {
		case 0:
			a = audit.Attribute{Key: audit.AttrEventID, Value: e.EventID}
		case 1:
			a = audit.Attribute{Key: audit.AttrEventName, Value: pick(oNames)}
		case 2:
			a = audit.Attribute{Key: audit.AttrEventSource, Value: e.EventSource}
		case 3:
			a = audit.Attribute{Key: audit.AttrUsername, Value: pick(oUsers)}
		case 4:
			a = audit.Attribute{Key: audit.AttrAccessKeyID, Value: e.AccessKeyID}
		case 5:
			a = audit.Attribute{Key: audit.AttrReadOnly, Value: []string{"true", "false", "", "TRUE"}[rng.IntN(4)]}
		case 6:
			a = audit.Attribute{Key: audit.AttrResourceType, Value: pick(oTypes)}
		case 7:
			a = audit.Attribute{Key: audit.AttrResourceName, Value: pick(append(oResNames, oARNs...))}
		case 8:
			a = audit.Attribute{Key: audit.AttrEventName, Value: e.EventName}
		}
		q.Attributes = append(q.Attributes, a)
	}
	at := func() time.Time {
		return time.Unix(oBase+rng.Int64N(oDays*86400+100)-50, int64(rng.IntN(2))*500_000_000).UTC()
	}
	if rng.IntN(3) == 0 {
		q.Start = at()
		if rng.IntN(2) == 0 {
			q.Start = e.Time
		}
	}
	if rng.IntN(3) == 0 {
		q.End = at()
		if rng.IntN(2) == 0 {
			q.End = e.Time
		}
	}
	if rng.IntN(3) == 0 {
		q.ReceivedSince = time.Unix(1_800_000_000+int64(rng.IntN(11))*100-int64(rng.IntN(2))*50, int64(rng.IntN(2))*700_000_000)
	}
	return q
}

// checkLookups pages random queries to their end and compares every page
// with the brute-force answer.
func checkLookups(t *testing.T, rng *rand.Rand, d *Dir, s *store, es []Entry, queries int) {
	t.Helper()
	ctx := context.Background()
	for n := range queries {
		q := randomQuery(rng, es)
		var seen []audit.Record
		for page := 0; ; page++ {
			want, wantMore := bruteLookup(es, &q)
			got, more, err := d.Lookup(ctx, &q, s.fetch)
			if err != nil {
				t.Fatal(err)
			}
			if diff := samePage(got, want); diff != "" || more != wantMore {
				t.Fatalf("query %d %+v page %d: %s; more %v, want %v", n, q, page, diff, more, wantMore)
			}
			seen = append(seen, got...)
			if !more {
				break
			}
			q.After = q.CursorOf(&got[len(got)-1])
		}
		q.After, q.Limit = nil, len(es)+1
		if all, _ := bruteLookup(es, &q); samePage(seen, all) != "" {
			t.Fatalf("query %d %+v: the pages hold %d records, want %d", n, q, len(seen), len(all))
		}
	}
}

// checkFeed reads the feed to its end with random limits.
func checkFeed(t *testing.T, rng *rand.Rand, d *Dir, s *store, es []Entry) {
	t.Helper()
	want := slices.Clone(es)
	slices.SortFunc(want, func(a, b Entry) int { return int(a.Seq - b.Seq) })
	var got []Entry
	after := int64(0)
	for {
		page, err := d.ReadAppended(context.Background(), after, 1+rng.IntN(300), s.fetch)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != len(want) {
		t.Fatalf("the feed read %d entries, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || sameRecord(&got[i].Record, &want[i].Record) != "" {
			t.Fatalf("feed entry %d: seq %d %s, want %d %s", i, got[i].Seq, got[i].Record.EventID, want[i].Seq, want[i].Record.EventID)
		}
	}
	if max := d.MaxSeq(); len(want) > 0 && max != want[len(want)-1].Seq {
		t.Fatalf("MaxSeq() = %d; want %d", max, want[len(want)-1].Seq)
	}
}

// checkFind asks for every held key (at a random time), and for keys not
// held.
func checkFind(t *testing.T, rng *rand.Rand, d *Dir, s *store, es, gone []Entry) {
	t.Helper()
	ctx := context.Background()
	held := map[[2]string]bool{}
	for i := range es {
		r := &es[i].Record
		held[[2]string{r.Account, r.EventID}] = true
		at := r.Time
		if rng.IntN(2) == 0 {
			at = time.Unix(oBase+rng.Int64N(oDays*86400), 0)
		}
		if ok, err := d.Find(ctx, r.Account, r.EventID, at, s.fetch); err != nil || !ok {
			t.Fatalf("Find(%s, %s) = %v, %v; want true", r.Account, r.EventID, ok, err)
		}
	}
	try := func(acct, id string) {
		if held[[2]string{acct, id}] {
			return
		}
		if ok, err := d.Find(ctx, acct, id, time.Unix(oBase, 0), s.fetch); err != nil || ok {
			t.Fatalf("Find(%s, %s) = %v, %v; want false", acct, id, ok, err)
		}
	}
	for i := range 300 {
		try(oAccounts[i%len(oAccounts)], fmt.Sprintf("%04x-%d", rng.IntN(1<<16), rng.IntN(4)))
		e := &es[rng.IntN(len(es))].Record
		try(oAccounts[i%len(oAccounts)], e.EventID)
	}
	for i := range gone {
		try(gone[i].Record.Account, gone[i].Record.EventID)
	}
}

// TestDirOracle checks Lookup, ReadAppended and Find against brute force
// over random entries, then again after removing a third of the blocks.
func TestDirOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 29))
	es := oracleEntries(rng, 4000)
	s := newStore(t, es)
	d := NewDir()
	// Added in three calls, out of order, one block given twice.
	perm := rng.Perm(len(s.metas))
	third := len(perm) / 3
	for _, part := range [][]int{perm[:third], perm[third : 2*third], perm[2*third:]} {
		var ms []*Meta
		for _, i := range part {
			ms = append(ms, s.metas[i])
		}
		d.Add(ms...)
	}
	d.Add(s.metas[0])
	if d.Len() != len(s.metas) || d.Records() != len(es) {
		t.Fatalf("Len() = %d, Records() = %d; want %d, %d", d.Len(), d.Records(), len(s.metas), len(es))
	}
	perDay := map[Part]map[int64]int{}
	for _, m := range s.metas {
		if perDay[m.Part] == nil {
			perDay[m.Part] = map[int64]int{}
		}
		perDay[m.Part][m.Day]++
	}
	multi := 0
	for _, days := range perDay {
		for _, n := range days {
			if n > 1 {
				multi++
			}
		}
	}
	t.Logf("%d entries in %d blocks; %d parts' days in more than one block", len(es), len(s.metas), multi)
	if multi < 10 {
		t.Fatalf("only %d parts' days in more than one block: the test does not cut equal times across blocks", multi)
	}

	checkLookups(t, rng, d, s, es, 600)
	checkFeed(t, rng, d, s, es)
	checkFind(t, rng, d, s, es, nil)

	held := map[int64]bool{}
	var removed []int64
	for _, m := range s.metas {
		if rng.IntN(3) == 0 {
			removed = append(removed, m.ID)
		} else {
			held[m.ID] = true
		}
	}
	d.Remove(append(removed, 1_000_000)...)
	kept := s.entries(held)
	var gone []Entry
	for _, id := range removed {
		gone = append(gone, s.blocks[id]...)
	}
	if d.Len() != len(held) || d.Records() != len(kept) {
		t.Fatalf("after Remove: Len() = %d, Records() = %d; want %d, %d", d.Len(), d.Records(), len(held), len(kept))
	}
	blocks := d.Blocks()
	if len(blocks) != len(held) || !slices.IsSortedFunc(blocks, func(a, b *Meta) int { return cmp.Compare(a.SeqMin, b.SeqMin) }) {
		t.Fatalf("after Remove: Blocks() holds %d blocks (sorted by SeqMin: %v), want %d", len(blocks),
			slices.IsSortedFunc(blocks, func(a, b *Meta) int { return cmp.Compare(a.SeqMin, b.SeqMin) }), len(held))
	}
	for _, m := range blocks {
		if !held[m.ID] {
			t.Fatalf("Blocks() holds removed block %d", m.ID)
		}
	}
	checkLookups(t, rng, d, s, kept, 300)
	checkFeed(t, rng, d, s, kept)
	checkFind(t, rng, d, s, kept, gone)

	d.Remove(removed...)
	d.Remove(slices.Collect(func(yield func(int64) bool) {
		for id := range held {
			if !yield(id) {
				return
			}
		}
	})...)
	if d.Len() != 0 || d.Records() != 0 || d.MaxSeq() != 0 || len(d.LiveBytes()) != 0 {
		t.Fatalf("emptied: Len() %d, Records() %d, MaxSeq() %d, LiveBytes() %v", d.Len(), d.Records(), d.MaxSeq(), d.LiveBytes())
	}
	q := randomQuery(rng, es)
	if recs, more, err := d.Lookup(context.Background(), &q, s.fetch); len(recs) != 0 || more || err != nil {
		t.Fatalf("empty Lookup = %d records, %v, %v", len(recs), more, err)
	}
}

// TestDirFetchesOnlyWhatItMust counts fetches: the pruning by time,
// filters, readOnly counts and received times, and the stop rules.
func TestDirFetchesOnlyWhatItMust(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 29))
	es := oracleEntries(rng, 4000)
	s := newStore(t, es)
	d := NewDir()
	d.Add(s.metas...)
	ctx := context.Background()
	e := es[17].Record
	base := audit.Query{Account: e.Account, Region: e.Region, Category: e.Category, Limit: 50}
	count := func(q audit.Query) (int64, []audit.Record) {
		t.Helper()
		s.fetches.Store(0)
		recs, _, err := d.Lookup(ctx, &q, s.fetch)
		if err != nil {
			t.Fatal(err)
		}
		return s.fetches.Load(), recs
	}
	var partBlocks int64
	for _, m := range s.metas {
		if m.Part == (Part{e.Account, e.Region, e.Category}) {
			partBlocks++
		}
	}
	id := audit.Attribute{Key: audit.AttrEventID, Value: e.EventID}
	none := audit.Attribute{Key: audit.AttrEventName, Value: "NoSuchEvent"}
	for _, c := range []struct {
		name string
		q    func(q *audit.Query)
		want int64 // fetches
		recs int
	}{
		{"EventId with its time", func(q *audit.Query) { q.Attributes = []audit.Attribute{id}; q.Start, q.End = e.Time, e.Time }, 1, 1},
		{"EventId", func(q *audit.Query) { q.Attributes = []audit.Attribute{id} }, 1, 1},
		{"EventId in every region", func(q *audit.Query) { q.Attributes = []audit.Attribute{id}; q.AnyRegion = true }, 1, 1},
		{"an event name no record has", func(q *audit.Query) { q.Attributes = []audit.Attribute{none} }, 0, 0},
		{"a user no record has", func(q *audit.Query) {
			q.Attributes = []audit.Attribute{{Key: audit.AttrUsername, Value: "mallory"}}
		}, 0, 0},
		{"an empty access key", func(q *audit.Query) { q.Attributes = []audit.Attribute{{Key: audit.AttrAccessKeyID}} }, 0, 0},
		{"readOnly TRUE", func(q *audit.Query) { q.Attributes = []audit.Attribute{{Key: audit.AttrReadOnly, Value: "TRUE"}} }, 0, 0},
		{"after every record", func(q *audit.Query) { q.Start = time.Unix(oBase+oDays*86400, 0) }, 0, 0},
		{"before every record", func(q *audit.Query) { q.End = time.Unix(oBase-1, 0) }, 0, 0},
		{"received after every record", func(q *audit.Query) { q.ReceivedSince = time.Unix(1_800_000_000+1000, 0) }, 0, 0},
		{"End before Start", func(q *audit.Query) { q.Start, q.End = e.Time, e.Time.Add(-time.Second) }, 0, 0},
		{"a region without records", func(q *audit.Query) { q.Region = "ap-south-1" }, 0, 0},
	} {
		q := base
		c.q(&q)
		if n, recs := count(q); n != c.want || len(recs) != c.recs {
			t.Errorf("%s: %d fetches, %d records; want %d, %d", c.name, n, len(recs), c.want, c.recs)
		}
	}
	// A limit of any size answers every record of the part.
	q := base
	q.Limit = math.MaxInt
	if n, recs := count(q); len(recs) != s.partRecords(q) || n != partBlocks {
		t.Errorf("every record: %d fetches of %d blocks, %d records; want %d", n, partBlocks, len(recs), s.partRecords(q))
	}
	// A page of the newest records reads the newest blocks only (those up
	// to the one that ends before the page's last, equal times read).
	q = base
	q.Limit = 5
	n, recs := count(q)
	if len(recs) != 5 || n > 3 {
		t.Errorf("the newest 5: %d fetches of the part's %d blocks, %d records; want at most 3, 5", n, partBlocks, len(recs))
	}
	// Its second page, and one a day back, read a few blocks too.
	q.After = q.CursorOf(&recs[4])
	if n, _ := count(q); n > 3 {
		t.Errorf("the second page: %d fetches; want at most 3", n)
	}
	q.After = &audit.Cursor{Time: time.Unix(oBase+2*86400, 0), EventID: "8000"}
	if n, recs := count(q); n > 3 || len(recs) != 5 {
		t.Errorf("a page two days back: %d fetches, %d records; want at most 3, 5", n, len(recs))
	}
	t.Logf("the part's %d blocks; the newest page fetched %d", partBlocks, n)

	// The feed: a reader past MaxSeq needs no fetch; one page from the
	// start fetches the blocks holding the first numbers.
	s.fetches.Store(0)
	if got, err := d.ReadAppended(ctx, d.MaxSeq(), 100, s.fetch); err != nil || len(got) != 0 || s.fetches.Load() != 0 {
		t.Errorf("the feed past MaxSeq: %d entries, %d fetches, %v", len(got), s.fetches.Load(), err)
	}
	// Find: a miss fetches none (the ID filters), a hit with its time one.
	s.fetches.Store(0)
	if ok, err := d.Find(ctx, e.Account, "no-such-id", e.Time, s.fetch); ok || err != nil || s.fetches.Load() != 0 {
		t.Errorf("Find of a missing ID = %v, %v, %d fetches; want false, nil, 0", ok, err, s.fetches.Load())
	}
	s.fetches.Store(0)
	if ok, err := d.Find(ctx, e.Account, e.EventID, e.Time, s.fetch); !ok || err != nil || s.fetches.Load() != 1 {
		t.Errorf("Find of a held ID = %v, %v, %d fetches; want true, nil, 1", ok, err, s.fetches.Load())
	}
}

// TestDirFeedOrderedBlocks reads a feed whose blocks hold consecutive
// numbers (an import's): a page fetches only the blocks it needs.
func TestDirFeedOrderedBlocks(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 29))
	es := oracleEntries(rng, 2000)
	slices.SortFunc(es, func(a, b Entry) int { return audit.Newer(&b.Record, &a.Record) })
	// Numbered in the order Split cuts them: each block a run.
	var ordered []Entry
	for _, b := range Split(es) {
		ordered = append(ordered, b...)
	}
	for i := range ordered {
		ordered[i].Seq = int64(i + 1)
	}
	s := newStore(t, ordered)
	d := NewDir()
	d.Add(s.metas...)
	got, err := d.ReadAppended(context.Background(), 0, 10, s.fetch)
	if err != nil || len(got) != 10 || got[0].Seq != 1 || got[9].Seq != 10 {
		t.Fatalf("first page: %d entries, %v", len(got), err)
	}
	if n := s.fetches.Load(); n != 1 {
		t.Errorf("the first page of 10 fetched %d blocks; want 1", n)
	}
	checkFeed(t, rng, d, s, ordered)
}

// TestDirRetentionAndBytes checks ReceivedBefore's plan and LiveBytes.
func TestDirRetentionAndBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 29))
	s := newStore(t, oracleEntries(rng, 1500))
	d := NewDir()
	d.Add(s.metas...)
	cut := int64(1_800_000_000 + 450)
	whole, straddling := d.ReceivedBefore(cut)
	inPlan := map[int64]string{}
	for _, m := range whole {
		inPlan[m.ID] = "whole"
	}
	for _, m := range straddling {
		inPlan[m.ID] = "straddling"
	}
	for id, es := range s.blocks {
		before, after := 0, 0
		for _, e := range es {
			if e.Received < cut {
				before++
			} else {
				after++
			}
		}
		want := ""
		switch {
		case after == 0:
			want = "whole"
		case before > 0:
			want = "straddling"
		}
		if inPlan[id] != want {
			t.Fatalf("block %d (%d received before, %d after): %q; want %q", id, before, after, inPlan[id], want)
		}
	}
	if !slices.IsSortedFunc(whole, func(a, b *Meta) int { return int(a.ID - b.ID) }) {
		t.Error("whole not in ID order")
	}
	live := map[uint32]int64{}
	for _, m := range s.metas {
		live[m.Loc.Seg] += int64(m.Loc.Len)
	}
	if got := d.LiveBytes(); fmt.Sprint(got) != fmt.Sprint(live) {
		t.Fatalf("LiveBytes() = %v; want %v", got, live)
	}
	// A block given again under its ID replaces the old one.
	m := *s.metas[0]
	m.Loc.Seg, m.Loc.Len = 7, 100
	d.Add(&m)
	live[s.metas[0].Loc.Seg] -= int64(s.metas[0].Loc.Len)
	live[7] = 100
	if got := d.LiveBytes(); fmt.Sprint(got) != fmt.Sprint(live) || d.Len() != len(s.metas) {
		t.Fatalf("after replacing: LiveBytes() = %v, Len() %d; want %v, %d", got, d.Len(), live, len(s.metas))
	}
}

// TestDirErrors checks that fetch's and ctx's errors come back.
func TestDirErrors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 29))
	es := oracleEntries(rng, 500)
	s := newStore(t, es)
	d := NewDir()
	d.Add(s.metas...)
	boom := errors.New("boom")
	bad := func(context.Context, *Meta) ([]Entry, error) { return nil, boom }
	e := es[0].Record
	q := audit.Query{Account: e.Account, Region: e.Region, Category: e.Category, Limit: 10}
	if _, _, err := d.Lookup(context.Background(), &q, bad); !errors.Is(err, boom) {
		t.Errorf("Lookup: %v; want boom", err)
	}
	if _, err := d.ReadAppended(context.Background(), 0, 10, bad); !errors.Is(err, boom) {
		t.Errorf("ReadAppended: %v; want boom", err)
	}
	if _, err := d.Find(context.Background(), e.Account, e.EventID, e.Time, bad); !errors.Is(err, boom) {
		t.Errorf("Find: %v; want boom", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := d.Lookup(ctx, &q, s.fetch); !errors.Is(err, context.Canceled) {
		t.Errorf("Lookup cancelled: %v", err)
	}
}

// TestDirConcurrent runs lookups, the feed and Find beside Add and Remove
// (under -race): each answer is one of the blocks held at some moment, so
// it is checked only for its order.
func TestDirConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 29))
	es := oracleEntries(rng, 1500)
	s := newStore(t, es)
	d := NewDir()
	d.Add(s.metas[:len(s.metas)/2]...)
	ctx := context.Background()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				q := randomQuery(rng, es)
				recs, _, err := d.Lookup(ctx, &q, s.fetch)
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.IsSortedFunc(recs, func(a, b audit.Record) int { return audit.Newer(&a, &b) }) {
					t.Error("a page out of order")
					return
				}
				if _, err := d.ReadAppended(ctx, rng.Int64N(int64(len(es))), 50, s.fetch); err != nil {
					t.Error(err)
					return
				}
				if _, err := d.Find(ctx, q.Account, es[0].Record.EventID, time.Time{}, s.fetch); err != nil {
					t.Error(err)
					return
				}
				d.ReceivedBefore(1_800_000_500)
				d.LiveBytes()
			}
		}()
	}
	for i := range 200 {
		m := s.metas[rng.IntN(len(s.metas))]
		if i%2 == 0 {
			d.Add(m)
		} else {
			d.Remove(m.ID)
		}
	}
	close(stop)
	wg.Wait()
}

// benchTier is the benchmarks' tier: the real records replicated with
// fresh IDs and times over a year (most in one account and region, as a
// busy account's), encoded as the tier keeps them; the fetch decodes a
// block from memory each time (no cache).
type benchTier struct {
	dir     *Dir
	data    map[int64][]byte
	dec     *Decoder
	fetches atomic.Int64
	// cache holds the blocks decoded by cached (the store's cache, grown
	// without bound here).
	cache map[int64][]Entry
	main  Part
	// sample are records of the main part, for the lookups' values.
	sample []audit.Record
}

var (
	benchOnce sync.Once
	benchT    *benchTier
)

// benchEntries is the benchmarks' records (CAIRN_BENCH_SEALED_N, default
// 200,000).
func benchEntries(b *testing.B) int {
	n := 200_000
	if v := os.Getenv("CAIRN_BENCH_SEALED_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	return n
}

func loadBenchTier(b *testing.B) *benchTier {
	benchOnce.Do(func() {
		var real []audit.Record
		for _, rr := range audittest.RealRecords(b) {
			if r, err := audit.Extract(rr.Raw); err == nil && r.Category == audit.CategoryManagement {
				real = append(real, r)
			}
		}
		n := benchEntries(b)
		rng := rand.New(rand.NewPCG(29, 29))
		const main = "123456789012"
		others := []string{"210987654321", "555555555555", "666666666666", "777777777777"}
		start := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC).Unix()
		es := make([]Entry, n)
		for i := range es {
			r := real[rng.IntN(len(real))]
			r.Account, r.Region = main, "us-east-1"
			if rng.IntN(100) < 15 {
				r.Account = others[rng.IntN(len(others))]
			}
			if rng.IntN(100) < 10 {
				r.Region = "eu-west-1"
			}
			t := time.Unix(start+int64(i)*365*86400/int64(n)+rng.Int64N(60), 0).UTC()
			id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", rng.Uint32(), rng.IntN(1<<16), rng.IntN(1<<16), rng.IntN(1<<16), rng.Int64N(1<<48))
			raw := bytes.Replace(r.Raw, []byte(`"eventID":"`+r.EventID+`"`), []byte(`"eventID":"`+id+`"`), 1)
			raw = bytes.Replace(raw, []byte(`"eventTime":"`+r.Time.Format(time.RFC3339)+`"`), []byte(`"eventTime":"`+t.Format(time.RFC3339)+`"`), 1)
			r.Raw, r.EventID, r.Time = raw, id, t
			es[i] = Entry{Record: r, Seq: int64(i + 1), Received: start + int64(i)}
		}
		enc, err := NewEncoder()
		if err != nil {
			b.Fatal(err)
		}
		dec, err := NewDecoder()
		if err != nil {
			b.Fatal(err)
		}
		bt := &benchTier{dir: NewDir(), data: map[int64][]byte{}, dec: dec, cache: map[int64][]Entry{}, main: Part{main, "us-east-1", audit.CategoryManagement}}
		var size int
		for i, blk := range Split(es) {
			data, m, err := enc.Encode(blk)
			if err != nil {
				b.Fatal(err)
			}
			m.ID = int64(i + 1)
			m.Loc = Loc{Off: int64(size), Len: uint32(len(data))}
			size += len(data)
			bt.data[m.ID] = data
			bt.dir.Add(&m)
			if m.Part == bt.main && rng.IntN(4) == 0 {
				bt.sample = append(bt.sample, blk[rng.IntN(len(blk))].Record)
			}
		}
		b.Logf("%d records in %d blocks (%d of the main part), %.1f MB compressed", n, bt.dir.Len(), len(bt.dir.parts[bt.main]), float64(size)/1e6)
		benchT = bt
	})
	if benchT == nil {
		b.Fatal("no tier")
	}
	return benchT
}

func (bt *benchTier) fetch(ctx context.Context, m *Meta) ([]Entry, error) {
	bt.fetches.Add(1)
	return bt.dec.Decode(bt.data[m.ID], m)
}

// cached is fetch with every block decoded once: what the lookups cost
// beside the blocks' decoding.
func (bt *benchTier) cached(ctx context.Context, m *Meta) ([]Entry, error) {
	bt.fetches.Add(1)
	if es, ok := bt.cache[m.ID]; ok {
		return es, nil
	}
	es, err := bt.dec.Decode(bt.data[m.ID], m)
	if err == nil {
		bt.cache[m.ID] = es
	}
	return es, err
}

// BenchmarkLookup is a first page of 50 of the main part's lookups, by
// kind, over 20 values each, cycled; fetches/op counts the blocks asked
// for. decode decodes every block asked for, cached each once (its first
// round's decodes included).
func BenchmarkLookup(b *testing.B) {
	bt := loadBenchTier(b)
	// The event names by their count in the sample: the commonest and
	// the rarest seen at least twice.
	counts := map[string]int{}
	for _, r := range bt.sample {
		counts[r.EventName]++
	}
	names := slices.Collect(maps.Keys(counts))
	slices.SortFunc(names, func(x, y string) int { return counts[y] - counts[x] })
	rare := slices.DeleteFunc(slices.Clone(names), func(s string) bool { return counts[s] < 2 })
	rare = rare[max(0, len(rare)-20):]
	value := func(i int, f func(r *audit.Record) (audit.Attribute, bool)) (audit.Attribute, *audit.Record) {
		for j := 0; ; j++ {
			r := &bt.sample[(i*7919+j)%len(bt.sample)]
			if a, ok := f(r); ok {
				return a, r
			}
		}
	}
	week := func(q *audit.Query, r *audit.Record) {
		q.Start, q.End = r.Time.Add(-84*time.Hour), r.Time.Add(84*time.Hour)
	}
	for _, k := range []struct {
		name  string
		query func(i int, q *audit.Query)
	}{
		{"EventId", func(i int, q *audit.Query) {
			q.Attributes = []audit.Attribute{{Key: audit.AttrEventID, Value: bt.sample[(i*7919)%len(bt.sample)].EventID}}
		}},
		{"EventName-common", func(i int, q *audit.Query) {
			q.Attributes = []audit.Attribute{{Key: audit.AttrEventName, Value: names[i%min(3, len(names))]}}
		}},
		{"EventName-rare", func(i int, q *audit.Query) {
			q.Attributes = []audit.Attribute{{Key: audit.AttrEventName, Value: rare[i%len(rare)]}}
		}},
		{"EventName-rare-7days", func(i int, q *audit.Query) {
			a, r := value(i, func(r *audit.Record) (audit.Attribute, bool) {
				return audit.Attribute{Key: audit.AttrEventName, Value: r.EventName}, slices.Contains(rare, r.EventName)
			})
			q.Attributes = []audit.Attribute{a}
			week(q, r)
		}},
		{"Username", func(i int, q *audit.Query) {
			a, _ := value(i, func(r *audit.Record) (audit.Attribute, bool) {
				return audit.Attribute{Key: audit.AttrUsername, Value: r.Username}, r.Username != ""
			})
			q.Attributes = []audit.Attribute{a}
		}},
		{"ResourceName", func(i int, q *audit.Query) {
			a, _ := value(i, func(r *audit.Record) (audit.Attribute, bool) {
				if len(r.Resources) == 0 || r.Resources[0].Name == "" {
					return audit.Attribute{}, false
				}
				return audit.Attribute{Key: audit.AttrResourceName, Value: r.Resources[0].Name}, true
			})
			q.Attributes = []audit.Attribute{a}
		}},
		{"none", func(i int, q *audit.Query) {}},
		{"none-7days", func(i int, q *audit.Query) { week(q, &bt.sample[(i*7919)%len(bt.sample)]) }},
		{"AnyAccount-AccessKeyId", func(i int, q *audit.Query) {
			a, _ := value(i, func(r *audit.Record) (audit.Attribute, bool) {
				return audit.Attribute{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID}, r.AccessKeyID != ""
			})
			q.Attributes, q.AnyAccount, q.AnyRegion = []audit.Attribute{a}, true, true
		}},
	} {
		qs := make([]audit.Query, 20)
		for i := range qs {
			qs[i] = audit.Query{Account: bt.main.Account, Region: bt.main.Region, Category: bt.main.Category, Limit: 50}
			k.query(i, &qs[i])
		}
		for _, f := range []struct {
			name  string
			fetch Fetch
		}{{"decode", bt.fetch}, {"cached", bt.cached}} {
			b.Run(k.name+"/"+f.name, func(b *testing.B) {
				bt.fetches.Store(0)
				recs := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					got, _, err := bt.dir.Lookup(context.Background(), &qs[i%len(qs)], f.fetch)
					if err != nil {
						b.Fatal(err)
					}
					recs += len(got)
				}
				b.ReportMetric(float64(bt.fetches.Load())/float64(b.N), "fetches/op")
				b.ReportMetric(float64(recs)/float64(b.N), "records/op")
			})
		}
	}
}

// BenchmarkFindMiss is the duplicate check of an ID the main account does
// not hold: every block of the account's ID filter tested; fetches/op are
// the filters' false positives.
func BenchmarkFindMiss(b *testing.B) {
	bt := loadBenchTier(b)
	var blocks int
	for _, p := range bt.dir.accounts[bt.main.Account] {
		blocks += len(bt.dir.parts[p])
	}
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
	}
	at := bt.sample[0].Time
	bt.fetches.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ok, err := bt.dir.Find(context.Background(), bt.main.Account, ids[i%len(ids)], at, bt.fetch)
		if err != nil || ok {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(bt.fetches.Load())/float64(b.N), "fetches/op")
	b.ReportMetric(float64(blocks), "blocks")
}

// BenchmarkFindHit is the duplicate check of a record the main account
// holds, asked with its own time (as an import of the same file again
// asks): the blocks that hold that time are tested first, not every block
// of the account.
func BenchmarkFindHit(b *testing.B) {
	bt := loadBenchTier(b)
	var blocks int
	for _, p := range bt.dir.accounts[bt.main.Account] {
		blocks += len(bt.dir.parts[p])
	}
	bt.fetches.Store(0)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &bt.sample[i%len(bt.sample)]
		ok, err := bt.dir.Find(context.Background(), r.Account, r.EventID, r.Time, bt.cached)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	b.ReportMetric(float64(bt.fetches.Load())/float64(b.N), "fetches/op")
	b.ReportMetric(float64(blocks), "blocks")
}

// TestMergeSorted: mergeSorted of two sorted lists is their concatenation
// sorted, the first list's element first among equals, for every split.
func TestMergeSorted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		var a, b []*Meta
		id := int64(0)
		for range rng.IntN(20) {
			id++
			a = append(a, &Meta{ID: id, SeqMin: rng.Int64N(10)})
		}
		for range rng.IntN(20) {
			id++
			b = append(b, &Meta{ID: id, SeqMin: rng.Int64N(10)})
		}
		bySeq := func(x, y *Meta) int { return cmp.Compare(x.SeqMin, y.SeqMin) }
		slices.SortStableFunc(a, bySeq)
		slices.SortStableFunc(b, bySeq)
		want := slices.Concat(a, b)
		slices.SortStableFunc(want, bySeq)
		if got := mergeSorted(a, b, bySeq); !slices.Equal(got, want) {
			t.Fatalf("mergeSorted(%v, %v) = %v; want %v", seqs(a), seqs(b), seqs(got), seqs(want))
		}
	}
}

func seqs(ms []*Meta) []int64 {
	var s []int64
	for _, m := range ms {
		s = append(s, m.SeqMin)
	}
	return s
}
