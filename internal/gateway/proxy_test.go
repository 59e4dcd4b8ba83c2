package gateway

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// TestSourceBehindProxy: the recorded sourceIPAddress is X-Forwarded-For's
// client only when the peer is a trusted proxy (clientaddr's rule, shared
// with the API and the console); from any other peer the header changes
// nothing.
func TestSourceBehindProxy(t *testing.T) {
	dead, _ := url.Parse("http://127.0.0.1:1")
	_, trusted, _ := net.ParseCIDR("10.0.0.0/24")
	_, trusted6, _ := net.ParseCIDR("fd00::/64")
	rec := &collector{}
	gw, err := New(Config{Upstreams: map[string]*url.URL{"default": dead}, Recorder: rec, DefaultAccount: "111111111111",
		TrustedProxies: []*net.IPNet{trusted, trusted6}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	for _, tc := range []struct {
		name, peer, xff, want string
	}{
		{"untrusted peer, forged header", "203.0.113.9:5000", "198.51.100.1", "203.0.113.9"},
		{"untrusted peer naming a trusted proxy", "203.0.113.9:5000", "10.0.0.2", "203.0.113.9"},
		{"untrusted peer, no header", "203.0.113.9:5000", "", "203.0.113.9"},
		{"trusted proxy", "10.0.0.2:5000", "198.51.100.1", "198.51.100.1"},
		{"trusted proxy, client-forged left-most hop", "10.0.0.2:5000", "6.6.6.6, 198.51.100.7, 10.0.0.3", "198.51.100.7"},
		{"trusted proxy, malformed hop", "10.0.0.2:5000", "198.51.100.1, <script>", "10.0.0.2"},
		{"trusted proxy, no header", "10.0.0.2:5000", "", "10.0.0.2"},
		{"trusted ipv6 proxy", "[fd00::1]:5000", "2001:db8::7", "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.recs)
			r := httptest.NewRequest("GET", "/b?acl", nil)
			r.RemoteAddr = tc.peer
			r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAX/20250101/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=x")
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			w := httptest.NewRecorder()
			gw.ServeHTTP(w, r)
			if w.Code != http.StatusBadGateway || len(rec.recs) != before+1 {
				t.Fatalf("status %d, %d records; want 502 and one more record", w.Code, len(rec.recs)-before)
			}
			var ev audit.Event
			if err := json.Unmarshal(rec.recs[before].Raw, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.SourceIPAddress != tc.want {
				t.Errorf("sourceIPAddress = %q; want %q", ev.SourceIPAddress, tc.want)
			}
		})
	}
}
