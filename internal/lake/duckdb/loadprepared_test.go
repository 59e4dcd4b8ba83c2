package duckdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// hostileRecords are records whose fields have the wrong JSON types, odd
// text, or are oversize, with the eventIDs p-0, p-1, ...
func hostileRecords(p string) []string {
	big := strings.Repeat("x", 1<<20)
	var wide strings.Builder
	wide.WriteString(`{`)
	for i := range 5000 {
		if i > 0 {
			wide.WriteString(",")
		}
		fmt.Fprintf(&wide, `"k%d":"%s"`, i, strings.Repeat("v", 40))
	}
	wide.WriteString(`}`)
	recs := []string{
		`{"eventName":7,"readOnly":"true","managementEvent":1,"eventTime":"2024-05-06T07:08:09.123+02:00","userIdentity":"root","requestParameters":[1,2],"resources":{"ARN":"x"}}`,
		`{"eventName":{"x":1},"readOnly":"yes","eventTime":20240101,"requestParameters":{"a":"b","n":{"x":[1]},"k":3},"tlsDetails":null}`,
		`{"eventName":"dup","eventName":"last","eventSource":"caf\u00e9 \ud83d\ude00","errorMessage":"bad ` + "\xff" + ` utf8"}`,
		`{"eventName":"\ud800","requestParameters":{"k":"\ud800x"}}`,
		`{"errorMessage":"` + big + `","userAgent":"` + big[:70000] + `"}`,
		`{"requestParameters":` + wide.String() + `,"userIdentity":{"type":"IAMUser","sessionContext":{"attributes":{"creationDate":"not a time"}}}}`,
		`{"eventTime":"2024-13-45T99:99:99Z","readOnly":null,"resources":[{"ARN":1},"x",null]}`,
	}
	for i, r := range recs {
		recs[i] = fmt.Sprintf(`{"eventID":"%s-%d",`, p, i) + r[1:]
	}
	return recs
}

