package lake

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// sampleQuery is one query of testdata/aws-sample-queries.sql.
type sampleQuery struct {
	name, source, sql string
}

// readSampleQueries reads the corpus of AWS's Lake sample queries.
func readSampleQueries(t *testing.T) []sampleQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "aws-sample-queries.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var out []sampleQuery
	for _, block := range strings.Split(string(b), "\n;;\n") {
		var q sampleQuery
		var sqlLines []string
		for _, line := range strings.Split(block, "\n") {
			switch {
			case strings.HasPrefix(line, "-- name: "):
				q.name = strings.TrimPrefix(line, "-- name: ")
			case strings.HasPrefix(line, "-- source: "):
				q.source = strings.TrimPrefix(line, "-- source: ")
			case strings.HasPrefix(line, "--") || q.name == "":
			default:
				sqlLines = append(sqlLines, line)
			}
		}
		if q.name == "" {
			continue
		}
		if !strings.HasPrefix(q.source, "https://docs.aws.amazon.com/") {
			t.Errorf("sample %s: source %q is not AWS's documentation", q.name, q.source)
		}
		q.sql = strings.TrimSpace(strings.Join(sqlLines, "\n"))
		out = append(out, q)
	}
	return out
}

// storePlaceholder matches the names AWS's samples give the event data
// store.
var storePlaceholder = regexp.MustCompile(`\$EDS_ID\b|\b(event_data_store_ID|eds-ID|EDS[123]|eds[12])\b`)

// realRecord is what the independent counts read of a record, in Go from
// its JSON.
type realRecord struct {
	id, name, source, region    string
	eventType                   *string
	principalID, userName, arn  *string
	t                           time.Time
	responseObject              bool
	requestQueryID, responseQID *string
}

// realStoreRecords reads the records the import keeps, in Go: those with
// an eventID, an ISO-8601 eventTime within the store's retention, an AWS
// region (cairn's import refuses the others, docs/compatibility.md), each
// eventID once (the import keeps one record per account and eventID; the
// files are rehomed to one account).
func realStoreRecords(t *testing.T, retention time.Duration) []realRecord {
	seen := map[string]bool{}
	var out []realRecord
	for _, r := range audittest.RealRecords(t) {
		var v struct {
			EventID, EventName, EventSource, AWSRegion, EventTime string
			EventType                                             *string
			UserIdentity                                          *struct {
				PrincipalID *string `json:"principalId"`
				UserName    *string `json:"userName"`
				ARN         *string `json:"arn"`
			}
			ResponseElements  json.RawMessage
			RequestParameters json.RawMessage
		}
		if json.Unmarshal(r.Raw, &v) != nil || v.EventID == "" || !audit.ValidRecordRegion(v.AWSRegion) || seen[v.EventID] {
			continue
		}
		tm, err := time.Parse(time.RFC3339Nano, v.EventTime)
		if err != nil || tm.Before(time.Now().Add(-retention)) {
			continue
		}
		seen[v.EventID] = true
		rec := realRecord{id: v.EventID, name: v.EventName, source: v.EventSource, region: v.AWSRegion, t: tm.UTC(),
			responseObject: len(v.ResponseElements) > 0 && v.ResponseElements[0] == '{', eventType: v.EventType}
		if u := v.UserIdentity; u != nil {
			rec.principalID, rec.userName, rec.arn = u.PrincipalID, u.UserName, u.ARN
		}
		out = append(out, rec)
	}
	return out
}

// row renders an expected result row as the test compares rows: its
// non-NULL cells "column=value", in column order.
func row(cells ...any) string {
	var parts []string
	for i := 0; i+1 < len(cells); i += 2 {
		switch v := cells[i+1].(type) {
		case *string:
			if v != nil {
				parts = append(parts, cells[i].(string)+"="+*v)
			}
		case string:
			parts = append(parts, cells[i].(string)+"="+v)
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", cells[i], v))
		}
	}
	return strings.Join(parts, " ")
}

