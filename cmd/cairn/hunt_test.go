package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/sigma/who"
)

// importedRealDir imports every real record into a new data dir.
func importedRealDir(t *testing.T) string {
	t.Helper()
	src := audittest.RealDataDir(t)
	dir := t.TempDir()
	if code, _, errOut := runCairn("import", "--data-dir", dir, "--no-progress", src); code != 0 {
		t.Fatalf("import exited %d: %s", code, errOut)
	}
	return dir
}

// TestHuntAndWhoOnImportedRecords imports every real record into a data
// dir once and runs cairn hunt and cairn who over it offline.
func TestHuntAndWhoOnImportedRecords(t *testing.T) {
	dir := importedRealDir(t)
	t.Run("hunt builtin", func(t *testing.T) { testHuntBuiltinOnImportedRecords(t, dir) })
	t.Run("hunt window and rules", func(t *testing.T) { testHuntWindowAndRules(t, dir) })
	t.Run("hunt bad input", func(t *testing.T) { testHuntBadInput(t, dir) })
	t.Run("who", func(t *testing.T) { testWhoOnImportedRecords(t, dir) })
}

// runCairn runs the command and returns its exit status, stdout and stderr.
func runCairn(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// jsonFinding is a finding as --output json prints it.
type jsonFinding struct {
	RuleID, Title, Level, EventID, EventTime, EventName string
	RecipientAccountID                                  string `json:"recipientAccountId"`
	AWSRegion                                           string `json:"awsRegion"`
	Principal, Detail                                   string
}

func parseFindings(t *testing.T, out string) []jsonFinding {
	t.Helper()
	var fs []jsonFinding
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var f jsonFinding
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("not one JSON object per line: %q: %v", line, err)
		}
		fs = append(fs, f)
	}
	return fs
}

// eventIDs maps each real record's eventID to the folder and file it
// comes from.
func realEventFiles(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range audittest.RealRecords(t) {
		var rec struct{ EventID string }
		json.Unmarshal(r.Raw, &rec)
		out[rec.EventID] = r.File
	}
	return out
}

