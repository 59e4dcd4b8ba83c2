package awsclient

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// sdkBody behaves as smithy-go's request body: once closed (the SDK closes
// it when the response's header arrives), WriteTo returns io.EOF. Its
// WriteTo waits for that close, so net/http's check for extra bytes always
// comes after it, the order the race needs.
type sdkBody struct {
	r       *bytes.Reader
	once    sync.Once
	closed  chan struct{}
	entered chan struct{} // closed when WriteTo is called
}

func newSDKBody(s string) *sdkBody {
	return &sdkBody{r: bytes.NewReader([]byte(s)), closed: make(chan struct{}), entered: make(chan struct{})}
}

func (b *sdkBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *sdkBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return nil
}
func (b *sdkBody) WriteTo(io.Writer) (int64, error) {
	close(b.entered)
	<-b.closed
	return 0, io.EOF
}

// call sends one request the way smithy-go does (the body closed once the
// header is in), reports whether it went over a reused connection and
// returns the error reading the response body.
func call(t *testing.T, c aws.HTTPClient, url string, body *sdkBody) (reused bool, readErr error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(body.r.Len())
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("Do = %v", err)
	}
	body.Close()
	_, readErr = io.ReadAll(resp.Body)
	resp.Body.Close()
	return reused, readErr
}

func TestHTTPClientKeepsTheConnection(t *testing.T) {
	// waitFor, when set, is the body of the next request; the server
	// answers its header only once net/http checks it for extra bytes,
	// the order in which the race bites, and its body only once the
	// client has closed the connection.
	var waitFor atomic.Pointer[sdkBody]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if b := waitFor.Load(); b != nil {
			<-b.entered
			w.Header().Set("Content-Length", "65536")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}
		w.Write(bytes.Repeat([]byte("x"), 64<<10))
	}))
	defer srv.Close()
	// The control: without the wrapper the closed body ends the
	// connection under the response being read, the SDK's failure (if
	// this starts failing, net/http or smithy-go has fixed the race and
	// this package can go).
	t.Run("bare", func(t *testing.T) {
		c := &http.Client{Transport: &http.Transport{}}
		b := newSDKBody(`{"MaxResults":5}`)
		waitFor.Store(b)
		defer waitFor.Store(nil)
		if _, err := call(t, c, srv.URL, b); err == nil || !strings.Contains(err.Error(), "use of closed network connection") {
			t.Fatalf("reading the response = %v; want use of closed network connection", err)
		}
	})
	t.Run("awsclient", func(t *testing.T) {
		c := HTTPClient(&http.Client{Transport: &http.Transport{}})
		for i := 0; i < 4; i++ {
			reused, err := call(t, c, srv.URL, newSDKBody(`{"MaxResults":5}`))
			if err != nil {
				t.Fatalf("call %d: reading the response = %v", i+1, err)
			}
			if i > 0 && !reused {
				t.Fatalf("call %d went over a new connection; want the first one reused", i+1)
			}
		}
	})
}

func TestHTTPClientLeavesTheRequestAlone(t *testing.T) {
	var got io.ReadCloser
	c := HTTPClient(doFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Body
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	}))
	body := newSDKBody("{}")
	req, _ := http.NewRequest(http.MethodPost, "http://x/", body)
	if _, err := c.Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.(io.WriterTo); ok {
		t.Errorf("body sent = %T; want one without WriteTo", got)
	}
	if req.Body != io.ReadCloser(body) {
		t.Errorf("the caller's request was changed: Body = %T", req.Body)
	}
	if _, twice := HTTPClient(c).(client).base.(client); twice {
		t.Error("HTTPClient(HTTPClient(x)) wraps twice")
	}
}

type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }
