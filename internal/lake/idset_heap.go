//go:build !(linux || darwin)

package lake

// slotMemory is the memory of an idSet's table: in Go's heap where no
// anonymous mapping is used (idset_mmap.go).
type slotMemory [][2]uint64

func allocSlots(n int) slotMemory { return make(slotMemory, n) }

func (m slotMemory) slots() [][2]uint64 { return m }

func (m slotMemory) free() {}
