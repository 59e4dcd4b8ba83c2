package config

import (
	"net"
	"strings"
	"testing"
)

// TestTrustedProxies: one top-level trusted_proxies serves every edge;
// an edge's own key (the released console and gateway ones too) replaces
// it there, even when empty; the console, on the API's listener, takes
// the API's list unless it has its own.
func TestTrustedProxies(t *testing.T) {
	const base = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAAA, secret: s}\n"
	const gw = "gateway:\n  listen: 127.0.0.1:4580\n  upstreams: {default: http://127.0.0.1:5000}\n"
	str := func(ns []*net.IPNet) string {
		var out []string
		for _, n := range ns {
			out = append(out, n.String())
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name, yaml            string
		api, console, gateway string
	}{
		{"none", gw, "", "", ""},
		{"top level serves every edge", "trusted_proxies: [10.0.0.0/24, \"fd00::1\"]\n" + gw,
			"10.0.0.0/24 fd00::1/128", "10.0.0.0/24 fd00::1/128", "10.0.0.0/24 fd00::1/128"},
		{"api replaces it for the API and the console", "trusted_proxies: [10.0.0.0/24]\napi:\n  trusted_proxies: [192.0.2.1]\n" + gw,
			"192.0.2.1/32", "192.0.2.1/32", "10.0.0.0/24"},
		{"console replaces it for the console", "trusted_proxies: [10.0.0.0/24]\nconsole:\n  trusted_proxies: [192.0.2.2]\n" + gw,
			"10.0.0.0/24", "192.0.2.2/32", "10.0.0.0/24"},
		{"gateway replaces it for the gateway", "trusted_proxies: [10.0.0.0/24]\n" + gw + "  trusted_proxies: [192.0.2.3]\n",
			"10.0.0.0/24", "10.0.0.0/24", "192.0.2.3/32"},
		{"released keys alone", "console:\n  trusted_proxies: [192.0.2.2]\n" + gw + "  trusted_proxies: [192.0.2.3]\n",
			"", "192.0.2.2/32", "192.0.2.3/32"},
		{"an empty edge list trusts no one there", "trusted_proxies: [10.0.0.0/24]\napi:\n  trusted_proxies: []\n" + gw + "  trusted_proxies: []\n",
			"", "", ""},
		{"a null edge list inherits", "trusted_proxies: [10.0.0.0/24]\napi:\n  trusted_proxies:\n" + gw,
			"10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("c.yaml", []byte(base+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := str(c.API.TrustedProxies); got != tc.api {
				t.Errorf("api: %q; want %q", got, tc.api)
			}
			if got := str(c.Console.TrustedProxies); got != tc.console {
				t.Errorf("console: %q; want %q", got, tc.console)
			}
			if got := str(c.Gateway.TrustedProxies); got != tc.gateway {
				t.Errorf("gateway: %q; want %q", got, tc.gateway)
			}
		})
	}
	t.Run("no gateway", func(t *testing.T) {
		c, err := Parse("c.yaml", []byte(base+"trusted_proxies: [10.0.0.1]\n"))
		if err != nil || c.Gateway != nil || str(c.API.TrustedProxies) != "10.0.0.1/32" {
			t.Errorf("Parse = %+v, %v; want no gateway, the API trusting 10.0.0.1", c, err)
		}
	})
	for _, bad := range []struct{ yaml, want string }{
		{"trusted_proxies: [10.0.0.0/33]\n", "c.yaml:7: trusted_proxies: want an IP address or CIDR, got \"10.0.0.0/33\""},
		{"trusted_proxies: [lb.internal]\n", "trusted_proxies: want an IP address or CIDR, got \"lb.internal\""},
		{"trusted_proxies: 10.0.0.1\n", "c.yaml:7: trusted_proxies: want a list"},
		{"trusted_proxies: {a: 1}\n", "c.yaml:7: trusted_proxies: want a list"},
		{"api:\n  trusted_proxies: [\"::1/200\"]\n", "c.yaml:8: api.trusted_proxies: want an IP address or CIDR"},
		{"api:\n  trusted_proxies: [\"\"]\n", "api.trusted_proxies: want an IP address or CIDR"},
		{"api:\n  trusted_proxies: 10.0.0.1\n", "api.trusted_proxies: want a list"},
		{"api:\n  trusted_proxy: [10.0.0.1]\n", "api.trusted_proxy"},
		{"trusted_proxy: [10.0.0.1]\n", "trusted_proxy"},
	} {
		if _, err := Parse("c.yaml", []byte(base+bad.yaml)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v; want it to contain %q", bad.yaml, err, bad.want)
		}
	}
}
