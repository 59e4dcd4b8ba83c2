package gateway

import (
	"io"
	"net/http"
)

// DefaultMaxBufferedBody is Config.MaxBufferedBody's default.
const DefaultMaxBufferedBody = 64 << 20

// readParams reads r's body (of known length, at most MaxParamBody) to
// record its parameters and puts it back for the upstream. It holds the
// body's bytes from the budget until release is called (when the call
// has been recorded). ok is false when the budget is in use: the body is
// left to stream through unread and the call is recorded without its body
// parameters.
func (g *Gateway) readParams(r *http.Request) (body []byte, release func(), ok bool, err error) {
	n := r.ContentLength
	if !g.bodies.Take(n) {
		g.unbuffered.Inc()
		return nil, func() {}, false, nil
	}
	release = func() { g.bodies.Give(n) }
	b := make([]byte, n)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		release()
		return nil, func() {}, false, err
	}
	return b, release, true, nil
}
