// Package testaddr picks loopback addresses for servers a test starts
// without handing them a listener (a child process, a config file's
// listen address).
//
// A port taken from the kernel with Listen(":0") and closed again comes
// from the ephemeral range (ip_local_port_range, 32768-60999 on Linux),
// the same range every outgoing connection's local port is drawn from:
// with many tests connecting in parallel, one of their connections may
// take the port before the server binds it ("bind: address already in
// use", CI's stop 36). Free draws from below that range instead, where
// only another listener that names its port could collide, and checks
// that the port is free right now.
package testaddr

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// lowest is the lowest port Free picks: above the well-known and most
// registered services' ports.
const lowest = 10000

// Free returns "127.0.0.1:PORT" with a port outside the ephemeral range
// that no one listens on at the moment of the call.
func Free(tb testing.TB) string {
	tb.Helper()
	return FreeOn(tb, "127.0.0.1")
}

// FreeOn is Free on another loopback host (127.0.0.2, ...).
func FreeOn(tb testing.TB, host string) string {
	tb.Helper()
	hi := ephemeralLow() - 1
	var last error
	for range 200 {
		port := lowest + rand.IntN(hi-lowest+1)
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			last = err
			continue
		}
		ln.Close()
		return addr
	}
	tb.Fatalf("testaddr: no free port on %s in [%d, %d]: %v", host, lowest, hi, last)
	return ""
}

// ephemeralLow is the lowest port of the kernel's ephemeral range (32768
// where it cannot be read, Linux's default).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= lowest+1000 {
		return 32768
	}
	return lo
}
