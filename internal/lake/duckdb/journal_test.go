package duckdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// crash ends d as a crash would: the writer stops without inserting what
// waits and the journal is left as it is (its segment neither sealed nor
// deleted); DuckDB keeps what it committed.
func (d *DB) crash() {
	close(d.stopw)
	<-d.writerDone
	d.db.Close()
}

// countByCall returns how many rows of store "g" each call (groupRows)
// has in the table, and the total.
func countByCall(t *testing.T, d *DB, calls int) ([]int, int) {
	t.Helper()
	got := storedByCall(t, d, calls)
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return got, n
}

// TestJournalReplay: rows acknowledged from the journal survive a crash
// whether or not the writer had moved them into the table, and after the
// restart each is in the table exactly once: the ones the writer had
// inserted are skipped by their sequence number, the others inserted. New
// rows after the restart continue the sequence, and a second crash loses
// nothing either.
func TestJournalReplay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flushed int // calls moved into the table before the crash
	}{
		{"none flushed", 0},
		{"some flushed", 3},
		{"all flushed", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lake.duckdb")
			d, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			const calls = 6
			for c := range calls {
				if err := d.Insert(ctx, groupRows(c, 7), 0); err != nil {
					t.Fatal(err)
				}
				if c+1 == tc.flushed {
					if err := d.Flush(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if got, want := d.Pending(), (calls-tc.flushed)*7; got != want {
				t.Errorf("%d rows waiting before the crash; want %d", got, want)
			}
			d.crash()

			d, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Pending() != 0 {
				t.Errorf("%d rows waiting after the replay; want 0", d.Pending())
			}
			// The replay's rows are in the table (read without Flush).
			var n int
			if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g'`).Scan(&n); err != nil || n != calls*7 {
				t.Fatalf("%d rows after the replay (%v); want %d", n, err, calls*7)
			}
			// More calls, and a second crash before the writer ran.
			for c := calls; c < calls+2; c++ {
				if err := d.Insert(ctx, groupRows(c, 7), 0); err != nil {
					t.Fatal(err)
				}
			}
			d.crash()
			d, err = Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, total := countByCall(t, d, calls+2)
			for c, n := range got {
				if n != 7 {
					t.Errorf("call %d: %d rows in the table; want 7", c, n)
				}
			}
			if total != (calls+2)*7 {
				t.Errorf("%d rows in the table; want %d", total, (calls+2)*7)
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			// A clean close leaves no segment to replay.
			ents, err := os.ReadDir(journalDir(path))
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 0 {
				t.Errorf("journal after Close holds %d files; want none", len(ents))
			}
		})
	}
}

// TestJournalVisibility: a row acknowledged by Insert is seen by the next
// query (Run), by EventIDs and by Delete, without waiting for the writer.
func TestJournalVisibility(t *testing.T) {
	d := openTemp(t, Options{})
	ctx := context.Background()
	raw := []byte(`{"eventID":"e1","recipientAccountId":"111111111111","eventName":"Op","eventTime":"2026-12-03T10:00:00Z"}`)
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: raw}}, 0); err != nil {
		t.Fatal(err)
	}
	if d.Pending() != 1 {
		t.Fatalf("%d rows waiting; want the row journaled and waiting", d.Pending())
	}
	sink := &countSink{}
	if _, err := d.Run(ctx, engine.Statement{SQL: `SELECT eventName FROM ` + engine.TableName("v"), Stores: []string{"v"}, MaxBytes: 1 << 20}, sink); err != nil {
		t.Fatal(err)
	}
	if sink.rows != 1 {
		t.Errorf("query saw %d rows; want 1", sink.rows)
	}
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: []byte(`{"eventID":"e2","recipientAccountId":"111111111111"}`)}}, 0); err != nil {
		t.Fatal(err)
	}
	ids, err := d.EventIDs(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	if !ids["111111111111/e1"] || !ids["111111111111/e2"] {
		t.Errorf("EventIDs = %v; want e1 and e2", ids)
	}
	if err := d.Insert(ctx, []engine.Row{{Store: "v", Raw: raw}}, 0); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "v", time.Time{}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'v'`).Scan(&n); err != nil || n != 0 || d.Pending() != 0 {
		t.Errorf("after Delete: %d rows in the table, %d waiting (%v); want none", n, d.Pending(), err)
	}
}

// countSink counts a run's rows.
type countSink struct{ rows int }

func (s *countSink) SetColumns([]string) error { return nil }
func (s *countSink) AddRow([]*string) error    { s.rows++; return nil }

// TestJournalBackpressure: past maxPending waiting rows, Insert waits for
// the writer instead of queueing more; every row ends in the table.
func TestJournalBackpressure(t *testing.T) {
	d := openTemp(t, Options{})
	d.lim.flushRows, d.lim.maxPending = 2000, 5000
	ctx := context.Background()
	const per = 1000
	calls := d.lim.maxPending/per + 4
	peak := 0
	for c := range calls {
		rows := make([]engine.Row, per)
		for i := range rows {
			rows[i] = engine.Row{Store: "b", Raw: fmt.Appendf(nil, `{"eventID":"%d-%d"}`, c, i)}
		}
		if err := d.Insert(ctx, rows, 0); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, d.Pending())
	}
	if peak > d.lim.maxPending+per {
		t.Errorf("%d rows waited at most; want at most %d", peak, d.lim.maxPending+per)
	}
	var n int
	if err := d.SQL().QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'b'`).Scan(&n); err != nil || n != calls*per {
		t.Errorf("%d rows in the table (%v); want %d", n, err, calls*per)
	}
}

