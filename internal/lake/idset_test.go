package lake

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// TestIDSet: keys added are found, repeated adds are duplicates, removed
// keys are gone while the others stay (linear probing's deletion), and a
// key hashes the same from its parts and from its text (NewSink reads the
// store's keys as text).
func TestIDSet(t *testing.T) {
	for _, merge := range idMerges {
		t.Run(fmt.Sprint("merge=", merge), func(t *testing.T) {
			s := newIDSet()
			s.merge = merge
			const n = 200000
			for i := range n {
				if !s.add(s.key("111111111111", fmt.Sprint("e", i))) {
					t.Fatalf("add of new key %d reported a duplicate", i)
				}
			}
			for i := range n {
				if s.add(s.keyBytes(fmt.Appendf(nil, "111111111111/e%d", i))) {
					t.Fatalf("add of key %d again (as text) reported it new", i)
				}
			}
			if s.has(s.key("222222222222", "e1")) {
				t.Error("another account's eventID found")
			}
			for i := 0; i < n; i += 2 {
				s.remove(s.key("111111111111", fmt.Sprint("e", i)))
			}
			for i := range n {
				if got, want := s.has(s.key("111111111111", fmt.Sprint("e", i))), i%2 == 1; got != want {
					t.Fatalf("after removing the even keys, has(e%d) = %v; want %v", i, got, want)
				}
			}
			if s.len() != n/2 {
				t.Errorf("len = %d; want %d", s.len(), n/2)
			}
			for i := 0; i < n; i += 2 {
				if !s.add(s.key("111111111111", fmt.Sprint("e", i))) {
					t.Fatalf("add of removed key %d reported a duplicate", i)
				}
			}
			if s.len() != n {
				t.Errorf("len = %d; want %d", s.len(), n)
			}
		})
	}
}

// idMerges are the merge thresholds the tests run the set with: its own,
// and small ones that put most keys in the shards' sorted parts (the
// default merges only from ~262k keys on).
var idMerges = []int{idMerge, 1, 7}

// BenchmarkIDSetBytes adds b.N keys and reports the set's bytes a key
// (-benchtime=10000000x: the seen set of a 10M-event load).
func BenchmarkIDSetBytes(b *testing.B) {
	s := newIDSet()
	for i := range b.N {
		s.add(s.key("111111111111", fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)))
	}
	b.ReportMetric(float64(s.bytes())/float64(b.N), "B/key")
	b.ReportMetric(float64(s.bytes())/1e6, "MB")
}

// BenchmarkIDSetCPU: the CPU of a 10M-key seen set (IDSET_KEYS sets
// another count): each op adds every key to a new set (ns/new), then adds
// them all again (ns/dup: a reimport's duplicates) and looks up as many
// keys not in it (ns/miss). The keys are hashed before the timing.
func BenchmarkIDSetCPU(b *testing.B) {
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("IDSET_KEYS")); err == nil && v > 0 {
		n = v
	}
	s := newIDSet()
	keys := make([][2]uint64, n)
	others := make([][2]uint64, n)
	for i := range keys {
		keys[i] = s.key("111111111111", fmt.Sprintf("%08x-0000-4000-8000-000000000000", i))
		others[i] = s.key("222222222222", fmt.Sprintf("%08x-0000-4000-8000-000000000000", i))
	}
	var tNew, tDup, tMiss time.Duration
	for b.Loop() {
		s := newIDSet()
		t0 := time.Now()
		for _, k := range keys {
			s.add(k)
		}
		t1 := time.Now()
		for _, k := range keys {
			if s.add(k) {
				b.Fatal("a key added twice")
			}
		}
		t2 := time.Now()
		for _, k := range others {
			if s.has(k) {
				b.Fatal("a key not added found")
			}
		}
		t3 := time.Now()
		tNew, tDup, tMiss = tNew+t1.Sub(t0), tDup+t2.Sub(t1), tMiss+t3.Sub(t2)
		b.ReportMetric(float64(s.bytes())/1e6, "MB")
	}
	per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N) / float64(n) }
	b.ReportMetric(per(tNew), "ns/new")
	b.ReportMetric(per(tDup), "ns/dup")
	b.ReportMetric(per(tMiss), "ns/miss")
}

// TestIDSetAgainstAMap: random adds and removes of keys crowded into one
// shard, most of them sharing a few home slots near the table's end (long
// runs that wrap around to its start), answer as a Go map does.
func TestIDSetAgainstAMap(t *testing.T) {
	for _, merge := range idMerges {
		t.Run(fmt.Sprint("merge=", merge), func(t *testing.T) { testIDSetAgainstAMap(t, merge) })
	}
}

