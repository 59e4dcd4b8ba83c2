// Command duckread counts the records of CloudTrail .json.gz files with
// DuckDB's own JSON reader (read_json), the peer cairn's import is measured
// against; with -import FILE it also imports them into a table of FILE the
// way a DuckDB user would (9 columns + the raw JSON, sorted by time,
// checkpointed), the peer of `cairn import`.
//
//	go run ./bench/duckread 'DIR/**/*.json.gz'
//	go run ./bench/duckread -import /tmp/x.duckdb 'DIR/**/*.json.gz'
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	into := flag.String("import", "", "import into a table of this DuckDB `file` (created; it must not exist)")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: duckread [-import FILE] GLOB")
	}
	glob := flag.Arg(0)
	if *into != "" {
		importInto(*into, glob)
		return
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var n int64
	q := `SELECT count(*) FROM (SELECT unnest(Records) FROM read_json(?, columns = {Records: 'JSON[]'}, maximum_object_size = 1073741824))`
	if err := db.QueryRow(q, glob).Scan(&n); err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("duckdb read_json: %d records in %.2fs: %.0f records/s\n", n, el.Seconds(), float64(n)/el.Seconds())
}

// importInto loads the records into a new table of path: the issue's
// "DuckDB importing them (9 columns + raw JSON, sorted, checkpointed)".
func importInto(path, glob string) {
	if _, err := os.Stat(path); err == nil {
		log.Fatalf("%s exists", path)
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	q := `CREATE TABLE events AS
SELECT r->>'recipientAccountId' AS account, r->>'awsRegion' AS region,
       CAST(r->>'eventTime' AS TIMESTAMP) AS event_time, r->>'eventID' AS event_id,
       r->>'eventName' AS event_name, r->>'eventSource' AS event_source,
       r->'userIdentity'->>'userName' AS username, r->'userIdentity'->>'accessKeyId' AS access_key_id,
       CAST(r->>'readOnly' AS BOOLEAN) AS read_only, CAST(r AS VARCHAR) AS raw
FROM (SELECT unnest(Records) AS r FROM read_json(?, columns = {Records: 'JSON[]'}, maximum_object_size = 1073741824))
ORDER BY event_time`
	if _, err := db.Exec(q, glob); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("CHECKPOINT"); err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("duckdb import: %d records in %.2fs: %.0f records/s, %d bytes\n", n, el.Seconds(), float64(n)/el.Seconds(), fi.Size())
}
