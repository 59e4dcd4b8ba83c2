package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/importer"
)

// gz gzips b as a trail's log file is.
func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// logFile is a trail's log file of recs: {"Records":[...]}.
func logFile(recs ...string) []byte {
	return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`)
}

// importFile sends a log file's bytes as acct (a responder's key when
// responder is set), named key.
func importFile(t *testing.T, s *Server, acct string, responder bool, key string, body []byte) (int, string) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("X-Amz-Target", importPrefix+".ImportRecords")
	r.Header.Set("Content-Type", FileImportContentType)
	r.Header.Set(FileKeyHeader, key)
	r.Header.Set("X-Test-Account", acct)
	if responder {
		r.Header.Set("X-Test-Responder", "1")
	}
	return serveImport(t, s, r)
}

// eachRecorder answers each record's fate (EachRecorder), as the pipeline
// with a journal does, and writes the call's own record with them.
type eachRecorder struct {
	syncRecorder
	calls *int
}

func (r eachRecorder) SubmitRecordedEach(ctx context.Context, recs []audit.Record, self func(audit.AppendResult) (audit.Record, error)) ([]bool, bool, bool, error) {
	*r.calls++
	dup := make([]bool, len(recs))
	var res audit.AppendResult
	for i := range recs {
		a, err := r.st.Append(ctx, recs[i:i+1])
		if err != nil {
			return nil, false, true, err
		}
		dup[i] = a.Duplicates == 1
		res.Inserted += a.Inserted
		res.Duplicates += a.Duplicates
	}
	own, err := self(res)
	if err != nil {
		return dup, false, true, nil
	}
	_, err = r.st.Append(ctx, []audit.Record{own})
	return dup, err == nil, true, nil
}

// offlineReport is the report `cairn import` makes of the file content
// offline, into st.
func offlineReport(t *testing.T, st *audittest.MemStore, content []byte) importer.Report {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f.json.gz")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := importer.Run(t.Context(), []string{path}, importer.Options{Sink: st, MaxErrors: maxFileErrors, MaxErrorsPerFile: maxFileErrors})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rep.Errors {
		rep.Errors[i].File = ""
	}
	return rep
}

// asReport reads a file's answer back as a Report (what the client does).
func asReport(t *testing.T, out string) importer.Report {
	t.Helper()
	var o fileImportOutput
	if err := json.Unmarshal([]byte(out), &o); err != nil {
		t.Fatalf("answer %s: %v", out, err)
	}
	rep := importer.Report{Files: o.Files, Skipped: o.Skipped, FileErrors: o.FileErrors, Records: o.Records, Imported: o.Imported,
		Duplicates: o.Duplicates, Rejected: o.Rejected, Expired: o.Expired, ErrorsOmitted: o.ErrorsOmitted}
	for _, g := range o.Groups {
		rep.Groups = append(rep.Groups, importer.Group{Account: g.Account, Region: g.Region, Records: g.Records, Imported: g.Imported,
			Duplicates: g.Duplicates, Refused: g.Refused, Reasons: g.Reasons})
	}
	for _, e := range o.Errors {
		rep.Errors = append(rep.Errors, importer.RecordError{Record: e.Record, Code: e.Code, Err: fmt.Errorf("%s", e.Message)})
	}
	return rep
}

// compareReports compares what a file's report says, but for the time and
// bytes read.
var compareReports = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b error) bool { return a == nil && b == nil || a != nil && b != nil && a.Error() == b.Error() }),
	cmp.FilterPath(func(p cmp.Path) bool {
		n := p.Last().String()
		return n == ".Elapsed" || n == ".Bytes" || n == ".OmittedByFile"
	}, cmp.Ignore()),
}

// storedOf lists what st holds but the calls' own records, and those
// apart.
func storedOf(t *testing.T, st *audittest.MemStore) (records, calls []string) {
	t.Helper()
	for _, r := range storedRecords(t, st) {
		if r.EventSource == "cloudtrail.amazonaws.com" && r.EventName == "ImportRecords" {
			var call struct {
				EventName                           string
				RequestParameters, ResponseElements json.RawMessage
			}
			json.Unmarshal(r.Raw, &call)
			calls = append(calls, fmt.Sprintf("%s %s %s", call.EventName, call.RequestParameters, call.ResponseElements))
			continue
		}
		records = append(records, fmt.Sprintf("%s %s %q", r.Account, r.EventID, r.Raw))
	}
	return records, calls
}

// TestImportRecordsFile: a log file's bytes (a responder's, of many
// accounts, regions and faults) store what the offline import stores
// from the same file, byte for byte, and answer the report it makes:
// counts, groups, the errors with their record numbers; with the
// pipeline's per-record answers (one submission) and without them (one
// per account and region). The call is recorded once, with the file's
// key and its counts; a second import of the file finds every record
// already there.
func TestImportRecordsFile(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	other := strings.Replace(hostileRecord(alice, "e1"), `"us-east-1"`, `"eu-west-1"`, 1)
	var real []string
	for _, r := range audittest.RealRecords(t)[:700] {
		real = append(real, string(r.Raw))
	}
	for _, tc := range []struct {
		name string
		recs []string
	}{
		{"accounts, regions, faults", []string{hostileRecord(alice, "a1"), hostileRecord(bob, "b1"), `{"eventID":"no-time"}`, other, `17`,
			hostileRecord(alice, "a1"), hostileRecord(alice, "a2"), strings.Replace(hostileRecord(alice, "r"), `"us-east-1"`, `"us-east-1/../x"`, 1)}},
		{"real records", real},
		{"none", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content := gz(t, logFile(tc.recs...))
			want := offlineReport(t, audittest.NewMemStore(), content)
			wantStore := audittest.NewMemStore()
			offlineReport(t, wantStore, content)
			wantRecords, _ := storedOf(t, wantStore)
			for _, each := range []bool{false, true} {
				st := audittest.NewMemStore()
				var rec Recorder = syncRecorder{st}
				calls := 0
				if each {
					rec = eachRecorder{syncRecorder{st}, &calls}
				}
				s := New(Config{Auth: fakeAuth{}, History: st, Recorder: rec, Retention: 90 * 24 * time.Hour,
					TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }})
				status, out := importFile(t, s, alice, true, "AWSLogs/"+alice+"/f.json.gz", content)
				if status != 200 {
					t.Fatalf("each %v: %d %s", each, status, out)
				}
				if diff := cmp.Diff(want, asReport(t, out), compareReports); diff != "" {
					t.Errorf("each %v: the answer differs from the offline import's report (-offline +server):\n%s", each, diff)
				}
				records, callsMade := storedOf(t, st)
				if diff := cmp.Diff(wantRecords, records); diff != "" {
					t.Errorf("each %v: stored differs from the offline import (-offline +server):\n%s", each, diff)
				}
				wantCall := fmt.Sprintf(`ImportRecords {"records":%d,"file":"AWSLogs/%s/f.json.gz"} {"duplicates":%d,"failed":%d,"inserted":%d}`,
					want.Records, alice, want.Duplicates, want.Rejected, want.Imported)
				if len(callsMade) != 1 || callsMade[0] != wantCall {
					t.Errorf("each %v: calls recorded %q; want [%s]", each, callsMade, wantCall)
				}
				if each && want.Imported > 0 && calls != 1 {
					t.Errorf("per-record answers asked %d times; want once", calls)
				}
				// Again: every record already there.
				status, out = importFile(t, s, alice, true, "f.json.gz", content)
				again := asReport(t, out)
				if status != 200 || again.Imported != 0 || again.Duplicates != want.Imported+want.Duplicates {
					t.Errorf("each %v: again: %d %+v; want all %d duplicates", each, status, again, want.Imported+want.Duplicates)
				}
			}
		})
	}
}

// TestImportRecordsFileHostile: what a tenant sends as a log file is
// checked as records are, and what is not a log file stores nothing: each
// an AWS error. Another account's records are AccountMismatch errors of
// the file's report; a responder's are throttled as its framed records
// are; a body that is not gzip, truncated gzip, gzip inside gzip and a
// gzip bomb (decompressing past 64 MiB, said so) are refused, as are a
// body past the 8 MiB limit and a file key that is not text.
func TestImportRecordsFileHostile(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	s, st := newTestServer(t, now, 90*24*time.Hour)
	status, out := importFile(t, s, alice, false, "f", gz(t, logFile(hostileRecord(bob, "b1"), hostileRecord(alice, "a1"))))
	rep := asReport(t, out)
	if status != 200 || rep.Imported != 1 || rep.Rejected != 1 || len(rep.Errors) != 1 || rep.Errors[0].Record != 1 ||
		rep.Errors[0].Code != "AccountMismatch" || !strings.Contains(rep.Errors[0].Err.Error(), "responder") {
		t.Errorf("alice's file of bob's and her records: %d %s; want bob's refused as AccountMismatch (record 1)", status, out)
	}
	for _, r := range storedRecords(t, st) {
		if r.Account == bob {
			t.Errorf("bob's record %s stored from alice's call", r.EventID)
		}
	}

	asked := 0
	st = audittest.NewMemStore()
	s = New(Config{Auth: fakeAuth{}, History: st, Recorder: throttlingRecorder{syncRecorder{st}, &asked}, Retention: 90 * 24 * time.Hour,
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }})
	if status, out := importFile(t, s, alice, true, "f", gz(t, logFile(hostileRecord(bob, "b1")))); status != 400 || errorType(out) != "ThrottlingException" || asked != 1 {
		t.Errorf("a responder's file of bob's record: %d %s, AdmitRecords asked %d times; want ThrottlingException, 1", status, out, asked)
	}

	// Even a responder's file stores no record whose region or account is
	// not one (a path in awsRegion, an account ID that is not 12 digits).
	s, st = newTestServer(t, now, 90*24*time.Hour)
	badRegion := strings.Replace(hostileRecord(alice, "r1"), `"awsRegion":"us-east-1"`, `"awsRegion":"../../bob"`, 1)
	status, out = importFile(t, s, alice, true, "f", gz(t, logFile(badRegion, hostileRecord("22222222222x", "x1"))))
	if rep := asReport(t, out); status != 200 || rep.Imported != 0 || rep.Rejected != 2 || len(rep.Errors) != 2 {
		t.Errorf("a responder's file of a bad region's and a bad account's records: %d %s; want both rejected", status, out)
	}
	for _, r := range storedRecords(t, st) {
		if r.EventID == "r1" || r.EventID == "x1" {
			t.Errorf("stored %s (account %q, region %q)", r.EventID, r.Account, r.Region)
		}
	}

	// Without credentials nothing is read or stored.
	s, st = newTestServer(t, now, 90*24*time.Hour)
	if status, out := importFile(t, s, "", false, "f", gz(t, logFile(hostileRecord(alice, "u1")))); status != 403 || errorType(out) != "MissingAuthenticationTokenException" {
		t.Errorf("an unsigned file: %d %s; want 403 MissingAuthenticationTokenException", status, out)
	}
	for _, r := range storedRecords(t, st) {
		if r.EventID == "u1" {
			t.Errorf("stored %s from an unsigned call", r.EventID)
		}
	}

	// A file key is the report's label, not a grant: alice's file named
	// with bob's S3 path (or a path out of the bucket) stores her own
	// records as hers and still refuses bob's.
	for _, key := range []string{"AWSLogs/" + bob + "/CloudTrail/us-east-1/2025/05/01/" + bob + "_CloudTrail_us-east-1_x.json.gz", "../../" + bob + "/x.json.gz"} {
		s, st = newTestServer(t, now, 90*24*time.Hour)
		status, out = importFile(t, s, alice, false, key, gz(t, logFile(hostileRecord(alice, "k1"), hostileRecord(bob, "k2"))))
		if rep := asReport(t, out); status != 200 || rep.Imported != 1 || rep.Rejected != 1 || !strings.Contains(out, "AccountMismatch") {
			t.Errorf("alice's file named %q: %d %s; want hers imported, bob's refused as AccountMismatch", key, status, out)
		}
		for _, r := range storedRecords(t, st) {
			if r.EventID == "k2" || (r.EventID == "k1" && r.Account != alice) {
				t.Errorf("file named %q: stored %s as account %s", key, r.EventID, r.Account)
			}
		}
	}

	good := gz(t, logFile(hostileRecord(alice, "g1"), hostileRecord(alice, "g2")))
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	zw.Write([]byte(`{"Records":[` + hostileRecord(alice, "z1") + `,"`))
	zeros := make([]byte, 1<<20)
	for range maxFileDecompressed>>20 + 1 {
		zw.Write(zeros)
	}
	zw.Close()
	for _, tc := range []struct {
		name, key string
		body      []byte
		status    int
		code      string
		msg       string
	}{
		{"not gzip", "f", logFile(hostileRecord(alice, "p1")), 400, codeInvalidLogFile, "not gzip"},
		{"empty", "f", nil, 400, codeInvalidLogFile, "not gzip"},
		{"the gzip magic alone", "f", []byte{0x1f, 0x8b}, 400, codeInvalidLogFile, "not valid gzip"},
		{"truncated gzip", "f", good[:len(good)-12], 400, codeInvalidLogFile, "truncated or corrupt"},
		{"a corrupt checksum", "f", append(append([]byte{}, good[:len(good)-8]...), 1, 2, 3, 4, good[len(good)-4], good[len(good)-3], good[len(good)-2], good[len(good)-1]), 400, codeInvalidLogFile, "truncated or corrupt"},
		{"gzip inside gzip", "f", gz(t, good), 400, codeInvalidLogFile, "gzip inside gzip"},
		{"a gzip bomb", "f", bomb.Bytes(), 413, "RequestEntityTooLargeException", "decompresses to more than 67108864 bytes"},
		{"a body past the limit", "f", bytes.Repeat([]byte{0x1f}, maxImportBody+1), 413, "RequestEntityTooLargeException", ""},
		{"a key not text", "f\x00", good, 400, "InvalidParameterException", FileKeyHeader},
		{"a key too long", strings.Repeat("k", 1025), good, 400, "InvalidParameterException", FileKeyHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := newTestServer(t, now, 90*24*time.Hour)
			status, out := importFile(t, s, alice, true, tc.key, tc.body)
			if status != tc.status || errorType(out) != tc.code || !strings.Contains(out, tc.msg) {
				t.Errorf("%d %.300s; want %d %s saying %q", status, out, tc.status, tc.code, tc.msg)
			}
			if recs, _ := storedOf(t, st); len(recs) != 0 {
				t.Errorf("stored %q", recs)
			}
		})
	}
	if len(bomb.Bytes()) > maxImportBody {
		t.Fatalf("the bomb is %d bytes; want it within the body limit", bomb.Len())
	}

	// The file's Content-Type on another operation is not a file.
	r := httptest.NewRequest("POST", "/", bytes.NewReader(good))
	r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
	r.Header.Set("Content-Type", FileImportContentType)
	r.Header.Set("X-Test-Account", alice)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 400 || errorType(w.Body.String()) != "SerializationException" {
		t.Errorf("LookupEvents with a file body: %d %s; want 400 SerializationException", w.Code, w.Body.String())
	}
}

// FuzzImportRecordsFile: whatever the body, no panic and no 5xx; a file
// taken answers a report whose counts add up, and stores no more records
// than it says it imported.
func FuzzImportRecordsFile(f *testing.F) {
	const alice = "111111111111"
	good := gz(f, logFile(hostileRecord(alice, "g1"), `{"eventID":"x"}`, hostileRecord("222222222222", "g2"), hostileRecord(alice, "g1")))
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(gz(f, []byte(`[`+hostileRecord(alice, "l1")+`]`)))
	f.Add(gz(f, []byte(hostileRecord(alice, "n1")+"\n"+hostileRecord(alice, "n2")+"\n")))
	f.Add(gz(f, good))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		s, st := newTestServer(t, now, 90*24*time.Hour)
		status, out := importFile(t, s, alice, false, "f", body)
		if status != 200 {
			if recs, _ := storedOf(t, st); len(recs) != 0 {
				t.Fatalf("%d %s, and stored %q", status, out, recs)
			}
			return
		}
		rep := asReport(t, out)
		var groups int64
		for _, g := range rep.Groups {
			groups += g.Records
		}
		if rep.Files+rep.Skipped != 1 || rep.Records != rep.Imported+rep.Duplicates+rep.Rejected+rep.Expired || groups != rep.Records {
			t.Fatalf("counts do not add up: %s", out)
		}
		if recs, _ := storedOf(t, st); int64(len(recs)) != rep.Imported {
			t.Fatalf("stored %d records; the answer says %d imported: %s", len(recs), rep.Imported, out)
		}
	})
}
