package apiserver

import "sync"

// DefaultMaxUnverifiedBody is Config.MaxUnverifiedBody's default.
const DefaultMaxUnverifiedBody = 64 << 20

// budget bounds the bytes of request bodies held at once by requests
// whose signature cannot be verified until their body is read. It never
// waits: a request it cannot take is answered at once.
type budget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// take reserves n bytes, reporting whether they were free.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

// give returns n bytes taken.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