// testHuntBuiltinOnImportedRecords: cairn hunt --builtin over every real
// record imported into a data dir finds each Stratus technique's records,
// nothing in the benign folders, and prints the same findings as json,
// csv and a table.
func testHuntBuiltinOnImportedRecords(t *testing.T, dir string) {
	code, out, errOut := runCairn("hunt", "--data-dir", dir, "--builtin", "--output", "json", "--no-progress")
	if code != 0 {
		t.Fatalf("hunt exited %d: %s", code, errOut)
	}
	findings := parseFindings(t, out)
	files := realEventFiles(t)
	caught := map[string]bool{}
	for _, f := range findings {
		if f.RuleID == "" || f.Title == "" || f.Level == "" || f.EventID == "" || f.EventTime == "" || f.EventName == "" ||
			f.RecipientAccountID == "" || f.AWSRegion == "" {
			t.Errorf("finding misses a field: %+v", f)
		}
		file := files[f.EventID]
		for _, b := range []string{"opensearch-catalog/", "nexthink-cloudtrail-s3-to-kinesis/", "plaso/"} {
			if strings.HasPrefix(file, b) {
				t.Errorf("%s fires on benign %s (%s)", f.Title, file, f.EventID)
			}
		}
		caught[file] = true
	}
	entries, err := os.ReadDir(filepath.Join(audittest.RealDataDir(t), "datadog-stratus-red-team"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "aws.") {
			continue
		}
		n++
		if !caught["datadog-stratus-red-team/"+e.Name()] {
			t.Errorf("no finding on Stratus technique %s", e.Name())
		}
	}
	if n != 35 {
		t.Errorf("%d Stratus techniques; want 35", n)
	}
	// csv: a header and the same findings
	code, out, errOut = runCairn("hunt", "--data-dir", dir, "--builtin", "--output", "csv", "--no-progress")
	if code != 0 {
		t.Fatalf("hunt --output csv exited %d: %s", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(rows) != len(findings)+1 || rows[0][0] != "eventTime" {
		t.Errorf("csv: %d rows, %v; want a header and %d findings", len(rows), err, len(findings))
	}
	// table: one line per finding, a count
	code, out, _ = runCairn("hunt", "--data-dir", dir, "--builtin", "--no-progress")
	if lines := strings.Count(out, "\n"); code != 0 || lines != len(findings)+2 || !strings.Contains(out, "findings\n") {
		t.Errorf("table: exit %d, %d lines; want a header, %d findings and a count", code, lines, len(findings))
	}
}

// testHuntWindowAndRules: --start-time/--end-time bound the findings (the
// stateful hunts still read the week before as baseline), and --rules
// runs a user's rule files and folders.
func testHuntWindowAndRules(t *testing.T, dir string) {
	// 2024-07-30: Stratus' GetPasswordData burst and its AssumeRole calls.
	code, out, errOut := runCairn("hunt", "--data-dir", dir, "--builtin", "--output", "json", "--no-progress",
		"--start-time", "2024-07-30T21:00:00Z", "--end-time", "2024-07-31")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fs := parseFindings(t, out)
	titles := map[string]bool{}
	for _, f := range fs {
		if f.EventTime < "2024-07-30T21:00:00Z" || f.EventTime >= "2024-07-31" {
			t.Errorf("finding at %s outside the window", f.EventTime)
		}
		titles[f.Title] = true
	}
	if !titles["Burst of access-denied calls"] || !titles["EC2 Windows password data read"] {
		t.Errorf("window findings %v; want the burst and GetPasswordData", titles)
	}
	// the config's hunts section sets the stateful hunts' parameters: a
	// burst of 40 is more than the 30 GetPasswordData calls
	cfgPath := filepath.Join(t.TempDir(), "cairn.yaml")
	writeFile(t, cfgPath, strings.Replace(twoAccounts, "%d", "0", 1)+"detections:\n  hunts:\n    denied_burst: 40\n")
	code, out, errOut = runCairn("hunt", "--data-dir", dir, "--config", cfgPath, "--builtin", "--output", "json", "--no-progress",
		"--start-time", "2024-07-30T21:00:00Z", "--end-time", "2024-07-31")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, f := range parseFindings(t, out) {
		if f.Title == "Burst of access-denied calls" {
			t.Errorf("denied_burst 40: burst found at %s", f.EventTime)
		}
	}
	rules := filepath.Join("..", "..", "internal", "sigma", "testdata", "rules")
	code, out, errOut = runCairn("hunt", "--data-dir", dir, "--output", "json", "--no-progress",
		"--rules", filepath.Join(rules, "logging_tampering.yml"), "--rules", filepath.Join(rules, "console_login_without_mfa.yml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	count := map[string]int{}
	for _, f := range parseFindings(t, out) {
		count[f.EventName]++
	}
	// the real records hold 5 StopLogging, 5 DeleteTrail, 1 UpdateTrail and
	// 2 ConsoleLogin without MFA (docs/hunting.md)
	if count["StopLogging"] != 5 || count["DeleteTrail"] < 5 || count["ConsoleLogin"] != 2 {
		t.Errorf("findings by event %v; want 5 StopLogging, 5+ DeleteTrail, 2 ConsoleLogin", count)
	}
}

// testHuntBadInput: each mistake gets a clear message and its exit
// status; a bad rule file never stops the good ones.
func testHuntBadInput(t *testing.T, dir string) {
	rules := t.TempDir()
	writeFile(t, filepath.Join(rules, "good.yml"), "title: stop\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  s:\n    eventName: StopLogging\n  condition: s\n")
	writeFile(t, filepath.Join(rules, "bad.yml"), "title: bad\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  s:\n    eventName|frobnicate: x\n  condition: s\n")
	writeFile(t, filepath.Join(rules, "agg.yml"), "title: agg\nlogsource: {product: aws, service: cloudtrail}\ndetection:\n  s:\n    eventName: x\n  condition: s | count() > 5\n")
	writeFile(t, filepath.Join(rules, "notyaml.yml"), "title: [unclosed\n")
	empty := t.TempDir()
	cases := []struct {
		name     string
		args     []string
		code     int
		stderr   []string
		findings int // -1: no check
	}{
		{"nothing to run", []string{"hunt", "--data-dir", dir}, 2, []string{"--rules", "--builtin"}, -1},
		{"rules path missing", []string{"hunt", "--data-dir", dir, "--rules", "/no/such/rules"}, 2, []string{"/no/such/rules"}, -1},
		{"empty rules folder", []string{"hunt", "--data-dir", dir, "--rules", empty}, 2, []string{"no rule loaded"}, -1},
		{"bad output", []string{"hunt", "--data-dir", dir, "--builtin", "--output", "xml"}, 2, []string{"--output"}, -1},
		{"bad time", []string{"hunt", "--data-dir", dir, "--builtin", "--start-time", "yesterday"}, 2, []string{"--start-time"}, -1},
		{"end before start", []string{"hunt", "--data-dir", dir, "--builtin", "--start-time", "2024-01-02", "--end-time", "2024-01-01"}, 2, []string{"after"}, -1},
		{"argument", []string{"hunt", "--data-dir", dir, "--builtin", "rules/"}, 2, []string{"--rules"}, -1},
		{"unknown flag", []string{"hunt", "--frob"}, 2, []string{"frob"}, -1},
		{"bad max records", []string{"hunt", "--builtin", "--max-records", "0"}, 2, []string{"--max-records"}, -1},
		{"no data dir", []string{"hunt", "--data-dir", filepath.Join(empty, "nope"), "--builtin"}, 1, []string{"data dir"}, -1},
		{"bad config", []string{"hunt", "--data-dir", dir, "--builtin", "--config", filepath.Join(empty, "none.yaml")}, 1, []string{"none.yaml"}, -1},
		{"bad rules refused, good ones run", []string{"hunt", "--data-dir", dir, "--rules", rules, "--output", "json", "--no-progress"}, 3,
			[]string{"bad.yml:5", "frobnicate", "agg.yml", "notyaml.yml:", "3 rule files refused"}, 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCairn(c.args...)
			if code != c.code {
				t.Errorf("exit %d; want %d (stderr %q)", code, c.code, errOut)
			}
			for _, s := range c.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr %q does not say %q", errOut, s)
				}
			}
			if c.findings >= 0 {
				if n := len(parseFindings(t, out)); n != c.findings {
					t.Errorf("%d findings; want %d", n, c.findings)
				}
			}
		})
	}
}

// rehomedStratus writes the Stratus records into one file owned by
// account in us-east-1 (the publisher's regions are fictional: no call
// can be signed for them), for a server to serve them to that account.
func rehomedStratus(t *testing.T, account string) string {
	t.Helper()
	src := filepath.Join(audittest.RealDataDir(t), "datadog-stratus-red-team")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "aws.") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Records []map[string]any }
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Records {
			r["recipientAccountId"], r["awsRegion"] = account, "us-east-1"
			if ui, ok := r["userIdentity"].(map[string]any); ok {
				ui["accountId"] = account
			}
			recs = append(recs, r)
		}
	}
	data, _ := json.Marshal(map[string]any{"Records": recs})
	path := filepath.Join(t.TempDir(), "stratus.json")
	writeFile(t, path, string(data))
	return path
}

