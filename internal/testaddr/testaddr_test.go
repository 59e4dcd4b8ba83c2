package testaddr

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeIsBelowTheEphemeralRange: the address is a loopback one, its
// port below the range outgoing connections draw from, and a server can
// listen on it.
func TestFreeIsBelowTheEphemeralRange(t *testing.T) {
	lo := ephemeralLow()
	for range 50 {
		addr := Free(t)
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if host != "127.0.0.1" || port < lowest || port >= lo {
			t.Fatalf("Free = %s; want 127.0.0.1 and a port in [%d, %d)", addr, lowest, lo)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on Free's %s: %v", addr, err)
		}
		ln.Close()
	}
}
