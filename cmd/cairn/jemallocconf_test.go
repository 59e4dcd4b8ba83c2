//go:build linux && cgo

package main

import (
	"database/sql"
	"fmt"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"
)

// TestJemallocConf: DuckDB's jemalloc in this binary runs with one arena
// and no muzzy pages (jemallocConf), whatever DuckDB's own options say.
func TestJemallocConf(t *testing.T) {
	// jemalloc is initialized by then (a C constructor); a query makes
	// sure DuckDB's allocator is in use.
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM range(100000)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	narenas, muzzy := jemallocOpts()
	if got := fmt.Sprintf("narenas:%d,muzzy_decay_ms:%d", narenas, muzzy); got != jemallocConf {
		t.Fatalf("jemalloc runs with %s, want %s", got, jemallocConf)
	}
}
