package postgres

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// The rows Append streams to its COPY (made by a goroutine, in chunks
// whose bytes are reused) store what pgx's CopyFrom of row and postings
// stores (the values of every column, the S2 block byte for byte), for
// batches of new records and for a batch that holds duplicates (its new
// records renumbered): each stored row is compared with the row pgx
// copies from the same record into a table like it. The batches are
// larger than a chunk, so rows are read after their chunk's bytes were
// given back and reused.
func TestStreamedCopyStoresTheRows(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	s, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shapes := storetest.NewShapes(t, 27)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var all []audit.Record
	for i, acct := range []string{"111111111111", "222222222222", "333333333333"} {
		recs := shapes.Records(700, t0.Add(time.Duration(i)*time.Hour), t0.Add(time.Duration(i+1)*time.Hour), acct, "eu-west-1")
		if i == 1 {
			recs[3].Username, recs[4].AccessKeyID = "", "" // NULL columns
		}
		if _, err := s.Append(ctx, recs); err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
	}
	// A batch with duplicates: every other record is stored already.
	fresh := shapes.Records(300, t0.Add(5*time.Hour), t0.Add(6*time.Hour), "111111111111", "us-east-2")
	var mixed []audit.Record
	for i := range fresh {
		mixed = append(mixed, all[i*3], fresh[i])
	}
	res, err := s.Append(ctx, mixed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != len(fresh) || res.Duplicates != len(fresh) {
		t.Fatalf("append with duplicates: %+v", res)
	}
	all = append(all, fresh...)

	// Where each record went, and the batches in their places' order.
	byKey := map[string]*audit.Record{}
	for i := range all {
		byKey[all[i].Account+"/"+all[i].EventID] = &all[i]
	}
	rows, err := s.pool.Query(ctx, `SELECT account, event_id, received, batch, ord FROM event_keys ORDER BY batch, ord`)
	if err != nil {
		t.Fatal(err)
	}
	type place struct {
		received, batch int64
		ord             int32
	}
	var want [][]any
	batches := map[int64][]*audit.Record{}
	var order []int64
	received := map[int64]int64{}
	for rows.Next() {
		var acct, id []byte
		var p place
		if err := rows.Scan(&acct, &id, &p.received, &p.batch, &p.ord); err != nil {
			t.Fatal(err)
		}
		r := byKey[string(acct)+"/"+string(id)]
		if r == nil {
			t.Fatalf("a key of no record: %s/%s", acct, id)
		}
		row := s.row(r, p.received)
		row[batchColumn], row[batchColumn+1] = p.batch, p.ord
		want = append(want, row)
		if int(p.ord) != len(batches[p.batch]) {
			t.Fatalf("batch %d: place %d after %d records", p.batch, p.ord, len(batches[p.batch]))
		}
		if len(batches[p.batch]) == 0 {
			order = append(order, p.batch)
		}
		batches[p.batch] = append(batches[p.batch], r)
		received[p.batch] = p.received
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(all) || len(order) != 4 {
		t.Fatalf("%d keys in %d batches; want %d in 4", len(want), len(order), len(all))
	}
	var wantPosts [][]any
	for _, b := range order {
		wantPosts = append(wantPosts, postings(batches[b], b, received[b])...)
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{{"events", columns, want}, {"event_postings", postingColumns, wantPosts}} {
		if _, err := conn.Exec(ctx, `CREATE TEMP TABLE want_`+c.table+` (LIKE `+c.table+`)`); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"want_" + c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			t.Fatal(err)
		}
		cols := strings.Join(c.cols, ", ")
		var n, missing, extra int
		if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+c.table+`),
			(SELECT count(*) FROM (SELECT `+cols+` FROM want_`+c.table+` EXCEPT ALL SELECT `+cols+` FROM `+c.table+`) x),
			(SELECT count(*) FROM (SELECT `+cols+` FROM `+c.table+` EXCEPT ALL SELECT `+cols+` FROM want_`+c.table+`) x)`).Scan(&n, &missing, &extra); err != nil {
			t.Fatal(err)
		}
		if n != len(c.rows) || missing != 0 || extra != 0 {
			t.Errorf("%s: %d rows stored, %d wanted: %d of them missing, %d stored not wanted", c.table, n, len(c.rows), missing, extra)
		}
	}
	// And the records read back are the records, byte for byte.
	got, err := s.ReadAppended(ctx, 0, len(all)+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(all) {
		t.Fatalf("read back %d records of %d", len(got), len(all))
	}
	for i, g := range got {
		r := byKey[g.Record.Account+"/"+g.Record.EventID]
		if r == nil || !slices.Equal(g.Record.Raw, r.Raw) {
			t.Fatalf("record %d (%s) does not read back as appended", i, g.Record.EventID)
		}
	}
}
