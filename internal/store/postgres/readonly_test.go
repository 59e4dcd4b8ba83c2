package postgres

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// appendV9 stores recs as version 9's Append did: its rows and postings,
// without the postings' read_only (version 10).
func appendV9(t *testing.T, conn *pgx.Conn, recs []audit.Record, received int64) {
	t.Helper()
	ctx := context.Background()
	old := &Store{s2d: s2.NewDict(append([]byte{0}, s2DictV1Content...))}
	d := floorDiv(received, day)
	for _, sql := range []string{
		`CREATE TABLE IF NOT EXISTS ` + partName(d) + ` PARTITION OF events FOR VALUES FROM (` + itoa(d*day) + `) TO (` + itoa((d+1)*day) + `)`,
		`CREATE TABLE IF NOT EXISTS ` + postPartName(d) + ` PARTITION OF event_postings FOR VALUES FROM (` + itoa(d*day) + `) TO (` + itoa((d+1)*day) + `)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := conn.QueryRow(ctx, `SELECT nextval('event_batch_ids')`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	stored := make([]*audit.Record, len(recs))
	for i := range recs {
		if _, err := conn.Exec(ctx, `INSERT INTO event_keys VALUES ($1, $2, $3)`, []byte(recs[i].Account), []byte(recs[i].EventID), received); err != nil {
			t.Fatal(err)
		}
		r := old.row(&recs[i], received)
		r[batchColumn], r[batchColumn+1] = id, int32(i)
		rows = append(rows, r)
		stored[i] = &recs[i]
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, columns, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	var posts [][]any
	for _, p := range postings(stored, id, received) {
		posts = append(posts, p[:len(postingColumns)-1])
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"event_postings"}, postingColumns[:len(postingColumns)-1], pgx.CopyFromRows(posts)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `WITH m AS (UPDATE store_meta SET last_seq = last_seq + $1 WHERE id = 1 RETURNING last_seq)
		INSERT INTO event_batches (seq_hi, n, batch, received) SELECT last_seq, $1, $2, $3 FROM m`, int64(len(recs)), id, received); err != nil {
		t.Fatal(err)
	}
}

// Lookups of a posted value and ReadOnly against a scan of the records,
// on a database upgraded from version 9: the first batches' postings were
// written without their records' ReadOnly (their records are tested when
// fetched), the later ones with it (the others are left out before any
// fetch). A value whose records are almost all of the other ReadOnly (an
// EventSource read almost only) is the case version 10 is for.
func TestPostingsReadOnly(t *testing.T) {
	ctx := context.Background()
	dsn, conn := databaseAtVersion(t, 9)

	rng := rand.New(rand.NewPCG(3, 5))
	base := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	g := storetest.NewGen(17, base)
	accounts := []string{"111111111111", "222222222222"}
	regions := []string{"us-east-1", "eu-west-1"}
	// Mostly read (Get*, List*), a few writes, some without readOnly.
	names := []string{"GetObject", "GetObject", "GetObject", "ListBuckets", "ListBuckets", "GetObject", "PutObject", "ConsoleLogin"}
	batch := func(b int) []audit.Record {
		var out []audit.Record
		for i := range 20 + rng.IntN(40) {
			spec := storetest.Spec{
				Account:    accounts[rng.IntN(len(accounts))],
				Region:     regions[rng.IntN(len(regions))],
				EventName:  names[rng.IntN(len(names))],
				NoReadOnly: rng.IntN(10) == 0,
			}
			if spec.EventName == "PutObject" && rng.IntN(4) > 0 {
				spec.EventName = "GetObject" // writes are rare
			}
			if b%3 == 0 { // an import of old logs, overlapping other batches
				spec.Time = base.Add(time.Duration(rng.IntN(10*24*3600)) * time.Second)
			} else { // live: this batch's minutes
				spec.Time = base.Add(time.Duration(b)*6*time.Hour + time.Duration(i)*time.Second)
			}
			if rng.IntN(3) == 0 {
				spec.AccessKeyID = "AKIASHARED"
			}
			if rng.IntN(3) == 0 {
				spec.Bucket = "shared-bucket"
			}
			out = append(out, g.Record(spec))
		}
		return out
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var all []audit.Record
	for b := range 12 { // version 9's appends
		recs := batch(b)
		appendV9(t, conn, recs, now.UnixMicro()+int64(b))
		all = append(all, recs...)
	}
	s, err := Open(ctx, dsn, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for b := 12; b < 30; b++ {
		recs := batch(b)
		if res, err := s.Append(ctx, recs); err != nil || res.Inserted != len(recs) {
			t.Fatalf("append: %+v, %v", res, err)
		}
		all = append(all, recs...)
	}
	var without, with int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE read_only IS NULL), count(*) FILTER (WHERE read_only IS NOT NULL)
		FROM event_postings`).Scan(&without, &with); err != nil {
		t.Fatal(err)
	}
	if without == 0 || with == 0 {
		t.Fatalf("postings without read_only %d, with %d: the test needs both", without, with)
	}

	source := all[0].EventSource
	attrs := []audit.Attribute{
		{Key: audit.AttrEventSource, Value: source},
		{Key: audit.AttrEventName, Value: "GetObject"},
		{Key: audit.AttrEventName, Value: "ConsoleLogin"},
		{Key: audit.AttrAccessKeyID, Value: "AKIASHARED"},
		{Key: audit.AttrResourceName, Value: "shared-bucket"},
		{Key: audit.AttrUsername, Value: all[1].Username},
	}
	scopes := []audit.Query{
		{Account: accounts[0], Region: regions[0]},
		{Account: accounts[1], AnyRegion: true},
		{AnyAccount: true, AnyRegion: true},
	}
	checked, rare := 0, 0
	for _, a := range attrs {
		for _, sc := range scopes {
			for _, ro := range [][]audit.Attribute{
				{{Key: audit.AttrReadOnly, Value: "false"}},
				{{Key: audit.AttrReadOnly, Value: "true"}},
				{{Key: audit.AttrReadOnly, Value: "true"}, {Key: audit.AttrReadOnly, Value: "false"}},
				{{Key: audit.AttrReadOnly, Value: "false"}, {Key: audit.AttrResourceName, Value: "shared-bucket"}},
			} {
				for _, limit := range []int{3, 50} {
					for _, start := range []time.Time{{}, base.Add(3 * 24 * time.Hour)} {
						q := sc
						q.Category, q.Limit, q.Start = audit.CategoryManagement, limit, start
						q.Attributes = append([]audit.Attribute{a}, ro...)
						w := want(q, all)
						got := pageAll(t, s, q)
						if !slices.Equal(got, w) {
							t.Errorf("%s=%s %v %+v limit %d start %v:\n got %d %v\nwant %d %v", a.Key, a.Value, ro, sc, limit, start,
								len(got), strings.Join(got, " "), len(w), strings.Join(w, " "))
						}
						if len(w) > 0 {
							checked++
						}
						plain := q
						plain.Attributes = []audit.Attribute{a}
						if n := len(want(plain, all)); len(w) > 0 && len(w)*10 < n {
							rare++ // a tenth or less of the value's records
						}
					}
				}
			}
		}
	}
	if checked < 50 || rare == 0 {
		t.Fatalf("%d lookups with records, %d rare combinations: the data does not exercise the postings' ReadOnly", checked, rare)
	}
	t.Logf("%d lookups with records (%d rare combinations); postings without read_only %d, with %d", checked, rare, without, with)
}
