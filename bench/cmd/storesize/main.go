// Command storesize prints where the bytes of a cairn DuckDB store go:
// DuckDB's used and free blocks, and per table and column the bytes of its
// segments (pragma_storage_info) and of the overflow blocks of its long
// strings and blobs, per record of events. Column paths are DuckDB's
// column ids (events: [9] record, [4] event_id, [5] key_hash, [13, 1]
// res_hashes' values; duckdb_columns() names them, counting from 1). It opens the file
// read-only; the store must not be open elsewhere.
//
// Usage: storesize DATA_DIR/events.duckdb
package main

import (
	"cmp"
	"database/sql"
	"fmt"
	"os"
	"slices"

	_ "github.com/duckdb/duckdb-go/v2"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: storesize FILE.duckdb")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "storesize:", err)
		os.Exit(1)
	}
}

type seg struct {
	table, column string
	block         int64
	offset        int64
	size          int64
}

func run(path string) error {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return err
	}
	defer db.Close()
	var blockSize, total, used, free int64
	if err := db.QueryRow(`SELECT block_size, total_blocks, used_blocks, free_blocks FROM pragma_database_size() LIMIT 1`).Scan(&blockSize, &total, &used, &free); err != nil {
		return err
	}
	var records int64
	if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&records); err != nil {
		return err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Printf("file %d bytes, %d records: %.1f bytes a record\n", fi.Size(), records, float64(fi.Size())/float64(max(records, 1)))
	fmt.Printf("blocks of %d: %d total, %d used, %d free (%.1f bytes a record free)\n", blockSize, total, used, free, float64(free*blockSize)/float64(max(records, 1)))
	tables, err := names(db, `SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1`)
	if err != nil {
		return err
	}
	var segs []seg
	for _, t := range tables {
		rows, err := db.Query(fmt.Sprintf(`SELECT column_path, block_id, block_offset FROM pragma_storage_info('%s') WHERE persistent AND block_id >= 0`, t))
		if err != nil {
			return err
		}
		for rows.Next() {
			s := seg{table: t}
			if err := rows.Scan(&s.column, &s.block, &s.offset); err != nil {
				rows.Close()
				return err
			}
			segs = append(segs, s)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	// A segment runs to the next segment's offset in its block, or to the
	// block's end.
	slices.SortFunc(segs, func(a, b seg) int { return cmp.Or(cmp.Compare(a.block, b.block), cmp.Compare(a.offset, b.offset)) })
	for i := range segs {
		end := blockSize
		if i+1 < len(segs) && segs[i+1].block == segs[i].block {
			end = segs[i+1].offset
		}
		segs[i].size = end - segs[i].offset
	}
	type key struct{ table, column string }
	sums := map[key]int64{}
	var order []key
	for _, s := range segs {
		k := key{s.table, s.column}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += s.size
	}
	slices.SortFunc(order, func(a, b key) int { return cmp.Compare(sums[b], sums[a]) })
	// Strings and blobs past DuckDB's string limit (4 KB: a record block,
	// a large bucket filter) live in overflow blocks of their own, which
	// the segments name in additional_block_ids; a whole block each.
	for _, t := range tables {
		rows, err := db.Query(fmt.Sprintf(`SELECT column_path, count(DISTINCT b) FROM (SELECT column_path, unnest(additional_block_ids) AS b FROM pragma_storage_info('%s') WHERE persistent) GROUP BY ALL`, t))
		if err != nil {
			return err
		}
		for rows.Next() {
			var column string
			var n int64
			if err := rows.Scan(&column, &n); err != nil {
				rows.Close()
				return err
			}
			k := key{t, column + " overflow"}
			if _, ok := sums[k]; !ok {
				order = append(order, k)
			}
			sums[k] += n * blockSize
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	slices.SortFunc(order, func(a, b key) int { return cmp.Compare(sums[b], sums[a]) })
	var all int64
	fmt.Printf("%-16s %-28s %12s %10s\n", "table", "column (path)", "bytes", "B/record")
	for _, k := range order {
		all += sums[k]
		fmt.Printf("%-16s %-28s %12d %10.1f\n", k.table, k.column, sums[k], float64(sums[k])/float64(max(records, 1)))
	}
	fmt.Printf("%-16s %-28s %12d %10.1f\n", "all (with overflow)", "", all, float64(all)/float64(max(records, 1)))
	return nil
}

func names(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
