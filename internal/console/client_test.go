package console

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustCIDRs(t testing.TB, ss ...string) []*net.IPNet {
	t.Helper()
	var out []*net.IPNet
	for _, s := range ss {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// signinRequest is a sign-in POST from peer with hdr, carrying a valid
// sign-in form token (cookie and field).
func signinRequest(peer, key, secret string, hdr map[string]string) *http.Request {
	tok := randomToken()
	form := url.Values{"csrf": {tok}, "access_key_id": {key}, "secret_access_key": {secret}, "region": {"us-east-1"}}
	r := httptest.NewRequest("POST", Prefix+"signin", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.AddCookie(&http.Cookie{Name: signinCookie, Value: tok})
	r.RemoteAddr = peer
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// TestClientBehindProxy: the browser's address (the sign-in records, the
// console's API calls, the throttle) and its scheme (cookies' Secure) come
// from X-Forwarded-For and X-Forwarded-Proto only when the peer is a
// configured trusted proxy; from anyone else those headers are ignored.
// The rule's variants (hops, malformed and mapped addresses, protos) are
// clientaddr's TestResolve; these cases show the console uses it.
func TestClientBehindProxy(t *testing.T) {
	h := newHarness(t, Config{KeyFailures: 1000, IPFailures: 1000,
		TrustedProxies: mustCIDRs(t, "10.0.0.0/24", "fd00::/64")})
	for _, tc := range []struct {
		name, peer string
		hdr        map[string]string
		tls        bool
		wantIP     string
		wantSecure bool
	}{
		{"untrusted peer, forged headers", "203.0.113.9:5000", map[string]string{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}, false, "203.0.113.9", false},
		{"trusted proxy over https", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"}, false, "198.51.100.1", true},
		{"trusted proxy over http", "10.0.0.2:5000", map[string]string{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "http"}, false, "198.51.100.1", false},
		{"no forwarded headers", "10.0.0.2:5000", nil, false, "10.0.0.2", false},
		{"ipv6 trusted proxy", "[fd00::1]:5000", map[string]string{"X-Forwarded-For": "2001:db8::7", "X-Forwarded-Proto": "https"}, false, "2001:db8::7", true},
		{"direct TLS", "203.0.113.10:5000", nil, true, "203.0.113.10", true},
		{"direct TLS, forged http proto", "203.0.113.10:5000", map[string]string{"X-Forwarded-Proto": "http"}, true, "203.0.113.10", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.clock.add(time.Second) // this attempt's record is the newest
			before := len(h.records(t, acctA, "ConsoleLogin"))
			r := signinRequest(tc.peer, keyA, "wrong", tc.hdr)
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			w := httptest.NewRecorder()
			h.con.ServeHTTP(w, r)
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("sign-in = %d; want 401", w.Code)
			}
			cks := w.Result().Cookies()
			if len(cks) == 0 {
				t.Fatal("no sign-in form cookie")
			}
			for _, k := range cks {
				if k.Secure != tc.wantSecure {
					t.Errorf("cookie %s Secure = %v; want %v", k.Name, k.Secure, tc.wantSecure)
				}
			}
			recs := h.records(t, acctA, "ConsoleLogin")
			if len(recs) != before+1 {
				t.Fatalf("%d ConsoleLogin records; want %d", len(recs), before+1)
			}
			var got string
			for _, rec := range recs { // newest first
				got = fmt.Sprint(rec["sourceIPAddress"])
				break
			}
			if got != tc.wantIP {
				t.Errorf("sourceIPAddress = %q; want %q", got, tc.wantIP)
			}
		})
	}
	t.Run("session behind the proxy", func(t *testing.T) {
		hdr := map[string]string{"X-Forwarded-For": "198.51.100.42", "X-Forwarded-Proto": "https"}
		w := httptest.NewRecorder()
		h.con.ServeHTTP(w, signinRequest("10.0.0.2:1", keyA, secretA, hdr))
		if w.Code != http.StatusSeeOther {
			t.Fatalf("sign-in = %d; want 303", w.Code)
		}
		var sess *http.Cookie
		for _, k := range w.Result().Cookies() {
			if k.Name == sessionCookie {
				sess = k
			}
		}
		if sess == nil || !sess.Secure {
			t.Fatalf("session cookie %+v; want Secure", sess)
		}
		// The console's API call is recorded from the browser's address.
		r := httptest.NewRequest("GET", Prefix+"trails?region=us-east-1", nil)
		r.RemoteAddr = "10.0.0.2:1"
		r.Header.Set("X-Forwarded-For", "198.51.100.42")
		r.AddCookie(sess)
		w = httptest.NewRecorder()
		h.con.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("trails = %d; want 200", w.Code)
		}
		recs := h.records(t, acctA, "DescribeTrails")
		if len(recs) == 0 || recs[0]["sourceIPAddress"] != "198.51.100.42" {
			t.Errorf("DescribeTrails records %v; want sourceIPAddress 198.51.100.42", recs)
		}
	})
}

// attempt is one sign-in through the harness's server from the browser
// at xff (behind the trusted proxy 127.0.0.1); it returns the status.
func (h *harness) attempt(t testing.TB, xff, key, secret string) int {
	t.Helper()
	r := signinRequest("127.0.0.1:1", key, secret, map[string]string{"X-Forwarded-For": xff})
	w := httptest.NewRecorder()
	h.con.ServeHTTP(w, r)
	return w.Code
}

// TestSignInThrottleManySources: the failure counters are bounded
// (signin_failure_slots) yet cannot be filled to lock others out or to
// lift throttling: a flood of sources and unknown key IDs takes the slots
// of counters that refuse nothing; a configured key's counter is never
// evicted; a source (an IPv4 address, an IPv6 /64) adds at most its limit
// of counters; headers from an untrusted peer do not make new sources.
func TestSignInThrottleManySources(t *testing.T) {
	const slots = 50
	h := newHarness(t, Config{MaxFailureSlots: slots, KeyFailures: 3, IPFailures: 5, FailureWindow: time.Hour,
		TrustedProxies: mustCIDRs(t, "127.0.0.1/32")})
	// An attacker guesses alice's secret until refused.
	for i := range 3 {
		if code := h.attempt(t, "198.51.100.1", keyA, "guess"); code != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d; want 401", i, code)
		}
	}
	// A flood: 300 IPv4 sources, each with two unknown key IDs, 12 times
	// the table.
	for i := range 300 {
		src := fmt.Sprintf("203.0.%d.%d", i/250, i%250)
		for j := range 2 {
			if code := h.attempt(t, src, fmt.Sprintf("AKIAFLOOD%05d%06d", i, j), "x"); code != http.StatusUnauthorized {
				t.Fatalf("flood %s = %d; want 401", src, code)
			}
		}
	}
	if n := h.con.failures.len(); n > slots+1 {
		t.Errorf("%d counters; want at most %d slots and alice's key", n, slots)
	}
	t.Run("configured key stays throttled", func(t *testing.T) {
		if code := h.attempt(t, "198.51.100.99", keyA, secretA); code != http.StatusTooManyRequests {
			t.Errorf("alice's key after the flood = %d; want 429", code)
		}
	})
	t.Run("others not locked out", func(t *testing.T) {
		if code := h.attempt(t, "192.0.2.77", keyB, secretB); code != http.StatusSeeOther {
			t.Errorf("bob from a new address after the flood = %d; want 303", code)
		}
	})
	t.Run("throttled source kept over quiet ones", func(t *testing.T) {
		for i := range 5 {
			h.attempt(t, "198.51.100.200", fmt.Sprintf("AKIAONE%013d", i), "x")
		}
		for i := range 150 { // three times as many quiet sources as slots
			h.attempt(t, fmt.Sprintf("203.1.%d.%d", i/250, i%250), "AKIAQUIET"+fmt.Sprint(i), "x")
		}
		if code := h.attempt(t, "198.51.100.200", "AKIAOTHER00000000000", "x"); code != http.StatusTooManyRequests {
			t.Errorf("a source at its limit after 150 quiet ones = %d; want 429", code)
		}
	})
	t.Run("ipv6 /64 is one source", func(t *testing.T) {
		ok := 0
		for i := range 50 {
			if h.attempt(t, fmt.Sprintf("2001:db8:1:2::%x", i+1), fmt.Sprintf("AKIAV6%014d", i), "x") == http.StatusUnauthorized {
				ok++
			}
		}
		if ok != 5 {
			t.Errorf("%d attempts counted from one /64; want its limit, 5", ok)
		}
		if code := h.attempt(t, "2001:db8:1:3::1", keyB, secretB); code != http.StatusSeeOther {
			t.Errorf("another /64 = %d; want 303", code)
		}
	})
	t.Run("ipv4-mapped address is the same source", func(t *testing.T) {
		for i := range 5 {
			h.attempt(t, "192.0.2.150", fmt.Sprintf("AKIAMAP%013d", i), "x")
		}
		if code := h.attempt(t, "::ffff:192.0.2.150", "AKIAMAPPED0000000000", "x"); code != http.StatusTooManyRequests {
			t.Errorf("::ffff:192.0.2.150 after 192.0.2.150's limit = %d; want 429", code)
		}
	})
	t.Run("untrusted peer cannot pose as many sources", func(t *testing.T) {
		ok := 0
		for i := range 20 {
			r := signinRequest("198.18.0.1:1", fmt.Sprintf("AKIASPOOF%011d", i), "x",
				map[string]string{"X-Forwarded-For": fmt.Sprintf("192.0.2.%d", i+1)})
			w := httptest.NewRecorder()
			h.con.ServeHTTP(w, r)
			if w.Code == http.StatusUnauthorized {
				ok++
			}
		}
		if ok != 5 {
			t.Errorf("%d attempts counted from one untrusted peer with forged X-Forwarded-For; want 5", ok)
		}
	})
}
