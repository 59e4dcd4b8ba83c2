package apiserver

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// framedBody frames recs as `cairn import` does: each record's length as
// an unsigned varint, then its bytes.
func framedBody(recs ...string) []byte {
	var b []byte
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

func TestImportRecordFrames(t *testing.T) {
	long := strings.Repeat("x", 300) // a two-byte length
	for _, tc := range []struct {
		name string
		body []byte
		want []string // the records; nil with err
		bad  map[int]string
		err  string // the error's code, "" for none
	}{
		{"empty", nil, []string{}, nil, ""},
		{"records", framedBody("a", long, `{"b":"é中😀"}`), []string{"a", long, `{"b":"é中😀"}`}, nil, ""},
		{"an empty record", framedBody("a", "", "c"), []string{"a", "", "c"}, nil, ""},
		{"not UTF-8", framedBody("a", "\xff\xfe", "\xed\xa0\x80"), []string{"a", "\xff\xfe", "\xed\xa0\x80"},
			map[int]string{1: "The record is not valid UTF-8.", 2: "The record is not valid UTF-8."}, ""},
		{"a NUL byte", framedBody("a\x00b", "c"), []string{"a\x00b", "c"}, map[int]string{0: "The record holds a NUL byte."}, ""},
		{"a length past the end", append(framedBody("a"), 5, 'b'), nil, nil, "SerializationException"},
		{"a length of 2^64-1", binary.AppendUvarint(nil, 1<<64-1), nil, nil, "SerializationException"},
		{"a truncated length", append(framedBody("a"), 0x80), nil, nil, "SerializationException"},
		{"an overlong length", append(framedBody("a"), bytes.Repeat([]byte{0xff}, 11)...), nil, nil, "SerializationException"},
		{"a length not in its shortest form", []byte{0x81, 0x00, 'a'}, nil, nil, "SerializationException"},
		{"a JSON body", []byte(`{"Records":["a"]}`), nil, nil, "SerializationException"},
		{"as many records as a call takes", framedBody(make([]string, maxImportRecords)...), make([]string, maxImportRecords), nil, ""},
		{"one more", framedBody(make([]string, maxImportRecords+1)...), nil, nil, "InvalidParameter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs, bad, err := importRecordFrames(tc.body)
			if tc.err != "" {
				if err == nil || !strings.Contains(fmt.Sprintf("%#v", err), tc.err) && !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("importRecordFrames = %q, %v; want %s", recs, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := make([]string, len(recs))
			for i, r := range recs {
				got[i] = string(r)
				if cap(r) != len(r) {
					t.Errorf("record %d not clipped: cap %d, len %d", i, cap(r), len(r))
				}
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) || fmt.Sprint(bad) != fmt.Sprint(tc.bad) {
				t.Errorf("importRecordFrames = %q, %v; want %q, %v", got, bad, tc.want, tc.bad)
			}
		})
	}
}

// importFramed sends a framed ImportRecords body as acct, as importAs
// sends a JSON one.
func importFramed(t *testing.T, s *Server, acct string, body []byte) (int, string) {
	t.Helper()
	return importWith(t, s, acct, false, FramedImportContentType, body)
}

// importWith sends an ImportRecords body of Content-Type ct as acct (a
// responder's key when responder is set).
func importWith(t *testing.T, s *Server, acct string, responder bool, ct string, body []byte) (int, string) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("X-Amz-Target", importPrefix+".ImportRecords")
	r.Header.Set("Content-Type", ct)
	r.Header.Set("X-Test-Account", acct)
	if responder {
		r.Header.Set("X-Test-Responder", "1")
	}
	return serveImport(t, s, r)
}

// TestImportRecordsFramedHostile: frames change how a body is read, not
// who may write what. A tenant's framed records of another account are
// AccountMismatch failures, stored nowhere; a framed body past the body
// limit is RequestEntityTooLargeException; the framed Content-Type on
// another operation is not frames (its body is text, checked as such).
func TestImportRecordsFramedHostile(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

	s, st := newTestServer(t, now, 90*24*time.Hour)
	status, out := importFramed(t, s, alice, framedBody(hostileRecord(bob, "b1"), hostileRecord(alice, "a1")))
	var res importRecordsOutput
	if err := json.Unmarshal([]byte(out), &res); status != 200 || err != nil || res.Inserted != 1 ||
		len(res.Failed) != 1 || res.Failed[0].Index != 0 || res.Failed[0].ErrorCode != "AccountMismatch" {
		t.Errorf("alice's framed records of bob and alice: %d %s; want bob's refused as AccountMismatch", status, out)
	}
	for _, r := range storedRecords(t, st) {
		if r.Account == bob {
			t.Errorf("bob's record %s stored from alice's call", r.EventID)
		}
	}

	pad := strings.Repeat("x", 8000)
	var recs []string
	for i := 0; i < 1100; i++ {
		recs = append(recs, strings.Replace(hostileRecord(alice, fmt.Sprintf("big-%d", i)), `"readOnly"`, `"pad":"`+pad+`","readOnly"`, 1))
	}
	big := framedBody(recs...)
	if len(big) <= maxImportBody {
		t.Fatalf("framed body of %d bytes; want over %d", len(big), maxImportBody)
	}
	s, st = newTestServer(t, now, 90*24*time.Hour)
	if status, out := importFramed(t, s, alice, big); status != 413 || errorType(out) != "RequestEntityTooLargeException" {
		t.Errorf("a framed body over the limit: %d %.200s; want 413 RequestEntityTooLargeException", status, out)
	}
	for _, r := range storedRecords(t, st) {
		if r.EventSource != "cloudtrail.amazonaws.com" {
			t.Errorf("stored %s of a refused body", r.EventID)
		}
	}

	s, _ = newTestServer(t, now, 90*24*time.Hour)
	r := httptest.NewRequest("POST", "/", bytes.NewReader(framedBody(hostileRecord(alice, "l1"))))
	r.Header.Set("X-Amz-Target", "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents")
	r.Header.Set("Content-Type", FramedImportContentType)
	r.Header.Set("X-Test-Account", alice)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != 400 || errorType(w.Body.String()) != "SerializationException" {
		t.Errorf("LookupEvents with a framed body: %d %s; want 400 SerializationException", w.Code, w.Body.String())
	}
}

// TestImportRecordsFramed: a framed body stores what the JSON body of the
// same records stores, answers the same counts and failures, and records
// the call the same way (its parameters the count of records, never the
// body); records the JSON body cannot carry (not UTF-8, a NUL byte) are
// InvalidRecord failures of their own, and a body that is not frames is
// a SerializationException that stores nothing.
func TestImportRecordsFramed(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var real []string
	for _, r := range audittest.RealRecords(t)[:maxImportRecords] {
		real = append(real, string(r.Raw))
	}
	withEscapedNUL := strings.Replace(hostileRecord(alice, "SUR"), "SUR", `nul\u0000`, 1)
	for _, tc := range []struct {
		name string
		recs []string
	}{
		{"none", nil},
		{"own, another's, invalid", []string{hostileRecord(alice, "a1"), hostileRecord(bob, "b1"), `["x"]`, ``, hostileRecord(alice, "a1")}},
		{"a record holding an escaped NUL", []string{withEscapedNUL}},
		{"real records", real},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers, stored [2]string
			for i, framed := range []bool{false, true} {
				s, st := newTestServer(t, now, 90*24*time.Hour)
				// A responder's key: the real records are of many accounts.
				var status int
				if framed {
					status, answers[i] = importWith(t, s, alice, true, FramedImportContentType, framedBody(tc.recs...))
				} else {
					status, answers[i] = importWith(t, s, alice, true, "application/x-amz-json-1.1", []byte(importBody(false, tc.recs...)))
				}
				if status != 200 {
					t.Fatalf("framed %v: %d %s", framed, status, answers[i])
				}
				var b strings.Builder
				for _, r := range storedRecords(t, st) {
					if r.EventSource == "cloudtrail.amazonaws.com" { // the call's own record
						var call struct {
							EventName         string
							RequestParameters json.RawMessage
						}
						json.Unmarshal(r.Raw, &call)
						fmt.Fprintf(&b, "call %s %s\n", call.EventName, call.RequestParameters)
						continue
					}
					fmt.Fprintf(&b, "%s %s %q\n", r.Account, r.EventID, r.Raw)
				}
				stored[i] = b.String()
			}
			if answers[0] != answers[1] {
				t.Errorf("answers: JSON %s, framed %s", answers[0], answers[1])
			}
			if stored[0] != stored[1] {
				t.Errorf("stored:\nJSON\n%s\nframed\n%s", stored[0], stored[1])
			}
			if want := fmt.Sprintf(`call ImportRecords {"records":%d}`, len(tc.recs)); !strings.Contains(stored[1], want) {
				t.Errorf("stored %s; want the call recorded as %s", stored[1], want)
			}
		})
	}
	// What only frames carry: each record refused alone.
	s, st := newTestServer(t, now, 90*24*time.Hour)
	status, out := importFramed(t, s, alice, framedBody(hostileRecord(alice, "ok1"), strings.Replace(hostileRecord(alice, "x"), "x", "\xff", 1),
		strings.Replace(hostileRecord(alice, "y"), "y", "\x00", 1), hostileRecord(alice, "ok2")))
	var res importRecordsOutput
	if err := json.Unmarshal([]byte(out), &res); status != 200 || err != nil || res.Inserted != 2 || len(res.Failed) != 2 ||
		res.Failed[0].Index != 1 || res.Failed[1].Index != 2 || res.Failed[0].ErrorCode != "InvalidRecord" || res.Failed[1].ErrorCode != "InvalidRecord" {
		t.Errorf("a framed body with a record not UTF-8 and one holding NUL: %d %s", status, out)
	}
	if n := len(storedRecords(t, st)); n != 3 { // ok1, ok2, the call
		t.Errorf("%d records stored; want 3", n)
	}
	// Bodies that are not frames.
	for _, body := range [][]byte{append(framedBody(hostileRecord(alice, "t1")), 0x80), framedBody(hostileRecord(alice, "t2"))[:50],
		[]byte(importBody(false, hostileRecord(alice, "t3")))} {
		s, st := newTestServer(t, now, 90*24*time.Hour)
		status, out := importFramed(t, s, alice, body)
		if status != 400 || errorType(out) != "SerializationException" {
			t.Errorf("body %q: %d %s; want a SerializationException", body, status, out)
		}
		for _, r := range storedRecords(t, st) {
			if r.EventSource != "cloudtrail.amazonaws.com" {
				t.Errorf("body %q: stored %s", body, r.EventID)
			}
		}
	}
}

