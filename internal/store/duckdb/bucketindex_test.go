package duckdb

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
)

func TestBucketOf(t *testing.T) {
	for _, c := range []struct{ t, want int64 }{
		{0, 0}, {3599, 0}, {3600, 1}, {86400, 24}, {-1, -1}, {-3600, -1}, {-3601, -2},
	} {
		if got := bucketOf(c.t); got != c.want {
			t.Errorf("bucketOf(%d) = %d; want %d", c.t, got, c.want)
		}
	}
}

func TestBloom(t *testing.T) {
	b := newBloom(1000)
	for i := range uint64(1000) {
		b.add(token(audit.AttrEventID, string(rune('a'+i%26))+string(rune(i))))
	}
	for i := range uint64(1000) {
		if !b.has(token(audit.AttrEventID, string(rune('a'+i%26))+string(rune(i)))) {
			t.Fatalf("token %d lost", i)
		}
	}
	fp := 0
	for i := range 10000 {
		if b.has(token(audit.AttrEventName, string(rune(i)))) {
			fp++
		}
	}
	t.Logf("false positives at capacity: %.2f%%", float64(fp)/100)
	if fp > 500 {
		t.Errorf("%d false positives in 10000; want about 1%%", fp)
	}
	c := unmarshalBloom(b.marshal())
	if diff := cmp.Diff(b.bits, c.bits); diff != "" || c.added != b.added {
		t.Errorf("marshal round trip differs")
	}
	for _, bad := range [][]byte{nil, {1, 2, 3}, make([]byte, 8), make([]byte, 8+8*3), make([]byte, 9)} {
		d := unmarshalBloom(bad)
		if !d.has(12345) {
			t.Errorf("a filter decoded from %d bad bytes does not match everything", len(bad))
		}
		d.add(1) // must not panic
		if d.full() {
			t.Errorf("a damaged filter asks to grow")
		}
	}
	small := newBloom(0)
	for i := range uint64(500) {
		small.add(i * 0x9e3779b97f4a7c15)
	}
	if !small.full() {
		t.Error("a minimum filter with 500 tokens is not full")
	}
}

