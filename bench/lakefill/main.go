// Command lakefill writes BenchmarkEngines' events (internal/lake,
// bench_engines_test.go's loadEvents with CAIRN_LAKE_BENCH_DAYS and
// CAIRN_LAKE_BENCH_N) into a Lake store in SQL, much faster than the
// benchmark's own loader: event i is the loader's base record i % base
// (its first events, which the loader must have written) with its eventID
// and eventTime cut in as the loader makes them, every other column
// copied. It writes into the DuckDB engine's file or into PostgreSQL's
// lake_events (whose rollup it leaves to the engine's next Open: load
// with CAIRN_LAKE_BENCH_PG_BULK=1 first, and open nothing else meanwhile).
//
//	go run ./bench/lakefill -duckdb DIR/lake.duckdb check 3764 300000
//	go run ./bench/lakefill -postgres DSN fill 300000 10000000 250000
//
// check LO HI compares the SQL's rows for events LO..HI-1 with the ones
// the loader wrote, every column as text, EXCEPT ALL both ways; fill LO HI
// STEP inserts events LO..HI-1, STEP a statement, in the loader's order,
// and wants the store to hold exactly LO events. docs/benchmarks.md,
// "Session 18", used it for 10M events on both engines.
package main

import (
	"database/sql"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	duck := flag.String("duckdb", "", "the DuckDB engine's file (lake.duckdb)")
	pg := flag.String("postgres", "", "the PostgreSQL database's DSN")
	base := flag.Int64("base", 3764, "the loader's base records (its first events)")
	n := flag.Int64("n", 10_000_000, "CAIRN_LAKE_BENCH_N")
	days := flag.Int64("days", 31, "CAIRN_LAKE_BENCH_DAYS")
	end := flag.String("end", "2025-06-01T00:00:00Z", "the spread's end (the loader's spreadEnd)")
	flag.Parse()
	args := flag.Args()
	if len(args) < 3 || (*duck == "") == (*pg == "") {
		fmt.Fprintln(os.Stderr, "usage: lakefill -duckdb FILE | -postgres DSN (check LO HI | fill LO HI STEP)")
		os.Exit(2)
	}
	endT, err := time.Parse(time.RFC3339, *end)
	if err != nil {
		log.Fatal(err)
	}
	d := dialect{duck: *duck != "", base: *base, n: *n, span: *days * 86400, end: endT.Unix()}
	var db *sql.DB
	if d.duck {
		db, err = sql.Open("duckdb", *duck)
	} else {
		db, err = sql.Open("pgx", *pg)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the temporary base table is the connection's
	lo, err1 := strconv.ParseInt(args[1], 10, 64)
	hi, err2 := strconv.ParseInt(args[2], 10, 64)
	if err1 != nil || err2 != nil || lo < *base || hi <= lo || hi > *n {
		log.Fatalf("want %d <= LO < HI <= %d", *base, *n)
	}
	cols, err := d.columns(db)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.Exec(d.baseTable()); err != nil {
		log.Fatalf("the base rows: %v", err)
	}
	var nb int64
	if err := db.QueryRow(`SELECT count(DISTINCT j) FROM lakefill_base`).Scan(&nb); err != nil || nb != *base {
		log.Fatalf("the store holds %d of the %d base rows (%v)", nb, *base, err)
	}
	switch args[0] {
	case "check":
		var texts []string
		for _, c := range cols {
			texts = append(texts, d.cast(`"`+c+`"`))
		}
		loaded := fmt.Sprintf(`SELECT %s FROM %s WHERE "eventID" NOT LIKE '00000000-%%' AND %s BETWEEN %d AND %d`,
			strings.Join(texts, ", "), d.table(), d.number(`"eventID"`), lo, hi-1)
		made := d.generate(cols, lo, hi, true)
		for _, q := range []struct{ name, q string }{
			{"SQL's rows not the loader's", `SELECT count(*) FROM ((` + made + `) EXCEPT ALL (` + loaded + `)) x`},
			{"loader's rows not the SQL's", `SELECT count(*) FROM ((` + loaded + `) EXCEPT ALL (` + made + `)) x`},
			{"loader's rows", `SELECT count(*) FROM (` + loaded + `) x`},
		} {
			var c int64
			if err := db.QueryRow(q.q).Scan(&c); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s: %d\n", q.name, c)
		}
	case "fill":
		if len(args) < 4 {
			log.Fatal("fill LO HI STEP")
		}
		step, err := strconv.ParseInt(args[3], 10, 64)
		if err != nil || step <= 0 {
			log.Fatal("STEP: a positive number")
		}
		var have int64
		if err := db.QueryRow(`SELECT count(*) FROM ` + d.table()).Scan(&have); err != nil {
			log.Fatal(err)
		}
		if have != lo {
			log.Fatalf("the store holds %d events, not LO = %d", have, lo)
		}
		var quoted []string
		for _, c := range cols {
			quoted = append(quoted, `"`+c+`"`)
		}
		for s := lo; s < hi; s += step {
			e := min(s+step, hi)
			start := time.Now()
			if _, err := db.Exec(`INSERT INTO ` + d.table() + ` (` + strings.Join(quoted, ", ") + `) ` + d.generate(cols, s, e, false)); err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s %d events (%.0f events/s)\n", time.Now().UTC().Format(time.TimeOnly), e, float64(e-s)/time.Since(start).Seconds())
		}
		if d.duck {
			if _, err := db.Exec(`CHECKPOINT`); err != nil {
				log.Fatal(err)
			}
		}
	default:
		log.Fatalf("%s: neither check nor fill", args[0])
	}
}

// dialect writes the SQL of one engine.
type dialect struct {
	duck               bool
	base, n, span, end int64
}

func (d dialect) table() string {
	if d.duck {
		return "main.events"
	}
	return "lake_events"
}

// columns are the events table's columns in order.
func (d dialect) columns(db *sql.DB) ([]string, error) {
	q := `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'lake_events' ORDER BY ordinal_position`
	if d.duck {
		q = `SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = 'events' ORDER BY ordinal_position`
	}
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("no events table")
	}
	return cols, rows.Err()
}

