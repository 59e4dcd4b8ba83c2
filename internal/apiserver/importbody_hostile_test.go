package apiserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// hostileRecord is a record of account acct (recipientAccountId) with the
// given eventID, as JSON text.
func hostileRecord(acct, id string) string {
	return fmt.Sprintf(`{"eventVersion":"1.08","eventTime":"2025-06-01T11:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":%q,"readOnly":true,"eventType":"AwsApiCall","recipientAccountId":%q,"userIdentity":{"type":"IAMUser","accountId":%q,"userName":"u"}}`, id, acct, acct)
}

// importBody is an ImportRecords body of recs, quoted as json.Marshal
// quotes them; slow names the member "\u0052ecords", which reads as
// Records but the one-pass reader leaves to awsjson.Decode.
func importBody(slow bool, recs ...string) string {
	b, _ := json.Marshal(recs)
	name := `"Records"`
	if slow {
		name = `"\u0052ecords"`
	}
	return `{` + name + `:` + string(b) + `}`
}

// importAs sends an ImportRecords body as acct and returns the status
// and the answer, whose __type and message must be set for an error.
func importAs(t *testing.T, s *Server, acct string, body io.Reader, contentLength int64) (int, string) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", body)
	r.ContentLength = contentLength
	r.Header.Set("X-Amz-Target", importPrefix+".ImportRecords")
	r.Header.Set("X-Test-Account", acct)
	return serveImport(t, s, r)
}

// serveImport serves an ImportRecords request r and returns the status
// and the answer, which must be JSON, never a 5xx, and carry __type and
// message when it is an error.
func serveImport(t *testing.T, s *Server, r *http.Request) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil {
		t.Fatalf("ImportRecords answered %d %q: not JSON", w.Code, w.Body.String())
	}
	if w.Code != 200 && (e.Type == "" || e.Message == "") {
		t.Errorf("ImportRecords answered %d %q: no __type and message", w.Code, w.Body.String())
	}
	if w.Code >= 500 {
		t.Errorf("ImportRecords answered %d %q", w.Code, w.Body.String())
	}
	return w.Code, w.Body.String()
}

