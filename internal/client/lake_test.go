package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/go-cmp/cmp"
)

// fakeCloudTrail answers CloudTrail JSON 1.1 calls by operation with the
// next of its canned bodies (the last one repeats) and records the calls.
type fakeCloudTrail struct {
	mu      sync.Mutex
	answers map[string][]string
	calls   []string          // operations, in order
	bodies  map[string][]byte // the last request body of each operation
}

func (f *fakeCloudTrail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "CloudTrail_20131101.")
	b, _ := io.ReadAll(r.Body)
	f.calls = append(f.calls, op)
	f.bodies[op] = b
	as := f.answers[op]
	if len(as) == 0 {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"__type":"UnsupportedOperationException","message":"`+op+`"}`)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	io.WriteString(w, as[0])
	if len(as) > 1 {
		f.answers[op] = as[1:]
	}
}

func newFake(t *testing.T, answers map[string][]string) (*Client, *fakeCloudTrail) {
	t.Helper()
	f := &fakeCloudTrail{answers: answers, bodies: map[string][]byte{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := New(context.Background(), Config{Endpoint: srv.URL, Region: "eu-west-3",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "")})
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != "eu-west-3" {
		t.Errorf("Region = %q; want eu-west-3", c.Region)
	}
	return c, f
}

func TestQuery(t *testing.T) {
	c, f := newFake(t, map[string][]string{
		"StartQuery":    {`{"QueryId":"q1"}`},
		"DescribeQuery": {`{"QueryStatus":"QUEUED"}`, `{"QueryStatus":"RUNNING"}`, `{"QueryStatus":"FINISHED"}`},
		"GetQueryResults": {
			`{"QueryStatus":"FINISHED","QueryResultRows":[[{"a":"1"},{"b":"2"}]],"NextToken":"p2"}`,
			`{"QueryStatus":"FINISHED","QueryResultRows":[[{"b":"3"},{"c":"4"}]]}`,
		},
	})
	res, err := c.Query(context.Background(), "SELECT a, b, c FROM x")
	if err != nil {
		t.Fatal(err)
	}
	s := func(v string) *string { return &v }
	want := &QueryResult{Columns: []string{"a", "b", "c"}, Rows: [][]*string{{s("1"), s("2"), nil}, {nil, s("3"), s("4")}}}
	if d := cmp.Diff(want, res); d != "" {
		t.Errorf("Query (-want +got):\n%s", d)
	}
	wantCalls := []string{"StartQuery", "DescribeQuery", "DescribeQuery", "DescribeQuery", "GetQueryResults", "GetQueryResults"}
	if d := cmp.Diff(wantCalls, f.calls); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	var in struct{ QueryId, NextToken string }
	json.Unmarshal(f.bodies["GetQueryResults"], &in)
	if in.QueryId != "q1" || in.NextToken != "p2" {
		t.Errorf("last GetQueryResults asked %+v; want q1's page p2", in)
	}
}

func TestQueryFails(t *testing.T) {
	for _, status := range []string{"FAILED", "CANCELLED", "TIMED_OUT"} {
		c, f := newFake(t, map[string][]string{
			"StartQuery":    {`{"QueryId":"q1"}`},
			"DescribeQuery": {`{"QueryStatus":"` + status + `","ErrorMessage":"the reason"}`},
		})
		_, err := c.Query(context.Background(), "SELECT 1")
		if err == nil || !strings.Contains(err.Error(), status) || !strings.Contains(err.Error(), "the reason") {
			t.Errorf("%s: Query = %v; want an error with the status and the reason", status, err)
		}
		if n := len(f.calls); n != 2 {
			t.Errorf("%s: %d calls %v; want StartQuery and one DescribeQuery", status, n, f.calls)
		}
	}
}

// TestQueryEndsWithTheContext: a query that never finishes returns the
// context's error (the deadline may meet a call or the wait between them;
// TestPoll checks that the wait cancels the query on the server).
func TestQueryEndsWithTheContext(t *testing.T) {
	c, _ := newFake(t, map[string][]string{
		"StartQuery":    {`{"QueryId":"q1"}`},
		"DescribeQuery": {`{"QueryStatus":"RUNNING"}`},
		"CancelQuery":   {`{"QueryId":"q1","QueryStatus":"CANCELLED"}`},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Query(ctx, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Query = %v; want context.DeadlineExceeded", err)
	}
}

func TestImport(t *testing.T) {
	c, f := newFake(t, map[string][]string{
		"StartImport": {`{"ImportId":"i1"}`},
		"GetImport": {`{"ImportId":"i1","ImportStatus":"IN_PROGRESS"}`,
			`{"ImportId":"i1","ImportStatus":"COMPLETED","ImportStatistics":{"FilesCompleted":3,"EventsCompleted":40,"FailedEntries":2}}`},
		"ListImportFailures": {`{"Failures":[{"Location":"file:///a.json","ErrorMessage":"bad record","Status":"FAILED"}]}`},
	})
	res, err := c.Import(context.Background(), "eds1", "file:///logs")
	if err != nil {
		t.Fatal(err)
	}
	want := ImportResult{ID: "i1", Status: "COMPLETED", Files: 3, Events: 40, Failed: 2,
		Failures: []ImportFailure{{Location: "file:///a.json", Message: "bad record"}}}
	if d := cmp.Diff(want, res); d != "" || res.OK() {
		t.Errorf("Import (-want +got):\n%s (OK %v; want false)", d, res.OK())
	}
	var in struct {
		Destinations []string
		ImportSource struct {
			S3 struct{ S3LocationUri string }
		}
	}
	json.Unmarshal(f.bodies["StartImport"], &in)
	if len(in.Destinations) != 1 || in.Destinations[0] != "eds1" || in.ImportSource.S3.S3LocationUri != "file:///logs" {
		t.Errorf("StartImport asked %+v", in)
	}
}

func TestImportWithoutStatistics(t *testing.T) {
	c, _ := newFake(t, map[string][]string{
		"StartImport":        {`{"ImportId":"i1"}`},
		"GetImport":          {`{"ImportId":"i1","ImportStatus":"FAILED"}`},
		"ListImportFailures": {`{"Failures":[]}`},
	})
	res, err := c.Import(context.Background(), "eds1", "s3://b/p")
	if err != nil || res.OK() || res.Status != "FAILED" {
		t.Errorf("Import = %+v, %v; want FAILED, not OK", res, err)
	}
}

func TestHistory(t *testing.T) {
	ev := func(id string) string {
		rec := `{"eventVersion":"1.08","eventID":"` + id + `","eventTime":"2026-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"eu-west-3","recipientAccountId":"111111111111","eventType":"AwsApiCall","userIdentity":{"type":"IAMUser","accountId":"111111111111"}}`
		b, _ := json.Marshal(rec)
		return `{"EventId":"` + id + `","CloudTrailEvent":` + string(b) + `}`
	}
	c, f := newFake(t, map[string][]string{
		"LookupEvents": {
			`{"Events":[` + ev("e1") + `,{"EventId":"bad","CloudTrailEvent":"not a record"}],"NextToken":"n2"}`,
			`{"Events":[` + ev("e2") + `]}`,
		},
	})
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := c.History(start, start.Add(time.Hour))
	got, err := h.ReadAppended(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 || got[0].Record.EventID != "e1" || got[1].Record.EventID != "e2" {
		t.Errorf("ReadAppended = %+v; want e1 and e2 as 1 and 2", got)
	}
	if h.Unreadable() != 1 {
		t.Errorf("Unreadable = %d; want 1", h.Unreadable())
	}
	if more, err := h.ReadAppended(context.Background(), 2, 100); err != nil || len(more) != 0 {
		t.Errorf("ReadAppended after the end = %d records, %v; want none", len(more), err)
	}
	if n := len(f.calls); n != 2 {
		t.Errorf("%d LookupEvents calls; want 2 (one pass)", n)
	}
	var in struct {
		StartTime, EndTime float64
		NextToken          string
	}
	json.Unmarshal(f.bodies["LookupEvents"], &in)
	if int64(in.StartTime) != start.Unix() || int64(in.EndTime) != start.Add(time.Hour).Unix() || in.NextToken != "n2" {
		t.Errorf("last LookupEvents asked %+v; want the range and page n2", in)
	}
}
