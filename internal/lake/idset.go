package lake

import (
	"hash/maphash"
	"math/bits"
	"runtime"
)

// idSet is the set of account/eventID keys an import checks its records
// against (Sink): those of the store and of the records the import took.
// It keeps each key as a 104-bit hash in open-addressing tables with
// linear probing, grown by a quarter at 7/8 full: the key's top byte
// chooses one of 256 tables (it is not stored), and a 12-byte slot holds
// 96 bits more, 14-17 bytes a key (16-byte slots of a 128-bit hash until
// session 29: 18-23 bytes; ~32 MiB more at 7.2M keys). As strings in a
// map[string]bool ("account/eventID", ~50 bytes, until session 23) the
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
}

// idShards is the number of tables a set spreads its keys over (by the
// hash's top byte): each grows on its own, so a growth copies 1/256 of
// the set.
const idShards = 256

// idShard is one open-addressing table; a zero slot is empty. slots is
// mem's bytes (slotMemory).
type idShard struct {
	slots []idSlot
	mem   slotMemory
	n     int
}

// idSlot is a key as a table keeps it: k[1] (whose top bits give its home
// slot) as two halves, low first, and k[0]'s low 32 bits; k[0]'s top byte
// chose the table. Bits 32-55 of k[0] are not kept.
type idSlot [3]uint32

// slotOf is k's slot.
func slotOf(k [2]uint64) idSlot {
	return idSlot{uint32(k[1]), uint32(k[1] >> 32), uint32(k[0])}
}

// homeHash is the part of the key that gives its home slot (k[1]).
func (e idSlot) homeHash() uint64 { return uint64(e[1])<<32 | uint64(e[0]) }

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

// nonZero makes k's slot not the empty one.
func nonZero(k [2]uint64) [2]uint64 {
	if slotOf(k) == (idSlot{}) {
		k[1] = 1
	}
	return k
}

// add adds k and reports whether it was new.
func (s *idSet) add(k [2]uint64) bool {
	// s stays reachable while its tables are used: the cleanup that
	// unmaps them runs once s is not (newIDSet).
	defer runtime.KeepAlive(s)
	if s.shards[k[0]>>56].add(slotOf(k)) {
		s.n++
		return true
	}
	return false
}

// remove removes k (a key add returned true for).
func (s *idSet) remove(k [2]uint64) {
	defer runtime.KeepAlive(s) // as in add
	if s.shards[k[0]>>56].remove(slotOf(k)) {
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
	e := slotOf(k)
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

// bytes is the memory the set's tables take.
func (s *idSet) bytes() int {
	n := 0
	for i := range s.shards {
		n += idSlotBytes * cap(s.shards[i].slots)
	}
	return n
}

// idSlotBytes is a slot's size.
const idSlotBytes = 12

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

// remove deletes k, moving back the keys after it that would no longer be
// found (linear probing's deletion without tombstones).
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
	sh.mem = allocSlots(max(64, len(old)+len(old)/4))
	sh.slots = sh.mem.slots()
	defer oldMem.free()
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
