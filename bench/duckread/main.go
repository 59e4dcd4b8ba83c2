// Command duckread counts the records of CloudTrail .json.gz files with
// DuckDB's own JSON reader (read_json), the peer cairn's import is measured
// against.
//
//	go run ./bench/duckread 'DIR/**/*.json.gz'
package main

import (
	"database/sql"
	"fmt"
	"log"
	"os"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: duckread GLOB")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var n int64
	q := `SELECT count(*) FROM (SELECT unnest(Records) FROM read_json(?, columns = {Records: 'JSON[]'}, maximum_object_size = 1073741824))`
	if err := db.QueryRow(q, os.Args[1]).Scan(&n); err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("duckdb read_json: %d records in %.2fs: %.0f records/s\n", n, el.Seconds(), float64(n)/el.Seconds())
}
