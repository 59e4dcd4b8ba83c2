package main

import (
	"net"
	"sync"

	"github.com/cairn-audit/cairn/internal/config"
)

// limitListener serves at most n connections at once: Accept waits while
// n are open, so further clients wait in the kernel's listen backlog and
// cost cairn nothing (golang.org/x/net/netutil.LimitListener, which cairn
// does not depend on, does the same).
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// newLimitListener limits l to n connections (config.DefaultMaxConnections
// when n <= 0).
func newLimitListener(l net.Listener, n int) *limitListener {
	if n <= 0 {
		n = config.DefaultMaxConnections
	}
	return &limitListener{Listener: l, sem: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free place, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

// Close stops Accept, including one waiting for a place.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
