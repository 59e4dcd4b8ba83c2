package apiserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// headerAuth is fakeAuth with a header check: X-Test-Header says what
// AuthenticateHeader answers ("refuse", "verified", or unverified).
type headerAuth struct{ fakeAuth }

func (headerAuth) AuthenticateHeader(r *http.Request) (bool, error) {
	switch r.Header.Get("X-Test-Header") {
	case "refuse":
		return false, &awsjson.Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid.", Status: 403}
	case "verified":
		return true, nil
	}
	return false, nil
}

// countingBody counts the bytes read from it; until release is closed
// (when set) its reads wait, as a slow client's do.
type countingBody struct {
	r       io.Reader
	n       atomic.Int64
	started chan struct{}
	release chan struct{}
}

func newCountingBody(s string) *countingBody {
	return &countingBody{r: strings.NewReader(s), started: make(chan struct{}, 1)}
}

func (b *countingBody) Read(p []byte) (int, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	if b.release != nil {
		<-b.release
	}
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func edgeServer(maxUnverified int64) *Server {
	st := audittest.NewMemStore()
	return New(Config{Auth: headerAuth{}, History: st, Recorder: syncRecorder{st}, MaxUnverifiedBody: maxUnverified,
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: time.Now})
}

func edgeCall(s *Server, target, header string, body *countingBody, length int64) (int, string) {
	r := httptest.NewRequest("POST", "/", body)
	r.ContentLength = length
	r.Header.Set("X-Amz-Target", target)
	r.Header.Set("X-Test-Account", "111111111111")
	if header != "" {
		r.Header.Set("X-Test-Header", header)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var e struct {
		Type string `json:"__type"`
	}
	json.Unmarshal(w.Body.Bytes(), &e)
	return w.Code, e.Type
}

const lookupTarget = "CloudTrail_20131101.LookupEvents"

// TestRefusedBodiesAreNotRead: a request refused from its header, one over
// its operation's limit and one beyond the unverified-body budget are
// answered without a byte of their body read.
func TestRefusedBodiesAreNotRead(t *testing.T) {
	s := edgeServer(1 << 20)
	big := strings.Repeat(" ", 8<<20)
	for _, tc := range []struct {
		name, target, header string
		length               int64
		status               int
		code                 string
	}{
		{"refused from the header, import", importPrefix + ".ImportRecords", "refuse", 8 << 20, 403, "UnrecognizedClientException"},
		{"refused from the header, lookup", lookupTarget, "refuse", 8 << 20, 403, "UnrecognizedClientException"},
		{"over the import limit", importPrefix + ".ImportRecords", "verified", 8<<20 + 1, 413, awsjson.CodeRequestEntityTooLarge},
		{"over the lookup limit", lookupTarget, "", 1<<20 + 1, 413, awsjson.CodeRequestEntityTooLarge},
		{"beyond the budget", importPrefix + ".ImportRecords", "", 8 << 20, 400, "ThrottlingException"},
		{"beyond the budget, length unknown", importPrefix + ".ImportRecords", "", -1, 400, "ThrottlingException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newCountingBody(big)
			status, code := edgeCall(s, tc.target, tc.header, b, tc.length)
			if status != tc.status || code != tc.code {
				t.Errorf("status %d, %s; want %d, %s", status, code, tc.status, tc.code)
			}
			if n := b.n.Load(); n != 0 {
				t.Errorf("%d bytes of the body read; want 0", n)
			}
		})
	}
	// Within the budget and verified: read and served.
	for _, h := range []string{"", "verified"} {
		b := newCountingBody(`{"MaxResults":1}`)
		if status, code := edgeCall(s, lookupTarget, h, b, 16); status != 200 || b.n.Load() != 16 {
			t.Errorf("X-Test-Header %q: status %d %s, %d bytes read; want 200, 16", h, status, code, b.n.Load())
		}
	}
}

// TestUnverifiedBudget: while unverified bodies hold the budget, a further
// unverified request is throttled and a verified one is not; the budget
// is given back when the held request ends, whatever its outcome.
func TestUnverifiedBudget(t *testing.T) {
	s := edgeServer(100)
	slow := newCountingBody(`{"MaxResults":1}` + strings.Repeat(" ", 84))
	slow.release = make(chan struct{})
	done := make(chan int)
	go func() {
		status, _ := edgeCall(s, lookupTarget, "", slow, 100)
		done <- status
	}()
	<-slow.started // its 100 bytes are reserved: it is reading
	for _, n := range []int64{1, 100} {
		b := newCountingBody(strings.Repeat(" ", int(n)))
		if status, code := edgeCall(s, lookupTarget, "", b, n); code != "ThrottlingException" || b.n.Load() != 0 {
			t.Errorf("%d-byte unverified request while the budget is held: %d %s, %d bytes read; want ThrottlingException, 0", n, status, code, b.n.Load())
		}
	}
	if status, code := edgeCall(s, lookupTarget, "verified", newCountingBody(`{}`), 2); status != 200 {
		t.Errorf("verified request while the budget is held: %d %s; want 200", status, code)
	}
	close(slow.release)
	if status := <-done; status != 200 {
		t.Errorf("the slow request: %d; want 200", status)
	}
	if got := s.unverified.InUse(); got != 0 {
		t.Errorf("budget in use after every request ended = %d; want 0", got)
	}
	b := newCountingBody(`{"MaxResults":1}`)
	if status, code := edgeCall(s, lookupTarget, "", b, 16); status != 200 {
		t.Errorf("after the budget is free: %d %s; want 200", status, code)
	}
}
