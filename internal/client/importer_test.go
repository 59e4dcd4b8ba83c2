package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/importer"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "")

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/(\d{8})/eu-west-3/cloudtrail/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$`)

// fakeServer is a cairn server's ImportRecords as far as the sink sees it.
type fakeServer struct {
	t      *testing.T
	mu     sync.Mutex
	calls  [][]string                // the records of every call
	answer func(n int) (int, string) // status and body of call n (1-based); nil answers success
	refuse int                       // index refused in every successful call, -1 for none
	// old answers a framed body as a server from before framed bodies
	// does (SerializationException); oldRefused counts those calls.
	old        bool
	oldRefused int
	framed     int // calls with a framed body taken
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := f.t
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Errorf("reading the body: %v", err)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		t.Errorf("%s %s; want POST /", r.Method, r.URL.Path)
	}
	if got := r.Header.Get("X-Amz-Target"); got != "CairnImport_20251101.ImportRecords" {
		t.Errorf("X-Amz-Target %q", got)
	}
	ct := r.Header.Get("Content-Type")
	if ct != "application/x-amz-json-1.1" && ct != FramedContentType {
		t.Errorf("Content-Type %q", ct)
	}
	auth := r.Header.Get("Authorization")
	m := authRE.FindStringSubmatch(auth)
	if m == nil {
		t.Errorf("Authorization %q does not have the SigV4 shape", auth)
	} else {
		for _, h := range []string{"content-type", "host", "x-amz-date", "x-amz-target"} {
			if !strings.Contains(";"+m[2]+";", ";"+h+";") {
				t.Errorf("SignedHeaders %q lack %s", m[2], h)
			}
		}
		// The signature is the one the SDK's signer makes for this exact
		// request and body.
		when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		if err != nil || !strings.HasPrefix(r.Header.Get("X-Amz-Date"), m[1]) {
			t.Errorf("X-Amz-Date %q (%v)", r.Header.Get("X-Amz-Date"), err)
		}
		again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
		for _, h := range []string{"Content-Type", "X-Amz-Target", "X-Amz-Content-Sha256"} {
			again.Header.Set(h, r.Header.Get(h))
		}
		sum := sha256.Sum256(body)
		// Declared, so the server checks the signature before the body.
		if got := r.Header.Get("X-Amz-Content-Sha256"); got != hex.EncodeToString(sum[:]) {
			t.Errorf("X-Amz-Content-Sha256 = %q; want the body's SHA-256", got)
		}
		creds, _ := testCreds.Retrieve(context.Background())
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "cloudtrail", "eu-west-3", when); err != nil {
			t.Fatal(err)
		}
		if again.Header.Get("Authorization") != auth {
			t.Errorf("signature does not verify:\n got %s\nwant %s", auth, again.Header.Get("Authorization"))
		}
	}
	if len(body) > 8<<20 {
		t.Errorf("a body of %d bytes; want at most 8 MiB", len(body))
	}
	var in struct{ Records []string }
	if ct == FramedContentType {
		if f.old {
			f.mu.Lock()
			f.oldRefused++
			f.mu.Unlock()
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(400)
			io.WriteString(w, `{"__type":"SerializationException","message":"The request body is not valid UTF-8 (at byte offset 0)."}`)
			return
		}
		for b := body; len(b) > 0; {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				t.Errorf("a framed body that does not split into records at %d", len(body)-len(b))
				break
			}
			in.Records = append(in.Records, string(b[k:k+int(n)]))
			b = b[k+int(n):]
		}
		f.mu.Lock()
		f.framed++
		f.mu.Unlock()
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil {
			t.Errorf("body is not {\"Records\":[...]}: %v", err)
		}
	}
	if len(in.Records) == 0 || len(in.Records) > 1000 {
		t.Errorf("a call with %d records; want 1 to 1000", len(in.Records))
	}
	f.mu.Lock()
	f.calls = append(f.calls, in.Records)
	n := len(f.calls)
	f.mu.Unlock()
	if f.answer != nil {
		if status, body := f.answer(n); status != 0 {
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	out := map[string]any{"Inserted": len(in.Records), "Duplicates": 0, "Failed": []any{}}
	if f.refuse >= 0 && f.refuse < len(in.Records) {
		out["Inserted"] = len(in.Records) - 1
		out["Failed"] = []any{map[string]any{"Index": f.refuse, "ErrorCode": "AccountMismatch", "ErrorMessage": "The record belongs to account 1."}}
	}
	json.NewEncoder(w).Encode(out)
}

func (f *fakeServer) records() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, c := range f.calls {
		for _, r := range c {
			out = append(out, []byte(r))
		}
	}
	return out
}

func newRemote(t *testing.T, f *fakeServer) (*Importer, *[]time.Duration) {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	s := NewImporter(ImporterConfig{Endpoint: srv.URL + "/", Region: "eu-west-3", Credentials: testCreds, HTTPClient: srv.Client()})
	var slept []time.Duration
	s.sleep = func(_ context.Context, d time.Duration) error { slept = append(slept, d); return nil }
	return s, &slept
}

func realRecords(t *testing.T, n int) []audit.Record {
	t.Helper()
	real := audittest.RealRecordsInRealRegions(t)
	out := make([]audit.Record, n)
	for i := range out {
		rec, err := audit.Extract(real[i%len(real)].Raw)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = rec
	}
	return out
}

func raws(recs []audit.Record) [][]byte {
	var out [][]byte
	for _, r := range recs {
		out = append(out, r.Raw)
	}
	return out
}

// sameRaws compares records byte for byte (cmp is slow on large []byte).
func sameRaws(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestImporter(t *testing.T) {
	f := &fakeServer{t: t, refuse: 1}
	sink, _ := newRemote(t, f)
	recs := realRecords(t, 2500)
	res, fails, err := sink.AppendReport(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.calls) != 3 || len(f.calls[0]) != 1000 || len(f.calls[2]) != 500 {
		t.Errorf("%d calls; want 1000, 1000 and 500 records", len(f.calls))
	}
	if !sameRaws(f.records(), raws(recs)) {
		t.Errorf("the server did not receive the records' exact bytes")
	}
	if res.Inserted != 2497 || res.Duplicates != 0 {
		t.Errorf("result %+v; want 2497 inserted", res)
	}
	var idx []int
	for _, fl := range fails {
		idx = append(idx, fl.Index)
		if fl.Code != "AccountMismatch" || fl.Message == "" {
			t.Errorf("failure %+v", fl)
		}
	}
	if diff := cmp.Diff([]int{1, 1001, 2001}, idx); diff != "" {
		t.Errorf("failure indexes (-want +got):\n%s", diff)
	}
}

// TestImporterOldServer: a server from before framed bodies refuses the
// first call's (SerializationException); the sink sends those records
// again as JSON, and every later call as JSON, with the same records,
// counts and failure indexes as against a server that takes frames.
func TestImporterOldServer(t *testing.T) {
	recs := realRecords(t, 2500)
	var want struct {
		res   audit.AppendResult
		fails []importer.Failure
	}
	for _, old := range []bool{false, true} {
		f := &fakeServer{t: t, refuse: 1, old: old}
		sink, _ := newRemote(t, f)
		for _, part := range [][]audit.Record{recs[:1200], recs[1200:]} {
			res, fails, err := sink.AppendReport(context.Background(), part)
			if err != nil {
				t.Fatal(err)
			}
			if !old {
				want.res.Inserted += res.Inserted
				want.fails = append(want.fails, fails...)
				continue
			}
			if part[0].EventID == recs[0].EventID {
				want.res.Inserted -= res.Inserted
				if diff := cmp.Diff(want.fails[:2], fails); diff != "" {
					t.Errorf("old server: failures of the first part (-framed +json):\n%s", diff)
				}
			} else {
				want.res.Inserted -= res.Inserted
				if diff := cmp.Diff(want.fails[2:], fails); diff != "" {
					t.Errorf("old server: failures of the second part (-framed +json):\n%s", diff)
				}
			}
		}
		if !sameRaws(f.records(), raws(recs)) {
			t.Errorf("old %v: the server did not receive the records' exact bytes", old)
		}
		switch {
		case !old && (f.framed != len(f.calls) || f.framed != 4):
			t.Errorf("new server: %d framed calls of %d; want 4 of 4", f.framed, len(f.calls))
		case old && (f.oldRefused != 1 || f.framed != 0 || len(f.calls) != 4):
			t.Errorf("old server: %d framed calls refused, %d taken, %d JSON calls; want 1, 0 and 4", f.oldRefused, f.framed, len(f.calls))
		}
	}
	if want.res.Inserted != 0 {
		t.Errorf("inserted differs between framed and JSON by %d", want.res.Inserted)
	}
}

func TestImporterBodyLimit(t *testing.T) {
	f := &fakeServer{t: t, refuse: -1}
	sink, _ := newRemote(t, f)
	// Records of ~600 KB of quotes and control bytes, which escaping doubles
	// or more: each call must still stay under 8 MiB.
	var recs []audit.Record
	for i := range 14 {
		raw := fmt.Sprintf(`{"eventID":"%d","eventTime":"2024-01-01T00:00:00Z","awsRegion":"us-east-1","recipientAccountId":"123456789012","x":"%s"}`,
			i, strings.Repeat(`\"\\\u0001`, 600<<10/10))
		rec, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	if _, _, err := sink.AppendReport(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if len(f.calls) < 2 {
		t.Errorf("%d calls; want the records split by size", len(f.calls))
	}
	if !sameRaws(f.records(), raws(recs)) {
		t.Errorf("the server did not receive the records' exact bytes")
	}
}

