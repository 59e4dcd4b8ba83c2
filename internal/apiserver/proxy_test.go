package apiserver

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// TestSourceBehindProxy: a call's recorded sourceIPAddress is the client
// behind Config.TrustedProxies, and a header from any other peer changes
// nothing (the rule's variants are clientaddr's; these show the API takes
// them from there). A console call keeps the address the console decided,
// whatever its request's headers.
func TestSourceBehindProxy(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := audittest.NewMemStore()
	_, lb, _ := net.ParseCIDR("10.0.0.0/24")
	_, lb6, _ := net.ParseCIDR("fd00::/64")
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st}, TokenKey: []byte("0123456789abcdef0123456789abcdef"),
		Now: func() time.Time { return now }, TrustedProxies: []*net.IPNet{lb, lb6}})
	const acct = "111111111111"
	last := func(t *testing.T) string {
		t.Helper()
		pg, err := st.Lookup(t.Context(), audit.Query{Account: acct, Region: "us-east-1", Category: audit.CategoryManagement, Limit: 1})
		if err != nil || len(pg.Records) == 0 {
			t.Fatalf("no record (%v)", err)
		}
		var m map[string]any
		if err := json.Unmarshal(pg.Records[0].Raw, &m); err != nil {
			t.Fatal(err)
		}
		return m["sourceIPAddress"].(string)
	}
	for i, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer, forged header", "203.0.113.9:5000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"untrusted peer naming a trusted proxy", "203.0.113.9:5000", []string{"10.0.0.2"}, "203.0.113.9"},
		{"untrusted ipv6 peer", "[2001:db8::9]:5000", []string{"198.51.100.1"}, "2001:db8::9"},
		{"trusted proxy", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"trusted proxy, client-forged left-most hop", "10.0.0.2:5000", []string{"6.6.6.6", "198.51.100.7, 10.0.0.3"}, "198.51.100.7"},
		{"trusted proxy, malformed hop", "10.0.0.2:5000", []string{"198.51.100.1, <script>"}, "10.0.0.2"},
		{"trusted proxy, no header", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"trusted ipv6 proxy", "[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = now.Add(time.Second) // this call's record is the newest
			r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
			r.RemoteAddr = tc.peer
			r.Header.Set("X-Amz-Target", "CloudTrail_20131101.DeleteTrail")
			r.Header.Set("X-Test-Account", acct)
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			s.ServeHTTP(httptest.NewRecorder(), r)
			if got := last(t); got != tc.want {
				t.Errorf("call %d: sourceIPAddress = %q; want %q", i, got, tc.want)
			}
		})
	}
	t.Run("console call", func(t *testing.T) {
		now = now.Add(time.Second)
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
		r.RemoteAddr = "10.0.0.7:0" // the console's client, inside the trusted range
		r.Header.Set("X-Amz-Target", "CloudTrail_20131101.DeleteTrail")
		r.Header.Set("X-Forwarded-For", "198.51.100.66")
		s.ServeConsole(httptest.NewRecorder(), r, audit.Principal{AccountID: acct, UserName: "u", Region: "us-east-1"})
		if got := last(t); got != "10.0.0.7" {
			t.Errorf("console call: sourceIPAddress = %q; want the console's 10.0.0.7", got)
		}
	})
}