// FuzzImportRecordFrames: whatever the body, no panic; a body taken gives
// records that frame back to exactly it, each refused (bad) exactly when
// it is not UTF-8 or holds NUL.
func FuzzImportRecordFrames(f *testing.F) {
	f.Add(framedBody("a", "", `{"b":1}`))
	f.Add(append(framedBody("a"), 0x80))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add(framedBody("\xff\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, bad, err := importRecordFrames(body)
		if err != nil {
			if recs != nil || bad != nil {
				t.Fatalf("an error (%v) with records", err)
			}
			return
		}
		var again []byte
		for i, r := range recs {
			again = binary.AppendUvarint(again, uint64(len(r)))
			again = append(again, r...)
			_, isBad := bad[i]
			if want := !utf8.Valid(r) || bytes.IndexByte(r, 0) >= 0; isBad != want {
				t.Fatalf("record %d %q: refused %v", i, r, isBad)
			}
		}
		if !bytes.Equal(again, body) {
			t.Fatalf("the records of %q frame back to %q", body, again)
		}
	})
}

// throttlingRecorder refuses every responder's records of other accounts
// (AdmitRecords), as the pipeline does while their share is queued.
type throttlingRecorder struct {
	syncRecorder
	asked *int
}

func (r throttlingRecorder) AdmitRecords(caller string, recs []audit.Record) error {
	*r.asked++
	for _, rec := range recs {
		if rec.Account != caller {
			return audit.Errorf(audit.CodeThrottling, "Rate exceeded")
		}
	}
	return nil
}