func TestImporterErrors(t *testing.T) {
	throttle := `{"__type":"ThrottlingException","message":"Rate exceeded"}`
	tests := []struct {
		name     string
		answer   func(n int) (int, string)
		calls    int
		sleeps   int
		wantCode string // "" = success
	}{
		{"throttled twice", func(n int) (int, string) {
			if n <= 2 {
				return 400, throttle
			}
			return 0, ""
		}, 3, 2, ""},
		{"always throttled", func(int) (int, string) { return 400, throttle }, 8, 7, "ThrottlingException"},
		{"server error", func(n int) (int, string) {
			if n == 1 {
				return 500, `{"__type":"InternalFailure","message":"oops"}`
			}
			return 0, ""
		}, 2, 1, ""},
		{"access denied", func(int) (int, string) {
			return 400, `{"__type":"com.amazonaws#AccessDeniedException","message":"no"}`
		}, 1, 0, "AccessDeniedException"},
		{"not json", func(int) (int, string) { return 403, `<html>` }, 1, 0, ""},
	}
	recs := realRecords(t, 3)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeServer{t: t, refuse: -1, answer: tt.answer}
			sink, slept := newRemote(t, f)
			_, err := sink.Append(context.Background(), recs)
			var re *ImportError
			switch {
			case tt.wantCode == "" && tt.name != "not json":
				if err != nil {
					t.Errorf("Append = %v; want success", err)
				}
			case !errors.As(err, &re) || re.Code != tt.wantCode:
				t.Errorf("Append = %v; want a ImportError %q", err, tt.wantCode)
			}
			if len(f.calls) != tt.calls || len(*slept) != tt.sleeps {
				t.Errorf("%d calls, %d sleeps; want %d, %d", len(f.calls), len(*slept), tt.calls, tt.sleeps)
			}
			for i, d := range *slept {
				if d <= 0 || d > 100*time.Millisecond<<i || d > 5*time.Second {
					t.Errorf("sleep %d = %v; want capped exponential backoff", i, d)
				}
			}
		})
	}
}