func str(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func lakeTime(t time.Time) string { return t.Format("2006-01-02 15:04:05.000") }

// within reports whether t is strictly between the Lake literals a and b.
func within(t time.Time, a, b string) bool {
	ta, _ := time.Parse("2006-01-02 15:04:05", a)
	tb, _ := time.Parse("2006-01-02 15:04:05", b)
	return t.After(ta) && t.Before(tb)
}

// sampleExpectations compute, in Go from the records' JSON, what each
// sample answers: its rows (in order when ordered), or the error a query
// Trino would refuse too gets (docs/compatibility.md, "Lake sample
// queries").
type sampleExpectation struct {
	rows    []string
	ordered bool
	// check, when set, checks the rows instead of rows.
	check func(got []string) error
	// fails: the query cannot run, in Trino either (the reason is in
	// docs/compatibility.md); failure is a part of its message.
	fails   bool
	failure string
}

func sampleExpectations(recs []realRecord) map[string]sampleExpectation {
	m := map[string]sampleExpectation{}
	var e sampleExpectation
	for _, r := range recs {
		if r.principalID != nil && within(r.t, "2023-01-22 00:00:00", "2023-01-23 00:00:00") && r.name == "CreateBucket" {
			e.rows = append(e.rows, row("principalid", r.principalID, "eventName", r.name))
		}
	}
	m["principal-ids-createbucket"] = e

	e = sampleExpectation{}
	for _, r := range recs {
		if r.userName != nil && *r.userName == "bob" && within(r.t, "2023-01-22 00:00:00", "2023-01-23 00:00:00") {
			e.rows = append(e.rows, row("eventID", r.id, "eventName", str(r.name), "eventSource", str(r.source), "eventTime", lakeTime(r.t)))
		}
	}
	m["user-called-apis"] = e

	counts := map[[2]string]int{}
	for _, r := range recs {
		if r.t.After(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)) {
			counts[[2]string{r.source, r.name}]++
		}
	}
	e = sampleExpectation{}
	for k, n := range counts {
		e.rows = append(e.rows, row("eventSource", str(k[0]), "eventName", str(k[1]), "apiCount", n))
	}
	want := append([]string(nil), e.rows...)
	sort.Strings(want)
	e.check = func(got []string) error {
		// ORDER BY apiCount DESC: counts never increase; ties in any order.
		prev := -1
		for _, g := range got {
			var n int
			fmt.Sscanf(g[strings.LastIndex(g, "apiCount=")+len("apiCount="):], "%d", &n)
			if prev >= 0 && n > prev {
				return fmt.Errorf("apiCount %d after %d: not in descending order", n, prev)
			}
			prev = n
		}
		return sameRows(got, want)
	}
	m["apis-by-eventname-eventsource"] = e

	e = sampleExpectation{}
	for _, r := range recs {
		if (r.region == "us-east-1" || r.region == "us-west-2") && r.name == "ConsoleLogin" {
			e.rows = append(e.rows, row("eventTime", lakeTime(r.t), "arn", r.arn, "awsRegion", r.region))
		}
	}
	m["console-logins-in-regions"] = e

	e = sampleExpectation{}
	for _, r := range recs {
		if r.name == "StartQuery" && r.source == "cloudtrail.amazonaws.com" && r.responseObject && within(r.t, "2023-01-01 00:00:00", "2023-02-01 00:00:00") {
			e.rows = append(e.rows, "") // the values are checked by count only
		}
	}
	n := len(e.rows)
	m["lake-queries-january-2023"] = sampleExpectation{check: func(got []string) error {
		if len(got) != n {
			return fmt.Errorf("%d rows; want %d", len(got), n)
		}
		return nil
	}}

	// AWS's page writes "< =", which is no operator (Trino's parser
	// refuses it too).
	m["bounded-select-star"] = sampleExpectation{fails: true, failure: "syntax error"}
	// edsA.map: the schema has no column "map".
	m["multi-table-left-join"] = sampleExpectation{fails: true, failure: "map"}

	// EDS1 UNION EDS2 (distinct pairs) UNION ALL EDS3 (every pair), ORDER
	// BY eventId LIMIT 10: with one store, the ten smallest eventIDs of
	// the distinct pairs and of all the pairs, merged.
	var ids []string
	pairs := map[string]bool{}
	for _, r := range recs {
		ids = append(ids, r.id)
		pairs[r.id+"\x00"+r.name] = true
	}
	for p := range pairs {
		ids = append(ids, p[:strings.IndexByte(p, 0)])
	}
	sort.Strings(ids)
	if len(ids) > 10 {
		ids = ids[:10]
	}
	m["multi-table-union"] = sampleExpectation{check: func(got []string) error {
		if len(got) != len(ids) {
			return fmt.Errorf("%d rows; want %d", len(got), len(ids))
		}
		for i, g := range got {
			if !strings.HasPrefix(g, "eventId="+ids[i]+" ") {
				return fmt.Errorf("row %d = %q; want eventId %s", i, g, ids[i])
			}
		}
		return nil
	}}
	// GROUP BY eventName, eventSource with arbitrary(eventType): the
	// counts, and an eventType of the group.
	type group struct {
		n     int
		types map[string]bool
	}
	groups := map[[2]string]*group{}
	for _, r := range recs {
		k := [2]string{r.name, r.source}
		if groups[k] == nil {
			groups[k] = &group{types: map[string]bool{}}
		}
		groups[k].n++
		if r.eventType != nil {
			groups[k].types[*r.eventType] = true
		}
	}
	var arb []string
	for k, g := range groups {
		arb = append(arb, row("eventName", str(k[0]), "eventSource", str(k[1]), "_col3", g.n))
	}
	m["optimize-aggregation-arbitrary"] = sampleExpectation{check: func(got []string) error {
		var rest []string
		for _, g := range got {
			// Take _col2 (arbitrary) out, and check it is one of its
			// group's eventTypes.
			parts := strings.Split(g, " ")
			var keep []string
			var name, source, typ string
			for _, p := range parts {
				switch {
				case strings.HasPrefix(p, "_col2="):
					typ = strings.TrimPrefix(p, "_col2=")
					continue
				case strings.HasPrefix(p, "eventName="):
					name = strings.TrimPrefix(p, "eventName=")
				case strings.HasPrefix(p, "eventSource="):
					source = strings.TrimPrefix(p, "eventSource=")
				}
				keep = append(keep, p)
			}
			if gr := groups[[2]string{name, source}]; gr == nil || typ != "" && !gr.types[typ] {
				return fmt.Errorf("row %q: arbitrary(eventType) is not an eventType of its group", g)
			}
			rest = append(rest, strings.Join(keep, " "))
		}
		return sameRows(rest, arb)
	}}

	byRegion := map[[2]string]int{}
	for _, r := range recs {
		byRegion[[2]string{r.name, r.region}]++
	}
	e = sampleExpectation{}
	for k, n := range byRegion {
		e.rows = append(e.rows, row("eventName", str(k[0]), "awsRegion", k[1], "_col2", n))
	}
	m["optimize-aggregation-group-order"] = e

	// ORDER BY eventTime LIMIT 100: the 100 earliest eventTimes, in order.
	var times []string
	for _, r := range recs {
		times = append(times, lakeTime(r.t))
	}
	sort.Strings(times)
	if len(times) > 100 {
		times = times[:100]
	}
	m["optimize-limit"] = sampleExpectation{check: func(got []string) error {
		if len(got) != len(times) {
			return fmt.Errorf("%d rows; want %d", len(got), len(times))
		}
		for i, g := range got {
			if !strings.Contains(g, " eventTime="+times[i]+" ") {
				return fmt.Errorf("row %d has not eventTime %s", i, times[i])
			}
		}
		return nil
	}}
	return m
}

