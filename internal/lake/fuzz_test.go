package lake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// FuzzQueryStatement runs statements of account A through Prepare and
// Query over a Lake that also holds account B's store: nothing panics,
// every error is an audit.Error (AWS-shaped), a prepared statement reads
// only A's stores, and no answer ever carries B's data or Lake's own
// tables (canaries holding a random secret the statement cannot know: B's
// rows, a row of lake_meta, a table named after the secret).
func FuzzQueryStatement(f *testing.F) {
	const acctA, acctB = "111111111111", "222222222222"
	l, err := openTest("", Options{QueryTimeout: 3 * time.Second, MaxResultBytes: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	ctx := context.Background()
	idA, idB := "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
	l.stores[idA] = &EventDataStore{ID: idA, Account: acctA, Region: "us-east-1", Name: "a", Status: StatusEnabled, RetentionPeriod: 3653}
	l.stores[idB] = &EventDataStore{ID: idB, Account: acctB, Region: "us-east-1", Name: "b", Status: StatusEnabled, RetentionPeriod: 3653}
	secret := "S" + strings.ReplaceAll(audit.NewID(), "-", "")
	rec := func(acct, name, ua string) []byte {
		return []byte(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"` + acct + `","arn":"arn:aws:iam::` + acct + `:user/` + ua +
			`"},"eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"` + name + `","awsRegion":"us-east-1","userAgent":"` + ua +
			`","requestParameters":{"bucketName":"` + ua + `"},"eventID":"` + audit.NewID() + `","readOnly":true,"recipientAccountId":"` + acct + `","eventCategory":"Management"}`)
	}
	if err := l.eng.Insert(ctx, []engine.Row{{Store: idA, Raw: rec(acctA, "GetObject", "alice")}, {Store: idA, Raw: rec(acctA, "PutObject", "bob")}, {Store: idB, Raw: rec(acctB, secret, secret)}}, 0); err != nil {
		f.Fatal(err)
	}
	// Canaries outside every store: a row of Lake's bookkeeping and a table
	// whose name and content are the secret (so a catalog view that lists
	// tables leaks it too).
	for _, q := range []string{`INSERT INTO lake_meta VALUES ('` + secret + `', 7)`, `CREATE TABLE "t_` + secret + `" AS SELECT '` + secret + `' AS s`} {
		if _, err := sqlDB(l).ExecContext(ctx, q); err != nil {
			f.Fatal(err)
		}
	}
	arnA, arnB := l.stores[idA].ARN(), l.stores[idB].ARN()
	for _, s := range []string{
		`SELECT eventName, COUNT(*) AS n FROM ` + idA + ` GROUP BY eventName ORDER BY n DESC`,
		`SELECT userIdentity.arn, element_at(requestParameters, 'bucketName') FROM ` + idA + ` WHERE eventTime > '2024-01-01 00:00:00'`,
		`SELECT * FROM ` + arnA,
		`SELECT * FROM ` + idB,
		`SELECT * FROM ` + arnB,
		`SELECT * FROM ` + idA + ` UNION ALL SELECT * FROM ` + tableName(idB),
		`SELECT * FROM ` + idA + `, events`,
		`SELECT * FROM ` + idA + `, main.events`,
		`SELECT * FROM ` + idA + ` JOIN "` + tableName(idB) + `" USING (eventID)`,
		`WITH x AS (SELECT * FROM events) SELECT * FROM ` + idA + `, x`,
		`SELECT * FROM ` + idA + ` WHERE eventName IN (SELECT eventName FROM memory.main.events)`,
		`SELECT * FROM read_json('/etc/passwd')`,
		`SELECT getenv('HOME') FROM ` + idA,
		`SELECT current_setting('memory_limit') FROM ` + idA,
		`ATTACH '/tmp/x.db'; SELECT * FROM ` + idA,
		`SELECT 1 FROM ` + idA + `; DROP TABLE events`,
		`SELECT /* FROM ` + idB + ` */ eventName FROM ` + idA + ` -- FROM ` + idB,
		`SELECT 'FROM ` + idB + `' FROM ` + idA,
		`WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT n FROM t, ` + idA,
		`SELECT eventJson FROM ` + idA + ` WHERE json_extract_scalar(eventJson, '$.eventName') = 'GetObject'`,
		`SELECT * FROM (SELECT * FROM ` + idA + `) AS "` + idB + `"`,
		"SELECT * FROM `" + idB + "`",
		`SELECT * FROM ` + strings.ToUpper(idB),
		`SELECT * FROM "` + idB + `"`,
		`SELECT t.r.arn FROM ` + idA + ` CROSS JOIN UNNEST(resources) AS t(r)`,
		`SELECT t.r FROM ` + idA + ` CROSS JOIN UNNEST((SELECT list(eventName) FROM events)) AS t(r)`,
		`SELECT u.k FROM ` + idA + ` e, UNNEST(map_keys(e.requestParameters)) AS u(k), UNNEST((SELECT [k] FROM lake_meta)) v(x)`,
		`SELECT day_of_week(eventTime), slice(ARRAY[1, 2], 1, 1), json_array_get('[1]', 0), date_add('day', 1, eventTime) FROM ` + idA,
		`SELECT * FROM ` + idA + ` AS x(` + idB + `)`,
		`SELECT * FROM duckdb_tables()`,
		`PRAGMA show_tables`,
		`SELECT * FROM ` + idA + ` own_, (WITH events AS (SELECT 1) SELECT * FROM events) s0, (SELECT * FROM events) x`,
		`SELECT * FROM ` + idA + ` own_, (WITH duckdb_tables AS (SELECT 1) SELECT 1) s0, duckdb_tables`,
		`WITH sqlite_master AS (SELECT * FROM sqlite_master) SELECT * FROM ` + idA + `, sqlite_master`,
		`WITH RECURSIVE lake_meta AS (SELECT * FROM lake_meta UNION ALL SELECT 'x', 1) SELECT * FROM ` + idA + `, lake_meta`,
		`SELECT (SELECT count(*) FROM information_schema.tables) FROM ` + idA,
		`SELECT eventName FROM ` + idA + ` UNION ALL SELECT table_name FROM duckdb_tables`,
		`WITH events AS (SELECT * FROM ` + idA + `) SELECT count(*) FROM events`,
		`SELECT current_schema, stats(eventTime), version() FROM ` + idA,
		`SHOW TABLES`,
		`DESCRIBE events`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stmt string) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, ids, err := l.Prepare(qctx, acctA, stmt)
		if err != nil {
			var ae *audit.Error
			if !errors.As(err, &ae) && qctx.Err() == nil {
				t.Fatalf("Prepare %q: not an AWS-shaped error: %v", stmt, err)
			}
			return
		}
		for _, id := range ids {
			if s := l.stores[id]; s == nil || s.Account != acctA {
				t.Fatalf("Prepare %q reads store %s of another account", stmt, id)
			}
		}
		res, err := l.Query(qctx, acctA, stmt)
		if err != nil {
			var ae *audit.Error
			if !errors.As(err, &ae) {
				t.Fatalf("Query %q: not an AWS-shaped error: %v", stmt, err)
			}
			return
		}
		for _, r := range res.Rows {
			for _, c := range r {
				if c != nil && (strings.Contains(*c, secret) || strings.Contains(*c, acctB)) {
					t.Fatalf("Query %q of account A answered account B's data: %q", stmt, *c)
				}
			}
		}
	})
}

