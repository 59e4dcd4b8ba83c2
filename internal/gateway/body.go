package gateway

import (
	"io"
	"net/http"
	"sync"
)

// DefaultMaxBufferedBody is Config.MaxBufferedBody's default.
const DefaultMaxBufferedBody = 64 << 20

// bodyBudget bounds the bytes of request bodies the gateway holds at once
// to record their parameters. The gateway authenticates no one (the
// upstream does), so without it any client could make it hold
// MaxParamBody per connection. It never waits: a body it cannot take is
// forwarded unread.
type bodyBudget struct {
	mu   sync.Mutex
	max  int64
	used int64
}

func (b *bodyBudget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.max-b.used {
		return false
	}
	b.used += n
	return true
}

func (b *bodyBudget) give(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
}

func (b *bodyBudget) inUse() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return float64(b.used)
}

// readParams reads r's body (of known length, at most MaxParamBody) to
// record its parameters and puts it back for the upstream. It holds the
// body's bytes from the budget until release is called (when the call
// has been recorded). ok is false when the budget is in use: the body is
// left to stream through unread and the call is recorded without its body
// parameters.
func (g *Gateway) readParams(r *http.Request) (body []byte, release func(), ok bool, err error) {
	n := r.ContentLength
	if !g.bodies.take(n) {
		g.unbuffered.Inc()
		return nil, func() {}, false, nil
	}
	release = func() { g.bodies.give(n) }
	b := make([]byte, n)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		release()
		return nil, func() {}, false, err
	}
	return b, release, true, nil
}