// TestImportRecordsHostileBodies: a tenant's ImportRecords bodies, read
// by the one-pass reader or (the same body, its member name escaped) by
// awsjson.Decode, get the same answer, store the same records and store
// only the caller's: another account's records are AccountMismatch
// failures whichever account their userIdentity names, and bodies that
// are not text, not one object of strings, truncated, too deep or over
// the limit (whatever Content-Length says) are AWS errors before
// anything is stored.
func TestImportRecordsHostileBodies(t *testing.T) {
	const alice, bob = "111111111111", "222222222222"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	many := make([]string, maxImportRecords+1)
	for i := range many {
		many[i] = hostileRecord(alice, fmt.Sprintf("many-%d", i))
	}
	// bob's account as the recipient, alice's in userIdentity.
	bobForAlice := strings.Replace(hostileRecord(bob, "bob-for-alice"), `"accountId":"`+bob, `"accountId":"`+alice, 1)
	for _, tc := range []struct {
		name   string
		body   func(slow bool) string
		status int
		code   string // the error's __type, or the answer's (Inserted, Failed codes)
		stored []string
	}{
		{"empty Records", func(slow bool) string { return importBody(slow) }, 200, "0", nil},
		{"own record", func(slow bool) string { return importBody(slow, hostileRecord(alice, "a1")) }, 200, "1", []string{"a1"}},
		{"another account's record", func(slow bool) string { return importBody(slow, hostileRecord(bob, "b1")) }, 200, "0 AccountMismatch", nil},
		{"another account's record naming the caller in userIdentity", func(slow bool) string { return importBody(slow, bobForAlice) },
			200, "0 AccountMismatch", nil},
		{"own and another's", func(slow bool) string {
			return importBody(slow, hostileRecord(bob, "b1"), hostileRecord(alice, "a1"), hostileRecord(bob, "a1"))
		}, 200, "1 AccountMismatch AccountMismatch", []string{"a1"}},
		{"an account that is no account", func(slow bool) string { return importBody(slow, hostileRecord("11111111111x", "x1")) },
			200, "0 InvalidRecord", nil},
		{"a record that is not an object", func(slow bool) string { return importBody(slow, `["x"]`, `1`, ``) },
			200, "0 InvalidRecord InvalidRecord InvalidRecord", nil},
		{"a record nested deeply", func(slow bool) string {
			deep := strings.Repeat(`{"a":`, 200) + `1` + strings.Repeat(`}`, 200)
			return importBody(slow, strings.Replace(hostileRecord(alice, "deep"), `"readOnly"`, `"x":`+deep+`,"readOnly"`, 1))
		}, 200, "1", []string{"deep"}},
		{"more records than a call takes", func(slow bool) string { return importBody(slow, many...) }, 400, "InvalidParameterException", nil},
		{"escaped NUL", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", `\u0000`, 1)
		}, 400, "SerializationException", nil},
		{"raw NUL", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", "\x00", 1)
		}, 400, "SerializationException", nil},
		{"lone high surrogate", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", `\ud800`, 1)
		}, 400, "SerializationException", nil},
		{"reversed surrogates", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", `\udc00\ud800`, 1)
		}, 400, "SerializationException", nil},
		{"high surrogate before a letter", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", `\ud800\u0041`, 1)
		}, 400, "SerializationException", nil},
		{"invalid UTF-8", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "SUR")), "SUR", "\xff\xfe", 1)
		}, 400, "SerializationException", nil},
		{"a number for a record", func(slow bool) string { return strings.Replace(importBody(slow, "x"), `"x"`, `1`, 1) },
			400, "SerializationException", nil},
		{"an object for a record", func(slow bool) string {
			return strings.Replace(importBody(slow, "x"), `"x"`, hostileRecord(alice, "obj"), 1)
		}, 400, "SerializationException", nil},
		{"a string for Records", func(slow bool) string { return strings.Replace(importBody(slow, "x"), `["x"]`, `"x"`, 1) },
			400, "SerializationException", nil},
		{"truncated", func(slow bool) string {
			b := importBody(slow, hostileRecord(alice, "t1"))
			return b[:len(b)-3]
		}, 400, "SerializationException", nil},
		{"trailing bytes", func(slow bool) string { return importBody(slow, hostileRecord(alice, "t1")) + `{}` }, 400, "SerializationException", nil},
		{"nested beyond the limit beside Records", func(slow bool) string {
			return strings.Replace(importBody(slow, hostileRecord(alice, "t1")), `{`, `{"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,`, 1)
		}, 400, "SerializationException", nil},
		// A repeated member: the last one counts, as in encoding/json
		// (the one-pass reader leaves it to Decode).
		{"Records twice", func(slow bool) string {
			first, second := importBody(slow, hostileRecord(alice, "first")), importBody(slow, hostileRecord(alice, "second"))
			return first[:len(first)-1] + "," + second[1:]
		}, 200, "1", []string{"second"}},
		{"a null Records", func(slow bool) string { return strings.Replace(importBody(slow, "x"), `["x"]`, `null`, 1) }, 200, "0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var answers [2]string
			for i, slow := range []bool{false, true} {
				s, st := newTestServer(t, now, 90*24*time.Hour)
				body := tc.body(slow)
				status, out := importAs(t, s, alice, strings.NewReader(body), int64(len(body)))
				if status != tc.status {
					t.Fatalf("slow %v: status %d %s; want %d", slow, status, out, tc.status)
				}
				got := errorType(out)
				if status == 200 {
					var res importRecordsOutput
					if err := json.Unmarshal([]byte(out), &res); err != nil {
						t.Fatal(err)
					}
					got = fmt.Sprint(res.Inserted)
					for _, f := range res.Failed {
						got += " " + f.ErrorCode
					}
				}
				if got != tc.code {
					t.Errorf("slow %v: answer %s; want %s", slow, out, tc.code)
				}
				answers[i] = out
				// What is stored: the caller's records named, and no
				// other account's.
				var ids []string
				for _, r := range storedRecords(t, st) {
					if r.Account != alice {
						t.Errorf("slow %v: stored %s's record %s", slow, r.Account, r.EventID)
					}
					if r.EventSource != "cloudtrail.amazonaws.com" { // not the call, recorded
						ids = append(ids, r.EventID)
					}
				}
				if fmt.Sprint(ids) != fmt.Sprint(tc.stored) {
					t.Errorf("slow %v: stored %v; want %v", slow, ids, tc.stored)
				}
			}
			if errorType(answers[0]) != errorType(answers[1]) || (tc.status == 200 && answers[0] != answers[1]) {
				t.Errorf("one-pass reader %s; awsjson.Decode %s", answers[0], answers[1])
			}
		})
	}
}

