package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/ingest"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// gatedStore is a real DuckDB store whose appends wait while the gate is
// shut; stored counts the records whose append has returned.
type gatedStore struct {
	inner   *duckdb.Store
	gate    chan struct{} // closed: appends go through
	entered chan struct{} // one send per append that reached the gate
	fail    atomic.Bool
	stored  atomic.Int64
}

func (g *gatedStore) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	if g.fail.Load() {
		return audit.AppendResult{}, errors.New("disk on fire")
	}
	res, err := g.inner.Append(ctx, recs)
	if err == nil {
		g.stored.Add(int64(len(recs)))
	}
	return res, err
}

// durableEnv is a gateway recording through a real ingest pipeline into a
// gated DuckDB store, in front of a small S3-like upstream.
type durableEnv struct {
	gw       *Gateway
	url      string
	store    *gatedStore
	upstream atomic.Int64 // requests the upstream has answered
}

func newDurableEnv(t *testing.T, queue int) *durableEnv {
	t.Helper()
	st, err := duckdb.Open(filepath.Join(t.TempDir(), "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &durableEnv{store: &gatedStore{inner: st, gate: make(chan struct{}), entered: make(chan struct{}, 64)}}
	pipe := ingest.New(ingest.Config{Store: e.store, QueueSize: queue, MaxBatch: 1, MaxAttempts: 1})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()
	body := bytes.Repeat([]byte("x"), 200<<10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.upstream.Add(1)
		w.Header().Set("x-amz-request-id", "REQ1")
		if r.Method == http.MethodPut {
			w.Header().Set("Content-Length", "0")
			return
		}
		w.Header().Set("Content-Type", "binary/octet-stream")
		w.Write(body)
	}))
	u, _ := url.Parse(up.URL)
	if e.gw, err = New(Config{Upstreams: map[string]*url.URL{"default": u}, Recorder: pipe, DefaultAccount: "111111111111"}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.gw)
	e.url = srv.URL
	t.Cleanup(func() {
		e.open()
		srv.Close()
		up.Close()
		cancel()
		<-done
	})
	return e
}

func (e *durableEnv) open() {
	select {
	case <-e.store.gate:
	default:
		close(e.store.gate)
	}
}

// call makes one S3 call through the gateway and reads the whole response.
func (e *durableEnv) call(method, key string) (int, int, error) {
	return e.callCounting(method, key, nil)
}

