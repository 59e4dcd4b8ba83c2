package duckdb

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// TestLoadMatchesTheRecords loads every real record and checks each
// column against DuckDB's own reading of the unchanged JSON (eventJson),
// so the Go top-level reader and the per-field from_json give what one
// from_json over the whole record gave.
func TestLoadMatchesTheRecords(t *testing.T) {
	d := openTemp(t, Options{})
	ctx := context.Background()
	var rows []engine.Row
	var copies [][]byte
	for _, rr := range audittest.RealRecords(t) {
		rows = append(rows, engine.Row{Store: "s", Raw: rr.Raw})
		copies = append(copies, bytes.Clone(rr.Raw))
	}
	if err := d.Insert(ctx, rows, 0); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE eds_id = 's'`).Scan(&n); err != nil || n != len(rows) {
		t.Fatalf("stored %d of %d (%v)", n, len(rows), err)
	}
	// The records are read where they are (recordRow's decoder parses
	// each in place): none of their bytes changed, and each is stored
	// as it was.
	for i, r := range rows {
		if !bytes.Equal(r.Raw, copies[i]) {
			t.Fatalf("record %d changed by its insert", i)
		}
	}
	stored := storedJSON(t, d, "s")
	for i, c := range copies {
		if stored[string(c)]--; stored[string(c)] < 0 {
			t.Fatalf("record %d is not stored as it was: %.200s", i, c)
		}
	}
	checks := []struct{ name, cond string }{}
	for _, c := range columns {
		var want string
		switch c.kind {
		case kText:
			// A string as itself, another scalar or a nested value as JSON text.
			want = fmt.Sprintf(`CASE json_type(eventJson, '$.%[1]s') WHEN 'VARCHAR' THEN eventJson->>'$.%[1]s' WHEN 'NULL' THEN NULL ELSE CAST(eventJson->'$.%[1]s' AS VARCHAR) END`, c.name)
		case kBool:
			want = fmt.Sprintf(`TRY_CAST(eventJson->>'$.%s' AS BOOLEAN)`, c.name)
		case kTime:
			want = fmt.Sprintf(`try_strptime(eventJson->>'$.%s', ['%%Y-%%m-%%dT%%H:%%M:%%SZ', '%%Y-%%m-%%dT%%H:%%M:%%S.%%fZ', '%%Y-%%m-%%dT%%H:%%M:%%S'])`, c.name)
		case kJSON:
			want = fmt.Sprintf(`from_json(eventJson->'$.%s', %s)`, c.name, quote(c.shape))
		}
		checks = append(checks, struct{ name, cond string }{c.name, fmt.Sprintf(`%q IS DISTINCT FROM (%s)`, c.name, want)})
	}
	for _, c := range checks {
		var bad int
		var example *string
		q := `SELECT count(*), any_value(eventJson) FROM events WHERE ` + c.cond
		if err := d.db.QueryRowContext(ctx, q).Scan(&bad, &example); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if bad > 0 {
			t.Errorf("%s differs from the record's JSON in %d records, e.g. %.300s", c.name, bad, *example)
		}
	}
	// Nested fields are reachable as Lake writes them.
	var arns, keys int
	if err := d.db.QueryRowContext(ctx, `SELECT count(userIdentity.arn), count(element_at(requestParameters, 'bucketName')) FROM events`).Scan(&arns, &keys); err != nil {
		t.Fatal(err)
	}
	if arns == 0 || keys == 0 {
		t.Errorf("userIdentity.arn in %d records, requestParameters['bucketName'] in %d", arns, keys)
	}
}

// TestLoadOddShapes stores records whose fields have unexpected JSON types
// (nothing is rejected: the column is NULL or the value's text) and keeps
// a batch atomic with its transaction.
func TestLoadOddShapes(t *testing.T) {
	d, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	odd := []string{
		`{"eventID":"a","eventName":7,"readOnly":"true","managementEvent":1,"eventTime":"2024-05-06T07:08:09.123+02:00","userIdentity":"root","requestParameters":[1,2],"resources":{"ARN":"x"}}`,
		`{"eventID":"b","eventName":{"x":1},"readOnly":"yes","eventTime":20240101,"requestParameters":{"a":"b","n":{"x":[1]},"k":3},"tlsDetails":null}`,
		`{"eventID":"c","eventName":"dup","eventName":"last","eventSource":"caf\u00e9 \ud83d\ude00","errorMessage":"bad ` + "\xff" + ` utf8"}`,
		`[1,2,3]`,
		`{"eventID":"e","eventName":"\ud800","requestParameters":{"k":"\ud800x"}}`,
		`{"eventID":"d","userIdentity":{"type":"IAMUser","sessionContext":{"attributes":{"creationDate":"2024-01-01T00:00:00Z"}}}}`,
	}
	var rows []engine.Row
	for _, s := range odd {
		rows = append(rows, engine.Row{Store: "s", Raw: []byte(s)})
	}
	if err := d.Insert(ctx, rows, 0); err != nil {
		t.Fatal(err)
	}
	type got struct {
		name, readOnly, mgmt, when, uid, rp, res *string
	}
	want := map[string][7]string{
		"a": {"7", "true", "", "2024-05-06 05:08:09.123", "", "", ""},
		"b": {`{"x":1}`, "", "", "", "", `{a=b, n='{"x":[1]}', k=3}`, ""},
		"c": {"last", "", "", "", "", "", ""},
		"d": {"", "", "", "", "IAMUser", "", ""},
		"e": {"\ufffd", "", "", "", "", "", ""},
	}
	rs, err := d.db.QueryContext(ctx, `SELECT eventID, eventName, CAST(readOnly AS VARCHAR), CAST(managementEvent AS VARCHAR), strftime(eventTime, '%Y-%m-%d %H:%M:%S.%g'), userIdentity.type, CAST(requestParameters AS VARCHAR), CAST(resources AS VARCHAR) FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	seen := 0
	for rs.Next() {
		var id *string
		var g got
		if err := rs.Scan(&id, &g.name, &g.readOnly, &g.mgmt, &g.when, &g.uid, &g.rp, &g.res); err != nil {
			t.Fatal(err)
		}
		seen++
		if id == nil {
			continue // the array: only eventJson
		}
		s := func(p *string) string {
			if p == nil {
				return ""
			}
			return *p
		}
		have := [7]string{s(g.name), s(g.readOnly), s(g.mgmt), s(g.when), s(g.uid), s(g.rp), s(g.res)}
		if have != want[*id] {
			t.Errorf("%s: got %q, want %q", *id, have, want[*id])
		}
	}
	if seen != len(odd) {
		t.Errorf("stored %d of %d", seen, len(odd))
	}

	// A rolled back transaction leaves nothing behind.
	conn, err := d.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		t.Fatal(err)
	}
	if err := appendRows(conn, []engine.Row{{Store: "rolled", Raw: []byte(`{"eventID":"z"}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := d.db.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE eds_id = 'rolled'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("rolled back rows: %d (%v)", n, err)
	}
	// That count ran on a second pooled connection (conn is held): it
	// opened, and the configuration is locked there too.
	if _, err := d.db.ExecContext(ctx, `SET enable_external_access = true`); err == nil {
		t.Error("a pooled connection could change the configuration")
	}
}
