// Package budget bounds the bytes the API edges hold at once for requests
// that have not earned them yet: bodies read before their signature can
// be verified (the API server), bodies buffered to record their
// parameters (the gateway, which authenticates no one). It never waits:
// a request it cannot take is answered, or passed through unread, at
// once, so a flood of large bodies cannot make the server hold more than
// the budget.
package budget

import "sync"

// Bytes is a budget of bytes; its zero value holds nothing (every Take
// of more than 0 fails). Safe for concurrent use.
type Bytes struct {
	mu   sync.Mutex
	max  int64
	used int64
}

// New returns a budget of max bytes.
func New(max int64) *Bytes { return &Bytes{max: max} }

// Take reserves n bytes, reporting whether they were free.
func (b *Bytes) Take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

// Give returns n bytes taken.
func (b *Bytes) Give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

// InUse returns the bytes taken and not given back.
func (b *Bytes) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
