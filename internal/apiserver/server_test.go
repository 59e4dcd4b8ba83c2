package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// fakeAuth trusts the X-Test-Account header; the real SigV4 path is tested
// end to end in cmd/cairn.
type fakeAuth struct{}

func (fakeAuth) Authenticate(r *http.Request, _ []byte) (Caller, error) {
	acct := r.Header.Get("X-Test-Account")
	if acct == "" {
		return Caller{}, &awsjson.Error{Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token", Status: 403}
	}
	return Caller{Principal: audit.Principal{AccountID: acct, UserName: "u" + acct, ARN: "arn:aws:iam::" + acct + ":user/u", PrincipalID: "AIDA", AccessKeyID: "AKIA" + acct, Region: "us-east-1",
		Responder: r.Header.Get("X-Test-Responder") != ""}}, nil
}

// syncRecorder stores submissions at once.
type syncRecorder struct{ st *audittest.MemStore }

func (s syncRecorder) Submit(ctx context.Context, rs ...audit.Record) (audit.AppendResult, error) {
	return s.st.Append(ctx, rs)
}
func (s syncRecorder) Enqueue(ctx context.Context, rs ...audit.Record) error {
	_, err := s.st.Append(ctx, rs)
	return err
}
func (s syncRecorder) Commit(ctx context.Context, rs ...audit.Record) error {
	_, err := s.st.Append(ctx, rs)
	return err
}
func (syncRecorder) Admit(string, bool) (func(), error) { return func() {}, nil }

func newTestServer(t testing.TB, now time.Time, retention time.Duration) (*Server, *audittest.MemStore) {
	st := audittest.NewMemStore()
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st}, Retention: retention,
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }})
	return s, st
}

func do(t *testing.T, s *Server, acct, op, body string) (int, map[string]any) {
	t.Helper()
	return doAs(t, s, acct, false, op, body)
}

// doAs is do, as a responder's key when responder is set.
func doAs(t *testing.T, s *Server, acct string, responder bool, op, body string) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."+op)
	if acct != "" {
		r.Header.Set("X-Test-Account", acct)
	}
	if responder {
		r.Header.Set("X-Test-Responder", "1")
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s: response %q is not JSON", op, w.Body.String())
	}
	if w.Header().Get("x-amzn-RequestId") == "" {
		t.Errorf("%s: no x-amzn-RequestId", op)
	}
	return w.Code, out
}

func record(t testing.TB, id string, at time.Time, name string) audit.Record {
	raw := fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":%q,"awsRegion":"us-east-1","eventID":%q,"readOnly":true,"eventType":"AwsApiCall","recipientAccountId":"111111111111","userIdentity":{"type":"IAMUser","userName":"alice","accessKeyId":"AKIAX"}}`,
		audit.FormatTime(at), name, id)
	r, err := audit.Extract([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLookupPagesAndRetention(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, st := newTestServer(t, now, 90*24*time.Hour)
	// Retention counts from when the store received a record: one
	// received 91 days ago is expired, one of 2021 received now is not.
	st.Now = func() time.Time { return now.Add(-91 * 24 * time.Hour) }
	st.Append(t.Context(), []audit.Record{record(t, "expired", now.Add(-91*24*time.Hour-time.Minute), "GetObject")})
	st.Now = func() time.Time { return now }
	var recs []audit.Record
	for i := range 7 {
		// Two records share each second, to exercise ties across pages.
		recs = append(recs, record(t, fmt.Sprintf("e%02d", i), now.Add(-time.Duration(i/2)*time.Minute), "GetObject"))
	}
	recs = append(recs, record(t, "imported-2021", time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC), "GetObject"))
	st.Append(t.Context(), recs)

	var ids []string
	token := ""
	for page := 0; ; page++ {
		body := `{"MaxResults":2,"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"GetObject"},{"AttributeKey":"Username","AttributeValue":"alice"}]`
		if token != "" {
			body += `,"NextToken":"` + token + `"`
		}
		code, out := do(t, s, "111111111111", "LookupEvents", body+"}")
		if code != 200 {
			t.Fatalf("page %d: %d %v", page, code, out)
		}
		for _, e := range out["Events"].([]any) {
			ev := e.(map[string]any)
			ids = append(ids, ev["EventId"].(string))
			if ev["ReadOnly"] != "true" || ev["Username"] != "alice" || ev["AccessKeyId"] != "AKIAX" {
				t.Errorf("event %v", ev)
			}
		}
		tok, _ := out["NextToken"].(string)
		if tok == "" {
			break
		}
		token = tok
	}
	want := "e01 e00 e03 e02 e05 e04 e06 imported-2021"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("paged ids = %s; want %s (newest first, ties by eventID desc, no expired record, the import kept)", got, want)
	}
	// Another account sees none of it.
	_, out := do(t, s, "222222222222", "LookupEvents", `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"GetObject"}]}`)
	if n := len(out["Events"].([]any)); n != 0 {
		t.Errorf("another account sees %d events", n)
	}
}

