//go:build linux || darwin

package lake

import (
	"fmt"
	"syscall"
)

// allocMem maps n bytes of anonymous memory from the kernel, outside Go's
// heap (idSet), zero until written.
func allocMem(n int) []byte {
	if n == 0 {
		return nil
	}
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		// As make would fail: the process is out of memory.
		panic(fmt.Sprintf("lake: seen set: mapping %d bytes: %v", n, err))
	}
	return b
}

// freeMem unmaps b (nothing for none); its bytes are gone.
func freeMem(b []byte) {
	if len(b) > 0 {
		syscall.Munmap(b)
	}
}