func TestCandidates(t *testing.T) {
	k := partKey{"a", "r", audit.CategoryManagement}
	x := newBucketIndex()
	// days 10..1, 100 records each; the rare token on days 9, 8 and 3.
	rare := token(audit.AttrAccessKeyID, "rare")
	for d := int64(1); d <= 10; d++ {
		s := x.bucket(k, d)
		s.n = 100
		s.bloom.add(token(audit.AttrEventName, "common"))
		if d == 9 || d == 8 || d == 3 {
			s.bloom.add(rare)
		}
	}
	x.bucket(k, 11) // empty day: never a candidate
	for _, c := range []struct {
		name    string
		lo, hi  int64
		tokens  []uint64
		maxRows int64
		maxGap  int64
		want    []span
	}{
		{"all, one day per span", 0, 20, nil, 100, 0, []span{{10, 10, 100, 0, nil}, {9, 9, 100, 0, nil}, {8, 8, 100, 0, nil}, {7, 7, 100, 0, nil}, {6, 6, 100, 0, nil}, {5, 5, 100, 0, nil}, {4, 4, 100, 0, nil}, {3, 3, 100, 0, nil}, {2, 2, 100, 0, nil}, {1, 1, 100, 0, nil}}},
		{"all, merged", 0, 20, nil, 450, 0, []span{{10, 7, 400, 0, nil}, {6, 3, 400, 0, nil}, {2, 1, 200, 0, nil}}},
		{"bounded", 4, 6, nil, 1000, 0, []span{{6, 4, 300, 0, nil}}},
		{"rare, merged through gaps", 0, 20, []uint64{rare}, 1000, 400, []span{{9, 3, 700, 100, nil}}},
		{"rare, gap over maxGap", 0, 20, []uint64{rare}, 1000, 300, []span{{9, 8, 200, 100, nil}, {3, 3, 100, 400, nil}}},
		{"rare, gaps too long", 0, 20, []uint64{rare}, 300, 1000, []span{{9, 8, 200, 100, nil}, {3, 3, 100, 400, nil}}},
		{"rare and common", 0, 20, []uint64{rare, token(audit.AttrEventName, "common")}, 100, 0, []span{{9, 9, 100, 100, nil}, {8, 8, 100, 0, nil}, {3, 3, 100, 400, nil}}},
		{"absent", 0, 20, []uint64{token(audit.AttrEventName, "absent")}, 1000, 1000, nil},
		{"other partition", 0, 20, nil, 1000, 1000, nil},
	} {
		key := k
		if c.name == "other partition" {
			key.region = "other"
		}
		got, _, _, _ := x.candidates([]partKey{key}, c.lo, c.hi, c.tokens, c.maxRows, c.maxGap, 0)
		for i, sp := range got {
			// A span's buckets run from its first to its last, newest
			// first, and hold its records.
			var n int64
			for j, b := range sp.buckets {
				if j > 0 && b.d >= sp.buckets[j-1].d {
					t.Errorf("%s: span %d: buckets not newest first: %v", c.name, i, sp.buckets)
				}
				n += b.n
			}
			if len(sp.buckets) == 0 || sp.buckets[0].d != sp.first || sp.buckets[len(sp.buckets)-1].d != sp.last || n != sp.n {
				t.Errorf("%s: span %+v: its buckets do not run from first to last", c.name, sp)
			}
			got[i].buckets = nil
		}
		if diff := cmp.Diff(c.want, got, cmp.AllowUnexported(span{})); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestSparseBudget(t *testing.T) {
	for _, c := range []struct {
		d      density
		need   int
		want   int64 // records, to within 1%
		sparse bool
	}{
		{density{168, 100, 168 * 4600}, 51, 393681, true}, // in 60% of hours: -ln(1-100/168) = 0.9045 a bucket, 85.6 buckets
		{density{168, 168, 168 * 4600}, 51, 0, false},     // everywhere: maybe dense
		{density{168, 160, 168 * 4600}, 51, 0, false},     // over 90%
		{density{168, 10, 168 * 4600}, 51, 0, false},      // rare
		{density{}, 51, 0, false},
	} {
		if got, want := c.d.everywhere(), c.d.cand >= 160; got != want {
			t.Errorf("%+v: everywhere %v; want %v (over 90%% of 168 buckets)", c.d, got, want)
		}
		got, sparse := c.d.sparseBudget(c.need)
		if sparse != c.sparse || (sparse && (got < c.want*99/100 || got > c.want*101/100)) {
			t.Errorf("%+v: %d, %v; want %d, %v", c.d, got, sparse, c.want, c.sparse)
		}
	}
}

func TestWindowLow(t *testing.T) {
	h := int64(bucketSeconds)
	// Buckets 1000 (30 records), then 10 and 9 (100 each): hours 11..999
	// hold nothing.
	spans := []span{{buckets: []bucketRows{{1000, 30, true}}}, {buckets: []bucketRows{{10, 100, true}, {9, 100, true}}}}
	for _, c := range []struct {
		name string
		to   int64
		rows int64
		low  int64 // -1: none
	}{
		{"inside the newest bucket", 1001*h - 1, 15, 1001*h - 1 - h/2 + 1},
		{"one record's share of the hour", 1001*h - 1, 1, 1001*h - h/30},
		{"at least a minute", 10*h - 1, 1, 10*h - 60},
		{"jumps over the empty hours", 1001*h - 1, 80, 10*h + h/2},
		{"two buckets and the empty hours", 1001*h - 1, 130, 10 * h},
		{"to inside a bucket counts its part", 10*h + h/2 - 1, 50, 10 * h},
		{"to before the newest buckets", 10*h - 1, 50, 10*h - h/2},
		{"more than the buckets hold", 1001*h - 1, 231, -1},
	} {
		low, ok := windowLow(spans, c.to, c.rows)
		if !ok {
			low = -1
		}
		if low != c.low {
			t.Errorf("%s: windowLow(to %d, %d rows) = %d; want %d", c.name, c.to, c.rows, low, c.low)
		}
	}
}

// TestBloomFold: a folded filter holds every token the whole one held,
// keeps to bitsPerToken a token, and answers as a filter of its size
// built from the same tokens.
func TestBloomFold(t *testing.T) {
	for _, n := range []int64{1, 40, 300, 5000} {
		b := newBloom(8 * n) // sized for 8x the tokens it gets
		var toks []uint64
		for i := range n {
			tok := token(audit.AttrEventID, fmt.Sprint("fold", n, i))
			toks = append(toks, tok)
			b.add(tok)
		}
		before := len(b.bits)
		b.fold()
		if len(b.bits) >= before && before*64 > minBloomBits {
			t.Errorf("%d tokens: %d words, not folded from %d", n, len(b.bits), before)
		}
		if int64(len(b.bits))*64 < max(n*bitsPerToken, minBloomBits) {
			t.Errorf("%d tokens: folded to %d bits, under %d a token", n, len(b.bits)*64, bitsPerToken)
		}
		direct := newBloom(n)
		direct.bits = make([]uint64, len(b.bits))
		for _, tok := range toks {
			direct.add(tok)
			if !b.has(tok) {
				t.Fatalf("%d tokens: the folded filter lost one", n)
			}
		}
		if !slices.Equal(direct.bits, b.bits) {
			t.Errorf("%d tokens: the folded filter differs from one built at its size", n)
		}
	}
}

// TestCandidatesBounded: with maxBuckets, candidates looks at the newest
// buckets with records only, says where it stopped, and its buckets are
// those of the unbounded walk, in the same order; buckets made and
// dropped after a walk are seen by the next (the sorted order is made
// again).
func TestCandidatesBounded(t *testing.T) {
	k := partKey{"a", "r", audit.CategoryManagement}
	x := newBucketIndex()
	rare := token(audit.AttrEventName, "rare")
	add := func(d int64) {
		s := x.bucket(k, d)
		s.n = 10
		if d%5 == 0 {
			s.bloom.add(rare)
		}
	}
	for d := int64(-20); d <= 40; d += 2 {
		add(d)
	}
	x.bucket(k, 41) // empty: never looked at
	flat := func(spans []span) (out []bucketRows) {
		for _, sp := range spans {
			out = append(out, sp.buckets...)
		}
		return out
	}
	check := func(stage string) {
		t.Helper()
		for _, tokens := range [][]uint64{nil, {rare}} {
			whole, _, all, _ := x.candidates([]partKey{k}, -100, 100, tokens, 30, 30, 0)
			if !all {
				t.Fatalf("%s: unbounded walk not whole", stage)
			}
			want := flat(whole)
			for _, max := range []int{1, 3, 7, 100} {
				got, _, all, next := x.candidates([]partKey{k}, -100, 100, tokens, 30, 30, max)
				var seen []bucketRows
				// The walk again from next down, as Lookup does.
				for hi := int64(100); ; {
					seen = append(seen, flat(got)...)
					if all {
						break
					}
					if next >= hi {
						t.Fatalf("%s: next %d not below %d", stage, next, hi)
					}
					hi = next
					got, _, all, next = x.candidates([]partKey{k}, -100, hi, tokens, 30, 30, max)
				}
				// Bounded walks cut spans short, so they may hold
				// fewer non-candidate buckets: compare the candidates.
				cands := func(b []bucketRows) (out []int64) {
					for _, r := range b {
						if r.cand {
							out = append(out, r.d)
						}
					}
					return out
				}
				if !slices.Equal(cands(want), cands(seen)) {
					t.Errorf("%s: tokens %v max %d: candidates %v, unbounded %v", stage, tokens, max, cands(seen), cands(want))
				}
			}
		}
	}
	check("first")
	add(50)
	add(-50)
	add(15)
	x.mu.Lock()
	x.drop(k, 20)
	x.drop(k, 40)
	x.mu.Unlock()
	check("after buckets made and dropped")
	if got, _, _, _ := x.candidates([]partKey{k}, 15, 15, []uint64{rare}, 30, 30, 1); len(got) != 1 || got[0].first != 15 {
		t.Errorf("a bucket made after a walk: %+v", got)
	}
	if got, _, _, _ := x.candidates([]partKey{k}, 20, 20, nil, 30, 30, 1); len(got) != 0 {
		t.Errorf("a bucket dropped after a walk: %+v", got)
	}
}