// TestHuntAndWhoThroughServer: with --endpoint-url, hunt and who read
// Event History through LookupEvents signed with the caller's key: alice
// gets her account's findings and timeline, bob (another account) none of
// them.
func TestHuntAndWhoThroughServer(t *testing.T) {
	dir := t.TempDir()
	cfg := strings.Replace(twoAccounts, "%d", "0", 1)
	cfgPath := filepath.Join(dir, "cairn.yaml")
	writeFile(t, cfgPath, cfg)
	if code, _, errOut := runCairn("import", "--data-dir", dir, "--config", cfgPath, "--no-progress", rehomedStratus(t, "111111111111")); code != 0 {
		t.Fatalf("import exited %d: %s", code, errOut)
	}
	ts := startServer(t, cfg, dir)
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_REGION", "us-east-1")
	as := func(key, secret string) {
		t.Setenv("AWS_ACCESS_KEY_ID", key)
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	}

	as("AKIAALICE00000000001", "alice-secret-key")
	code, out, errOut := runCairn("hunt", "--endpoint-url", ts.endpoint, "--builtin", "--output", "json", "--no-progress")
	if code != 0 {
		t.Fatalf("alice's hunt exited %d: %s", code, errOut)
	}
	titles := map[string]bool{}
	for _, f := range parseFindings(t, out) {
		if f.RecipientAccountID != "111111111111" {
			t.Errorf("finding in account %s", f.RecipientAccountID)
		}
		titles[f.Title] = true
	}
	for _, want := range []string{"CloudTrail trail stopped, deleted or changed", "Burst of access-denied calls",
		"EC2 instance credentials used outside the instance", "Console sign-in without MFA", "Bedrock model invoked"} {
		if !titles[want] {
			t.Errorf("alice's hunt found %d kinds, not %q", len(titles), want)
		}
	}
	code, out, errOut = runCairn("who", "--endpoint-url", ts.endpoint, "--output", "json", "--no-progress", "christophe")
	var rep who.Report
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Summary.Calls < 250 {
		t.Errorf("alice's who christophe: exit %d, %d calls, %s; want christophe's 250+ calls", code, rep.Summary.Calls, errOut)
	}

	// more records than --max-records: refused, with what to do
	if code, _, errOut := runCairn("hunt", "--endpoint-url", ts.endpoint, "--builtin", "--no-progress", "--max-records", "100"); code != 2 ||
		!strings.Contains(errOut, "narrow the range") {
		t.Errorf("--max-records 100: exit %d, %q; want 2 and advice", code, errOut)
	}

	as("AKIABOB0000000000001", "bob-secret-key")
	code, out, errOut = runCairn("hunt", "--endpoint-url", ts.endpoint, "--builtin", "--output", "json", "--no-progress")
	if code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("bob's hunt: exit %d, %q, %s; want no finding", code, out, errOut)
	}
	code, out, _ = runCairn("who", "--endpoint-url", ts.endpoint, "--output", "json", "--no-progress", "christophe")
	rep = who.Report{}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Summary.Calls != 0 {
		t.Errorf("bob's who christophe: exit %d, %d calls; want none", code, rep.Summary.Calls)
	}

	// a wrong key is refused with the server's error, not a crash
	as("AKIAALICE00000000001", "wrong")
	if code, _, errOut := runCairn("hunt", "--endpoint-url", ts.endpoint, "--builtin", "--no-progress"); code != 1 || !strings.Contains(errOut, "Signature") {
		t.Errorf("wrong secret: exit %d, %q; want 1 and the signature error", code, errOut)
	}
}