// FuzzAuditEventData validates arbitrary eventData as PutAuditEvents does:
// nothing panics; an accepted event has every required field as a string
// within its limit and the channel owner as recipient, its stored record
// carries eventData unchanged (as compact JSON), and Lake can store it (an
// accepted event that failed at insert would fail the whole call).
func FuzzAuditEventData(f *testing.F) {
	l, err := openTest("", Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	const acct = "111111111111"
	good := eventData("Open", acct)
	for _, s := range []string{
		good,
		`{}`, `[]`, `null`, `"x"`, `{"a":1} {"b":2}`, `{not json`,
		strings.Replace(good, `"UID":"u-Open"`, `"UID":7`, 1),
		strings.Replace(good, `"eventTime":"2026-01-02T03:04:05Z"`, `"eventTime":"2026-13-02T03:04:05"`, 1),
		strings.Replace(good, `"eventTime":"2026-01-02T03:04:05Z"`, `"eventTime":"2026-01-02T3:04:05"`, 1),
		strings.Replace(good, `"type":"CustomUser"`, `"TYPE":"CustomUser"`, 1),
		strings.Replace(good, `"myapp.example.com"`, `"a&b<c>d"`, 1),
		strings.Replace(good, `"10.0.0.1"`, `"::1"`, 1),
		strings.Replace(good, `"10.0.0.1"`, `"300.0.0.1"`, 1),
		strings.Replace(good, `"details":{"team":"blue"}`, `"details":[1,2]`, 1),
		strings.Replace(good, `"details":{"team":"blue"}`, `"details":"flat"`, 1),
		strings.Replace(good, `"requestParameters":{"doc":"a","n":2}`, `"requestParameters":{"nested":{"deep":[1,{"x":null}]}}`, 1),
		strings.Replace(good, `"requestParameters":{"doc":"a","n":2}`, `"requestParameters":[1]`, 1),
		strings.Replace(good, `"userAgent":"app/1"`, `"userAgent":"caf\u00e9 \ud800"`, 1),
		strings.Replace(good, `"userIdentity":{`, `"userIdentity":{"type":null,`, 1),
		strings.Replace(good, `"version":"1.0"`, `"version":"1.0","version":"2.0"`, 1),
		strings.Replace(good, `"requestParameters":{"doc":"a","n":2}`, `"requestParameters":{"a":1,"a":"\udc00"}`, 1),
		strings.Replace(good, `"principalId":"alice"`, `"principalId":"alice","principalId":{"x":1}`, 1),
		strings.Replace(good, `"recipientAccountId":"111111111111"`, `"recipientAccountId":"222222222222"`, 1),
		good + " \n", good + "]", good + "}", good + " x", good + good,
		strings.Replace(good, `"version"`, `"\u0076ersion"`, 1),
		strings.Replace(good, `"app/1"`, "\"app\xff/1\"", 1),
		strings.Replace(good, `"app/1"`, `"app\u2028 \"q\" \\ <&>"`, 1),
		strings.Replace(good, `"userIdentity":{`, `"userIdentity":[],"x":{`, 1),
		strings.Replace(good, `"userIdentity":{`, `"userIdentity":"u","x":{`, 1),
		strings.Replace(good, `{"doc":"a","n":2}`, `{ "doc" : "a" ,  "n" : 2 }`, 1),
		strings.Replace(good, `"UID":"u-Open"`, `"UID":null`, 1),
		strings.Replace(good, `"userAgent":"app/1"`, `"userAgent":null`, 1),
	} {
		f.Add(s)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// One builder for every input, as a call's events share one: what an
	// event before left in it (its decoder, in any state) changes nothing.
	rb := newRecordBuilder(acct, "us-east-1", "arn:aws:cloudtrail:us-east-1:"+acct+":channel/c", now)
	f.Fuzz(func(t *testing.T, data string) {
		raw, eventID, code, msg := l.auditRecord(AuditEvent{Data: data}, acct, "us-east-1", "arn:aws:cloudtrail:us-east-1:"+acct+":channel/c", now)
		if raw2, id2, code2, msg2 := rb.record(AuditEvent{Data: data}); code2 != code || msg2 != msg ||
			!bytes.Equal(bytes.Replace(raw2, []byte(id2), []byte(eventID), 1), raw) {
			t.Fatalf("%q: the call's builder %s %q\n%s\na fresh one %s %q\n%s", data, code2, msg2, raw2, code, msg, raw)
		}
		// The same answer, and the same record, as the encoding/json
		// version it replaced.
		refRaw, refID, refCode, refMsg := auditRecordRef(AuditEvent{Data: data}, acct, "us-east-1", "arn:aws:cloudtrail:us-east-1:"+acct+":channel/c", now)
		if code != refCode || msg != refMsg {
			t.Fatalf("%q: %s %q, the reference %s %q", data, code, msg, refCode, refMsg)
		}
		if code == "" && !bytes.Equal(bytes.Replace(raw, []byte(eventID), []byte(refID), 1), refRaw) {
			t.Fatalf("%q: stored\n%s\nthe reference\n%s", data, raw, refRaw)
		}
		if code != "" {
			if msg == "" || raw != nil {
				t.Fatalf("rejected %q as %s with message %q and a record", data, code, msg)
			}
			return
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("accepted eventData that is not a JSON object: %q", data)
		}
		for _, f := range fieldLimits {
			v, ok := ev[f.name]
			s, isStr := v.(string)
			if f.required && (!ok || !isStr) || ok && v != nil && !isStr || len(s) > f.max {
				t.Fatalf("accepted %q: field %s is %#v", data, f.name, v)
			}
		}
		ui, _ := ev["userIdentity"].(map[string]any)
		if _, ok := ui["type"].(string); !ok {
			t.Fatalf("accepted %q without a string userIdentity.type", data)
		}
		if _, ok := ui["principalId"].(string); !ok {
			t.Fatalf("accepted %q without a string userIdentity.principalId", data)
		}
		if !eventTimeFormat.MatchString(ev["eventTime"].(string)) {
			t.Fatalf("accepted %q: eventTime %q", data, ev["eventTime"])
		}
		if ev["recipientAccountId"] != acct {
			t.Fatalf("accepted %q for recipient %v", data, ev["recipientAccountId"])
		}
		var rec struct {
			EventID   string          `json:"eventID"`
			EventData json.RawMessage `json:"eventData"`
		}
		if err := json.Unmarshal(raw, &rec); err != nil || rec.EventID != eventID {
			t.Fatalf("stored record %q: %v", raw, err)
		}
		var compact bytes.Buffer
		json.Compact(&compact, []byte(data))
		if !bytes.Equal(rec.EventData, compact.Bytes()) {
			t.Fatalf("eventData altered: %q became %q", data, rec.EventData)
		}
		if err := l.eng.Insert(context.Background(), []engine.Row{{Store: "fuzz", Raw: raw}}, 0); err != nil {
			t.Fatalf("accepted %q but Lake cannot store it: %v", data, err)
		}
		var cat string
		var timed bool
		if err := sqlDB(l).QueryRow(`SELECT eventCategory, eventTime IS NOT NULL FROM events WHERE eds_id = 'fuzz' AND eventID = ?`, eventID).Scan(&cat, &timed); err != nil ||
			cat != "ActivityAuditLog" || !timed {
			t.Fatalf("record %q stored as eventCategory %q, eventTime set %v (%v)", raw, cat, timed, err)
		}
	})
}
