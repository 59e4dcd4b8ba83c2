package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// probeFetch times single-block reads from the blocks file by id, three
// ways: the compressed bytes, their length only, the id only (what a
// fetch costs beyond finding the row), n random blocks each, in turn.
func probeFetch(ctx context.Context, path string, n int, seed uint64) error {
	rd, err := openReader(ctx, path, 0)
	if err != nil {
		return err
	}
	defer rd.Close()
	var ids []int64
	for _, bs := range rd.parts {
		for _, b := range bs {
			ids = append(ids, b.id)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 13))
	forms := []string{`SELECT data FROM blocks WHERE id = ?`, `SELECT octet_length(data) FROM blocks WHERE id = ?`, `SELECT id FROM blocks WHERE id = ?`}
	var total [3]time.Duration
	for range n {
		id := ids[rng.IntN(len(ids))]
		for i, f := range forms {
			t0 := time.Now()
			var v any
			if err := rd.db.QueryRowContext(ctx, f, id).Scan(&v); err != nil {
				return err
			}
			total[i] += time.Since(t0)
		}
	}
	for i, f := range forms {
		fmt.Printf("%-55s %.2f ms a read (%d reads)\n", f, ms(total[i])/float64(n), n)
	}
	return nil
}
