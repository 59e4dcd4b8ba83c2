package lake

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/smithy-go"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
)

var keys = map[string]string{"AKIAAAAAAAAAAAAAAAAA": "111111111111", "AKIABBBBBBBBBBBBBBBB": "222222222222"}

// NewTestAPI serves a Lake's operations through apiserver for the tests
// of this package, with keys (access key ID to account, secret "secret"
// + the key ID) and st as the event store; api_test.go (package
// lake_test) sets it, as package lake's own tests cannot import apiserver
// (which imports lake).
var NewTestAPI func(l *Lake, st *audittest.MemStore, keys map[string]string) http.Handler

type env struct {
	lake  *Lake
	store *audittest.MemStore
	url   string
}

func newEnv(t testing.TB, roots ...string) *env {
	t.Helper()
	return newEnvWith(t, Options{ImportRoots: roots})
}

// newEnvWith serves a Lake opened with opts.
func newEnvWith(t testing.TB, opts Options) *env {
	t.Helper()
	return newEnvIn(t, t.TempDir(), opts)
}

// newEnvIn serves the Lake of data dir dir opened with opts.
func newEnvIn(t testing.TB, dir string, opts Options) *env {
	t.Helper()
	l, err := openTest(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	st := audittest.NewMemStore()
	api := NewTestAPI(l, st, keys)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &env{lake: l, store: st, url: srv.URL}
}

// openTest opens the Lake of data dir dir ("": in memory) on the DuckDB
// engine.
func openTest(dir string, opts Options) (*Lake, error) {
	path := ""
	if dir != "" {
		path = filepath.Join(dir, DBFile)
	}
	eng, err := duckdb.Open(path, duckdb.Options{})
	if err != nil {
		return nil, err
	}
	opts.Engine = eng
	return Open(dir, opts)
}

// openTestMem opens the Lake of data dir dir on a DuckDB engine with
// memoryLimit ("" = the default).
func openTestMem(dir, memoryLimit string) (*Lake, error) {
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{MemoryLimit: memoryLimit})
	if err != nil {
		return nil, err
	}
	return Open(dir, Options{Engine: eng})
}

// sqlDB is the DuckDB database under l, for tests that seed or inspect it.
func sqlDB(l *Lake) *sql.DB { return l.eng.(*duckdb.DB).SQL() }

func (e *env) client(key string) *cloudtrail.Client {
	return cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.url),
		Credentials: credentials.NewStaticCredentialsProvider(key, "secret"+key, "")})
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// waitQuery polls DescribeQuery until the query ends.
func waitQuery(t *testing.T, c *cloudtrail.Client, id string) *cloudtrail.DescribeQueryOutput {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 600; i++ {
		d, err := c.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: &id})
		if err != nil {
			t.Fatal(err)
		}
		if d.QueryStatus != types.QueryStatusQueued && d.QueryStatus != types.QueryStatusRunning {
			return d
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("query did not end")
	return nil
}

// query runs stmt and returns its rows as maps.
func runQuery(t *testing.T, c *cloudtrail.Client, stmt string) []map[string]string {
	t.Helper()
	ctx := context.Background()
	q, err := c.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: &stmt})
	if err != nil {
		t.Fatalf("StartQuery %q: %v", stmt, err)
	}
	if d := waitQuery(t, c, *q.QueryId); d.QueryStatus != types.QueryStatusFinished {
		t.Fatalf("query %q: %s %s", stmt, d.QueryStatus, aws.ToString(d.ErrorMessage))
	}
	var out []map[string]string
	var next *string
	for {
		r, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: q.QueryId, NextToken: next, MaxQueryResults: aws.Int32(7)})
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range r.QueryResultRows {
			m := map[string]string{}
			for _, cell := range row {
				for k, v := range cell {
					m[k] = v
				}
			}
			out = append(out, m)
		}
		if next = r.NextToken; next == nil {
			return out
		}
	}
}

func TestStoresQueriesAndIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")

	cr, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("mgmt"), TerminationProtectionEnabled: aws.Bool(false), RetentionPeriod: aws.Int32(3653)})
	if err != nil {
		t.Fatal(err)
	}
	if cr.Status != types.EventDataStoreStatusCreated || len(cr.AdvancedEventSelectors) != 1 || aws.ToInt32(cr.RetentionPeriod) != 3653 {
		t.Fatalf("create: %+v", cr)
	}
	arn := aws.ToString(cr.EventDataStoreArn)
	id := arn[strings.LastIndex(arn, "/")+1:]
	if _, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("mgmt")}); code(err) != "EventDataStoreAlreadyExistsException" {
		t.Errorf("duplicate name: %v", err)
	}
	if _, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("x"), RetentionPeriod: aws.Int32(4000)}); code(err) != "InvalidParameterException" {
		t.Errorf("bad name/retention: %v", err)
	}
	if _, err := b.GetEventDataStore(ctx, &cloudtrail.GetEventDataStoreInput{EventDataStore: &id}); code(err) != "EventDataStoreNotFoundException" {
		t.Errorf("other account's store: %v", err)
	}
	g, err := a.GetEventDataStore(ctx, &cloudtrail.GetEventDataStoreInput{EventDataStore: &id})
	if err != nil || g.Status != types.EventDataStoreStatusEnabled {
		t.Fatalf("get: %v %+v", err, g)
	}

	// Real records of account 111111111111 flow in through the feed; the
	// other account's do not.
	var recs []audit.Record
	for _, rr := range audittest.RealRecords(t) {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			continue
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		t.Skip("no real records")
	}
	// Re-home a share of the real records into account A (the real data's
	// accounts are others), keeping their bytes otherwise.
	var mine []audit.Record
	for _, r := range recs {
		if r.Category == audit.CategoryManagement && len(mine) < 2000 {
			raw := strings.Replace(string(r.Raw), `"recipientAccountId":"`+r.Account+`"`, `"recipientAccountId":"111111111111"`, 1)
			if nr, err := audit.Extract([]byte(raw)); err == nil && nr.Account == "111111111111" {
				mine = append(mine, nr)
			}
		}
	}
	if _, err := e.store.Append(ctx, append(mine, recs...)); err != nil {
		t.Fatal(err)
	}
	n, err := e.lake.Sync(ctx, e.store)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := e.store.ReadAppended(ctx, 0, 1<<20)
	t.Logf("%d real records, %d re-homed, %d into the store", len(recs), len(mine), n)

	rows := runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id)
	if rows[0]["n"] == "0" || rows[0]["n"] == "" {
		t.Fatalf("count: %v", rows)
	}
	// AWS's published sample queries, unchanged but for the ID.
	for _, stmt := range []string{
		`SELECT eventSource, eventName, COUNT(*) AS numOfCalls FROM ` + id + ` WHERE eventTime > '2000-01-01 00:00:00' GROUP BY eventSource, eventName ORDER BY numOfCalls DESC LIMIT 10`,
		`SELECT userIdentity.arn AS user, COUNT(*) AS n FROM ` + id + ` WHERE userIdentity.arn IS NOT NULL GROUP BY userIdentity.arn ORDER BY n DESC`,
		`SELECT eventID, eventTime, element_at(requestParameters, 'bucketName') AS bucket FROM ` + id + ` WHERE eventSource = 's3.amazonaws.com' LIMIT 5`,
		`SELECT sourceIPAddress, COUNT(*) AS errors FROM ` + id + ` WHERE errorCode IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 3`,
	} {
		runQuery(t, a, stmt)
	}
	// The group-by agrees with the raw JSON.
	want := map[string]int{}
	for _, ap := range all {
		if r := ap.Record; r.Account == "111111111111" && r.Category == audit.CategoryManagement && r.Time.After(time.Now().AddDate(0, 0, -3653)) {
			want[r.EventName]++
		}
	}
	grouped := runQuery(t, a, `SELECT eventName, COUNT(*) AS c FROM `+id+` GROUP BY eventName`)
	if len(grouped) != len(want) || len(want) < 10 {
		t.Errorf("group by: %d names, raw JSON has %d", len(grouped), len(want))
	}
	for _, row := range grouped {
		if got := row["c"]; got != itoa(want[row["eventName"]]) {
			t.Errorf("%s: %s, raw JSON says %d", row["eventName"], got, want[row["eventName"]])
		}
	}

	// Forbidden and bad statements.
	for stmt, wantCode := range map[string]string{
		`SELECT * FROM read_csv('/etc/passwd')`:                                 "InvalidQueryStatementException",
		`SELECT * FROM ` + id + `, read_json('/etc/passwd')`:                    "InvalidQueryStatementException",
		`SELECT * FROM ` + id + ` WHERE eventName IN (SELECT * FROM glob('*'))`: "InvalidQueryStatementException",
		`SELECT * FROM events`:                                                  "InvalidQueryStatementException",
		`SELECT * FROM main.events`:                                             "InvalidQueryStatementException",
		`DELETE FROM ` + id:                                                     "InvalidQueryStatementException",
		`SELECT 1 FROM ` + id + `; DROP TABLE events`:                           "InvalidQueryStatementException",
		`ATTACH '/tmp/x.db' AS x`:                                               "InvalidQueryStatementException",
		`SELECT FROM WHERE`:                                                     "InvalidQueryStatementException",
		`SELECT * FROM 00000000-0000-4000-8000-000000000000`:                    "EventDataStoreNotFoundException",
		`SELECT getenv('HOME') FROM ` + id:                                      "InvalidQueryStatementException",
	} {
		if _, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)}); code(err) != wantCode {
			t.Errorf("%q: %v, want %s", stmt, err, wantCode)
		}
	}
	if _, err := b.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT * FROM ` + id)}); code(err) != "EventDataStoreNotFoundException" {
		t.Errorf("other account's store in FROM: %v", err)
	}
	// A statement DuckDB rejects only when it runs ends FAILED.
	q, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT nosuchcolumn FROM ` + id)})
	if err != nil {
		t.Fatal(err)
	}
	if d := waitQuery(t, a, *q.QueryId); d.QueryStatus != types.QueryStatusFailed || aws.ToString(d.ErrorMessage) == "" {
		t.Errorf("bad column: %s %q", d.QueryStatus, aws.ToString(d.ErrorMessage))
	}
	if _, err := a.CancelQuery(ctx, &cloudtrail.CancelQueryInput{QueryId: q.QueryId}); code(err) != "InactiveQueryException" {
		t.Errorf("cancel a failed query: %v", err)
	}
	if _, err := b.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: q.QueryId}); code(err) != "QueryIdNotFoundException" {
		t.Errorf("other account's query: %v", err)
	}
	lq, err := a.ListQueries(ctx, &cloudtrail.ListQueriesInput{EventDataStore: &id})
	if err != nil || len(lq.Queries) < 5 {
		t.Errorf("ListQueries: %v %d", err, len(lq.Queries))
	}

	// Deletion: protection, pending deletion, restore.
	if _, err := a.UpdateEventDataStore(ctx, &cloudtrail.UpdateEventDataStoreInput{EventDataStore: &id, TerminationProtectionEnabled: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.DeleteEventDataStore(ctx, &cloudtrail.DeleteEventDataStoreInput{EventDataStore: &id}); code(err) != "EventDataStoreTerminationProtectedException" {
		t.Errorf("delete protected: %v", err)
	}
	a.UpdateEventDataStore(ctx, &cloudtrail.UpdateEventDataStoreInput{EventDataStore: &arn, TerminationProtectionEnabled: aws.Bool(false)})
	if _, err := a.DeleteEventDataStore(ctx, &cloudtrail.DeleteEventDataStoreInput{EventDataStore: &arn}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT 1 FROM ` + id)}); code(err) != "InactiveEventDataStoreException" {
		t.Errorf("query a deleted store: %v", err)
	}
	if _, err := a.RestoreEventDataStore(ctx, &cloudtrail.RestoreEventDataStoreInput{EventDataStore: &id}); err != nil {
		t.Fatal(err)
	}
	ls, err := a.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{})
	if err != nil || len(ls.EventDataStores) != 1 {
		t.Errorf("list: %v %+v", err, ls)
	}
}
