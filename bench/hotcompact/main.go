// Command hotcompact compacts an Event History store as `cairn compact`
// does, but without sealing (duckdb.Options.Seal false): every record stays
// in the hot tier, in Compact's order, as a compacted store was before
// session 29's sealed tier. It makes the hot side of a hot-against-sealed
// comparison (bench/lookupapi.sh at 10M, docs/benchmarks.md, session 30)
// from an import that was not written in order, which `cairn import` and
// `cairn compact` would both seal.
//
//	go run ./bench/hotcompact DATA_DIR/events.duckdb
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hotcompact PATH/events.duckdb")
		os.Exit(2)
	}
	res, err := duckdb.Compact(context.Background(), os.Args[1], duckdb.Options{Cold: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hotcompact:", err)
		os.Exit(1)
	}
	fmt.Printf("compacted %d records (%d sealed): %.1f MB -> %.1f MB, %d -> %d row groups, in %s\n", res.Records, res.Sealed,
		float64(res.BytesBefore)/1e6, float64(res.BytesAfter)/1e6, res.RowGroupsFrom, res.RowGroupsTo, res.Took.Round(1e6))
}