func sameRows(got, want []string) error {
	g := append([]string(nil), got...)
	w := append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if strings.Join(g, "\n") != strings.Join(w, "\n") {
		return fmt.Errorf("%d rows, want %d:\n got %q\nwant %q", len(g), len(w), clip(g), clip(w))
	}
	return nil
}

func clip(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// TestAWSSampleQueries runs every query of AWS's published Lake samples
// (testdata/aws-sample-queries.sql, each with its source) unchanged but
// for the store's ID, through StartQuery and GetQueryResults
// (aws-sdk-go-v2), against the real records of ../shared/testdata/real
// imported with StartImport, and checks each result against the rows
// computed in Go from the records' JSON.
func TestAWSSampleQueries(t *testing.T) {
	real := audittest.RealDataDir(t)
	src := audittest.Rehome(t, real, "111111111111")
	e := newEnv(t, src)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	const retentionDays = 3653
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("samples"), RetentionPeriod: aws.Int32(retentionDays), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{id},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("file://" + src), S3BucketRegion: aws.String("us-east-1"),
			S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	if err != nil {
		t.Fatal(err)
	}
	if g := waitImport(t, a, im.ImportId); g.ImportStatus != types.ImportStatusCompleted {
		t.Fatalf("import: %s", g.ImportStatus)
	}
	recs := realStoreRecords(t, retentionDays*24*time.Hour)
	// The store holds what the Go reading keeps.
	if n := runQuery(t, a, `SELECT count(*) AS n FROM `+id); n[0]["n"] != fmt.Sprint(len(recs)) {
		t.Fatalf("the store holds %s records; the Go reading of the files keeps %d", n[0]["n"], len(recs))
	}
	want := sampleExpectations(recs)
	samples := readSampleQueries(t)
	nonEmpty := 0
	for _, q := range samples {
		exp, ok := want[q.name]
		if !ok {
			t.Errorf("sample %s has no independent expectation", q.name)
			continue
		}
		stmt := storePlaceholder.ReplaceAllString(q.sql, id)
		got, err := sampleRows(ctx, a, stmt)
		switch {
		case exp.fails:
			if err == nil {
				t.Errorf("sample %s (%s) ran; docs/compatibility.md says it cannot", q.name, q.source)
			} else if !strings.Contains(err.Error(), exp.failure) {
				t.Errorf("sample %s (%s): %v; want a failure naming %q", q.name, q.source, err, exp.failure)
			}
			continue
		case err != nil:
			t.Errorf("sample %s (%s): %v", q.name, q.source, err)
			continue
		}
		if len(got) > 0 {
			nonEmpty++
		}
		if exp.check != nil {
			err = exp.check(got)
		} else if exp.ordered {
			if strings.Join(got, "\n") != strings.Join(exp.rows, "\n") {
				err = fmt.Errorf("got %q; want %q", clip(got), clip(exp.rows))
			}
		} else {
			err = sameRows(got, exp.rows)
		}
		if err != nil {
			t.Errorf("sample %s (%s): %v", q.name, q.source, err)
		}
	}
	if nonEmpty < 3 {
		t.Errorf("only %d samples answered rows; the real records should exercise more", nonEmpty)
	}
	t.Logf("%d samples over %d records; %d answered rows", len(samples), len(recs), nonEmpty)
}

// sampleRows runs stmt and returns its rows as row renders them, or the
// query's failure.
func sampleRows(ctx context.Context, c *cloudtrail.Client, stmt string) ([]string, error) {
	q, err := c.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: &stmt})
	if err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		d, err := c.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: q.QueryId})
		if err != nil {
			return nil, err
		}
		if d.QueryStatus == types.QueryStatusFinished {
			break
		}
		if d.QueryStatus != types.QueryStatusQueued && d.QueryStatus != types.QueryStatusRunning || i > 2000 {
			return nil, fmt.Errorf("query %s: %s", d.QueryStatus, aws.ToString(d.ErrorMessage))
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out []string
	var next *string
	for {
		r, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: q.QueryId, NextToken: next})
		if err != nil {
			return nil, err
		}
		for _, cells := range r.QueryResultRows {
			var parts []string
			for _, cell := range cells {
				for k, v := range cell {
					parts = append(parts, k+"="+v)
				}
			}
			out = append(out, strings.Join(parts, " "))
		}
		if next = r.NextToken; next == nil {
			return out, nil
		}
	}
}