// callCounting is call, adding the body bytes to got as they arrive
// (got counts the header as 1 byte when the response has no body).
func (e *durableEnv) callCounting(method, key string, got *atomic.Int64) (int, int, error) {
	req, _ := http.NewRequest(method, e.url+"/bucket/"+key, nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if got == nil {
		got = new(atomic.Int64)
	}
	if resp.ContentLength == 0 {
		got.Add(1)
	}
	var n int
	buf := make([]byte, 4096)
	for {
		m, err := resp.Body.Read(buf)
		n += m
		got.Add(int64(m))
		if err == io.EOF {
			return resp.StatusCode, n, nil
		}
		if err != nil {
			return resp.StatusCode, n, err
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := testwait.End(t); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// The client sees a response complete only once the call's record is
// durably stored: with or without a body.
func TestResponseCompletesAfterTheRecordIsStored(t *testing.T) {
	for _, tc := range []struct {
		method string
		size   int
	}{{http.MethodGet, 200 << 10}, {http.MethodPut, 0}} {
		t.Run(tc.method, func(t *testing.T) {
			e := newDurableEnv(t, 16)
			type res struct {
				status, n int
				err       error
			}
			done := make(chan res, 1)
			var got atomic.Int64
			go func() {
				s, n, err := e.callCounting(tc.method, "obj", &got)
				done <- res{s, n, err}
			}()
			select {
			case <-e.store.entered: // the record reached the store, which holds it
			case <-testwait.Context(t).Done():
				t.Fatal("the record never reached the store")
			}
			// The client has had all but the last byte of the body (a GET)
			// or nothing (a response without a body: its header would
			// complete it). Give it time to see more, then check it did not.
			if tc.size > 0 {
				waitFor(t, "the client to receive the body", func() bool { return got.Load() >= int64(tc.size-1) })
			}
			time.Sleep(200 * time.Millisecond)
			select {
			case r := <-done:
				t.Fatalf("the response completed (%+v) while its record was not stored", r)
			default:
			}
			if g, want := got.Load(), int64(max(tc.size-1, 0)); g != want {
				t.Fatalf("the client got %d bytes while the record was not stored; want %d (all but the last)", g, want)
			}
			e.open()
			r := <-done
			if r.err != nil || r.status != 200 || r.n != tc.size {
				t.Fatalf("call = %d, %d bytes, %v; want 200, %d bytes", r.status, r.n, r.err, tc.size)
			}
			if n := e.store.stored.Load(); n != 1 {
				t.Errorf("%d records stored when the response completed; want 1", n)
			}
		})
	}
}

// A store that stalls stalls the gateway's callers (backpressure) and
// none of their records is dropped.
func TestStalledStorePushesBackWithoutDropping(t *testing.T) {
	e := newDurableEnv(t, 2)
	const calls = 12
	var (
		wg        sync.WaitGroup
		completed atomic.Int64
		failures  = make(chan error, calls)
	)
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, _, err := e.call(http.MethodGet, "obj")
			if err == nil && s != 200 {
				err = errors.New(http.StatusText(s))
			}
			if err != nil {
				failures <- err
			}
			completed.Add(1)
		}()
	}
	// Every call has been answered by the upstream; the store holds the
	// first record, the pipeline's queue two more, the rest wait to be
	// queued: no client has a complete response.
	waitFor(t, "the upstream to answer every call", func() bool { return e.upstream.Load() == calls })
	<-e.store.entered
	if n := completed.Load(); n != 0 {
		t.Fatalf("%d calls completed while the store was stalled", n)
	}
	e.open()
	wg.Wait()
	close(failures)
	for err := range failures {
		t.Errorf("call failed: %v", err)
	}
	if n := e.store.stored.Load(); n != calls {
		t.Errorf("%d records stored; want %d, none dropped", n, calls)
	}
}

// A call whose record cannot be stored does not complete for its client:
// the connection is dropped, so the client cannot take it as recorded.
func TestUnstoredRecordAbortsTheResponse(t *testing.T) {
	e := newDurableEnv(t, 16)
	e.store.fail.Store(true)
	e.open()
	for _, m := range []string{http.MethodGet, http.MethodPut} {
		_, n, err := e.call(m, "obj")
		if err == nil {
			t.Errorf("%s: the response completed (%d bytes) although its record was not stored", m, n)
		} else if !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
			t.Logf("%s: %v", m, err)
		}
	}
}

// With a journal (as cairn serve runs the pipeline), the response
// completes once the record is journaled, while the store still holds
// nothing; a pipeline opened later on the same journal stores it.
func TestJournaledResponseCompletesBeforeTheStoreAppend(t *testing.T) {
	dir := t.TempDir()
	st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	gated := &gatedStore{inner: st, gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	gated.fail.Store(true) // once opened, the store refuses: the record stays journaled
	pipe, err := ingest.Open(t.Context(), ingest.Config{Store: gated, JournalDir: filepath.Join(dir, "journal"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.Run(ctx) }()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amz-request-id", "REQ1")
		w.Write([]byte("hello"))
	}))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": u}, Recorder: pipe, DefaultAccount: "111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/bucket/obj", nil)
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAALICE00000000001/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("response = %q, %v; want hello", body, err)
	}
	if n := gated.stored.Load(); n != 0 {
		t.Fatalf("%d records stored; want 0 (the store is shut)", n)
	}
	// Stop: the store is opened but fails, so the record stays journaled.
	close(gated.gate)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := gated.stored.Load(); n != 0 {
		t.Fatalf("%d records stored by a failing store", n)
	}
	gated.fail.Store(false)
	if _, err := ingest.Open(t.Context(), ingest.Config{Store: gated, JournalDir: filepath.Join(dir, "journal")}); err != nil {
		t.Fatal(err)
	}
	if n := gated.stored.Load(); n != 1 {
		t.Errorf("%d records stored after the replay; want 1", n)
	}
	got, err := st.ReadAppended(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Record.EventName != "GetObject" {
		t.Errorf("stored records = %+v; want the GetObject call", got)
	}
}
