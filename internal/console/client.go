package console

import (
	"net"
	"net/http"
	"strings"
)

// client is where a request came from: the browser's address and whether
// the browser's connection was TLS, as the configured trusted proxies
// tell them (Config.TrustedProxies). Every use of the client's address
// (the sign-in throttle, sign-in records, the recorded API calls'
// sourceIPAddress) and of its scheme (the cookies' Secure attribute, the
// sign-in record's loginTo) goes through clientOf, so a header from an
// untrusted peer never decides either.
type client struct {
	IP  string // the browser's address (the peer's, without trusted proxies)
	TLS bool   // the browser's connection was TLS
}

// clientOf returns r's client. The peer's address is the client unless
// the peer is a trusted proxy; then X-Forwarded-For's right-most address
// that is not itself a trusted proxy is, and X-Forwarded-Proto https
// (from the trusted peer) means the browser used TLS.
func (c *Console) clientOf(r *http.Request) client {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	cl := client{IP: host, TLS: r.TLS != nil}
	peer := net.ParseIP(host)
	if peer == nil || !c.trusted(peer) {
		return cl
	}
	cl.IP = peer.String()
	for _, v := range r.Header.Values("X-Forwarded-Proto") {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "https") {
				cl.TLS = true
			}
		}
	}
	parts := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(parts) - 1; i >= 0; i-- {
		a := net.ParseIP(strings.TrimSpace(parts[i]))
		if a == nil {
			break // a malformed hop: the last good address stands
		}
		cl.IP = a.String()
		if !c.trusted(a) {
			break
		}
	}
	return cl
}

func (c *Console) trusted(ip net.IP) bool {
	for _, n := range c.cfg.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// throttleKey is the source a client's failed sign-ins count against: its
// IPv4 address, or its IPv6 address's /64 (one host, or one attacker,
// holds a whole /64; counting addresses would give it 2^64 sources).
func throttleKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil {
		return "ip:" + ip
	}
	if v4 := a.To4(); v4 != nil {
		return "ip:" + v4.String() // ::ffff:192.0.2.1 is 192.0.2.1
	}
	return "ip:" + a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
