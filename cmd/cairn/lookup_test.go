package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestImportedRealRecordsAreFoundUnderEveryAttribute imports every real
// record with `cairn import --data-dir`, serves the data dir, and checks that
// LookupEvents returns each management record's exact bytes under each
// attribute that applies to it, and nothing else.
func TestImportedRealRecordsAreFoundUnderEveryAttribute(t *testing.T) {
	real := audittest.RealRecords(t)
	var recs []audit.Record
	accounts := map[string]bool{}
	// Records a publisher gave fictional regions are imported too, but no
	// call can be signed for their region: the lookups below are of the
	// others.
	for _, rr := range real {
		r, err := audit.Extract(rr.Raw)
		if err != nil {
			t.Fatalf("%s#%d: %v", rr.File, rr.Index, err)
		}
		if !rr.InRealRegion() {
			continue
		}
		recs = append(recs, r)
		accounts[r.Account] = true
	}
	var cfg strings.Builder
	cfg.WriteString("event_history:\n  retention_days: 0\naccounts:\n")
	for a := range accounts {
		fmt.Fprintf(&cfg, "  - id: %q\n    users:\n      - name: responder\n        access_keys:\n          - id: AKIA%s\n            secret: s-%s\n", a, a, a)
	}
	dir := t.TempDir()
	cfgPath := dir + "/cairn.yaml"
	writeFile(t, cfgPath, cfg.String())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--data-dir", dir, "--config", cfgPath, "--no-progress",
		"--output", "json", audittest.RealDataDir(t)}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("cairn import exited %d: %s %s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), fmt.Sprintf(`"Imported": %d`, len(real))) || !strings.Contains(stdout.String(), `"Rejected": 0`) {
		t.Errorf("import report = %s; want all %d records imported, none rejected", stdout.String(), len(real))
	}
	// Importing again adds nothing.
	stdout.Reset()
	if code := run(context.Background(), []string{"import", "--data-dir", dir, "--config", cfgPath, "--no-progress",
		"--output", "json", audittest.RealDataDir(t)}, &stdout, &stderr); code != 0 {
		t.Fatalf("second import exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), `"Imported": 0`) || !strings.Contains(stdout.String(), fmt.Sprintf(`"Duplicates": %d`, len(real))) {
		t.Errorf("second import report = %s; want 0 imported, all duplicates", stdout.String())
	}

	ts := startServer(t, cfg.String(), dir)
	// The lookups below are recorded too; they are newer than every real
	// record, so an EndTime before the server started leaves them out.
	end := aws.Time(time.Now().Add(-time.Second))
	clients := map[string]*cloudtrail.Client{}
	clientFor := func(acct, region string) *cloudtrail.Client {
		k := acct + "/" + region
		if clients[k] == nil {
			clients[k] = ts.client("AKIA"+acct, "s-"+acct, region)
		}
		return clients[k]
	}
	// Group the expected results by (account, region, key, value).
	type lookupKey struct {
		acct, region string
		a            audit.Attribute
	}
	want := map[lookupKey][]int{}
	for i := range recs {
		r := &recs[i]
		if r.Category != audit.CategoryManagement {
			continue
		}
		var attrs []audit.Attribute
		attrs = append(attrs, audit.Attribute{Key: audit.AttrEventID, Value: r.EventID},
			audit.Attribute{Key: audit.AttrEventName, Value: r.EventName},
			audit.Attribute{Key: audit.AttrEventSource, Value: r.EventSource})
		if r.ReadOnly != audit.Unset {
			attrs = append(attrs, audit.Attribute{Key: audit.AttrReadOnly, Value: r.ReadOnly.String()})
		}
		if r.Username != "" {
			attrs = append(attrs, audit.Attribute{Key: audit.AttrUsername, Value: r.Username})
		}
		if r.AccessKeyID != "" {
			attrs = append(attrs, audit.Attribute{Key: audit.AttrAccessKeyID, Value: r.AccessKeyID})
		}
		for _, res := range r.Resources {
			if res.Type != "" {
				attrs = append(attrs, audit.Attribute{Key: audit.AttrResourceType, Value: res.Type})
			}
			if res.Name != "" {
				attrs = append(attrs, audit.Attribute{Key: audit.AttrResourceName, Value: res.Name})
			}
		}
		for _, a := range attrs {
			k := lookupKey{r.Account, r.Region, a}
			if l := want[k]; len(l) == 0 || l[len(l)-1] != i {
				want[k] = append(want[k], i)
			}
		}
	}
	checked := 0
	for k, idx := range want {
		got := lookupAll(t, clientFor(k.acct, k.region), &cloudtrail.LookupEventsInput{
			LookupAttributes: attr(types.LookupAttributeKey(k.a.Key), k.a.Value),
			EndTime:          end,
		})
		byID := map[string]string{}
		for _, e := range got {
			byID[aws.ToString(e.EventId)] = aws.ToString(e.CloudTrailEvent)
		}
		if len(got) != len(idx) {
			t.Errorf("%s/%s %s=%q: %d events; want %d", k.acct, k.region, k.a.Key, k.a.Value, len(got), len(idx))
		}
		for _, i := range idx {
			ct, ok := byID[recs[i].EventID]
			if !ok {
				t.Errorf("%s/%s %s=%q: event %s missing", k.acct, k.region, k.a.Key, k.a.Value, recs[i].EventID)
				continue
			}
			if ct != string(recs[i].Raw) {
				t.Errorf("event %s: CloudTrailEvent differs from the original bytes", recs[i].EventID)
			}
			checked++
		}
		// Newest first.
		if !slices.IsSortedFunc(got, func(a, b types.Event) int { return b.EventTime.Compare(*a.EventTime) }) {
			t.Errorf("%s=%q: events not newest first", k.a.Key, k.a.Value)
		}
	}
	t.Logf("checked %d (record, attribute) pairs over %d lookups", checked, len(want))

	// Resources derived as CloudTrail derives them for records without a
	// resources member (docs/compatibility.md): the Stratus Red Team
	// backdoor user's CreateUser and AttachUserPolicy
	// (invictus-ir-aws_dataset …T1230Z_ZtUNbBkwAu98FPZb) are found by its
	// name, and answered with the user and the policy as Resources.
	got := lookupAll(t, clientFor("123837392027", "us-east-1"), &cloudtrail.LookupEventsInput{
		LookupAttributes: attr(types.LookupAttributeKeyResourceName, "malicious-iam-user"), EndTime: end})
	byName := map[string]types.Event{}
	for _, e := range got {
		byName[aws.ToString(e.EventName)] = e
	}
	for name, res := range map[string][]string{
		"CreateUser":       {"AWS::IAM::User malicious-iam-user"},
		"AttachUserPolicy": {"AWS::IAM::Policy arn:aws:iam::aws:policy/AdministratorAccess", "AWS::IAM::User malicious-iam-user"},
	} {
		e, ok := byName[name]
		if !ok {
			t.Errorf("ResourceName=malicious-iam-user: no %s among %d events", name, len(got))
			continue
		}
		var have []string
		for _, r := range e.Resources {
			have = append(have, aws.ToString(r.ResourceType)+" "+aws.ToString(r.ResourceName))
		}
		slices.Sort(have)
		if !slices.Equal(have, res) {
			t.Errorf("%s: Resources %q; want %q", name, have, res)
		}
	}
}

