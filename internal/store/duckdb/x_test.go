package duckdb

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"time"
)

func TestXExplain(t *testing.T) {
	path := os.Getenv("XSTORE")
	if path == "" {
		t.Skip()
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var id string
	var et int64
	st.db.QueryRowContext(ctx, `SELECT event_id, event_time FROM events USING SAMPLE 1 ROWS`).Scan(&id, &et)
	fmt.Println("id", id, et)
	day := et / 86400 * 86400
	q := os.Getenv("XQ")
	if q == "" {
		q = `SELECT ` + recordColumns + ` FROM events WHERE account = ? AND region = ? AND category = ? AND event_time BETWEEN ? AND ? AND event_id = ? ORDER BY event_time DESC, event_id DESC LIMIT ?`
	}
	span := int64(11 * 86400)
	if os.Getenv("XSPAN") != "" {
		span = 0
	}
	args := []any{"123456789012", "us-east-1", uint8(1), day - span, day + 86399, id, 51}
	if os.Getenv("XHASH") != "" {
		args = append(args[:5:5], int64(keyHash("123456789012", id)), id, 51)
	}
	ps, err := st.db.PrepareContext(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	var best time.Duration = time.Hour
	var tot time.Duration
	for i := 0; i < 30; i++ {
		t0 := time.Now()
		var rows interface {
			Next() bool
			Close() error
		}
		var err error
		if os.Getenv("XNOPREP") != "" {
			rows, err = st.db.QueryContext(ctx, q)
		} else {
			rows, err = ps.QueryContext(ctx, args...)
		}
		if err != nil {
			t.Fatal(err)
		}
		n := 0 // rows
		for rows.Next() {
			n++
		}
		rows.Close()
		d := time.Since(t0)
		tot += d
		best = min(best, d)
		_ = n
	}
	fmt.Println("best", best, "mean", tot/30)
	st.db.ExecContext(ctx, `PRAGMA enable_profiling='json'`); st.db.ExecContext(ctx, `SET profiling_mode='detailed'`)
	rows, err := st.db.QueryContext(ctx, "EXPLAIN ANALYZE "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, b string
		rows.Scan(&a, &b)
		if os.Getenv("XV") != "" { fmt.Println(b) }
	}
}

func TestXLookup(t *testing.T) {
	path := os.Getenv("XSTORE")
	if path == "" {
		t.Skip()
	}
	st, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	rows, _ := st.db.QueryContext(ctx, `SELECT event_id FROM events USING SAMPLE 5 ROWS`)
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	key := audit.AttrEventID
	if k := os.Getenv("XKEY"); k != "" {
		key = audit.AttributeKey(k)
		ids = []string{os.Getenv("XVAL")}
	}
	for _, id := range ids {
		q := audit.Query{Account: "123456789012", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 50,
			Attributes: []audit.Attribute{{Key: key, Value: id}}}
		var tot time.Duration
		best := time.Hour
		for i := 0; i < 100; i++ {
			t0 := time.Now()
			_, err := st.Lookup(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			d := time.Since(t0)
			tot += d
			best = min(best, d)
		}
		fmt.Println("LOOKUP", id, "best", best, "mean", tot/100)
	}
}
