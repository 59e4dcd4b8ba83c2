package main

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/testwait"
)

var consoleCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// consoleBrowser is a signed-in console client (cookies, no redirects).
type consoleBrowser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (b *consoleBrowser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.base+path, strings.NewReader(form.Encode()))
	if method == "POST" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (b *consoleBrowser) csrf(path string) string {
	b.t.Helper()
	_, body := b.do("GET", path, nil)
	m := consoleCSRF.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("%s: no csrf token", path)
	}
	return m[1]
}

func signInConsole(t testing.TB, ts *testServer, key, secret string) *consoleBrowser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &consoleBrowser{t: t, base: ts.endpoint, c: &http.Client{Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	tok := b.csrf("/console/signin")
	if code, _ := b.do("POST", "/console/signin", url.Values{"csrf": {tok}, "access_key_id": {key},
		"secret_access_key": {secret}, "region": {"us-east-1"}}); code != http.StatusSeeOther {
		t.Fatalf("sign-in = %d; want 303", code)
	}
	return b
}

// TestConsoleEventDataStores: the Lake page creates, protects and deletes
// event data stores through the API's own calls: its validation messages
// shown as AWS's, termination protection refusing a delete, another
// account's store out of reach, each call recorded as console use.
func TestConsoleEventDataStores(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	api := alice(ts)
	bg := context.Background()
	a := signInConsole(t, ts, "AKIAALICE00000000001", "alice-secret-key")
	csrf := a.csrf("/console/lake?region=us-east-1")
	create := func(b *consoleBrowser, csrf string, form url.Values) (int, string) {
		form.Set("csrf", csrf)
		form.Set("region", "us-east-1")
		return b.do("POST", "/console/lake/create", form)
	}
	for _, tc := range []struct {
		name string
		form url.Values
		want string
	}{
		{"name too short", url.Values{"name": {"ab"}}, "InvalidParameterException: Name must be 3 to 128 characters"},
		{"name with markup", url.Values{"name": {"<script>x</script>"}}, "InvalidParameterException: Name must be 3 to 128 characters"},
		{"name too long", url.Values{"name": {strings.Repeat("n", 129)}}, "InvalidParameterException: Name must be 3 to 128 characters"},
		{"no name", url.Values{}, "InvalidParameterException"},
		{"retention too short", url.Values{"name": {"short-lived"}, "retention": {"6"}}, "InvalidParameterException: RetentionPeriod must be between 7 and"},
		{"retention too long", url.Values{"name": {"long-lived"}, "retention": {"99999"}}, "InvalidParameterException: RetentionPeriod must be between 7 and"},
		{"retention not a number", url.Values{"name": {"words"}, "retention": {"ten"}}, "The retention period must be a whole number of days."},
		{"retention overflowing", url.Values{"name": {"huge"}, "retention": {"99999999999999999999"}}, "The retention period must be a whole number of days."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := create(a, csrf, tc.form)
			if code != http.StatusBadRequest || !strings.Contains(html.UnescapeString(body), tc.want) {
				t.Errorf("create = %d; want 400 with %q", code, tc.want)
			}
			if strings.Contains(body, "<script>x") {
				t.Error("the name came back unescaped")
			}
		})
	}
	if out, err := api.ListEventDataStores(bg, &cloudtrail.ListEventDataStoresInput{}); err != nil || len(out.EventDataStores) != 0 {
		t.Fatalf("stores after refused creates: %v, %v; want none", out, err)
	}

	code, _ := create(a, csrf, url.Values{"name": {"console-store"}, "retention": {"90"}, "multi_region": {"on"}, "termination_protection": {"on"}})
	if code != http.StatusSeeOther {
		t.Fatalf("create = %d; want 303", code)
	}
	out, err := api.ListEventDataStores(bg, &cloudtrail.ListEventDataStoresInput{})
	if err != nil || len(out.EventDataStores) != 1 {
		t.Fatalf("stores: %v, %v; want the one created", out, err)
	}
	arn := aws.ToString(out.EventDataStores[0].EventDataStoreArn)
	got, err := api.GetEventDataStore(bg, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(arn)})
	if err != nil || aws.ToString(got.Name) != "console-store" || aws.ToInt32(got.RetentionPeriod) != 90 ||
		!aws.ToBool(got.TerminationProtectionEnabled) || !aws.ToBool(got.MultiRegionEnabled) {
		t.Fatalf("created store %+v, %v; want console-store, 90 days, protected, multi-Region", got, err)
	}
	if _, body := a.do("GET", "/console/lake?region=us-east-1", nil); !strings.Contains(body, "console-store") {
		t.Error("the lake page does not list the new store")
	}
	form := func(store string, kv ...string) url.Values {
		v := url.Values{"csrf": {csrf}, "region": {"us-east-1"}, "store": {store}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	t.Run("protected store refuses delete", func(t *testing.T) {
		code, body := a.do("POST", "/console/lake/delete", form(arn))
		if code != http.StatusBadRequest || !strings.Contains(body, "EventDataStoreTerminationProtectedException") {
			t.Errorf("delete of a protected store = %d; want 400 with EventDataStoreTerminationProtectedException", code)
		}
	})
	t.Run("another account cannot touch it", func(t *testing.T) {
		b := signInConsole(t, ts, "AKIABOB0000000000001", "bob-secret-key")
		bcsrf := b.csrf("/console/lake?region=us-east-1")
		for _, path := range []string{"/console/lake/protect", "/console/lake/delete"} {
			code, body := b.do("POST", path, url.Values{"csrf": {bcsrf}, "region": {"us-east-1"}, "store": {arn}, "protect": {"off"}})
			if code != http.StatusBadRequest || !strings.Contains(body, "EventDataStoreNotFoundException") {
				t.Errorf("bob %s alice's store = %d; want 400 with EventDataStoreNotFoundException", path, code)
			}
		}
		got, _ := api.GetEventDataStore(bg, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(arn)})
		if !aws.ToBool(got.TerminationProtectionEnabled) || got.Status != types.EventDataStoreStatusEnabled {
			t.Errorf("alice's store after bob's attempts: protection %v, status %s", aws.ToBool(got.TerminationProtectionEnabled), got.Status)
		}
	})
	t.Run("protection off, then delete", func(t *testing.T) {
		if code, _ := a.do("POST", "/console/lake/protect", form(arn, "protect", "off")); code != http.StatusSeeOther {
			t.Fatalf("protection off = %d; want 303", code)
		}
		if code, _ := a.do("POST", "/console/lake/delete", form(arn)); code != http.StatusSeeOther {
			t.Fatalf("delete = %d; want 303", code)
		}
		got, err := api.GetEventDataStore(bg, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(arn)})
		if err != nil || got.Status != types.EventDataStoreStatusPendingDeletion {
			t.Errorf("deleted store %v, %v; want PENDING_DELETION", got.Status, err)
		}
		code, body := a.do("POST", "/console/lake/delete", form(arn))
		// The API's answer (DeleteEventDataStore models no
		// InvalidEventDataStoreStatusException).
		if code != http.StatusBadRequest || !strings.Contains(body, "is already pending deletion") {
			t.Errorf("second delete = %d; want 400 with the API's \"already pending deletion\"", code)
		}
		code, body = a.do("POST", "/console/lake/delete", form("arn:aws:cloudtrail:us-east-1:111111111111:eventdatastore/"+strings.Repeat("z", 36)))
		if code != http.StatusBadRequest || !strings.Contains(body, "EventDataStoreNotFoundException") {
			t.Errorf("delete of a store that never was = %d; want 400 with EventDataStoreNotFoundException", code)
		}
	})
	t.Run("recorded as console calls", func(t *testing.T) {
		for _, name := range []string{"CreateEventDataStore", "UpdateEventDataStore", "DeleteEventDataStore"} {
			// Records reach Event History within the batch deadline.
			var ev *cloudtrail.LookupEventsOutput
			var err error
			for deadline := testwait.End(t); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				ev, err = api.LookupEvents(bg, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
					{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String(name)}}})
				if err != nil || len(ev.Events) > 0 {
					break
				}
			}
			if err != nil || len(ev.Events) == 0 {
				t.Errorf("%s: no record (%v)", name, err)
				continue
			}
			var rec struct {
				UserAgent                    string `json:"userAgent"`
				SessionCredentialFromConsole string `json:"sessionCredentialFromConsole"`
			}
			json.Unmarshal([]byte(aws.ToString(ev.Events[0].CloudTrailEvent)), &rec)
			if rec.UserAgent != "cairn-console" || rec.SessionCredentialFromConsole != "true" {
				t.Errorf("%s record: userAgent %q, sessionCredentialFromConsole %q; want console use", name, rec.UserAgent, rec.SessionCredentialFromConsole)
			}
		}
	})
}
