package duckdb_test

import (
	"path/filepath"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
