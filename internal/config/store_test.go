package config

import "testing"

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
