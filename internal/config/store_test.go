package config

import (
	"strings"
	"testing"
	"time"
)

func TestStorePostgres(t *testing.T) {
	base := "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: alice\n        access_keys:\n          - id: AKIAALICE00000000001\n            secret: alice-secret-key\n"
	for _, dsn := range []string{
		"postgres://cairn@127.0.0.1:5432/cairn?sslmode=disable",
		"postgresql://cairn:secret@db.internal/cairn",
		"postgres:///cairn?host=/var/run/postgresql",
	} {
		c, err := Parse("t.yaml", []byte(base+"store:\n  postgres: \""+dsn+"\"\n"))
		if err != nil {
			t.Errorf("Parse(store.postgres %q): %v", dsn, err)
			continue
		}
		if c.Store.Postgres != dsn {
			t.Errorf("store.postgres = %q; want %q", c.Store.Postgres, dsn)
		}
	}
	c, err := Parse("t.yaml", []byte(base))
	if err != nil || c.Store.Postgres != "" {
		t.Errorf("without store: %+v, %v; want the embedded store", c.Store, err)
	}
}

func TestCluster(t *testing.T) {
	base := "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: alice\n        access_keys:\n          - id: AKIAALICE00000000001\n            secret: alice-secret-key\n"
	c, err := Parse("t.yaml", []byte(base+"cluster:\n  node_id: cairn-1.eu_west:a\n  lease_ttl: 30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.NodeID != "cairn-1.eu_west:a" || c.Cluster.LeaseTTL != 30*time.Second {
		t.Errorf("cluster = %+v; want node cairn-1.eu_west:a, lease_ttl 30s", c.Cluster)
	}
	c, err = Parse("t.yaml", []byte(base))
	if err != nil || c.Cluster.NodeID != "" || c.Cluster.LeaseTTL != 0 {
		t.Errorf("without cluster: %+v, %v; want the zero value (the host name, the default TTL)", c.Cluster, err)
	}
	for _, id := range []string{"", "a b", "é", "a/b", "x\x00", strings.Repeat("n", 129)} {
		if ValidNodeID(id) {
			t.Errorf("ValidNodeID(%q) = true; want false", id)
		}
	}
}