// rawCall sends body to the server signed as alice, with the target op.
func rawCall(t *testing.T, ts *testServer, target, body string, sign func(*http.Request, string)) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.endpoint+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	if sign != nil {
		sign(req, body)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func signAs(akid, secret, region string) func(*http.Request, string) {
	return func(r *http.Request, body string) {
		h := sha256Hex(body)
		v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
			r, h, "cloudtrail", region, time.Now())
	}
}

func TestBadInputGetsAWSErrors(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	const target = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101."
	good := signAs("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	for _, tc := range []struct {
		name, target, body string
		sign               func(*http.Request, string)
		status             int
		code               string
	}{
		{"no auth", target + "LookupEvents", `{}`, nil, 403, "MissingAuthenticationTokenException"},
		{"unknown key", target + "LookupEvents", `{}`, signAs("AKIAUNKNOWN000000001", "x", "us-east-1"), 403, "UnrecognizedClientException"},
		{"wrong secret", target + "LookupEvents", `{}`, signAs("AKIAALICE00000000001", "wrong", "us-east-1"), 403, "InvalidSignatureException"},
		{"unknown operation", target + "MakeCoffee", `{}`, good, 400, "UnknownOperationException"},
		{"no target", "", `{}`, good, 400, "UnknownOperationException"},
		{"not implemented", target + "ListDashboards", `{}`, good, 400, "UnsupportedOperationException"},
		{"malformed json", target + "LookupEvents", `{"MaxResults":`, good, 400, "SerializationException"},
		{"wrong type", target + "LookupEvents", `{"MaxResults":"ten"}`, good, 400, "SerializationException"},
		{"not an object", target + "LookupEvents", `[1,2]`, good, 400, "SerializationException"},
		{"max results 0", target + "LookupEvents", `{"MaxResults":0}`, good, 400, "InvalidMaxResultsException"},
		{"max results 51", target + "LookupEvents", `{"MaxResults":51}`, good, 400, "InvalidMaxResultsException"},
		{"bad key", target + "LookupEvents", `{"LookupAttributes":[{"AttributeKey":"Color","AttributeValue":"x"}]}`, good, 400, "InvalidLookupAttributesException"},
		{"empty value", target + "LookupEvents", `{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":""}]}`, good, 400, "InvalidLookupAttributesException"},
		{"readonly not bool", target + "LookupEvents", `{"LookupAttributes":[{"AttributeKey":"ReadOnly","AttributeValue":"yes"}]}`, good, 400, "InvalidLookupAttributesException"},
		{"insight with username", target + "LookupEvents", `{"EventCategory":"insight","LookupAttributes":[{"AttributeKey":"Username","AttributeValue":"x"}]}`, good, 400, "InvalidLookupAttributesException"},
		{"too many attributes", target + "LookupEvents", `{"LookupAttributes":[` + strings.Repeat(`{"AttributeKey":"EventName","AttributeValue":"x"},`, 8) + `{"AttributeKey":"EventName","AttributeValue":"x"}]}`, good, 400, "InvalidLookupAttributesException"},
		{"time range", target + "LookupEvents", `{"StartTime":1700000100,"EndTime":1700000000}`, good, 400, "InvalidTimeRangeException"},
		{"category", target + "LookupEvents", `{"EventCategory":"management"}`, good, 400, "InvalidEventCategoryException"},
		{"garbage token", target + "LookupEvents", `{"NextToken":"garbage"}`, good, 400, "InvalidNextTokenException"},
		{"huge body", target + "LookupEvents", `{"NextToken":"` + strings.Repeat("a", 2<<20) + `"}`, good, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, ts, tc.target, tc.body, tc.sign)
			if tc.code == "" {
				if status < 400 || status >= 500 {
					t.Errorf("status %d, body %.200s; want a 4xx", status, body)
				}
				return
			}
			if status != tc.status || !strings.Contains(body, `"__type":"`+tc.code+`"`) || !strings.Contains(body, `"message":"`) {
				t.Errorf("status %d, body %.300s; want %d with __type %s and a message", status, body, tc.status, tc.code)
			}
		})
	}
}

