package lake

import (
	"cmp"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"runtime"
	"slices"
	"unsafe"
)

// idSet is the set of account/eventID keys an import checks its records
// against (Sink): those of the store and of the records the import took.
// It keeps each key as a 104-bit hash, in one of 256 shards chosen by the
// hash's top byte (not stored), each of two parts:
//   - its sorted part: the shard's keys as 11-byte records in order, in
//     256 buckets chosen by the hash's next byte (not stored either: the
//     bucket's place in the order says it), each bucket found from a table
//     of where it starts: with the tables below 11.9 bytes a key at 10M
//     keys, 119.0 MB (issue 15: 156.8 MB as open-addressing tables of
//     12-byte slots, grown by a quarter at 7/8 full, until session 36;
//     docs/lake.md, "The seen set in 11-byte records");
//   - its table: the keys added since its last merge, in a small
//     open-addressing table of 12-byte slots (linear probing); at idMerge
//     keys they are sorted and merged into the sorted part.
//
// As strings in a map[string]bool ("account/eventID", ~50 bytes, until
// session 23) the keys of 10M events took about 1 GB; as [2]uint64 keys of
// a Go map, 28-45 bytes (a Go map doubles).
//
// The memory is kept outside Go's heap (allocMem: anonymous memory mapped
// from the kernel where the system allows), freed as a part grows and when
// the set is collected: in the heap, the collector counted it as live and
// let the heap grow to twice that (GOGC), so a 10M-event load's 128 MB of
// keys took ~250 MB of Go's memory (issue 15: a Lake load's RSS at most 1
// GB; docs/lake.md).
//
// Two different keys share a hash with probability 2^-104; among n keys
// some two do with probability under n²/2^105: 2.5e-18 for 10M, 2.5e-12
// for 10 billion (with 128 bits: 1.5e-25 and 1.5e-19). Such a collision
// would make a record a "duplicate" and leave it out. The seeds are random
// per process, so records crafted to collide cannot be made in advance
// (docs/lake.md, "The seen set in 12-byte slots", says why 104 bits).
type idSet struct {
	seed0, seed1 maphash.Seed
	shards       *[idShards]idShard
	n            int
	// merge is the number of keys a shard's table takes before they go
	// into its sorted part (idMerge; tests set fewer).
	merge int
	// sorted is the scratch of a merge's keys.
	sorted []idSlot
}

// idShards is the number of shards a set spreads its keys over (by the
// hash's top byte): each grows on its own, so a growth or a merge moves
// 1/256 of the set.
const idShards = 256

// idBuckets is the number of buckets a shard's sorted part has (by the
// byte of the hash after the shard's).
const idBuckets = 256

// idMerge is the number of keys a shard's table takes before they are
// merged into its sorted part: with 256 shards ~4 MiB of tables at most,
// and at 10M keys a merge of ~1/10,000 of the set's keys into 1/256 of it.
const idMerge = 1024

// idShard is one shard: its table (slots, a zero slot is empty; mem's
// bytes) and its sorted part (recs: sn records of idRecBytes, bucket b's
// at [start[b], start[b+1])).
type idShard struct {
	slots []idSlot
	mem   []byte
	n     int
	recs  []byte
	sn    int
	start [idBuckets + 1]uint32
}

// idSlot is a key as a table keeps it: k[1] (whose top bits give its home
// slot) as two halves, low first, and k[0]'s low 32 bits (whose top byte
// is the key's bucket in the sorted part); k[0]'s top byte chose the
// shard. Bits 32-55 of k[0] are not kept.
type idSlot [3]uint32

// slotOf is k's slot.
func slotOf(k [2]uint64) idSlot {
	return idSlot{uint32(k[1]), uint32(k[1] >> 32), uint32(k[0])}
}

// homeHash is the part of the key that gives its home slot (k[1]).
func (e idSlot) homeHash() uint64 { return uint64(e[1])<<32 | uint64(e[0]) }

// bucket is e's bucket in a sorted part.
func (e idSlot) bucket() int { return int(e[2] >> 24) }

// cmpSlot orders keys as a sorted part keeps them: by k[0]'s low 32 bits
// (so by bucket first), then k[1].
func cmpSlot(a, b idSlot) int {
	if a[2] != b[2] {
		return cmp.Compare(a[2], b[2])
	}
	return cmp.Compare(a.homeHash(), b.homeHash())
}

func newIDSet() *idSet {
	s := &idSet{seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(), shards: new([idShards]idShard), merge: idMerge}
	// The shards' memory is not the collector's: it is given back once
	// the set is unreachable.
	runtime.AddCleanup(s, freeShards, s.shards)
	return s
}

// freeShards frees the memory of a set no longer reachable.
func freeShards(shards *[idShards]idShard) {
	for i := range shards {
		freeMem(shards[i].mem)
		freeMem(shards[i].recs)
		shards[i] = idShard{}
	}
}

