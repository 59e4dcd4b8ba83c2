package config

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestConsole(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	d, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Console, DefaultConsole()) || !d.Console.Enabled {
		t.Errorf("defaults %+v; want %+v", d.Console, DefaultConsole())
	}
	c, err := Parse("c.yaml", []byte(head+"console:\n  enabled: false\n  persist_sessions: false\n  session_idle: 5m\n  session_max: 1h\n  max_sessions: 10\n"+
		"  signin_failures_per_key: 3\n  signin_failures_per_ip: 9\n  signin_failure_window: 1m\n"+
		"  signin_failure_slots: 500\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"2001:db8::1\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Console{Enabled: false, SessionIdle: 5 * time.Minute, SessionMax: time.Hour, MaxSessions: 10,
		SigninFailuresPerKey: 3, SigninFailuresPerAddress: 9, SigninFailureWindow: time.Minute, SigninFailureSlots: 500,
		TrustedProxies: []*net.IPNet{
			{IP: net.IP{10, 0, 0, 0}, Mask: net.CIDRMask(8, 32)},
			{IP: net.IP{192, 0, 2, 1}, Mask: net.CIDRMask(32, 32)},
			{IP: net.ParseIP("2001:db8::1"), Mask: net.CIDRMask(128, 128)},
		}}
	if !reflect.DeepEqual(c.Console, want) {
		t.Errorf("decoded %+v; want %+v", c.Console, want)
	}
	for _, c := range []struct{ yaml, want string }{
		{"console:\n  enabled: yes please\n", "c.yaml:8: console.enabled: want true or false"},
		{"console:\n  session_idle: 2s\n", "c.yaml:8: console.session_idle"},
		{"console:\n  session_idle: 2h\n  session_max: 1h\n", "session_idle (2h0m0s) is longer than session_max (1h0m0s)"},
		{"console:\n  session_max: forever\n", "c.yaml:8: console.session_max"},
		{"console:\n  max_sessions: 0\n", "c.yaml:8: console.max_sessions: want a whole number of sessions from 1"},
		{"console:\n  signin_failures_per_key: -1\n", "c.yaml:8: console.signin_failures_per_key"},
		{"console:\n  signin_failures_per_ip: 0\n", "c.yaml:8: console.signin_failures_per_ip"},
		{"console:\n  signin_failure_window: 0s\n", "c.yaml:8: console.signin_failure_window"},
		{"console:\n  persist_sessions: sometimes\n", "c.yaml:8: console.persist_sessions: want true or false"},
		{"console:\n  session_timeout: 5m\n", "c.yaml:8: console.session_timeout"},
		{"console:\n  signin_failure_slots: 10\n", "c.yaml:8: console.signin_failure_slots: want a whole number of slots from 100"},
		{"console:\n  signin_failure_slots: lots\n", "c.yaml:8: console.signin_failure_slots"},
		{"console:\n  trusted_proxies: [10.0.0.0/33]\n", "console.trusted_proxies: want an IP address or CIDR, got \"10.0.0.0/33\""},
		{"console:\n  trusted_proxies: [proxy.local]\n", "console.trusted_proxies: want an IP address or CIDR"},
		{"console:\n  trusted_proxies: 10.0.0.1\n", "console.trusted_proxies: want a list"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}
