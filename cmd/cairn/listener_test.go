package main

import (
	"errors"
	"net"
	"testing"
	"time"
)

// TestLimitListener: beyond its limit the listener accepts nothing until a
// connection closes; Close ends a waiting Accept.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newLimitListener(inner, 2)
	accepted := make(chan net.Conn, 10)
	errc := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				errc <- err
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	// The third waits: its Accept has not happened. The only way to see
	// a missing event is to wait for it a while.
	select {
	case c := <-accepted:
		t.Fatalf("a third connection %v was accepted over the limit of 2", c.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
	first.Close()
	first.Close() // twice frees one place only
	third := <-accepted
	select {
	case <-accepted:
		t.Fatal("a fourth Accept returned")
	default:
	}
	second.Close()
	third.Close()
	l.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v; want net.ErrClosed", err)
	}
}
