package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// importReport is the JSON report of `cairn import --output json`.
type importReport struct {
	Records, Imported, Duplicates, Rejected int
	Groups                                  []struct {
		Account, Region                        string
		Records, Imported, Duplicates, Refused int
		Reasons                                map[string]int
	}
	Errors []struct {
		File   string
		Record int
		Code   string
	}
	ErrorsOmittedByFile map[string]int
	Hints               []struct {
		Code  string
		Count int
		Hint  string
	}
	Interrupted bool
}

func decodeImportReport(t *testing.T, b []byte) importReport {
	t.Helper()
	var rep importReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report %q: %v", b, err)
	}
	return rep
}

// importRecord is a valid record of account and region.
func importRecord(id, account, region string) string {
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	return fmt.Sprintf(`{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",`+
		`"eventName":"ListBuckets","awsRegion":%s,"eventID":%s,"recipientAccountId":%s}`, q(region), q(id), q(account))
}

// TestImportReportsPerAccountAndRegion: `cairn import` summarises per
// account and region (records, imported, duplicates, refused and why),
// names the first errors of each file and counts the rest, gives one hint
// per kind of refusal, and exits 0 only when every record was stored or
// already there; offline and through a server, in every --output.
func TestImportReportsPerAccountAndRegion(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	var good []string
	for i := range 4 {
		good = append(good, importRecord(fmt.Sprintf("a%d", i), "111111111111", "us-east-1"))
	}
	good = append(good, importRecord("b0", "111111111111", "eu-west-1"), importRecord("c0", "222222222222", "us-east-1"))
	writeFile(t, filepath.Join(logs, "good.json"), `{"Records":[`+strings.Join(good, ",")+`]}`)
	// bad.json: 7 invalid records (no time, a made-up region, not an
	// object, a terminal escape for a region) between two good ones.
	bad := []string{importRecord("d0", "111111111111", "us-east-1"), `{"eventID":"no-time"}`, `17`, `"x"`,
		importRecord("e0", "111111111111", "us-east-1/../x"), importRecord("e1", "111111111111", "\x1b[31mred"),
		`{"eventID":"x2"}`, `{"eventID":"x3"}`, importRecord("d1", "111111111111", "us-east-1")}
	writeFile(t, filepath.Join(logs, "bad.json"), `{"Records":[`+strings.Join(bad, ",")+`]}`)
	const invalid = 7

	cfg := fmt.Sprintf(twoAccounts, 0)
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, cfg)
	imp := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"import", "--no-progress"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	// Offline, first import: 8 stored, 7 refused as InvalidRecord.
	code, out, errs := imp("--data-dir", dataDir, "--config", cfgPath, "--output", "json", logs)
	rep := decodeImportReport(t, []byte(out))
	if code != exitRefused || rep.Imported != 8 || rep.Rejected != invalid {
		t.Fatalf("first import: exit %d, %+v; want %d, 8 imported, %d rejected\n%s", code, rep, exitRefused, invalid, errs)
	}
	group := func(rep importReport, account, region string) (records, imported, dups, refused int, reasons map[string]int) {
		for _, g := range rep.Groups {
			if g.Account == account && g.Region == region {
				return g.Records, g.Imported, g.Duplicates, g.Refused, g.Reasons
			}
		}
		return
	}
	if r, i, _, f, _ := group(rep, "111111111111", "us-east-1"); r != 6 || i != 6 || f != 0 {
		t.Errorf("111111111111/us-east-1: records %d imported %d refused %d; want 6 6 0 (%+v)", r, i, f, rep.Groups)
	}
	if r, i, _, _, _ := group(rep, "222222222222", "us-east-1"); r != 1 || i != 1 {
		t.Errorf("222222222222/us-east-1: records %d imported %d; want 1 1", r, i)
	}
	// Records with a bad region count under their account; unreadable
	// ones under no account.
	for _, region := range []string{"us-east-1/../x", "\x1b[31mred"} {
		if _, _, _, f, why := group(rep, "111111111111", region); f != 1 || why["InvalidRecord"] != 1 {
			t.Errorf("bad region %q of 111111111111: refused %d %v; want 1 InvalidRecord", region, f, why)
		}
	}
	if _, _, _, f, why := group(rep, "", ""); f != 5 || why["InvalidRecord"] != 5 {
		t.Errorf("unreadable: refused %d %v; want 5 InvalidRecord", f, why)
	}
	// The first 3 errors of bad.json are named, the other 4 counted.
	if len(rep.Errors) != 3 || rep.ErrorsOmittedByFile[filepath.Join(logs, "bad.json")] != invalid-3 {
		t.Errorf("errors %+v, omitted %v; want 3 named and %d counted", rep.Errors, rep.ErrorsOmittedByFile, invalid-3)
	}
	if want := fmt.Sprintf("bad.json: ... and %d more errors in this file", invalid-3); !strings.Contains(errs, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errs)
	}
	if n := strings.Count(errs, "\n"); n > 8 {
		t.Errorf("stderr has %d lines for %d refused records; want a few:\n%s", n, invalid, errs)
	}
	if strings.Contains(errs, "\x1b") {
		t.Errorf("stderr carries a terminal escape from a record:\n%q", errs)
	}
	if len(rep.Hints) != 1 || rep.Hints[0].Code != "InvalidRecord" || rep.Hints[0].Count != invalid ||
		!strings.Contains(errs, "hint: 7 InvalidRecord") {
		t.Errorf("hints %+v; want one for InvalidRecord (7)\n%s", rep.Hints, errs)
	}

	// Offline, again with the good file only: all already there, exit 0,
	// in the table and the text output too.
	code, out, errs = imp("--data-dir", dataDir, "--config", cfgPath, "--output", "json", filepath.Join(logs, "good.json"))
	rep = decodeImportReport(t, []byte(out))
	if code != 0 || rep.Duplicates != len(good) || rep.Imported != 0 {
		t.Errorf("second import: exit %d, %+v; want 0, %d duplicates\n%s", code, rep, len(good), errs)
	}
	if _, _, d, _, _ := group(rep, "111111111111", "eu-west-1"); d != 1 {
		t.Errorf("111111111111/eu-west-1: %d duplicates; want 1", d)
	}
	// The table quotes what a record claims: no terminal escape.
	_, out, _ = imp("--data-dir", dataDir, "--config", cfgPath, logs)
	if strings.Contains(out, "\x1b") || !strings.Contains(out, `"\x1b[31mred"`) {
		t.Errorf("table shows a record's region unquoted:\n%q", out)
	}
	code, out, _ = imp("--data-dir", dataDir, "--config", cfgPath, filepath.Join(logs, "good.json"))
	if code != 0 || !strings.Contains(out, "Account") || !regexp.MustCompile(`111111111111\s+eu-west-1\s+1\s+0\s+1\s+0`).MatchString(out) {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	code, out, _ = imp("--data-dir", dataDir, "--config", cfgPath, "--output", "text", filepath.Join(logs, "good.json"))
	if code != 0 || !strings.Contains(out, "GROUP\t222222222222\tus-east-1\t1\t0\t1\t0\n") {
		t.Errorf("text: exit %d\n%s", code, out)
	}
	if code, _, errs := imp("--data-dir", dataDir, "--output", "yaml", logs); code != 2 {
		t.Errorf("--output yaml: exit %d; want 2\n%s", code, errs)
	}

	// Through a server, signed by alice (account 111111111111, not a
	// responder): bob's record is refused as AccountMismatch, with the
	// hint saying what to change.
	ts := startServer(t, cfg, "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	code, out, errs = imp("--endpoint-url", ts.endpoint, "--region", "us-east-1", "--output", "json", logs)
	rep = decodeImportReport(t, []byte(out))
	if code != exitRefused || rep.Imported != 7 || rep.Rejected != invalid+1 {
		t.Fatalf("through the server: exit %d, %+v; want 7 imported, %d rejected\n%s", code, rep, invalid+1, errs)
	}
	if _, i, _, f, why := group(rep, "222222222222", "us-east-1"); i != 0 || f != 1 || why["AccountMismatch"] != 1 {
		t.Errorf("222222222222 through alice: imported %d refused %d %v; want 0, 1 AccountMismatch", i, f, why)
	}
	if !strings.Contains(errs, "hint: 1 AccountMismatch") || !strings.Contains(errs, "responder") {
		t.Errorf("no AccountMismatch hint naming the responder key:\n%s", errs)
	}
	// Again, good records of alice's account only: exit 0.
	only := filepath.Join(dir, "alice.json")
	writeFile(t, only, `{"Records":[`+strings.Join(good[:5], ",")+`]}`)
	if code, out, errs := imp("--endpoint-url", ts.endpoint, "--region", "us-east-1", only); code != 0 {
		t.Errorf("alice's records again: exit %d\n%s%s", code, out, errs)
	}
}

// TestImportInterruptedReportsWhatWasCommitted: an import stopped by
// Ctrl-C (its context ending) prints its report and exits 130.
func TestImportInterruptedReportsWhatWasCommitted(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.json"), `{"Records":[`+importRecord("a", "111111111111", "us-east-1")+`]}`)
	dataDir := t.TempDir()
	writeFile(t, filepath.Join(dataDir, "cairn.yaml"), fmt.Sprintf(twoAccounts, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"import", "--no-progress", "--data-dir", dataDir, "--config", filepath.Join(dataDir, "cairn.yaml"),
		"--output", "json", dir}, &stdout, &stderr)
	rep := decodeImportReport(t, stdout.Bytes())
	if code != exitInterrupted || !rep.Interrupted || !strings.Contains(stderr.String(), "records committed") {
		t.Errorf("interrupted import: exit %d, %+v\n%s", code, rep, stderr.String())
	}
}

// TestImportHelpListsExitStatus: --help says what import does and what
// its exit statuses mean.
func TestImportHelpListsExitStatus(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("import --help: exit %d", code)
	}
	for _, want := range []string{"Exit status:", "255", "refused", "per account and region"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("import --help lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestImportErrorsStayFew: refusals in many files give a bounded number of
// lines (the first files' first errors, one count for the rest), not one
// line per record.
func TestImportErrorsStayFew(t *testing.T) {
	dir := t.TempDir()
	for f := range 40 {
		var recs []string
		for i := range 50 {
			recs = append(recs, fmt.Sprintf(`{"eventID":"f%d-%d"}`, f, i)) // no eventTime: refused
		}
		writeFile(t, filepath.Join(dir, fmt.Sprintf("f%02d.json", f)), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	}
	dataDir := t.TempDir()
	writeFile(t, filepath.Join(dataDir, "cairn.yaml"), fmt.Sprintf(twoAccounts, 0))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--no-progress", "--data-dir", dataDir, "--config", filepath.Join(dataDir, "cairn.yaml"), dir},
		&stdout, &stderr)
	lines := strings.Count(stderr.String(), "\n")
	if code != exitRefused || lines > 10*4+4 || !strings.Contains(stderr.String(), "more errors in 30 other files") ||
		!strings.Contains(stderr.String(), "hint: 2000 InvalidRecord") {
		t.Errorf("exit %d, %d lines of errors for 2,000 refused records in 40 files:\n%s", code, lines, stderr.String())
	}
}

// TestImportThroughServerDuplicateAccountMembers: a hostile tenant's record
// that names recipientAccountId twice belongs to the account its last member
// names (as encoding/json and the one-pass reader read it, TestLeadHostileRecords):
// alice, not a responder, cannot plant a record in bob's account by naming
// hers first, and one that names bob's first and hers last is stored as hers.
func TestImportThroughServerDuplicateAccountMembers(t *testing.T) {
	dir := t.TempDir()
	twice := func(id, first, last string) string {
		return `{"recipientAccountId":"` + first + `",` + strings.TrimPrefix(importRecord(id, last, "us-east-1"), "{")
	}
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	writeFile(t, filepath.Join(logs, "dup.json"), `{"Records":[`+twice("dup-bob", "111111111111", "222222222222")+`,`+
		twice("dup-alice", "222222222222", "111111111111")+`]}`)
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--no-progress", "--endpoint-url", ts.endpoint, "--region", "us-east-1", "--output", "json", logs}, &stdout, &stderr)
	rep := decodeImportReport(t, stdout.Bytes())
	if code != exitRefused || rep.Imported != 1 || rep.Rejected != 1 {
		t.Fatalf("exit %d, %+v; want 1 imported, 1 rejected\n%s", code, rep, stderr.String())
	}
	for _, g := range rep.Groups {
		switch g.Account {
		case "222222222222":
			if g.Imported != 0 || g.Refused != 1 || g.Reasons["AccountMismatch"] != 1 {
				t.Errorf("bob's group through alice: %+v; want 1 refused as AccountMismatch", g)
			}
		case "111111111111":
			if g.Imported != 1 || g.Refused != 0 {
				t.Errorf("alice's group: %+v; want 1 imported", g)
			}
		default:
			t.Errorf("a group of account %q", g.Account)
		}
	}
}