// key is the hash of "account/eventID" (never zero).
func (s *idSet) key(account, eventID string) [2]uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed0)
	h.WriteString(account)
	h.WriteByte('/')
	h.WriteString(eventID)
	a := h.Sum64()
	h.SetSeed(s.seed1)
	h.WriteString(account)
	h.WriteByte('/')
	h.WriteString(eventID)
	return nonZero([2]uint64{a, h.Sum64()})
}

// keyBytes is key of the key "account/eventID" as one text.
func (s *idSet) keyBytes(b []byte) [2]uint64 {
	return nonZero([2]uint64{maphash.Bytes(s.seed0, b), maphash.Bytes(s.seed1, b)})
}

// nonZero makes k's slot not the empty one.
func nonZero(k [2]uint64) [2]uint64 {
	if slotOf(k) == (idSlot{}) {
		k[1] = 1
	}
	return k
}

// add adds k and reports whether it was new.
func (s *idSet) add(k [2]uint64) bool {
	// s stays reachable while its memory is used: the cleanup that
	// unmaps it runs once s is not (newIDSet).
	defer runtime.KeepAlive(s)
	sh, e := &s.shards[k[0]>>56], slotOf(k)
	if _, ok := sh.find(e); ok || !sh.add(e) {
		return false
	}
	s.n++
	if sh.n >= s.merge {
		s.sorted = sh.mergeTable(s.sorted[:0])
	}
	return true
}

// remove removes k (a key add returned true for).
func (s *idSet) remove(k [2]uint64) {
	defer runtime.KeepAlive(s) // as in add
	sh, e := &s.shards[k[0]>>56], slotOf(k)
	if sh.remove(e) || sh.removeSorted(e) {
		s.n--
	}
}

// has reports whether k is in the set.
func (s *idSet) has(k [2]uint64) bool {
	defer runtime.KeepAlive(s) // as in add
	sh, e := &s.shards[k[0]>>56], slotOf(k)
	if _, ok := sh.find(e); ok {
		return true
	}
	if len(sh.slots) == 0 {
		return false
	}
	for i := sh.home(e); ; i = sh.next(i) {
		switch sh.slots[i] {
		case e:
			return true
		case idSlot{}:
			return false
		}
	}
}

// len is the number of keys.
func (s *idSet) len() int { return s.n }

// bytes is the memory the set's shards take.
func (s *idSet) bytes() int {
	n := int(unsafe.Sizeof(*s.shards))
	for i := range s.shards {
		n += len(s.shards[i].mem) + len(s.shards[i].recs)
	}
	return n
}

// idSlotBytes is a slot's size.
const idSlotBytes = 12

// idRecBytes is a record's size in a sorted part: a slot but its bucket's
// byte, k[1] (little-endian) and k[0]'s low 24 bits.
const idRecBytes = 11

// rec is the i-th record of sh's sorted part as the slot it came from
// (but its bucket's byte, which is zero).
func (sh *idShard) rec(i int) (lo24 uint32, hash uint64) {
	r := sh.recs[i*idRecBytes : i*idRecBytes+idRecBytes]
	return uint32(r[8]) | uint32(r[9])<<8 | uint32(r[10])<<16, binary.LittleEndian.Uint64(r)
}

// putRec writes e as the i-th record of sh's sorted part.
func (sh *idShard) putRec(i int, e idSlot) {
	r := sh.recs[i*idRecBytes : i*idRecBytes+idRecBytes]
	binary.LittleEndian.PutUint64(r, e.homeHash())
	r[8], r[9], r[10] = byte(e[2]), byte(e[2]>>8), byte(e[2]>>16)
}

// search is where e is or would go in sh's sorted part among its first
// end records (at most the part's sn), and whether it is there. The keys
// are uniform hashes, so e's place in its bucket is about its low 24
// bits' share of 2^24: the search starts there and steps towards it (a
// cache line or two), and halves what is left after idSteps steps.
func (sh *idShard) search(e idSlot, end int) (int, bool) {
	b := e.bucket()
	lo24, hash := e[2]&(1<<24-1), e.homeHash()
	i, j := int(sh.start[b]), min(int(sh.start[b+1]), end)
	if i >= j {
		return i, false
	}
	before := func(h int) bool {
		r24, rh := sh.rec(h)
		return r24 < lo24 || r24 == lo24 && rh < hash
	}
	// e goes in [i, j): narrowed from the guess g.
	g := i + int(uint64(lo24)*uint64(j-i)>>24)
	if before(g) {
		i = g + 1
		for i < j && i <= g+idSteps && before(i) {
			i++
		}
		if i <= g+idSteps {
			j = i // e goes at i (or at j, where i is now)
		}
	} else {
		j = g
		for j > i && j > g-idSteps && !before(j-1) {
			j--
		}
		if j > g-idSteps {
			i = j // before(j-1), or j is i
		}
	}
	for i < j {
		h := int(uint(i+j) >> 1)
		if before(h) {
			i = h + 1
		} else {
			j = h
		}
	}
	if i < min(int(sh.start[b+1]), end) {
		r24, rh := sh.rec(i)
		return i, r24 == lo24 && rh == hash
	}
	return i, false
}

