//go:build !(linux || darwin)

package lake

// allocMem is n bytes of an idSet's memory: in Go's heap where no
// anonymous mapping is used (idset_mmap.go).
func allocMem(n int) []byte { return make([]byte, n) }

func freeMem([]byte) {}
