package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/config"
)

// TestProxyWarnings: a trusted_proxies list holding every address is
// warned about at start, for each edge that inherits or sets it; a list
// of proxies is not.
func TestProxyWarnings(t *testing.T) {
	const base = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAAA, secret: s}\n"
	const gw = "gateway:\n  listen: 127.0.0.1:0\n  upstreams: {default: http://127.0.0.1:5000}\n"
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"none", gw, nil},
		{"proxies only", "trusted_proxies: [10.0.0.0/8, \"fd00::/8\"]\n" + gw, nil},
		{"top level open", "trusted_proxies: [0.0.0.0/0]\n" + gw, []string{"api.trusted_proxies", "console.trusted_proxies", "gateway.trusted_proxies"}},
		{"ipv6 open on the gateway", gw + "  trusted_proxies: [\"::/0\"]\n", []string{"gateway.trusted_proxies"}},
		{"console open", "console:\n  trusted_proxies: [10.0.0.1, 0.0.0.0/0]\n", []string{"console.trusted_proxies"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse("c.yaml", []byte(base+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			warnOpenProxies(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if buf.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tc.want) {
				t.Fatalf("%d warnings; want %d:\n%s", len(lines), len(tc.want), buf.String())
			}
			for i, w := range tc.want {
				if !strings.Contains(lines[i], "level=WARN") || !strings.Contains(lines[i], "setting="+w) {
					t.Errorf("warning %d = %s; want one for %s", i, lines[i], w)
				}
			}
		})
	}
}