// TestImportRecordsAdmitsOtherAccounts: a responder's ImportRecords of
// other accounts' records asks the pipeline (RecordsAdmitter) and is
// answered ThrottlingException, storing nothing, when it refuses; a
// caller importing its own records is not asked (Admit counted them).
func TestImportRecordsAdmitsOtherAccounts(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	st := audittest.NewMemStore()
	asked := 0
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: throttlingRecorder{syncRecorder{st}, &asked}, Retention: 90 * 24 * time.Hour,
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Now: func() time.Time { return now }})
	status, out := importWith(t, s, alice, true, FramedImportContentType, framedBody(hostileRecord(bob, "b1")))
	if status != 400 || errorType(out) != "ThrottlingException" || asked != 1 {
		t.Errorf("a responder's import of bob's record: %d %s, AdmitRecords asked %d times; want ThrottlingException, 1", status, out, asked)
	}
	status, out = importWith(t, s, alice, false, FramedImportContentType, framedBody(hostileRecord(alice, "a1")))
	if status != 200 || asked != 1 {
		t.Errorf("alice's own record: %d %s, AdmitRecords asked %d times; want 200, not asked", status, out, asked)
	}
	for _, r := range storedRecords(t, st) {
		if r.EventID == "b1" {
			t.Errorf("stored bob's record refused")
		}
	}
}
