package duckdb

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

var _ audit.RawFeed = (*Store)(nil)

// TestReadRawIsReadAppended: every page ReadRaw returns holds what
// ReadAppended's holds (sequence numbers, times, eventNames, JSON), in
// the same order, whatever the gaps in the sequence numbers (the shape of
// TestReadAppendedGaps): in blocks and in frames of their own, from the
// table and from the memory tail, with blocks in the cache or not.
func TestReadRawIsReadAppended(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		blockBytes int
		tailBytes  int64
	}{{-1, -1}, {2 << 10, -1}, {2 << 10, 1 << 20}, {64 << 10, -1}} {
		t.Run(fmt.Sprintf("blockBytes=%d,tailBytes=%d", c.blockBytes, c.tailBytes), func(t *testing.T) {
			st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{TailBytes: c.tailBytes, BlockBytes: c.blockBytes})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			g := storetest.NewGen(22, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
			for _, n := range []int{60, 3, 60, 1, 116} {
				if _, err := st.Append(ctx, g.Records(n)); err != nil {
					t.Fatal(err)
				}
			}
			if c.tailBytes < 0 {
				// 240 records, seqs 1..240; take away as TestReadAppendedGaps.
				var gone []string
				for _, r := range [][2]int{{1, 5}, {20, 20}, {41, 110}, {150, 150}, {152, 152}, {238, 240}} {
					for s := r[0]; s <= r[1]; s++ {
						gone = append(gone, fmt.Sprint(s))
					}
				}
				if _, err := st.db.Exec(`DELETE FROM events WHERE seq IN (` + strings.Join(gone, ",") + `)`); err != nil {
					t.Fatal(err)
				}
			}
			for _, limit := range []int{1, 2, 7, 64, 1000} {
				for _, start := range []int64{0, 4, 5, 19, 20, 40, 100, 149, 151, 237, 240, 1 << 62} {
					after := start
					for n := 0; n < 3 || (start == 0 && limit == 7); n++ {
						want, err := st.ReadAppended(ctx, after, limit)
						if err != nil {
							t.Fatalf("ReadAppended(%d, %d): %v", after, limit, err)
						}
						if n%2 == 1 {
							st.blocks = newBlockCache(defaultBlockCacheBytes) // from the table, not the cache
						}
						got, err := st.ReadRaw(ctx, after, limit)
						if err != nil {
							t.Fatalf("ReadRaw(%d, %d): %v", after, limit, err)
						}
						if len(got) != len(want) {
							t.Fatalf("ReadRaw(%d, %d): %d records; ReadAppended %d", after, limit, len(got), len(want))
						}
						for i, w := range want {
							g := got[i]
							if g.Seq != w.Seq || !g.Time.Equal(w.Record.Time) || g.Time.Location() != time.UTC ||
								g.EventName != w.Record.EventName || !bytes.Equal(g.Raw, w.Record.Raw) || len(g.Raw) == 0 {
								t.Fatalf("ReadRaw(%d, %d)[%d] = seq %d %v %q %q; ReadAppended seq %d %v %q %q", after, limit, i,
									g.Seq, g.Time, g.EventName, g.Raw, w.Seq, w.Record.Time, w.Record.EventName, w.Record.Raw)
							}
						}
						if len(got) == 0 {
							break
						}
						after = got[len(got)-1].Seq
					}
				}
			}
		})
	}
}

// TestReadRawDamage: a damaged stored record is an error, not a panic.
func TestReadRawDamage(t *testing.T) {
	ctx := context.Background()
	for _, blockBytes := range []int{-1, 2 << 10} {
		st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{TailBytes: -1, BlockBytes: blockBytes})
		if err != nil {
			t.Fatal(err)
		}
		g := storetest.NewGen(23, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
		if _, err := st.Append(ctx, g.Records(20)); err != nil {
			t.Fatal(err)
		}
		damage := `UPDATE events SET record = '\x01\x02'::BLOB WHERE seq = 7`
		if blockBytes > 0 {
			damage = `UPDATE record_blocks SET data = '\x28\xB5\x2F\xFD\x00'::BLOB`
		}
		if _, err := st.db.Exec(damage); err != nil {
			t.Fatal(err)
		}
		if _, err := st.ReadRaw(ctx, 0, 100); err == nil {
			t.Errorf("blockBytes=%d: ReadRaw over a damaged record: no error", blockBytes)
		}
		st.Close()
	}
}

// TestLimitFeedMemory: the cap reaches DuckDB (at least 64 MiB), and the
// store still reads and appends under it.
func TestLimitFeedMemory(t *testing.T) {
	ctx := context.Background()
	st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, c := range []struct {
		bytes int64
		want  string
	}{{256 << 20, "256.0 MiB"}, {1, "64.0 MiB"}, {-5, "64.0 MiB"}} {
		if err := st.LimitFeedMemory(ctx, c.bytes); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := st.db.QueryRowContext(ctx, "SELECT current_setting('memory_limit')").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("LimitFeedMemory(%d): memory_limit %q; want %q", c.bytes, got, c.want)
		}
	}
	g := storetest.NewGen(3, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	if _, err := st.Append(ctx, g.Records(50)); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ReadRaw(ctx, 0, 100); err != nil || len(got) != 50 {
		t.Fatalf("ReadRaw after the cap: %d records, %v", len(got), err)
	}
}
