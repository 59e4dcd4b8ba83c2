// Package clientaddr tells where an HTTP request came from when cairn sits
// behind reverse proxies: the client's address and whether the client's
// connection was TLS. Every edge (the API, the console, the recording
// gateway) asks it, so the recorded sourceIPAddress and every limit keyed
// on a source mean the same thing everywhere.
//
// X-Forwarded-For and X-Forwarded-Proto are believed only from a peer in
// the trusted networks: from anyone else they are ignored, whatever they
// say (docs/security.md, "Clients behind reverse proxies").
package clientaddr

import (
	"net"
	"net/http"
	"strings"
)

// Trusted is the set of networks whose peers are trusted reverse proxies.
// The zero value trusts no one: the peer is always the client.
type Trusted []*net.IPNet

// Client is where a request came from.
type Client struct {
	// IP is the client's address in canonical form (192.0.2.1, 2001:db8::1),
	// or the peer's address as given when it is no IP address.
	IP string
	// TLS reports that the client's connection was TLS: the connection
	// itself, or, behind a trusted proxy that says so, the proxy's.
	TLS bool
}

// Of returns the client of r (its RemoteAddr, header and TLS state).
func (t Trusted) Of(r *http.Request) Client {
	return t.Resolve(r.RemoteAddr, r.Header, r.TLS != nil)
}

// Resolve returns the client of a request that arrived from peer (host:port
// or a bare host) over a connection that was TLS or not, with header h.
//
// An untrusted peer is the client. A trusted peer forwards: the client is
// X-Forwarded-For's right-most address that is not itself trusted (hops
// are read from the right, each added by a proxy naming its own peer; the
// left part of the list is whatever the client sent and proves nothing).
// A malformed hop ends the walk: the last good address stands (the peer's,
// if it is the right-most). When every hop is trusted, the left-most one
// is the client. Hops may carry a port (192.0.2.1:443, [2001:db8::1]:443).
//
// TLS, behind a trusted peer, is X-Forwarded-Proto's word for the hop
// chosen when the header has one value per X-Forwarded-For hop, else its
// right-most value (what the trusted peer received); without the header,
// the peer's own connection. From an untrusted peer the header is ignored.
func (t Trusted) Resolve(peer string, h http.Header, tls bool) Client {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return Client{IP: host, TLS: tls}
	}
	cl := Client{IP: ip.String(), TLS: tls}
	if !t.Contains(ip) {
		return cl
	}
	hops := values(h, "X-Forwarded-For")
	chosen := len(hops) // the peer itself
	for i := len(hops) - 1; i >= 0; i-- {
		a := hopIP(hops[i])
		if a == nil {
			break // a malformed hop: the last good address stands
		}
		cl.IP, chosen = a.String(), i
		if !t.Contains(a) {
			break
		}
	}
	if protos := values(h, "X-Forwarded-Proto"); len(protos) > 0 {
		p := protos[len(protos)-1]
		if len(protos) == len(hops) && chosen < len(hops) {
			p = protos[chosen]
		}
		cl.TLS = strings.EqualFold(p, "https")
	}
	return cl
}

// Contains reports whether ip is in one of the trusted networks.
func (t Trusted) Contains(ip net.IP) bool {
	for _, n := range t {
		if n != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

// values returns the comma-separated items of every header line of name,
// trimmed, in order.
func values(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, p := range strings.Split(v, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// hopIP parses one X-Forwarded-For hop: an address, or an address and a
// port (IPv6 in brackets); nil when it is neither.
func hopIP(s string) net.IP {
	if ip := net.ParseIP(s); ip != nil {
		return ip
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" || strings.Trim(port, "0123456789") != "" || len(port) > 5 {
		return nil
	}
	return net.ParseIP(host)
}