// number is the SQL of an event's number from its eventID (the loader's
// %012x of it, the ID's last 12 characters).
func (d dialect) number(id string) string {
	if d.duck {
		return `('0x' || right(` + id + `, 12))::BIGINT`
	}
	return `('x' || lpad(right(` + id + `, 12), 16, '0'))::bit(64)::bigint`
}

func (d dialect) cast(e string) string {
	if d.duck {
		return "(" + e + ")::VARCHAR"
	}
	return "(" + e + ")::text"
}

// baseTable keeps the base rows with their record cut around the eventID
// and the eventTime (a, m, z; idfirst: the eventID comes first), as the
// loader cuts it: the first "eventID":"<id>" and the first "eventTime":".
func (d dialect) baseTable() string {
	create, json := `CREATE TEMP TABLE lakefill_base AS`, `"eventJson"`
	if d.duck {
		create, json = `CREATE OR REPLACE TEMP TABLE lakefill_base AS`, `eventJson`
	}
	return create + `
SELECT x.j, e.*, idat < tat AS idfirst,
  substr(` + json + `, 1, least(idat, tat) - 1) AS a,
  CASE WHEN idat < tat THEN substr(` + json + `, idat + idlen, tat - idat - idlen) ELSE substr(` + json + `, tat + tlen, idat - tat - tlen) END AS m,
  substr(` + json + `, greatest(idat + idlen, tat + tlen)) AS z
FROM (SELECT "eventID" AS id, ` + d.number(`"eventID"`) + ` AS j,
        strpos(` + json + `, '"eventID":"' || "eventID" || '"') + 11 AS idat, length("eventID") AS idlen,
        strpos(` + json + `, '"eventTime":"') + 13 AS tat,
        strpos(substr(` + json + `, strpos(` + json + `, '"eventTime":"') + 13), '"') - 1 AS tlen
      FROM ` + d.table() + ` WHERE "eventID" LIKE '00000000-%' AND strpos(` + json + `, '"eventTime":"') > 0) x
JOIN ` + d.table() + ` e ON e."eventID" = x.id`
}

// generate is the SELECT of events lo..hi-1 in the loader's order, each
// column as text when text is set.
func (d dialect) generate(cols []string, lo, hi int64, text bool) string {
	div, hex := "/", func(x string) string { return "to_hex(" + x + ")" }
	if d.duck {
		div, hex = "//", func(x string) string { return "lower(hex(" + x + "))" }
	}
	id := fmt.Sprintf(`lpad(%s, 8, '0') || '-0000-4000-8000-' || lpad(%s, 12, '0')`, hex(fmt.Sprintf("i %s %d", div, d.base)), hex("i"))
	sec := fmt.Sprintf(`(%d - %d + %d::bigint * i %s %d)`, d.end, d.span, d.span, div, d.n)
	ts := `(timestamp '1970-01-01' + ` + sec + ` * interval '1 second')`
	tss := `to_char(` + ts + `, 'YYYY-MM-DD"T"HH24:MI:SS"Z"')`
	if d.duck {
		ts = `(TIMESTAMP '1970-01-01' + to_seconds(` + sec + `))`
		tss = `strftime(` + ts + `, '%Y-%m-%dT%H:%M:%SZ')`
	}
	var out []string
	for _, c := range cols {
		var e string
		switch c {
		case "eventID":
			e = id
		case "eventTime":
			e = ts
		case "eventJson":
			e = `b.a || CASE WHEN b.idfirst THEN ` + id + ` ELSE ` + tss + ` END || b.m || CASE WHEN b.idfirst THEN ` + tss + ` ELSE ` + id + ` END || b.z`
		default:
			e = `b."` + c + `"`
		}
		if text {
			e = d.cast(e)
		}
		out = append(out, e)
	}
	if d.duck {
		return fmt.Sprintf(`SELECT %s FROM range(%d, %d) t(i) JOIN lakefill_base b ON b.j = i %% %d ORDER BY i`, strings.Join(out, ", "), lo, hi, d.base)
	}
	return fmt.Sprintf(`SELECT %s FROM generate_series(%d::bigint, %d) i, LATERAL (SELECT * FROM lakefill_base WHERE j = i %% %d) b`, strings.Join(out, ", "), lo, hi-1, d.base)
}
