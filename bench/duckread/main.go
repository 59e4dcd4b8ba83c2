// Command duckread counts the records of CloudTrail .json.gz files with
// DuckDB's own JSON reader (read_json), the peer cairn's import is measured
// against; with -import FILE it also imports them into a table of FILE the
// way a DuckDB user would (9 columns + the raw JSON, sorted by time,
// checkpointed), the peer of `cairn import`; with -lake FILE it loads them
// into a table of CloudTrail Lake's schema (internal/lake/duckdb's columns
// and types, eventJson compressed with zstd) with one INSERT … SELECT from
// read_json, checkpointed: the peer of a Lake load (StartImport, `cairn
// import --into`).
//
//	go run ./bench/duckread 'DIR/**/*.json.gz'
//	go run ./bench/duckread -import /tmp/x.duckdb 'DIR/**/*.json.gz'
//	go run ./bench/duckread -lake /tmp/l.duckdb [-threads 1] 'DIR/**/*.json.gz'
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	lakeduckdb "github.com/cairn-audit/cairn/internal/lake/duckdb"
)

func main() {
	into := flag.String("import", "", "import into a table of this DuckDB `file` (created; it must not exist)")
	lake := flag.String("lake", "", "load into a table of Lake's schema in this DuckDB `file` (created; it must not exist)")
	threads := flag.Int("threads", 0, "DuckDB threads for -lake (0: DuckDB's default, one per core)")
	noRaw := flag.Bool("no-eventjson", false, "-lake without eventJson (NULL): read_json reads the records straight into Lake's types, parsing each once")
	flag.Parse()
	if flag.NArg() != 1 {
		log.Fatal("usage: duckread [-import FILE | -lake FILE [-threads N]] GLOB")
	}
	glob := flag.Arg(0)
	if *into != "" {
		importInto(*into, glob)
		return
	}
	if *lake != "" {
		lakeInto(*lake, glob, *threads, *noRaw)
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

// lakeShape is from_json's structure of a whole record with Lake's
// columns: each column's type (a nested one's own structure), so that
// DuckDB parses a record once into all of them.
func lakeShape() string {
	var b strings.Builder
	b.WriteString("{")
	for i, c := range lakeduckdb.Columns() {
		if i > 0 {
			b.WriteString(",")
		}
		t := c.Type
		if t == "VARCHAR" || t == "BOOLEAN" || t == "TIMESTAMP" {
			t = `"` + t + `"`
		}
		fmt.Fprintf(&b, "%q:%s", c.Name, t)
	}
	b.WriteString("}")
	return b.String()
}

// lakeInto loads the records into a new table events of path with Lake's
// columns and types (internal/lake/duckdb.Columns, eds_id first and
// eventJson last, zstd as Lake declares it, DuckDB 1.2's storage format as
// Lake creates its file), with one INSERT … SELECT from read_json, then
// CHECKPOINT: DuckDB's own Lake load, the peer of cairn's. It prints the
// wall time and the process's CPU time.
func lakeInto(path, glob string, threads int, noRaw bool) {
	if _, err := os.Stat(path); err == nil {
		log.Fatalf("%s exists", path)
	}
	dsn := path + "?storage_compatibility_version=v1.2.0&preserve_insertion_order=false"
	if threads > 0 {
		dsn += fmt.Sprintf("&threads=%d", threads)
	}
	db, err := sql.Open("duckdb", dsn)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the temporary table below is the connection's
	// Each record is parsed once, by from_json into a STRUCT of every
	// column (read_json's own typed reading cannot also keep the record's
	// text, eventJson); a field of an unexpected type makes the record's
	// columns NULL (try), not the load fail.
	sel := []string{"'peer' AS eds_id"}
	for _, c := range lakeduckdb.Columns() {
		sel = append(sel, fmt.Sprintf("s.%q", c.Name))
	}
	sel = append(sel, `CAST(r AS VARCHAR) AS "eventJson"`)
	from := `(SELECT r, try(from_json(r, '` + strings.ReplaceAll(lakeShape(), "'", "''") + `')) AS s
  FROM (SELECT unnest(Records) AS r FROM read_json(?, columns = {Records: 'JSON[]'}, maximum_object_size = 1073741824)))`
	// The table's types are those the SELECT yields (as Lake makes its
	// table from its own conversion), eventJson compressed with zstd.
	if _, err := db.Exec(`CREATE TEMPORARY TABLE shape AS SELECT ` + strings.Join(sel, ", ") + ` FROM (SELECT NULL::JSON AS r, from_json('{}'::JSON, '` + strings.ReplaceAll(lakeShape(), "'", "''") + `') AS s) LIMIT 0`); err != nil {
		log.Fatal(err)
	}
	rows, err := db.Query(`SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'temp' AND table_name = 'shape' ORDER BY column_index`)
	if err != nil {
		log.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			log.Fatal(err)
		}
		col := fmt.Sprintf("%q %s", name, typ)
		if name == "eventJson" {
			col += " USING COMPRESSION zstd"
		}
		cols = append(cols, col)
	}
	if err := rows.Err(); err != nil {
		log.Fatal(err)
	}
	rows.Close()
	if _, err := db.Exec(`CREATE TABLE events (` + strings.Join(cols, ", ") + `)`); err != nil {
		log.Fatal(err)
	}
	ins := `INSERT INTO events SELECT ` + strings.Join(sel, ", ") + ` FROM ` + from
	if noRaw {
		// The ceiling without the record's text: read_json's own reader
		// parses each record once into Lake's STRUCT (the columns' types
		// as the table has them).
		var fields []string
		for _, c := range cols[1 : len(cols)-1] {
			fields = append(fields, c)
		}
		ins = `INSERT INTO events SELECT 'peer' AS eds_id, s.*, NULL AS "eventJson" FROM (SELECT unnest(Records) AS s FROM read_json(?, columns = {Records: '` +
			strings.ReplaceAll(`STRUCT(`+strings.Join(fields, ", ")+`)[]`, "'", "''") + `'}, maximum_object_size = 1073741824))`
	}
	start, cpu0 := time.Now(), cpuTime()
	if _, err := db.Exec(ins, glob); err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec("CHECKPOINT"); err != nil {
		log.Fatal(err)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		log.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("duckdb lake load: %d records in %.2fs: %.0f records/s, %.1f µs of CPU a record, %d bytes\n",
		n, el.Seconds(), float64(n)/el.Seconds(), float64(cpu.Microseconds())/float64(n), fi.Size())
}

// cpuTime is the CPU time the process used (user + system, all threads).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