func testIDSetAgainstAMap(t *testing.T, merge int) {
	r := rand.New(rand.NewPCG(1, 2))
	s := newIDSet()
	s.merge = merge
	want := map[[2]uint64]bool{}
	key := func() [2]uint64 {
		// Shard 7; k[1] near 2^64 has its home at the table's last slots.
		// Its low 32 bits: a few buckets of the sorted part, keys
		// equal in them but k[1].
		hi := ^uint64(0) - uint64(r.IntN(4))<<58
		return [2]uint64{7<<56 | uint64(r.IntN(3))<<30 | uint64(r.IntN(100)), hi}
	}
	for i := range 200000 {
		k := key()
		if r.IntN(3) == 0 {
			if want[k] {
				s.remove(k)
				delete(want, k)
			}
		} else if got := s.add(k); got == want[k] {
			t.Fatalf("op %d: add(%x) = %v with the key %v in the map", i, k, got, want[k])
		} else {
			want[k] = true
		}
		if i%1000 == 0 {
			for k := range want {
				if !s.has(k) {
					t.Fatalf("op %d: %x lost", i, k)
				}
			}
		}
	}
	if s.len() != len(want) {
		t.Errorf("len = %d; want %d", s.len(), len(want))
	}
	for range 1000 {
		if k := key(); s.has(k) != want[k] {
			t.Fatalf("has(%x) = %v; want %v", k, s.has(k), want[k])
		}
	}
}

// TestIDSetOutsideHeap: the set's tables are not in Go's heap (where they
// were counted live and the heap let grow to twice them: issue 15), and
// they are given back once the set is unreachable.
func TestIDSetOutsideHeap(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "darwin" {
		t.Skip("the tables are in Go's heap on " + runtime.GOOS)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	s := newIDSet()
	for i := range 1000000 {
		s.add(s.key("111111111111", fmt.Sprint("e", i)))
	}
	grown := int64(heap()) - int64(before)
	if tables := s.bytes(); grown > int64(tables)/8 {
		t.Errorf("the heap grew %d bytes with a set of %d bytes of tables; want it outside the heap", grown, tables)
	}
	if !s.has(s.key("111111111111", "e999999")) {
		t.Fatal("the last key is not found")
	}
	freed := make(chan struct{})
	runtime.AddCleanup(s, func(ch chan struct{}) { close(ch) }, freed)
	s = nil
	for range 50 {
		runtime.GC()
		select {
		case <-freed:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Error("the set was not collected")
}

// TestIDSetSlots: a slot and a sorted part's record keep the 104 bits of a
// key the set tells apart (k[0]'s top byte chose the shard, its low 32
// bits and k[1] are in the slot; the record keeps them but the bucket's
// byte, k[0]'s bits 24-31), and no key's slot is the empty one.
func TestIDSetSlots(t *testing.T) {
	if got := idSlotBytes; got != int(unsafe.Sizeof(idSlot{})) {
		t.Fatalf("idSlotBytes %d; a slot takes %d", got, unsafe.Sizeof(idSlot{}))
	}
	for _, merge := range idMerges {
		t.Run(fmt.Sprint("merge=", merge), func(t *testing.T) { testIDSetSlots(t, merge) })
	}
	for _, k := range [][2]uint64{{0, 0}, {5 << 56, 0}, {1 << 40, 0}} {
		if slotOf(nonZero(k)) == (idSlot{}) {
			t.Errorf("nonZero(%x)'s slot is the empty one", k)
		}
	}
}

func testIDSetSlots(t *testing.T, merge int) {
	s := newIDSet()
	s.merge = merge
	base := [2]uint64{3<<56 | 0xdeadbeef, 0x0123456789abcdef}
	// Each differs from base in one bit the set keeps.
	var others [][2]uint64
	for b := range 64 {
		others = append(others, [2]uint64{base[0], base[1] ^ 1<<b})
	}
	for b := range 32 {
		others = append(others, [2]uint64{base[0] ^ 1<<b, base[1]})
	}
	for b := 56; b < 64; b++ {
		others = append(others, [2]uint64{base[0] ^ 1<<b, base[1]})
	}
	if !s.add(base) {
		t.Fatal("add of the first key reported a duplicate")
	}
	for _, k := range others {
		if s.has(k) {
			t.Fatalf("%x found after adding only %x", k, base)
		}
		if !s.add(k) {
			t.Fatalf("add of %x reported a duplicate", k)
		}
	}
	if s.len() != 1+len(others) {
		t.Errorf("len = %d; want %d", s.len(), 1+len(others))
	}
	for _, k := range append(others, base) {
		if !s.has(k) || s.add(k) {
			t.Fatalf("%x lost", k)
		}
	}
}
