//go:build !(linux || darwin)

package lake

// slotMemory is the memory of an idSet's table: in Go's heap where no
// anonymous mapping is used (idset_mmap.go).
type slotMemory []idSlot

func allocSlots(n int) slotMemory { return make(slotMemory, n) }

func (m slotMemory) slots() []idSlot { return m }

func (m slotMemory) free() {}
