// Package awsclient is what cairn's own aws-sdk-go-v2 clients share: an
// HTTP client that keeps the SDK from closing a connection while it reads
// a response.
//
// The race it removes (aws-sdk-go-v2 issues #1825 and #2935, cairn issue
// 11 item 13): smithy-go (v1.28.9) wraps every request body in a
// safeWriteToReadCloser and closes it as soon as the response's header
// has arrived. net/http's writeLoop, after sending the Content-Length
// bytes, reads the body once more (io.Copy to io.Discard, which calls
// WriteTo) to check that nothing is left. When the server answers fast
// enough that the close comes first, WriteTo returns io.EOF, which is not
// a clean end for WriteTo; the writeLoop takes it as a write error and
// closes the connection, and the SDK, still reading the response body,
// fails with "use of closed network connection". It shows on responses
// that do not fit in the client's first 4 KiB read (LookupEvents with
// events; not DescribeTrails) and with retries off (with retries on, the
// SDK retries it). Python clients do not have the race.
//
// HTTPClient hides WriteTo from request bodies, so net/http reads them
// with Read, and Read after Close returns (0, io.EOF): a clean end. The
// fix upstream (WriteTo returning 0, nil once closed) makes this a no-op.
package awsclient

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
)

// HTTPClient returns base (the SDK's default client when nil) sending
// request bodies without their WriteTo method. Set it as a client's
// Options.HTTPClient (or aws.Config.HTTPClient).
func HTTPClient(base aws.HTTPClient) aws.HTTPClient {
	if base == nil {
		base = awshttp.NewBuildableClient()
	}
	if c, ok := base.(client); ok {
		return c
	}
	return client{base: base}
}

type client struct{ base aws.HTTPClient }

// Do sends r with its body's WriteTo hidden. r itself is not modified.
func (c client) Do(r *http.Request) (*http.Response, error) {
	if _, ok := r.Body.(io.WriterTo); ok {
		out := new(http.Request)
		*out = *r
		out.Body = readCloser{r.Body}
		r = out
	}
	return c.base.Do(r)
}

// readCloser is an io.ReadCloser and nothing else.
type readCloser struct{ rc io.ReadCloser }

func (b readCloser) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b readCloser) Close() error               { return b.rc.Close() }
