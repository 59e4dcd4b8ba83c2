// Package lifecycle runs cairn's long-running workers as one group and
// serves HTTP as one of them. A worker is a func(ctx) error (a Run method)
// that returns only after every goroutine it started has returned.
//
// Group stops its members one at a time, in the reverse order of Add, and
// waits for each before stopping the next: that order is what keeps
// "nothing acknowledged is lost" in cairn serve (stop accepting HTTP calls,
// then drain the ingest pipeline, then deliver, and only then close the
// stores, which the caller does after Run returns). Standard library only.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Group runs workers together. The zero value is an empty group ready to
// use; a Group runs once.
type Group struct {
	// Logger receives the errors members return while the group stops
	// (nil: discarded).
	Logger  *slog.Logger
	members []member
}

type member struct {
	name string
	run  func(context.Context) error
}

// Add adds a worker named name (for errors and logs). Members are stopped
// in the reverse order of Add: add what must stop last first.
func (g *Group) Add(name string, run func(ctx context.Context) error) {
	g.members = append(g.members, member{name: name, run: run})
}

// Run starts every member, each with its own context derived from ctx,
// and returns once all have returned. The group stops when ctx ends or
// when a member returns an error: then each member, last added first, has
// its context cancelled and is waited for before the next is cancelled. A
// member that returns nil before the group stops has simply finished (a
// worker with nothing to do) and stops nothing.
//
// Run returns the error that stopped the group, naming its member, or nil
// when ctx ended. Errors members return while stopping are logged.
func (g *Group) Run(ctx context.Context) error {
	type exit struct {
		i   int
		err error
	}
	n := len(g.members)
	cancels := make([]context.CancelFunc, n)
	done := make([]chan struct{}, n)
	errs := make([]error, n)
	exits := make(chan exit, n)
	for i, m := range g.members {
		mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i], done[i] = cancel, make(chan struct{})
		go func() {
			defer close(done[i])
			err := m.run(mctx)
			errs[i] = err
			exits <- exit{i, err}
		}()
	}
	var cause error
	causeAt := -1
wait:
	for running := n; running > 0; {
		select {
		case <-ctx.Done():
			break wait
		case e := <-exits:
			running--
			if e.err != nil {
				cause, causeAt = fmt.Errorf("%s: %w", g.members[e.i].name, e.err), e.i
				break wait
			}
		}
	}
	log := g.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i := n - 1; i >= 0; i-- {
		cancels[i]()
		<-done[i]
		if err := errs[i]; err != nil && i != causeAt {
			log.Error("stopping "+g.members[i].name, "err", err)
		}
	}
	return cause
}

// Server serves HTTP on a listener as a worker.
type Server struct {
	// Server is the http.Server to run; its Handler is wrapped so that Run
	// can wait for every call.
	Server *http.Server
	// Listener is the listener to serve; Run closes it.
	Listener net.Listener
	// ShutdownTimeout bounds the wait for in-flight calls once Run's
	// context ends (default 30 s); after it, connections are closed and
	// Run still waits for the handlers to return.
	ShutdownTimeout time.Duration
}

// Run serves until ctx ends, then stops accepting, waits for in-flight
// calls (Shutdown, bounded by ShutdownTimeout, then Close) and returns
// once every handler has returned. It returns the error that ended
// serving early, or nil.
func (s *Server) Run(ctx context.Context) error {
	var calls sync.WaitGroup
	h := s.Server.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	s.Server.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		defer calls.Done()
		h.ServeHTTP(w, r)
	})
	served := make(chan error, 1)
	go func() { served <- s.Server.Serve(s.Listener) }()
	var err error
	select {
	case err = <-served:
		// Serving failed: close what is open, wait for the calls.
		s.Server.Close()
	case <-ctx.Done():
		timeout := s.ShutdownTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		if serr := s.Server.Shutdown(sctx); serr != nil {
			s.Server.Close()
		}
		cancel()
		err = <-served
	}
	calls.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