func TestCallsAreRecorded(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	s, st := newTestServer(t, now, 0)
	do(t, s, "111111111111", "LookupEvents", `{"MaxResults":3,"LookupAttributes":[{"AttributeKey":"ReadOnly","AttributeValue":"false"}]}`)
	do(t, s, "111111111111", "DeleteTrail", `{"Name":"t"}`)
	do(t, s, "", "LookupEvents", `{}`) // unauthenticated: not recorded
	page, _ := st.Lookup(t.Context(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10})
	if len(page.Records) != 2 {
		t.Fatalf("%d records; want 2", len(page.Records))
	}
	var got []map[string]any
	for _, r := range page.Records {
		var m map[string]any
		json.Unmarshal(r.Raw, &m)
		got = append(got, m)
	}
	for _, m := range got {
		switch m["eventName"] {
		case "LookupEvents":
			params, _ := json.Marshal(m["requestParameters"])
			if string(params) != `{"lookupAttributes":[{"attributeKey":"ReadOnly","attributeValue":"false"}],"maxResults":3}` {
				t.Errorf("requestParameters = %s", params)
			}
			if m["readOnly"] != true || m["responseElements"] != nil || m["errorCode"] != nil {
				t.Errorf("LookupEvents record = %v", m)
			}
		case "DeleteTrail":
			if m["readOnly"] != false || m["errorCode"] != "UnsupportedOperationException" {
				t.Errorf("DeleteTrail record = %v", m)
			}
		default:
			t.Errorf("unexpected record %v", m)
		}
	}
}

func TestLowerMembersKeepsOrderAndValues(t *testing.T) {
	in := `{"Name":"x","MaxResults":50,"TagsList":[{"Key":"K","Value":1.50}],"Élan":true,"already":null}`
	got, err := lowerMembers([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"x","maxResults":50,"tagsList":[{"key":"K","value":1.50}],"élan":true,"already":null}`
	if string(got) != want {
		t.Errorf("lowerMembers = %s; want %s", got, want)
	}
}

func FuzzLookupEventsBody(f *testing.F) {
	f.Add(`{"MaxResults":2,"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"x"}]}`)
	f.Add(`{"StartTime":1,"EndTime":"2024-01-01T00:00:00Z","EventCategory":"insight","NextToken":"AAAA"}`)
	f.Add(`{"LookupAttributes":[{}]}`)
	s, _ := newTestServer(f, time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), 0)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("X-Amz-Target", "CloudTrail_20131101.LookupEvents")
		r.Header.Set("X-Test-Account", "111111111111")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Errorf("body %q: status %d %s", body, w.Code, w.Body)
		}
	})
}

func FuzzNextToken(f *testing.F) {
	c := tokenCodec{key: []byte("k")}
	q := audit.Query{Account: "1", Region: "r"}
	fp := fingerprint(&q, nil, nil)
	f.Add(c.encode(fp, &audit.Cursor{Time: time.Unix(1700000000, 0), EventID: "e"}))
	f.Add("")
	good := c.encode(fp, &audit.Cursor{Time: time.Unix(1700000000, 0), EventID: "e"})
	f.Add(good[:10] + "\n" + good[10:]) // the decoder alone skips newlines
	f.Add(good[:len(good)-1] + "B")     // non-zero trailing bits
	f.Fuzz(func(t *testing.T, tok string) {
		cur, err := c.decode(fp, tok)
		if err == nil && c.encode(fp, cur) != tok {
			t.Errorf("accepted token %q does not round-trip", tok)
		}
	})
}

func TestHandlersDispatchAndRecord(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	st := audittest.NewMemStore()
	var got *Request
	type out struct {
		Name     string
		TrailARN string
	}
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now },
		Handlers: map[string]Handler{
			"CreateTrail": func(ctx context.Context, req *Request) (any, error) {
				got = req
				o := out{Name: "t", TrailARN: "arn:aws:cloudtrail:us-east-1:" + req.Caller.AccountID + ":trail/t"}
				req.ResponseElements = ResponseElements(o)
				return o, nil
			},
			"DeleteTrail": func(ctx context.Context, req *Request) (any, error) {
				return nil, audit.Errorf(audit.CodeTrailNotFound, "Unknown trail: %s", "x")
			},
		}})
	code, resp := do(t, s, "111111111111", "CreateTrail", `{"Name":"t"}`)
	if code != 200 || resp["TrailARN"] != "arn:aws:cloudtrail:us-east-1:111111111111:trail/t" {
		t.Fatalf("CreateTrail = %d %v", code, resp)
	}
	if got == nil || got.Caller.AccountID != "111111111111" || got.Operation != "CreateTrail" || string(got.Body) != `{"Name":"t"}` || !got.Time.Equal(now) {
		t.Fatalf("handler got %+v", got)
	}
	code, resp = do(t, s, "111111111111", "DeleteTrail", `{"Name":"x"}`)
	if code != 400 || resp["__type"] != "TrailNotFoundException" {
		t.Fatalf("DeleteTrail = %d %v", code, resp)
	}
	page, err := st.Lookup(context.Background(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10})
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("records = %d, %v", len(page.Records), err)
	}
	for _, r := range page.Records {
		var m map[string]any
		json.Unmarshal(r.Raw, &m)
		switch r.EventName {
		case "CreateTrail":
			re, _ := m["responseElements"].(map[string]any)
			if m["readOnly"] != false || re["trailARN"] != "arn:aws:cloudtrail:us-east-1:111111111111:trail/t" || re["name"] != "t" {
				t.Errorf("CreateTrail record: %s", r.Raw)
			}
		case "DeleteTrail":
			if m["errorCode"] != "TrailNotFoundException" || m["responseElements"] != nil {
				t.Errorf("DeleteTrail record: %s", r.Raw)
			}
		}
	}
}