// realMaps returns every real record decoded as a map, for independent
// oracles.
func realMaps(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, r := range audittest.RealRecords(t) {
		var m map[string]any
		json.Unmarshal(r.Raw, &m)
		out = append(out, m)
	}
	return out
}

// realCalls counts, independently of package who, the records that
// match.
func realCalls(recs []map[string]any, match func(m map[string]any) bool) int {
	n := 0
	for _, m := range recs {
		if match(m) {
			n++
		}
	}
	return n
}

func str(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

// testWhoOnImportedRecords: cairn who by access key, user ARN, role ARN,
// assumed-role ARN and user name over every real record: the calls it
// counts are the ones an independent scan finds; calls with a session the
// principal obtained count as its own.
func testWhoOnImportedRecords(t *testing.T, dir string) {
	const user = "arn:aws:iam::457448411975:user/christophe"
	const role = "arn:aws:iam::457448411975:role/stratus-red-team-ec2-get-password-data-role"
	recs := realMaps(t)
	bertSessions := map[string]bool{}
	realCalls(recs, func(m map[string]any) bool {
		if str(m, "userIdentity", "userName") == "bert-jan" {
			if k := str(m, "responseElements", "credentials", "accessKeyId"); k != "" {
				bertSessions[k] = true
			}
		}
		return false
	})
	if len(bertSessions) == 0 {
		t.Fatal("bert-jan obtained no session in the real records")
	}
	cases := []struct {
		principal string
		want      func(m map[string]any) bool
	}{
		{"AKIAAM80VXLJF8NPK4VC", func(m map[string]any) bool { return str(m, "userIdentity", "accessKeyId") == "AKIAAM80VXLJF8NPK4VC" }},
		{role, func(m map[string]any) bool {
			return str(m, "userIdentity", "sessionContext", "sessionIssuer", "arn") == role
		}},
		// christophe in 457448411975 assumed the role: its session's calls
		// are his
		{user, func(m map[string]any) bool {
			return str(m, "userIdentity", "arn") == user || str(m, "userIdentity", "sessionContext", "sessionIssuer", "arn") == role
		}},
		// a user name: IAM users and role sessions of that name, and the
		// sessions they obtained (AssumeRole responses)
		{"bert-jan", func(m map[string]any) bool {
			return str(m, "userIdentity", "userName") == "bert-jan" || strings.Contains(str(m, "userIdentity", "arn"), ":assumed-role/") && strings.HasSuffix(str(m, "userIdentity", "arn"), "/bert-jan") ||
				bertSessions[str(m, "userIdentity", "accessKeyId")]
		}},
	}
	for _, c := range cases {
		t.Run(c.principal, func(t *testing.T) {
			want := realCalls(recs, c.want)
			code, out, errOut := runCairn("who", c.principal, "--data-dir", dir, "--output", "json", "--no-progress")
			var rep who.Report
			if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if want == 0 || rep.Summary.Calls != want || len(rep.Timeline) != want {
				t.Errorf("%d calls, %d in the timeline; want %d (and some)", rep.Summary.Calls, len(rep.Timeline), want)
			}
			for i := 1; i < len(rep.Timeline); i++ {
				if rep.Timeline[i].EventTime.Before(rep.Timeline[i-1].EventTime) {
					t.Fatalf("timeline out of order at %d", i)
				}
			}
		})
	}
	// the summary of christophe in 457448411975
	code, out, _ := runCairn("who", "--data-dir", dir, "--no-progress", user)
	for _, s := range []string{"Roles assumed      " + role + " (2)", "Client.UnauthorizedOperation (30)", "Sessions obtained  ASIA", "Write"} {
		if code != 0 || !strings.Contains(out, s) {
			t.Errorf("who table (exit %d) does not say %q:\n%s", code, s, out)
		}
	}
	for _, bad := range [][]string{{"who"}, {"who", "a", "b"}, {"who", "arn:aws"}, {"who", "two words"}, {"who", "x", "--output", "csv"}, {"who", "x", "--limit", "-1"}} {
		if code, _, errOut := runCairn(bad...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d (%q); want 2 and a message", bad, code, errOut)
		}
	}
	if code, out, _ := runCairn("who", "--data-dir", dir, "--no-progress", "nobody-at-all"); code != 0 || !strings.Contains(out, "No calls found") {
		t.Errorf("unknown principal: exit %d, %q", code, out)
	}
}