// TestLoadPreparedLikeInsert: rows a load's concurrent Appends append (read
// while waiting for their turn at the load's transaction, prepareRows, or as
// they are appended) land each exactly once, every column as an Insert of
// the same records stores it (appendRows), and eventJson byte for byte, as
// do rows read by prepareRows alone; the records' bytes are not changed. Hostile records (wrong
// JSON types, invalid text, oversize fields) are stored, not refused.
func TestLoadPreparedLikeInsert(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	var raws [][]byte
	for _, rr := range audittest.RealRecords(t) {
		raws = append(raws, rr.Raw)
	}
	for _, s := range hostileRecords("h") {
		raws = append(raws, []byte(s))
	}
	copies := make([][]byte, len(raws))
	for i, r := range raws {
		copies[i] = bytes.Clone(r)
	}
	rowsOf := func(store string) []engine.Row {
		rows := make([]engine.Row, len(raws))
		for i, r := range raws {
			rows[i] = engine.Row{Store: store, Raw: r}
		}
		return rows
	}
	if err := d.Insert(ctx, rowsOf("inserted"), 0); err != nil {
		t.Fatal(err)
	}
	// The values an Append reads while it waits for its turn, appended.
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendPrepared(conn, prepareRows(rowsOf("prepared"))); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ld := d.BeginLoad()
	var batches [][]engine.Row
	for rest := rowsOf("loaded"); len(rest) > 0; {
		n := min(len(rest), 7)
		batches = append(batches, rest[:n])
		rest = rest[n:]
	}
	appendConcurrently(t, ld, batches, 4)
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	for i, r := range raws {
		if !bytes.Equal(r, copies[i]) {
			t.Fatalf("record %d changed by its load", i)
		}
	}
	var n, distinct int
	if err := d.db.QueryRow(`SELECT count(*), count(DISTINCT eventJson) FROM events WHERE eds_id = 'loaded'`).Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(raws) || distinct != n {
		t.Errorf("loaded %d rows, %d distinct; want each of the %d once", n, distinct, len(raws))
	}
	// Every column of every row as the Insert stored it.
	for _, store := range []string{"loaded", "prepared"} {
		for _, pair := range [][2]string{{store, "inserted"}, {"inserted", store}} {
			q := fmt.Sprintf(`SELECT * EXCLUDE (eds_id) FROM events WHERE eds_id = '%s' EXCEPT ALL SELECT * EXCLUDE (eds_id) FROM events WHERE eds_id = '%s'`, pair[0], pair[1])
			var diff int
			if err := d.db.QueryRow(`SELECT count(*) FROM (` + q + `)`).Scan(&diff); err != nil {
				t.Fatal(err)
			}
			if diff != 0 {
				t.Errorf("%d rows of %s are not in %s", diff, pair[0], pair[1])
			}
		}
	}
	// eventJson is each valid record byte for byte.
	stored := storedJSON(t, d, "loaded")
	for i, c := range copies {
		if !bytes.Contains(c, []byte("\xff")) && stored[string(c)] != 1 {
			t.Errorf("record %d is not stored once as it was: %.200s", i, c)
		}
	}
	var wrongTypes int
	if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'loaded' AND eventID LIKE 'h-%' AND (eventTime IS NOT NULL AND eventID <> 'h-0' OR readOnly IS NOT NULL AND eventID <> 'h-0')`).Scan(&wrongTypes); err != nil {
		t.Fatal(err)
	}
	if wrongTypes != 0 {
		t.Errorf("%d hostile records have a typed column from a value of the wrong type", wrongTypes)
	}
}

// TestLoadAppendFailsInTurn: an Append that fails waiting for its turn at
// the load's transaction (its context ends) stores nothing of its batch,
// and the load's other batches are stored as before: those appended
// before it and after it commit with the load.
func TestLoadAppendFailsInTurn(t *testing.T) {
	d := openTemp(t, Options{Threads: 1})
	ctx := context.Background()
	ld := d.BeginLoad()
	if err := ld.Append(ctx, streamRows("s", "a", 100)); err != nil {
		t.Fatal(err)
	}
	l := ld.(*Load)
	tx, err := l.take(ctx) // another Append's turn, held
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if err := ld.Append(stopped, streamRows("s", "b", 100)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append while another holds the turn, its context ended: %v; want context.Canceled", err)
	}
	if err := l.put(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if err := ld.Append(ctx, streamRows("s", "c", 100)); err != nil {
		t.Fatal(err)
	}
	if err := ld.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	var a, b, c int
	if err := d.db.QueryRow(`SELECT count(*) FILTER (WHERE eventID LIKE 'a-%'), count(*) FILTER (WHERE eventID LIKE 'b-%'), count(*) FILTER (WHERE eventID LIKE 'c-%') FROM events`).Scan(&a, &b, &c); err != nil {
		t.Fatal(err)
	}
	if a != 100 || b != 0 || c != 100 {
		t.Errorf("stored %d, %d, %d of the batches before, failed and after; want 100, 0, 100", a, b, c)
	}
}

// storedJSON counts the eventJson texts of store's rows.
func storedJSON(t *testing.T, d *DB, store string) map[string]int {
	t.Helper()
	rs, err := d.db.Query(`SELECT eventJson FROM events WHERE eds_id = ?`, store)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	stored := map[string]int{}
	for rs.Next() {
		var s string
		if err := rs.Scan(&s); err != nil {
			t.Fatal(err)
		}
		stored[s]++
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return stored
}

// appendConcurrently appends batches to ld from n goroutines at once.
func appendConcurrently(t *testing.T, ld engine.Load, batches [][]engine.Row, n int) {
	t.Helper()
	next := make(chan []engine.Row)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for b := range next {
				if err := ld.Append(context.Background(), b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for _, b := range batches {
		next <- b
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