// TestRecordTimeIsArrival: a call's record carries the time the request
// arrived, the time its handler saw (Request.Time), even when the call
// answers in a later second: a StopLogging that straddles a second must not
// be recorded after the StopLoggingTime it set.
func TestRecordTimeIsArrival(t *testing.T) {
	arrival := time.Date(2025, 6, 1, 12, 0, 0, 999_000_000, time.UTC)
	now := arrival
	st := audittest.NewMemStore()
	var seen time.Time
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now },
		Handlers: map[string]Handler{
			"StopLogging": func(ctx context.Context, req *Request) (any, error) {
				seen = req.Time
				now = now.Add(5 * time.Millisecond) // the call ends in the next second
				return struct{}{}, nil
			},
		}})
	if code, resp := do(t, s, "111111111111", "StopLogging", `{"Name":"t"}`); code != 200 {
		t.Fatalf("StopLogging = %d %v", code, resp)
	}
	page, err := st.Lookup(t.Context(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("records = %d, %v", len(page.Records), err)
	}
	var m struct{ EventTime string }
	if err := json.Unmarshal(page.Records[0].Raw, &m); err != nil {
		t.Fatal(err)
	}
	if want := audit.FormatTime(seen); m.EventTime != want || want != "2025-06-01T12:00:00Z" {
		t.Errorf("eventTime %s; want the arrival %s", m.EventTime, want)
	}
}

// orderRecorder logs when records are committed or queued.
type orderRecorder struct {
	syncRecorder
	log *[]string
}

func (o orderRecorder) Enqueue(ctx context.Context, rs ...audit.Record) error {
	*o.log = append(*o.log, "queued "+rs[0].EventName)
	return o.syncRecorder.Enqueue(ctx, rs...)
}
func (o orderRecorder) Commit(ctx context.Context, rs ...audit.Record) error {
	*o.log = append(*o.log, "committed "+rs[0].EventName)
	return o.syncRecorder.Commit(ctx, rs...)
}

// orderWriter logs when the response starts.
type orderWriter struct {
	http.ResponseWriter
	log *[]string
}

func (w orderWriter) WriteHeader(code int) {
	*w.log = append(*w.log, "answered")
	w.ResponseWriter.WriteHeader(code)
}

// TestWriteCallsCommitBeforeAnswering: a write call's record is durable
// (Commit) before the client gets its answer, failed or not; a read call
// is answered first and its record queued.
func TestWriteCallsCommitBeforeAnswering(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var log []string
	st := audittest.NewMemStore()
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: orderRecorder{syncRecorder{st}, &log},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now },
		Handlers: map[string]Handler{
			"StopLogging": func(ctx context.Context, req *Request) (any, error) { return struct{}{}, nil },
			"DeleteTrail": func(ctx context.Context, req *Request) (any, error) {
				return nil, audit.Errorf(audit.CodeTrailNotFound, "Unknown trail: %s", "x")
			},
		}})
	for _, c := range []struct{ op, want string }{
		{"StopLogging", "committed StopLogging, answered"},
		{"DeleteTrail", "committed DeleteTrail, answered"},
		{"LookupEvents", "answered, queued LookupEvents"},
	} {
		log = nil
		r := httptest.NewRequest("POST", "/", strings.NewReader(`{"Name":"x"}`))
		r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."+c.op)
		r.Header.Set("X-Test-Account", "111111111111")
		if c.op == "LookupEvents" {
			r = httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
			r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."+c.op)
			r.Header.Set("X-Test-Account", "111111111111")
		}
		s.ServeHTTP(orderWriter{httptest.NewRecorder(), &log}, r)
		if got := strings.Join(log, ", "); got != c.want {
			t.Errorf("%s: %s; want %s", c.op, got, c.want)
		}
	}
}