// TestJournalBacklogged: Backlogged turns true once maxPending rows wait
// for the writer, and false again once the writer has moved them into the
// table; every row is there.
func TestJournalBacklogged(t *testing.T) {
	d := openTemp(t, Options{})
	// The writer flushes only when asked.
	d.lim.flushRows, d.lim.flushDelay, d.lim.maxPending = 1<<30, time.Hour, 3000
	ctx := context.Background()
	for c := range 3 {
		if d.Backlogged() {
			t.Fatalf("backlogged with %d rows waiting; the bound is %d", d.Pending(), d.lim.maxPending)
		}
		if err := d.Insert(ctx, groupRows(c, 1000), 0); err != nil {
			t.Fatal(err)
		}
	}
	if !d.Backlogged() {
		t.Fatalf("not backlogged with %d rows waiting; the bound is %d", d.Pending(), d.lim.maxPending)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if d.Backlogged() || d.Pending() != 0 {
		t.Errorf("after Flush: backlogged %v, %d rows waiting", d.Backlogged(), d.Pending())
	}
	if _, n := countByCall(t, d, 3); n != 3000 {
		t.Errorf("%d rows in the table; want 3000", n)
	}
}

// TestJournalDeadlineAfterFlush: rows journaled while the writer's
// transaction runs wait for the writer from when that transaction took its
// rows, not from when the first of the rows it took came: with that stale
// deadline (already past) the writer started its next transaction at once,
// however few rows waited, and under a steady stream every transaction
// held only what came during the one before (session 23: 29k-98k rows, each
// then rewritten by a checkpoint instead of written once as row groups).
func TestJournalDeadlineAfterFlush(t *testing.T) {
	d := openTemp(t, Options{})
	// The writer flushes only when asked.
	d.lim.flushRows, d.lim.flushDelay = 1<<30, time.Hour
	ctx := context.Background()
	for attempt := 0; ; attempt++ {
		if err := d.Insert(ctx, groupRows(2*attempt, 100), 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // the first row's time before the flush's
		start := time.Now()
		// The transaction waits for the write lock after taking the
		// waiting rows; rows journaled meanwhile stay waiting.
		d.wmu.Lock()
		done := make(chan error)
		go func() { done <- d.Flush(ctx) }()
		time.Sleep(50 * time.Millisecond)
		if err := d.Insert(ctx, groupRows(2*attempt+1, 100), 0); err != nil {
			t.Fatal(err)
		}
		d.wmu.Unlock()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if d.Pending() == 0 {
			// The flush took the second rows too (it had not begun
			// when they came): try again.
			if attempt == 10 {
				t.Fatal("the flush never began before the second insert")
			}
			continue
		}
		d.pmu.Lock()
		since := d.pendSince
		d.pmu.Unlock()
		if since.Before(start) {
			t.Errorf("rows journaled during a flush wait from %v, before the flush began (%v)", since.Format(time.StampMicro), start.Format(time.StampMicro))
		}
		break
	}
}

// TestBackloggedWithoutJournal: a database in memory has no journal and
// is never backlogged.
func TestBackloggedWithoutJournal(t *testing.T) {
	d, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Insert(context.Background(), groupRows(0, 10), 0); err != nil {
		t.Fatal(err)
	}
	if d.Backlogged() {
		t.Error("an in-memory database is backlogged")
	}
}

// EventIDs returns the account/eventID keys of store's events as a set
// (EachEventID), for tests.
func (d *DB) EventIDs(ctx context.Context, store string) (map[string]bool, error) {
	m := map[string]bool{}
	err := d.EachEventID(ctx, store, func(key []byte) { m[string(key)] = true })
	return m, err
}

// TestJournaledRowsAsInserted: the journal's writer stores custom events
// through an Appender of their columns only (appendJournaled), and every
// other row as a direct insert does; each row is stored exactly as the
// full Appender stores it (the same columns and values, NULL where the
// record has no field), whatever mix a transaction holds.
func TestJournaledRowsAsInserted(t *testing.T) {
	custom := func(id, data string) string {
		return `{"eventVersion":"1.0","eventCategory":"ActivityAuditLog","eventType":"ActivityLog","eventID":"` + id +
			`","eventTime":"2026-12-03T10:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111111111111",` +
			`"metadata":{"channelARN":"arn:aws:cloudtrail:us-east-1:111111111111:channel/c","ingestionTime":"2026-12-03T10:00:01Z"},"eventData":` + data + `}`
	}
	raws := []string{
		custom("c1", `{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice","details":{"team":"blue","n":2}},"userAgent":"app/1","eventSource":"myapp.example.com","eventName":"Op","eventTime":"2026-01-02T03:04:05Z","UID":"u1","requestParameters":{"doc":"a","n":2},"responseElements":{"ok":true},"errorCode":"E","sourceIPAddress":"10.0.0.1","recipientAccountId":"111111111111","additionalEventData":{"x":[1,2]}}`),
		custom("c2", `{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"bob"},"eventSource":"s","eventName":"Op2","eventTime":"2026-01-02T03:04:05","UID":"u2","recipientAccountId":"111111111111","unknown":{"deep":[1]}}`),
		// A lone surrogate DuckDB's JSON reader refuses: eventData NULL.
		custom("c3", `{"version":"1.0","UID":"\ud800","eventSource":"s","eventName":"Op"}`),
		// Fields of the wrong JSON type, and an unreadable eventTime.
		`{"eventVersion":1.08,"eventTime":"yesterday","eventID":"c4","metadata":[1],"eventData":"text","eventCategory":null}`,
		// An AWS Config configuration item's eventData.
		custom("c5", `{"configurationItemVersion":"1.3","resourceType":"AWS::S3::Bucket","configuration":{"a":{"b":1}},"relationships":[{"name":"Is attached to","resourceId":"r1"}],"tags":{"k":"v"}}`),
		// AWS records, which have other columns.
		`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AID1","arn":"arn:aws:iam::111111111111:user/u","accountId":"111111111111","sessionContext":{"attributes":{"creationDate":"2026-12-03T09:00:00Z","mfaAuthenticated":"false"}}},"eventTime":"2026-12-03T10:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-1","sourceIPAddress":"192.0.2.1","userAgent":"aws-cli","requestParameters":{"bucketName":"b","key":"k"},"responseElements":null,"requestID":"R1","eventID":"a1","readOnly":true,"resources":[{"type":"AWS::S3::Object","ARN":"arn:aws:s3:::b/k"}],"eventType":"AwsApiCall","managementEvent":false,"recipientAccountId":"111111111111","eventCategory":"Data","tlsDetails":{"tlsVersion":"TLSv1.3"}}`,
		`{"eventVersion":"1.08","eventID":"a2","errorCode":"AccessDenied","readOnly":"false","eventCategory":"Management"}`,
		// Not an object: only eventJson.
		`[1,2]`,
		`"text"`,
		custom("c6", `{"version":"2.0","userIdentity":{"type":"T","principalId":"p"},"eventSource":"s","eventName":"Op","eventTime":"2026-01-02T03:04:05Z","UID":"u6","recipientAccountId":"111111111111"}`),
	}
	// Two tenants' stores, alternating: each row stays in its own (eds_id
	// is in to_json(e) below).
	var rows []engine.Row
	for i, r := range raws {
		rows = append(rows, engine.Row{Store: []string{"s", "t"}[i%2], Raw: []byte(r)})
	}
	ctx := context.Background()
	stored := func(d *DB) []string {
		t.Helper()
		q, err := d.SQL().QueryContext(ctx, `SELECT to_json(e)::VARCHAR FROM events e ORDER BY eventJson`)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		var out []string
		for q.Next() {
			var s string
			if err := q.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := q.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	direct := openTemp(t, Options{NoJournal: true})
	if err := direct.Insert(ctx, rows, 0); err != nil {
		t.Fatal(err)
	}
	want := stored(direct)
	if len(want) != len(raws) {
		t.Fatalf("%d rows inserted directly; want %d", len(want), len(raws))
	}
	for _, tc := range []struct {
		name string
		rows []engine.Row
	}{
		{"mixed", rows},
		{"custom only", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := openTemp(t, Options{})
			in, w := tc.rows, want
			if in == nil {
				for _, r := range rows {
					if strings.Contains(string(r.Raw), `"ActivityAuditLog"`) {
						in = append(in, r)
					}
				}
				direct := openTemp(t, Options{NoJournal: true})
				if err := direct.Insert(ctx, in, 0); err != nil {
					t.Fatal(err)
				}
				w = stored(direct)
			}
			if err := d.Insert(ctx, in, 0); err != nil {
				t.Fatal(err)
			}
			if d.Pending() != len(in) {
				t.Fatalf("%d rows journaled; want %d", d.Pending(), len(in))
			}
			got := stored(d) // the query moves them into the table first
			if len(got) != len(w) {
				t.Fatalf("%d rows stored; want %d", len(got), len(w))
			}
			for i := range w {
				if got[i] != w[i] {
					t.Errorf("row %d stored from the journal:\n%s\nwant (inserted directly):\n%s", i, got[i], w[i])
				}
			}
		})
	}
}

// TestJournalWholeRowGroups: the writer's transactions take whole row
// groups (flushRows at a time, here 100) and leave the rest waiting, so
// that DuckDB writes each as a row group instead of appending a part to
// the table's last one through its log; the rest keeps its place in the
// journal, and a crash then neither loses nor repeats a row.
func TestJournalWholeRowGroups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.lim.flushRows, d.lim.flushDelay = 100, time.Hour
	ctx := context.Background()
	inTable := func() int {
		var n int
		if err := d.db.QueryRow(`SELECT count(*) FROM events WHERE eds_id = 'g'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// waitPending waits for the writer's transaction (fewer than 100 rows
	// waiting), which should leave want rows waiting.
	waitPending := func(want int) {
		t.Helper()
		for start := time.Now(); d.Pending() >= 100; time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > time.Minute {
				t.Fatalf("%d rows waiting a minute after a group was complete", d.Pending())
			}
		}
		if got := d.Pending(); got != want {
			t.Fatalf("%d rows waiting after the writer's transaction; want %d", got, want)
		}
	}
	const calls = 3
	for c := range calls {
		if err := d.Insert(ctx, groupRows(c, 70), 0); err != nil {
			t.Fatal(err)
		}
		if c > 0 {
			waitPending(70*(c+1) - 100*c)
		}
	}
	if got := inTable(); got != 200 {
		t.Errorf("%d rows in the table; want 200 (two whole groups)", got)
	}
	if got := d.Inserts(); got != 2 {
		t.Errorf("%d transactions; want 2", got)
	}
	d.crash()
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, total := countByCall(t, d, calls)
	for c, n := range got {
		if n != 70 {
			t.Errorf("call %d: %d rows after the replay; want 70", c, n)
		}
	}
	if total != calls*70 {
		t.Errorf("%d rows after the replay; want %d", total, calls*70)
	}
}

// TestJournalFailedAppendKeepsNumbers: an append that failed may have left
// its rows in the journal (written, its sync failed); the rows after it
// must not reuse its sequence numbers, and a flush of part of the waiting
// rows records the number of the last row it took, gaps and all. After a
// crash, the replay (in batches of 7, so that each call's rows are a batch
// of their own) has every acknowledged call in the table once; the failed
// one whole or not at all.
func TestJournalFailedAppendKeepsNumbers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lake.duckdb")
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.lim.flushRows, d.lim.flushDelay = 1000, time.Hour
	ctx := context.Background()
	const calls, failed = 4, 2
	for c := range calls {
		if c == failed {
			d.jappend = func(recs []audit.Record) (uint64, int, error) {
				if _, _, err := d.jn.Append(recs); err != nil {
					return 0, 0, err
				}
				return 0, 0, errors.New("injected: the sync failed")
			}
		}
		err := d.Insert(ctx, groupRows(c, 7), 0)
		if c == failed {
			if err == nil {
				t.Fatal("Insert with a failing journal append succeeded")
			}
			d.jappend = d.jn.Append
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// 11 of the 21 waiting rows into the table (the writer's whole row
	// groups: a multiple of the unit), the first call and part of the
	// second.
	if err := d.flush(ctx, 11); err != nil {
		t.Fatal(err)
	}
	if got := d.Pending(); got != 10 {
		t.Fatalf("%d rows waiting after a flush of 11; want 10", got)
	}
	d.crash()

	saved := defaultJournalLimits
	defaultJournalLimits.flushRows = 7
	t.Cleanup(func() { defaultJournalLimits = saved })
	d, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	got, _ := countByCall(t, d, calls)
	for c, n := range got {
		switch {
		case c == failed && (n == 0 || n == 7):
		case c != failed && n == 7:
		default:
			t.Errorf("call %d: %d rows after the replay; want 7%s", c, n, map[bool]string{true: " or 0 (its append failed)"}[c == failed])
		}
	}
}
