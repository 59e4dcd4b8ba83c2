package duckdb

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// TestReadAppendedGaps: ReadAppended asks DuckDB for the seq range after
// after first and for the rest only when the range falls short, so every
// page must still hold exactly the next limit records whatever the gaps in
// the sequence numbers (retention's deletes, rolled-back appends): at the
// start, inside a page, longer than a page, at the end; in blocks and in
// frames of their own, read from the table (no memory tail).
func TestReadAppendedGaps(t *testing.T) {
	ctx := context.Background()
	for _, blockBytes := range []int{-1, 2 << 10} {
		t.Run(fmt.Sprintf("blockBytes=%d", blockBytes), func(t *testing.T) {
			st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{TailBytes: -1, BlockBytes: blockBytes})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := storetest.NewGen(21, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
			for range 4 {
				if _, err := st.Append(ctx, g.Records(60)); err != nil {
					t.Fatal(err)
				}
			}
			// 240 records, seqs 1..240; take away: the first 5, one in
			// the middle of a page, a run of 70 (longer than most pages),
			// two apart, and the last 3.
			var gone []string
			for _, r := range [][2]int{{1, 5}, {20, 20}, {41, 110}, {150, 150}, {152, 152}, {238, 240}} {
				for s := r[0]; s <= r[1]; s++ {
					gone = append(gone, fmt.Sprint(s))
				}
			}
			if _, err := st.db.Exec(`DELETE FROM events WHERE seq IN (` + strings.Join(gone, ",") + `)`); err != nil {
				t.Fatal(err)
			}
			var want []int64
			for s := int64(1); s <= 240; s++ {
				if !slices.Contains(gone, fmt.Sprint(s)) {
					want = append(want, s)
				}
			}
			// Three pages from each start (the walk from 0 by 7 to the
			// end), to keep the test short.
			for _, limit := range []int{1, 2, 7, 64, 1000} {
				for _, start := range []int64{0, 4, 5, 19, 20, 40, 100, 149, 151, 237, 240, 1 << 62} {
					after := start
					i, _ := slices.BinarySearch(want, after+1)
					for n := 0; n < 3 || (start == 0 && limit == 7); n++ {
						page, err := st.ReadAppended(ctx, after, limit)
						if err != nil {
							t.Fatalf("ReadAppended(%d, %d): %v", after, limit, err)
						}
						exp := want[i:min(len(want), i+limit)]
						if diff := cmp.Diff(exp, appendedSeqs(page)); diff != "" {
							t.Fatalf("ReadAppended(%d, %d) seqs (-want +got):\n%s", after, limit, diff)
						}
						for _, a := range page {
							if len(a.Record.Raw) == 0 || a.Record.EventID == "" || a.Record.Account == "" {
								t.Fatalf("ReadAppended(%d, %d): seq %d without its record", after, limit, a.Seq)
							}
						}
						if len(page) == 0 {
							break
						}
						after, i = page[len(page)-1].Seq, i+len(page)
					}
				}
			}
		})
	}
}

func appendedSeqs(page []audit.Appended) []int64 {
	out := []int64{}
	for _, a := range page {
		out = append(out, a.Seq)
	}
	return out
}
