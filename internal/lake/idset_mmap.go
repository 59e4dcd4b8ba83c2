//go:build linux || darwin

package lake

import (
	"fmt"
	"syscall"
	"unsafe"
)

// slotMemory is the memory of an idSet's table: anonymous memory mapped
// from the kernel, outside Go's heap (idSet), zero until written.
type slotMemory []byte

// allocSlots maps the memory of a table of n slots.
func allocSlots(n int) slotMemory {
	b, err := syscall.Mmap(-1, 0, idSlotBytes*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// As make would fail: the process is out of memory.
		panic(fmt.Sprintf("lake: seen set: mapping %d bytes: %v", idSlotBytes*n, err))
	}
	return b
}

// slots is m as a table's slots.
func (m slotMemory) slots() []idSlot {
	if len(m) == 0 {
		return nil
	}
	return unsafe.Slice((*idSlot)(unsafe.Pointer(&m[0])), len(m)/idSlotBytes)
}

// free unmaps m (nothing for none); its slots are gone.
func (m slotMemory) free() {
	if len(m) > 0 {
		syscall.Munmap(m)
	}
}