// TestImporterThrottledWait: with ThrottledWait, a throttled call keeps
// trying past MaxAttempts until its waits add up to it, then fails; a
// server error still stops at MaxAttempts.
func TestImporterThrottledWait(t *testing.T) {
	recs := realRecords(t, 3)
	for _, tc := range []struct {
		name   string
		status int
		body   string
		many   bool // more than MaxAttempts calls
	}{
		{"throttled", 400, `{"__type":"ThrottlingException","message":"Rate exceeded"}`, true},
		{"server error", 500, `{"__type":"InternalFailure","message":"oops"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeServer{t: t, refuse: -1, answer: func(int) (int, string) { return tc.status, tc.body }}
			srv := httptest.NewServer(f)
			t.Cleanup(srv.Close)
			s := NewImporter(ImporterConfig{Endpoint: srv.URL, Region: "eu-west-3", Credentials: testCreds, HTTPClient: srv.Client(),
				ThrottledWait: time.Minute})
			var waited time.Duration
			s.sleep = func(_ context.Context, d time.Duration) error { waited += d; return nil }
			if _, err := s.Append(context.Background(), recs); err == nil {
				t.Fatal("Append succeeded; want the server's error")
			}
			switch n := len(f.calls); {
			case tc.many && (n <= 8 || waited < time.Minute || waited > time.Minute+5*time.Second):
				t.Errorf("%d calls, waited %v; want more than 8, about a minute", n, waited)
			case !tc.many && n != 8:
				t.Errorf("%d calls; want 8", n)
			}
		})
	}
}

func TestImporterInvalidUTF8(t *testing.T) {
	f := &fakeServer{t: t, refuse: -1}
	sink, _ := newRemote(t, f)
	recs := realRecords(t, 3)
	bad, err := audit.Extract([]byte("{\"eventID\":\"x\",\"eventTime\":\"2024-01-01T00:00:00Z\",\"awsRegion\":\"r\",\"recipientAccountId\":\"1\",\"n\":\"\xff\"}"))
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs[:1], append([]audit.Record{bad}, recs[1:]...)...)
	res, fails, err := sink.AppendReport(context.Background(), recs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Inserted != 3 || len(fails) != 1 || fails[0].Index != 1 {
		t.Errorf("result %+v, failures %+v; want 3 inserted and record 1 refused", res, fails)
	}
}

func TestRunRemote(t *testing.T) {
	f := &fakeServer{t: t, refuse: 0}
	sink, _ := newRemote(t, f)
	dir := t.TempDir()
	recs := realRecords(t, 30)
	body := append([]byte(`{"Records":[`), bytes.Join(raws(recs), []byte(","))...)
	os.WriteFile(filepath.Join(dir, "f.json"), append(body, "]}"...), 0o644)
	rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: sink, BatchSize: 10})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 27 || rep.Rejected != 3 || len(rep.Errors) != 3 {
		t.Fatalf("report %+v; want 27 imported, 3 refused", rep)
	}
	for i, e := range rep.Errors {
		if e.Record != 1+10*i || !strings.Contains(e.Error(), "AccountMismatch") {
			t.Errorf("error %d: %v; want record %d refused with AccountMismatch", i, e, 1+10*i)
		}
	}
}

var _ aws.CredentialsProvider = testCreds

func TestImporterSignsAndReportsFailures(t *testing.T) {
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b := new(bytes.Buffer)
		b.ReadFrom(r.Body)
		body = b.String()
		w.Write([]byte(`{"Inserted":1,"Duplicates":0,"Failed":[{"Index":1,"ErrorCode":"AccountMismatch","ErrorMessage":"other account"}]}`))
	}))
	defer srv.Close()
	s := NewImporter(ImporterConfig{Endpoint: srv.URL, Region: "eu-west-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAX", "secret", "")})
	r1, _ := audit.Extract([]byte(rec1))
	r2, _ := audit.Extract([]byte(rec2))
	res, fails, err := s.AppendReport(context.Background(), []audit.Record{r1, r2})
	if err != nil || res.Inserted != 1 || len(fails) != 1 || fails[0].Index != 1 {
		t.Fatalf("AppendReport = %+v, %+v, %v", res, fails, err)
	}
	if got.Header.Get("X-Amz-Target") != ImportTarget || !strings.Contains(got.Header.Get("Authorization"), "Credential=AKIAX/") ||
		!strings.Contains(got.Header.Get("Authorization"), "/eu-west-1/cloudtrail/aws4_request") {
		t.Errorf("request headers %v", got.Header)
	}
	// Framed: each record's length, then its bytes as they were.
	want := string(binary.AppendUvarint(nil, uint64(len(rec1)))) + rec1 + string(binary.AppendUvarint(nil, uint64(len(rec2)))) + rec2
	if got.Header.Get("Content-Type") != FramedContentType || body != want {
		t.Errorf("Content-Type %q, body %q; want %s and %q", got.Header.Get("Content-Type"), body, FramedContentType, want)
	}
}

const rec1 = `{"eventID":"e1","eventTime":"2024-01-01T00:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","eventName":"A"}`
const rec2 = `{"eventID":"e2","eventTime":"2024-01-01T00:00:01Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","eventName":"B"}`
