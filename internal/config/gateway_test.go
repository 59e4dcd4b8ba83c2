package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestGatewaySection(t *testing.T) {
	const base = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAAA, secret: s}\n"
	c, err := Parse("c.yaml", []byte(base+"gateway:\n  listen: 127.0.0.1:4580\n  upstreams:\n    s3: http://127.0.0.1:5000\n    default: http://127.0.0.1:5001\n  trusted_proxies: [10.0.0.0/8, 127.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway == nil || c.Gateway.Upstreams["s3"].Host != "127.0.0.1:5000" || len(c.Gateway.TrustedProxies) != 2 {
		t.Fatalf("gateway = %+v", c.Gateway)
	}
	if c.Gateway.MaxSessions != DefaultMaxSessions || !c.Gateway.PersistSessions {
		t.Errorf("session defaults = %d, %v", c.Gateway.MaxSessions, c.Gateway.PersistSessions)
	}
	if c.Gateway.MaxConnections != DefaultMaxConnections || c.Gateway.MaxBufferedBodyMB != DefaultMaxBufferedBodyMB {
		t.Errorf("limit defaults = %d, %d", c.Gateway.MaxConnections, c.Gateway.MaxBufferedBodyMB)
	}
	c, err = Parse("c.yaml", []byte(base+"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  max_connections: 10\n  max_buffered_body_mb: 2\n"))
	if err != nil || c.Gateway.MaxConnections != 10 || c.Gateway.MaxBufferedBodyMB != 2 {
		t.Errorf("max_connections/max_buffered_body_mb: %+v, %v", c.Gateway, err)
	}
	c, err = Parse("c.yaml", []byte(base+"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  max_sessions: 10\n  persist_sessions: false\n"))
	if err != nil || c.Gateway.MaxSessions != 10 || c.Gateway.PersistSessions {
		t.Errorf("max_sessions/persist_sessions: %+v, %v", c.Gateway, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"gateway:\n  listen: nope\n  upstreams: {default: http://x}\n", "gateway.listen"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {s3: http://x}\n", "gateway.upstreams.default: required"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: ftp://x}\n", "http:// or https://"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  trusted_proxies: [bogus]\n", "IP address or CIDR"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  nope: 1\n", "nope"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  max_sessions: 0\n", "gateway.max_sessions"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  persist_sessions: maybe\n", "gateway.persist_sessions"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  max_connections: 0\n", "gateway.max_connections"},
		{"gateway:\n  listen: 127.0.0.1:1\n  upstreams: {default: http://x}\n  max_buffered_body_mb: -1\n", "gateway.max_buffered_body_mb"},
	} {
		_, err := Parse("c.yaml", []byte(base+bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

func TestAPISection(t *testing.T) {
	const base = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAAA, secret: s}\n"
	c, err := Parse("c.yaml", []byte(base))
	if err != nil || !reflect.DeepEqual(c.API, DefaultAPI()) {
		t.Fatalf("defaults: %+v, %v; want %+v", c, err, DefaultAPI())
	}
	c, err = Parse("c.yaml", []byte(base+"api:\n  max_connections: 50\n  max_unverified_body_mb: 16\n"))
	if err != nil || !reflect.DeepEqual(c.API, API{MaxConnections: 50, MaxUnverifiedBodyMB: 16}) {
		t.Errorf("api = %+v, %v", c.API, err)
	}
	for _, bad := range []struct{ yaml, want string }{
		{"api:\n  max_connections: 0\n", "api.max_connections"},
		{"api:\n  max_connections: many\n", "api.max_connections"},
		{"api:\n  max_unverified_body_mb: 4\n", "api.max_unverified_body_mb"},
		{"api:\n  max_unverified_body_mb: 100000\n", "api.max_unverified_body_mb"},
		{"api:\n  max_body: 1\n", "max_body"},
	} {
		_, err := Parse("c.yaml", []byte(base+bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.yaml, err, bad.want)
		}
	}
}
