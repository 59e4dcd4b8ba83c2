package clientaddr

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func mustTrusted(t testing.TB, ss ...string) Trusted {
	t.Helper()
	var out Trusted
	for _, s := range ss {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// TestResolve: X-Forwarded-For and X-Forwarded-Proto decide the client
// only from a trusted peer, and then only as far as the trusted hops go.
func TestResolve(t *testing.T) {
	trusted := mustTrusted(t, "10.0.0.0/24", "fd00::/64")
	type hdr = map[string][]string
	for _, tc := range []struct {
		name, peer string
		hdr        hdr
		tls        bool
		wantIP     string
		wantTLS    bool
	}{
		// Untrusted peers: every header ignored.
		{"untrusted peer, forged headers", "203.0.113.9:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, false, "203.0.113.9", false},
		{"untrusted peer next to a trusted range", "10.0.1.1:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, false, "10.0.1.1", false},
		{"untrusted peer naming a trusted proxy", "203.0.113.9:5000", hdr{"X-Forwarded-For": {"10.0.0.2"}}, false, "203.0.113.9", false},
		{"untrusted ipv6 peer", "[2001:db8::9]:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}}, false, "2001:db8::9", false},
		{"direct TLS", "203.0.113.10:5000", nil, true, "203.0.113.10", true},
		{"direct TLS, forged http proto", "203.0.113.10:5000", hdr{"X-Forwarded-Proto": {"http"}}, true, "203.0.113.10", true},
		{"untrusted, many forged hops", "203.0.113.9:1", hdr{"X-Forwarded-For": {strings.Repeat("192.0.2.1, ", 500) + "192.0.2.2"}}, false, "203.0.113.9", false},
		// Trusted peers.
		{"trusted proxy over https", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, false, "198.51.100.1", true},
		{"trusted proxy over http", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"http"}}, false, "198.51.100.1", false},
		{"trusted proxy, proto case", "10.0.0.2:5000", hdr{"X-Forwarded-Proto": {"HTTPS"}}, false, "10.0.0.2", true},
		{"client-forged left-most hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"6.6.6.6, 198.51.100.7, 10.0.0.3"}}, false, "198.51.100.7", false},
		{"hops over several header lines", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"6.6.6.6", "198.51.100.7, 10.0.0.3"}}, false, "198.51.100.7", false},
		{"malformed right-most hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1, not-an-ip"}}, false, "10.0.0.2", false},
		{"malformed hop behind a trusted one", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1, <script>, 10.0.0.3"}}, false, "10.0.0.3", false},
		{"empty hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1,,"}}, false, "10.0.0.2", false},
		{"empty header", "10.0.0.2:5000", hdr{"X-Forwarded-For": {""}}, false, "10.0.0.2", false},
		{"hostname hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"evil.example"}}, false, "10.0.0.2", false},
		{"CIDR hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.0/24"}}, false, "10.0.0.2", false},
		{"ipv6 zone hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"fe80::1%eth0"}}, false, "10.0.0.2", false},
		{"only trusted hops", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"10.0.0.5"}}, false, "10.0.0.5", false},
		{"no forwarded headers", "10.0.0.2:5000", nil, false, "10.0.0.2", false},
		{"hop with a port", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1:4711"}}, false, "198.51.100.1", false},
		{"ipv6 hop with a port", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"[2001:db8::5]:4711"}}, false, "2001:db8::5", false},
		{"hop with a bad port", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1:http"}}, false, "10.0.0.2", false},
		{"ipv6 trusted proxy", "[fd00::1]:5000", hdr{"X-Forwarded-For": {"2001:db8::7"}, "X-Forwarded-Proto": {"https"}}, false, "2001:db8::7", true},
		{"non-canonical ipv6 hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"2001:DB8:0:0::7"}}, false, "2001:db8::7", false},
		{"ipv4-mapped trusted peer", "[::ffff:10.0.0.2]:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}}, false, "198.51.100.1", false},
		{"ipv4-mapped hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"::ffff:198.51.100.1"}}, false, "198.51.100.1", false},
		{"ipv4-mapped trusted hop", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1, ::ffff:10.0.0.9"}}, false, "198.51.100.1", false},
		{"trusted TLS peer, no proto", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}}, true, "198.51.100.1", true},
		{"trusted TLS peer says http", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"http"}}, true, "198.51.100.1", false},
		{"proto per hop: chosen hop's", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1, 10.0.0.3"}, "X-Forwarded-Proto": {"https, http"}}, false, "198.51.100.1", true},
		{"proto per hop: forged by the client", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}, "X-Forwarded-Proto": {"https, http"}}, false, "198.51.100.1", false},
		{"one proto for several hops: right-most", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"6.6.6.6, 198.51.100.1"}, "X-Forwarded-Proto": {"https"}}, false, "198.51.100.1", true},
		{"client-forged https before the proxy's http", "10.0.0.2:5000", hdr{"X-Forwarded-For": {"198.51.100.1"}, "X-Forwarded-Proto": {"https, http"}}, false, "198.51.100.1", false},
		{"garbage proto", "10.0.0.2:5000", hdr{"X-Forwarded-Proto": {"httpsx"}}, false, "10.0.0.2", false},
		// Peers that are no IP address.
		{"peer without a port", "10.0.0.2", hdr{"X-Forwarded-For": {"198.51.100.1"}}, false, "198.51.100.1", false},
		{"unix socket peer", "@", hdr{"X-Forwarded-For": {"198.51.100.1"}}, false, "@", false},
		{"empty peer", "", hdr{"X-Forwarded-For": {"198.51.100.1"}}, false, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, vs := range tc.hdr {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			got := trusted.Resolve(tc.peer, h, tc.tls)
			if got.IP != tc.wantIP || got.TLS != tc.wantTLS {
				t.Errorf("Resolve(%q, %v, %v) = %+v; want {IP:%s TLS:%v}", tc.peer, tc.hdr, tc.tls, got, tc.wantIP, tc.wantTLS)
			}
		})
	}
}