// idSteps is the steps a search takes from its guess before it halves.
const idSteps = 8

// find reports where e is in sh's sorted part, if it is there.
func (sh *idShard) find(e idSlot) (int, bool) {
	if sh.sn == 0 {
		return 0, false
	}
	return sh.search(e, sh.sn)
}

// removeSorted deletes e from sh's sorted part and reports whether it was
// there.
func (sh *idShard) removeSorted(e idSlot) bool {
	i, ok := sh.find(e)
	if !ok {
		return false
	}
	copy(sh.recs[i*idRecBytes:], sh.recs[(i+1)*idRecBytes:sh.sn*idRecBytes])
	sh.sn--
	for b := e.bucket() + 1; b <= idBuckets; b++ {
		sh.start[b]--
	}
	return true
}

// mergeTable moves the keys of sh's table into its sorted part, growing it
// by a sixteenth more than it needs when they do not fit (a page at least),
// and empties the table; keys is scratch, returned for the next merge.
func (sh *idShard) mergeTable(keys []idSlot) []idSlot {
	for _, e := range sh.slots {
		if e != (idSlot{}) {
			keys = append(keys, e)
		}
	}
	slices.SortFunc(keys, cmpSlot)
	n := sh.sn + len(keys)
	if need := n * idRecBytes; need > len(sh.recs) {
		c := need + need/16
		c = (c + idPage - 1) &^ (idPage - 1)
		recs := allocMem(c)
		copy(recs, sh.recs[:sh.sn*idRecBytes])
		freeMem(sh.recs)
		sh.recs = recs
	}
	// From the end: each key goes after the records greater than it,
	// moved up past it at once; the old starts still hold for the
	// records not yet moved.
	old, w := sh.sn, n
	for j := len(keys) - 1; j >= 0; j-- {
		at, _ := sh.search(keys[j], old)
		if moved := old - at; moved > 0 {
			copy(sh.recs[(w-moved)*idRecBytes:w*idRecBytes], sh.recs[at*idRecBytes:old*idRecBytes])
			w -= moved
			old = at
		}
		w--
		sh.putRec(w, keys[j])
	}
	var add uint32
	rest := keys
	for b := range idBuckets {
		sh.start[b] += add
		for len(rest) > 0 && rest[0].bucket() == b {
			add++
			rest = rest[1:]
		}
	}
	sh.start[idBuckets] += add
	sh.sn = n
	clear(sh.slots)
	sh.n = 0
	return keys[:0]
}

// idPage is the granularity of a sorted part's memory.
const idPage = 4096

// home is e's first slot: its key's k[1] scaled to the table (k[0]'s top
// byte chose the shard).
func (sh *idShard) home(e idSlot) int {
	hi, _ := bits.Mul64(e.homeHash(), uint64(len(sh.slots)))
	return int(hi)
}

func (sh *idShard) next(i int) int {
	if i++; i == len(sh.slots) {
		return 0
	}
	return i
}

// add adds k to sh's table and reports whether it was new there.
func (sh *idShard) add(k idSlot) bool {
	if 8*(sh.n+1) > 7*len(sh.slots) {
		sh.grow()
	}
	for i := sh.home(k); ; i = sh.next(i) {
		switch sh.slots[i] {
		case k:
			return false
		case idSlot{}:
			sh.slots[i] = k
			sh.n++
			return true
		}
	}
}

// remove deletes k from sh's table, moving back the keys after it that
// would no longer be found (linear probing's deletion without tombstones),
// and reports whether it was there.
func (sh *idShard) remove(k idSlot) bool {
	if len(sh.slots) == 0 {
		return false
	}
	i := sh.home(k)
	for ; sh.slots[i] != k; i = sh.next(i) {
		if sh.slots[i] == (idSlot{}) {
			return false
		}
	}
	sh.slots[i] = idSlot{}
	sh.n--
	for j := sh.next(i); sh.slots[j] != (idSlot{}); j = sh.next(j) {
		h := sh.home(sh.slots[j])
		// The key at j stays unless its home is cyclically in (i, j].
		if i <= j && (h <= i || h > j) || i > j && h <= i && h > j {
			sh.slots[i], sh.slots[j] = sh.slots[j], idSlot{}
			i = j
		}
	}
	return true
}

// grow makes the table a quarter larger (at least 64 slots) and puts its
// keys back.
func (sh *idShard) grow() {
	old, oldMem := sh.slots, sh.mem
	sh.mem = allocMem(idSlotBytes * max(64, len(old)+len(old)/4))
	sh.slots = unsafe.Slice((*idSlot)(unsafe.Pointer(&sh.mem[0])), len(sh.mem)/idSlotBytes)
	defer freeMem(oldMem)
	for _, k := range old {
		if k == (idSlot{}) {
			continue
		}
		for i := sh.home(k); ; i = sh.next(i) {
			if sh.slots[i] == (idSlot{}) {
				sh.slots[i] = k
				break
			}
		}
	}
}