// storedRecords returns every record st holds, of every account.
func storedRecords(t *testing.T, st *audittest.MemStore) []audit.Record {
	t.Helper()
	var out []audit.Record
	for _, c := range []audit.Category{audit.CategoryManagement, audit.CategoryData, audit.CategoryInsight} {
		p, err := st.Lookup(t.Context(), audit.Query{AnyAccount: true, AnyRegion: true, Category: c, Limit: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p.Records...)
	}
	return out
}

func errorType(out string) string {
	var e struct {
		Type string `json:"__type"`
	}
	json.Unmarshal([]byte(out), &e)
	return e.Type
}

// shortReader returns its bytes and then fails as a connection that went
// away does.
type shortReader struct{ r io.Reader }

func (s shortReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// TestImportRecordsBodyLimit: a body over the 8 MiB limit is refused
// with RequestEntityTooLargeException whether its Content-Length says so,
// claims less (a reader that does not hold the body to it) or is unknown;
// a body shorter than its Content-Length is a SerializationException;
// nothing of either is stored.
func TestImportRecordsBodyLimit(t *testing.T) {
	const alice = "111111111111"
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", 8000)
	recs := make([]string, 0, 1100)
	for len(recs) < 1100 {
		recs = append(recs, strings.Replace(hostileRecord(alice, fmt.Sprintf("big-%d", len(recs))), `"readOnly"`, `"pad":"`+pad+`","readOnly"`, 1))
	}
	big := importBody(false, recs...)
	if len(big) <= maxImportBody {
		t.Fatalf("body of %d bytes; want over %d", len(big), maxImportBody)
	}
	small := importBody(false, hostileRecord(alice, "s1"))
	for _, tc := range []struct {
		name          string
		body          io.Reader
		contentLength int64
		status        int
		code          string
	}{
		{"over the limit", strings.NewReader(big), int64(len(big)), 413, "RequestEntityTooLargeException"},
		{"over the limit, Content-Length lying short", strings.NewReader(big), 1000, 413, "RequestEntityTooLargeException"},
		{"over the limit, length unknown", strings.NewReader(big), -1, 413, "RequestEntityTooLargeException"},
		{"Content-Length lying long", shortReader{strings.NewReader(small)}, int64(len(small)) + 100, 400, "SerializationException"},
		{"connection gone mid-body", shortReader{strings.NewReader(small[:len(small)/2])}, int64(len(small)), 400, "SerializationException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, st := newTestServer(t, now, 90*24*time.Hour)
			status, out := importAs(t, s, alice, tc.body, tc.contentLength)
			if status != tc.status || errorType(out) != tc.code {
				t.Errorf("status %d %.200s; want %d %s", status, out, tc.status, tc.code)
			}
			for _, r := range storedRecords(t, st) {
				if r.EventSource != "cloudtrail.amazonaws.com" { // not the call, recorded
					t.Errorf("stored %s of a refused body", r.EventID)
				}
			}
		})
	}
}
