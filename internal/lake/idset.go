package lake

import (
	"hash/maphash"
	"math/bits"
	"runtime"
)

// idSet is the set of account/eventID keys an import checks its records
// against (Sink): those of the store and of the records the import took.
// It keeps each key as a 128-bit hash (two maphash sums with independent
// random seeds) in open-addressing tables with linear probing, 16 bytes a
// slot, grown by a quarter at 7/8 full: 18-23 bytes a key. As strings in
// a map[string]bool ("account/eventID", ~50 bytes, until session 23) the
// keys of 10M events took about 1 GB; as [2]uint64 keys of a Go map, 28-45
// bytes (a Go map doubles).
//
// The tables are kept outside Go's heap (slotMemory: anonymous memory
// mapped from the kernel where the system allows), freed as a table grows
// and when the set is collected: in the heap, the collector counted them
// as live and let the heap grow to twice that (GOGC), so a 10M-event
// load's 128 MB of keys took ~250 MB of Go's memory (issue 15: a Lake
// load's RSS at most 1 GB; docs/lake.md).
//
// Two different keys share a hash with probability 2^-128; among n keys
// some two do with probability under n²/2^129: 1.5e-25 for 10M, 1.5e-19
// for 10 billion. Such a collision would make a record a "duplicate" and
// leave it out. The seeds are random per process, so records crafted to
// collide cannot be made in advance.
type idSet struct {
	seed0, seed1 maphash.Seed
	shards       *[idShards]idShard
	n            int
}

// idShards is the number of tables a set spreads its keys over (by the
// hash's top byte): each grows on its own, so a growth copies 1/256 of
// the set.
const idShards = 256

// idShard is one open-addressing table; a zero slot is empty. slots is
// mem's bytes (slotMemory).
type idShard struct {
	slots [][2]uint64
	mem   slotMemory
	n     int
}

func newIDSet() *idSet {
	s := &idSet{seed0: maphash.MakeSeed(), seed1: maphash.MakeSeed(), shards: new([idShards]idShard)}
	// The tables' memory is not the collector's: it is given back once
	// the set is unreachable.
	runtime.AddCleanup(s, freeShards, s.shards)
	return s
}

// freeShards frees the tables of a set no longer reachable.
func freeShards(shards *[idShards]idShard) {
	for i := range shards {
		shards[i].mem.free()
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

func nonZero(k [2]uint64) [2]uint64 {
	if k == ([2]uint64{}) {
		k[1] = 1
	}
	return k
}

// add adds k and reports whether it was new.
func (s *idSet) add(k [2]uint64) bool {
	// s stays reachable while its tables are used: the cleanup that
	// unmaps them runs once s is not (newIDSet).
	defer runtime.KeepAlive(s)
	if s.shards[k[0]>>56].add(k) {
		s.n++
		return true
	}
	return false
}

// remove removes k (a key add returned true for).
func (s *idSet) remove(k [2]uint64) {
	defer runtime.KeepAlive(s) // as in add
	if s.shards[k[0]>>56].remove(k) {
		s.n--
	}
}

// has reports whether k is in the set.
func (s *idSet) has(k [2]uint64) bool {
	defer runtime.KeepAlive(s) // as in add
	sh := &s.shards[k[0]>>56]
	if len(sh.slots) == 0 {
		return false
	}
	for i := sh.home(k); ; i = sh.next(i) {
		switch sh.slots[i] {
		case k:
			return true
		case [2]uint64{}:
			return false
		}
	}
}

// len is the number of keys.
func (s *idSet) len() int { return s.n }

// bytes is the memory the set's tables take.
func (s *idSet) bytes() int {
	n := 0
	for i := range s.shards {
		n += 16 * cap(s.shards[i].slots)
	}
	return n
}

// home is k's first slot: k[1] scaled to the table (k[0]'s top byte chose
// the shard).
func (sh *idShard) home(k [2]uint64) int {
	hi, _ := bits.Mul64(k[1], uint64(len(sh.slots)))
	return int(hi)
}

func (sh *idShard) next(i int) int {
	if i++; i == len(sh.slots) {
		return 0
	}
	return i
}

func (sh *idShard) add(k [2]uint64) bool {
	if 8*(sh.n+1) > 7*len(sh.slots) {
		sh.grow()
	}
	for i := sh.home(k); ; i = sh.next(i) {
		switch sh.slots[i] {
		case k:
			return false
		case [2]uint64{}:
			sh.slots[i] = k
			sh.n++
			return true
		}
	}
}

// remove deletes k, moving back the keys after it that would no longer be
// found (linear probing's deletion without tombstones).
func (sh *idShard) remove(k [2]uint64) bool {
	if len(sh.slots) == 0 {
		return false
	}
	i := sh.home(k)
	for ; sh.slots[i] != k; i = sh.next(i) {
		if sh.slots[i] == ([2]uint64{}) {
			return false
		}
	}
	sh.slots[i] = [2]uint64{}
	sh.n--
	for j := sh.next(i); sh.slots[j] != ([2]uint64{}); j = sh.next(j) {
		h := sh.home(sh.slots[j])
		// The key at j stays unless its home is cyclically in (i, j].
		if i <= j && (h <= i || h > j) || i > j && h <= i && h > j {
			sh.slots[i], sh.slots[j] = sh.slots[j], [2]uint64{}
			i = j
		}
	}
	return true
}

// grow makes the table a quarter larger (at least 64 slots) and puts its
// keys back.
func (sh *idShard) grow() {
	old, oldMem := sh.slots, sh.mem
	sh.mem = allocSlots(max(64, len(old)+len(old)/4))
	sh.slots = sh.mem.slots()
	defer oldMem.free()
	for _, k := range old {
		if k == ([2]uint64{}) {
			continue
		}
		for i := sh.home(k); ; i = sh.next(i) {
			if sh.slots[i] == ([2]uint64{}) {
				sh.slots[i] = k
				break
			}
		}
	}
}