func TestNextTokenIsBoundToItsQuery(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	c := alice(ts)
	ctx := context.Background()
	for range 3 {
		if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	waitForEvents(t, c, 3)
	page, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(1)})
	if err != nil || page.NextToken == nil {
		t.Fatalf("LookupEvents(MaxResults 1) = %v, token %v; want a NextToken", err, page.NextToken)
	}
	// Same query: fine, and the page size may change.
	if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(2), NextToken: page.NextToken}); err != nil {
		t.Errorf("replayed token = %v", err)
	}
	// Other parameters: refused.
	_, err = c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{NextToken: page.NextToken,
		LookupAttributes: attr(types.LookupAttributeKeyEventName, "LookupEvents")})
	if errCode(err) != "InvalidNextTokenException" {
		t.Errorf("token with other attributes = %v; want InvalidNextTokenException", err)
	}
	// Tampered: refused.
	tok := []byte(*page.NextToken)
	tok[len(tok)/2] ^= 1
	if _, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{NextToken: aws.String(string(tok))}); errCode(err) != "InvalidNextTokenException" {
		t.Errorf("tampered token = %v; want InvalidNextTokenException", err)
	}
	// Another account: refused.
	bob := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	if _, err := bob.LookupEvents(ctx, &cloudtrail.LookupEventsInput{NextToken: page.NextToken}); errCode(err) != "InvalidNextTokenException" {
		t.Errorf("alice's token used by bob = %v; want InvalidNextTokenException", err)
	}
}

