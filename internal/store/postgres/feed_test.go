package postgres

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// Appends from two nodes run side by side (schema version 8: only their
// numbering waits for one another), and a reader paging the feed while
// they run only ever sees a prefix: each page begins right after the
// last, with no gap filled later and no record twice, and ends with every
// record once.
func TestFeedWhileAppending(t *testing.T) {
	ctx := context.Background()
	nodes := openNodes(t, 2)
	recs := storetest.NewGen(21, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)).Records(3000)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			// Each writer walks the records from its own start with
			// batches of 1 to 300: every record is offered several
			// times, by both nodes.
			for i := w * 500; i < w*500+1500; {
				n := 1 + rng.IntN(300)
				b := make([]audit.Record, 0, n)
				for j := i; j < i+n; j++ {
					b = append(b, recs[j%len(recs)])
				}
				if _, err := nodes[w%2].Append(ctx, b); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				i += n
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := map[string]bool{}
	var after int64
	read := func() {
		page, err := nodes[1].ReadAppended(ctx, after, 37)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			if a.Seq != after+1 {
				t.Fatalf("feed after %d gave seq %d: a gap", after, a.Seq)
			}
			if seen[a.Record.EventID] {
				t.Fatalf("feed gave %s twice", a.Record.EventID)
			}
			seen[a.Record.EventID] = true
			after = a.Seq
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		read()
	}
	for prev := int64(-1); prev != after; {
		prev = after
		read()
	}
	if len(seen) != len(recs) {
		t.Errorf("the feed holds %d records; want %d", len(seen), len(recs))
	}
	if last, err := nodes[0].LastSeq(ctx); err != nil || last != int64(len(recs)) {
		t.Errorf("LastSeq = %d, %v; want %d", last, err, len(recs))
	}
}

// databaseAtVersion is a new test database migrated to version (only its
// migrations, recorded, as a cairn of that version left it) and a
// connection to it, closed at the test's end: a test of an upgrade writes
// that version's rows through it, then opens the store.
func databaseAtVersion(t *testing.T, version int) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.Database(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= version; v++ {
		if _, err := conn.Exec(ctx, migrations[v-1]); err != nil {
			t.Fatalf("migration %d: %v", v, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v); err != nil {
			t.Fatal(err)
		}
	}
	return dsn, conn
}

// A database written by version 7 (rows numbered by their seq column)
// migrates to version 8: its records keep their numbers and come first
// in the feed, the new batches continue after them, pages cross the
// boundary, and a node still writing version 7's rows is refused.
func TestUpgradeKeepsTheFeed(t *testing.T) {
	ctx := context.Background()
	dsn, conn := databaseAtVersion(t, 7)
	// Version 7's rows, as its Append wrote them.
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	old := &Store{s2d: s2.NewDict(append([]byte{0}, s2DictV1Content...))}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	received := now.UnixMicro()
	d := floorDiv(received, day)
	for _, sql := range []string{
		`CREATE TABLE ` + partName(d) + ` PARTITION OF events FOR VALUES FROM (` + itoa(d*day) + `) TO (` + itoa((d+1)*day) + `)`,
		`CREATE TABLE event_resources_p` + now.Format("20060102") + ` PARTITION OF event_resources FOR VALUES FROM (` + itoa(d*day) + `) TO (` + itoa((d+1)*day) + `)`,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	recs := storetest.NewGen(22, now.Add(-time.Hour)).Records(25)
	v7cols := append(append(append([]string{}, columns[:batchColumn]...), "seq"), columns[batchColumn+2:]...)
	var rows [][]any
	for i := range recs[:10] {
		r := old.row(&recs[i], received)
		r[len(r)-3], r[len(r)-1] = enc.EncodeAll(recs[i].Raw, nil), codecZstd // version 7 wrote zstd frames
		rows = append(rows, append(append(append([]any{}, r[:batchColumn]...), int64(i+1)), r[batchColumn+2:]...))
		if _, err := conn.Exec(ctx, `INSERT INTO event_keys VALUES ($1, $2, $3)`, []byte(recs[i].Account), []byte(recs[i].EventID), received); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, v7cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE store_meta SET last_seq = 10`); err != nil {
		t.Fatal(err)
	}

	s, err := Open(ctx, dsn, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, b := range [][]audit.Record{recs[10:14], recs[5:20], recs[20:]} { // recs[5:10] are duplicates
		if _, err := s.Append(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	var after int64
	for {
		page, err := s.ReadAppended(ctx, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, a := range page {
			if a.Seq != after+1 {
				t.Fatalf("feed after %d gave seq %d", after, a.Seq)
			}
			got = append(got, a.Record.EventID)
			after = a.Seq
		}
	}
	if len(got) != len(recs) {
		t.Fatalf("feed: %d records; want %d", len(got), len(recs))
	}
	page, err := s.ReadAppended(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range page {
		if string(a.Record.Raw) != string(recs[i].Raw) {
			t.Errorf("feed[%d] is not byte for byte the record appended", i)
		}
	}
	for i, id := range got {
		if id != recs[i].EventID {
			t.Fatalf("feed[%d] = %s; want %s (the append order)", i, id, recs[i].EventID)
		}
	}
	// Lookups by attribute find version 7's rows through the postings
	// version 9 built from them, and the new batches' beside them.
	for _, a := range []audit.Attribute{
		{Key: audit.AttrEventName, Value: recs[0].EventName},
		{Key: audit.AttrAccessKeyID, Value: recs[1].AccessKeyID},
		{Key: audit.AttrUsername, Value: recs[2].Username},
	} {
		q := audit.Query{Account: recs[0].Account, Region: recs[0].Region, Category: recs[0].Category, Limit: 3,
			Attributes: []audit.Attribute{a}}
		got, w := pageAll(t, s, q), want(q, recs)
		if len(w) == 0 || !slices.Equal(got, w) {
			t.Errorf("lookup by %s after the upgrade: %v; want %v", a.Key, got, w)
		}
	}
	// Version 7's Append on the new schema: refused, not half stored.
	extra := storetest.NewGen(23, now).Records(1)
	r := old.row(&extra[0], received)
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"events"}, v7cols,
		pgx.CopyFromRows([][]any{append(append(append([]any{}, r[:batchColumn]...), int64(26)), r[batchColumn+2:]...)}))
	if err == nil {
		t.Error("a row numbered by seq (version 7's Append) was accepted by version 8's schema")
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