// TestZeroTrustsNoOne: without trusted networks the headers never count.
func TestZeroTrustsNoOne(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	r.Header.Set("X-Forwarded-Proto", "https")
	if got := (Trusted{}).Of(r); got != (Client{IP: "127.0.0.1"}) {
		t.Errorf("Trusted{}.Of = %+v; want the peer, no TLS", got)
	}
	if got := Trusted(nil).Of(r); got != (Client{IP: "127.0.0.1"}) {
		t.Errorf("Trusted(nil).Of = %+v; want the peer, no TLS", got)
	}
	all := mustTrusted(t, "0.0.0.0/0")
	if got := all.Of(r); got != (Client{IP: "198.51.100.1", TLS: true}) {
		t.Errorf("everyone trusted: Of = %+v; want the forwarded client over TLS", got)
	}
}

// FuzzResolve: whatever the headers, Resolve does not panic, an untrusted
// peer is always the client, and a trusted peer's client is the peer or an
// address its header names.
func FuzzResolve(f *testing.F) {
	f.Add("10.0.0.2:1", "198.51.100.1, 10.0.0.3", "https")
	f.Add("203.0.113.9:1", "198.51.100.1", "https")
	f.Add("[fd00::1]:1", "[2001:db8::1]:80,,x", "http,https")
	trusted := mustTrusted(f, "10.0.0.0/24", "fd00::/64")
	f.Fuzz(func(t *testing.T, peer, xff, proto string) {
		h := http.Header{"X-Forwarded-For": {xff}, "X-Forwarded-Proto": {proto}}
		got := trusted.Resolve(peer, h, false)
		direct := Trusted(nil).Resolve(peer, h, false)
		if direct.TLS {
			t.Fatalf("untrusted Resolve(%q) = %+v; want no TLS", peer, direct)
		}
		host, _, err := net.SplitHostPort(peer)
		if err != nil {
			host = peer
		}
		ip := net.ParseIP(host)
		if ip == nil || !trusted.Contains(ip) {
			if got != direct {
				t.Fatalf("untrusted peer %q: Resolve = %+v; want %+v", peer, got, direct)
			}
			return
		}
		if got.IP == direct.IP {
			return
		}
		for _, hop := range values(h, "X-Forwarded-For") {
			if a := hopIP(hop); a != nil && a.String() == got.IP {
				return
			}
		}
		t.Fatalf("Resolve(%q, %q) = %q: neither the peer nor a hop", peer, xff, got.IP)
	})
}