func TestAccountsAndRegionsNeverSeeEachOther(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	ctx := context.Background()
	a := alice(ts)
	aWest := ts.client("AKIAALICE00000000001", "alice-secret-key", "eu-west-1")
	b := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	for range 2 {
		a.LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	}
	b.LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
	waitForEvents(t, a, 2)
	waitForEvents(t, b, 1)
	for name, tc := range map[string]struct {
		c    *cloudtrail.Client
		acct string
		n    int
	}{"alice us-east-1": {a, "111111111111", 2}, "bob": {b, "222222222222", 1}, "alice eu-west-1": {aWest, "", 0}} {
		evs := lookupAll(t, tc.c, &cloudtrail.LookupEventsInput{EndTime: aws.Time(time.Now().Add(-50 * time.Millisecond))})
		// Each account sees its own calls only (the lookups made here
		// are recorded too, so count those before this one).
		if len(evs) < tc.n {
			t.Errorf("%s: %d events; want at least %d", name, len(evs), tc.n)
		}
		for _, e := range evs {
			if !strings.Contains(aws.ToString(e.CloudTrailEvent), `"recipientAccountId":"`+tc.acct+`"`) || tc.acct == "" {
				t.Errorf("%s sees %s", name, aws.ToString(e.CloudTrailEvent))
			}
		}
	}
}

func TestEventsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90)
	ts := startServer(t, cfg, dir)
	out, err := alice(ts).LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
	if err != nil {
		t.Fatal(err)
	}
	_ = out
	ts.stop() // graceful: the record of that call is durable before serve returns
	ts2 := startServer(t, cfg, dir)
	evs := lookupAll(t, alice(ts2), &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventName, "LookupEvents")})
	if len(evs) < 1 {
		t.Errorf("after a restart %d LookupEvents events; want the one made before it", len(evs))
	}
}

// waitForEvents waits until the caller's account has at least n events
// (its recorded calls): the records are written within the batch
// deadline, later on a loaded machine (testwait).
func waitForEvents(t *testing.T, c *cloudtrail.Client, n int) {
	t.Helper()
	testwait.UntilNil(t, fmt.Sprintf("%d events", n), func() error {
		out, err := c.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Events) < n {
			return fmt.Errorf("%d events", len(out.Events))
		}
		return nil
	})
}

// A malformed file and a bad record are reported by file and record number;
// the rest is imported, and the command exits non-zero.
func TestImportReportsBadFilesAndRecords(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(dir+"/logs", 0o755)
	good := `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1","eventID":"%s","recipientAccountId":"111111111111"}`
	writeFile(t, dir+"/logs/a.json", `{"Records":[`+fmt.Sprintf(good, "e1")+`,{"eventID":"no-time"},`+fmt.Sprintf(good, "e2")+`]}`)
	writeFile(t, dir+"/logs/b.json", `{"Records":[`+fmt.Sprintf(good, "e3")+`,{"eventID":`)
	cfgPath := dir + "/cairn.yaml"
	writeFile(t, cfgPath, "event_history:\n  retention_days: 0\naccounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - id: AKIAAAAAAAAAAAAAAAAA\n            secret: s\n")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--data-dir", dir + "/dd", "--config", cfgPath, "--no-progress",
		"--output", "json", dir + "/logs"}, &stdout, &stderr)
	if code == 0 {
		t.Fatalf("import of bad files exited 0: %s", stdout.String())
	}
	var rep struct {
		Files, FileErrors, Records, Imported, Rejected int
		Errors                                         []struct {
			File    string
			Record  int
			Message string
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report %q: %v", stdout.String(), err)
	}
	if rep.Files != 2 || rep.FileErrors != 1 || rep.Imported != 3 || rep.Rejected != 1 || len(rep.Errors) != 2 {
		t.Fatalf("report = %+v", rep)
	}
	for _, want := range []string{"a.json: record 2:", "b.json: record 2:"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q does not name %q", stderr.String(), want)
		}
	}
}
