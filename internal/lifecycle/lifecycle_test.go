package lifecycle

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder notes the order in which members stop.
type recorder struct {
	mu      sync.Mutex
	stopped []string
}

func (r *recorder) worker(name string, running *sync.WaitGroup) func(context.Context) error {
	running.Add(1)
	return func(ctx context.Context) error {
		running.Done()
		<-ctx.Done()
		r.mu.Lock()
		r.stopped = append(r.stopped, name)
		r.mu.Unlock()
		return nil
	}
}

// TestGroupStopsInReverseOrder: each member is stopped, and waited for,
// before the one added before it (HTTP before ingest before delivery).
func TestGroupStopsInReverseOrder(t *testing.T) {
	for _, stop := range []string{"signal", "member error"} {
		t.Run(stop, func(t *testing.T) {
			var rec recorder
			var running sync.WaitGroup
			var g Group
			names := []string{"digests", "delivery", "ingest", "gateway", "api"}
			for _, n := range names {
				g.Add(n, rec.worker(n, &running))
			}
			failed := errors.New("listener gone")
			fail := make(chan struct{})
			g.Add("failing", func(ctx context.Context) error {
				select {
				case <-fail:
					return failed
				case <-ctx.Done():
					rec.mu.Lock()
					rec.stopped = append(rec.stopped, "failing")
					rec.mu.Unlock()
					return nil
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- g.Run(ctx) }()
			running.Wait()
			if stop == "signal" {
				cancel()
			} else {
				close(fail)
			}
			err := <-errc
			want := []string{"api", "gateway", "ingest", "delivery", "digests"}
			if stop == "signal" {
				want = append([]string{"failing"}, want...)
				if err != nil {
					t.Errorf("Run = %v; want nil", err)
				}
			} else if !errors.Is(err, failed) || !strings.Contains(err.Error(), "failing") {
				t.Errorf("Run = %v; want the failing member's error, named", err)
			}
			if !slices.Equal(rec.stopped, want) {
				t.Errorf("stopped %q; want %q", rec.stopped, want)
			}
		})
	}
}

// TestGroupWaitsForEachMember: the next member is not cancelled while
// the one stopping before it still runs.
func TestGroupWaitsForEachMember(t *testing.T) {
	var g Group
	release := make(chan struct{})
	firstStopped := make(chan struct{})
	var secondRanPast bool
	g.Add("store user", func(ctx context.Context) error {
		<-ctx.Done()
		select {
		case <-release:
		default:
			secondRanPast = true // cancelled while the later member still ran
		}
		return nil
	})
	g.Add("http", func(ctx context.Context) error {
		<-ctx.Done()
		close(firstStopped)
		time.Sleep(10 * time.Millisecond) // a drain taking time
		close(release)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if secondRanPast {
		t.Error("the earlier member was cancelled before the later one returned")
	}
}

// TestGroupFinishedMemberStopsNothing: a worker with nothing to do
// returns nil at once and the others run on.
func TestGroupFinishedMemberStopsNothing(t *testing.T) {
	var g Group
	idle := make(chan struct{})
	g.Add("idle", func(context.Context) error { close(idle); return nil })
	stillRunning := make(chan struct{})
	g.Add("busy", func(ctx context.Context) error {
		<-idle
		close(stillRunning)
		<-ctx.Done()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- g.Run(ctx) }()
	<-stillRunning
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v after a member finished", err)
	default:
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestServerRunWaitsForCalls: a cancelled Run returns only after the
// call in flight has returned, and it was answered.
func TestServerRunWaitsForCalls(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var handlerDone bool
	srv := &Server{Listener: ln, Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
		handlerDone = true
	})}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body <- string(b)
	}()
	<-entered
	cancel()
	select {
	case err := <-errc:
		t.Fatalf("Run returned %v with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !handlerDone {
		t.Error("Run returned before the handler")
	}
	if got := <-body; got != "done" {
		t.Errorf("body %q; want done", got)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener still accepts after Run")
	}
}

// TestServerRunTimeoutStillWaits: past ShutdownTimeout, connections are
// closed, and Run still returns only after the handler.
func TestServerRunTimeoutStillWaits(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	var mu sync.Mutex
	handlerDone := false
	srv := &Server{Listener: ln, ShutdownTimeout: time.Millisecond, Server: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // the connection is closed past the timeout
		mu.Lock()
		handlerDone = true
		mu.Unlock()
	})}}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Run(ctx) }()
	go http.Get("http://" + ln.Addr().String())
	<-entered
	cancel()
	<-errc
	mu.Lock()
	defer mu.Unlock()
	if !handlerDone {
		t.Error("Run returned before the handler")
	}
}
