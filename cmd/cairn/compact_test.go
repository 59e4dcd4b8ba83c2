package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// TestImportCompacts: an offline import into an empty store writes it in
// the compacted order and says so instead of compacting; one that makes
// most of a store that held rows compacts it after printing its report;
// one that adds a little to it does not; --no-compact skips it; cairn
// compact compacts on demand, sealing the complete days. The records are
// all there after each.
func TestImportCompacts(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	var recs []string
	for i := range 40 {
		recs = append(recs, importRecord(fmt.Sprintf("a%d", i), "111111111111", "us-east-1"))
	}
	writeFile(t, filepath.Join(logs, "first.json"), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	more := filepath.Join(dir, "more.json")
	writeFile(t, more, `{"Records":[`+importRecord("b0", "111111111111", "us-east-1")+`]}`)
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0))
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	count := func() int64 {
		t.Helper()
		st, err := duckdb.Open(filepath.Join(dataDir, storeFile), duckdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n, err := st.LastSeq(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	code, out, errs := cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, "--output", "json", logs)
	if code != 0 || !strings.Contains(errs, "in its compacted order; not compacted") || decodeImportReport(t, []byte(out)).Imported != 40 {
		t.Fatalf("first import: exit %d\n%s\n%s", code, out, errs)
	}
	if n := count(); n != 40 {
		t.Errorf("%d records after the first import; want 40", n)
	}
	code, _, errs = cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, more)
	if code != 0 || strings.Contains(errs, "compacted") {
		t.Errorf("a small import: exit %d, compacted: %s", code, errs)
	}
	code, out, errs = cli("compact", "--data-dir", dataDir)
	// The records are of 2024: every one is sealed (docs/store.md, "The
	// sealed tier").
	// The first import's block was sealed at the import's faster level:
	// compressed again first (docs/store.md, "Sealing at import speed,
	// compressed later"), and then no more.
	if code != 0 || !regexp.MustCompile(`^compacted 41 records \(41 sealed\): .*; [1-9][0-9]* sealed blocks compressed again first\n$`).MatchString(out) {
		t.Errorf("cairn compact: exit %d\n%s\n%s", code, out, errs)
	}
	if n := count(); n != 41 {
		t.Errorf("%d records after compact; want 41", n)
	}
	code, out, errs = cli("compact", "--data-dir", dataDir, "--output", "json")
	var rep compactReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || rep.Records != 41 || rep.Sealed != 41 || rep.BytesAfter <= 0 || rep.RowGroupsAfter != 0 || rep.Recompressed != 0 {
		t.Errorf("cairn compact --output json: exit %d, %v, %+v\n%s\n%s", code, err, rep, out, errs)
	}
	code, out, errs = cli("compact", "--data-dir", dataDir, "--output", "table")
	if code != 0 || !strings.Contains(out, "records") || !strings.Contains(out, "sealed") || !strings.Contains(out, "41") {
		t.Errorf("cairn compact --output table: exit %d\n%s\n%s", code, out, errs)
	}
	if code, _, errs = cli("compact", "--data-dir", dataDir, "--output", "yaml"); code == 0 {
		t.Errorf("cairn compact --output yaml: exit 0: %s", errs)
	}
	// Into a store that held a record: no known order, compacted.
	for _, noCompact := range []bool{false, true} {
		other := t.TempDir()
		code, _, errs = cli("import", "--no-progress", "--data-dir", other, "--config", cfgPath, more)
		if code != 0 || !strings.Contains(errs, "not compacted") {
			t.Errorf("one record into an empty store: exit %d: %s", code, errs)
		}
		args := []string{"import", "--no-progress", "--data-dir", other, "--config", cfgPath}
		if noCompact {
			args = append(args, "--no-compact")
		}
		code, _, errs = cli(append(args, logs)...)
		if compacted := strings.Contains(errs, "compacted the store"); code != 0 || compacted == noCompact {
			t.Errorf("most of a store that held a record (--no-compact %v): exit %d: %s", noCompact, code, errs)
		}
	}
	if code, _, _ := cli("compact", "--data-dir", t.TempDir()); code == 0 {
		t.Error("cairn compact of a data dir without a store succeeded")
	}
}

// TestImportSealsThenServes: an offline import seals the complete days'
// records as it appends them (here all of them, of 2024); a server over
// the data dir answers LookupEvents for them through the SDK, and its
// /metrics shows the sealed tier: the records, the blocks, the segment
// bytes and the reads the lookups made.
func TestImportSealsThenServes(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	var recs []string
	for i := range 40 {
		recs = append(recs, importRecord(fmt.Sprintf("s%d", i), "111111111111", "us-east-1"))
	}
	writeFile(t, filepath.Join(logs, "first.json"), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	dataDir := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 0)
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, cfg)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, logs}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stderr.String(), "sealed the complete days' records") {
		t.Fatalf("cairn import: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	ts := startServer(t, cfg, dataDir)
	evs := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{
		StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC))})
	got := map[string]bool{}
	for _, e := range evs {
		got[aws.ToString(e.EventId)] = true
	}
	for i := range 40 {
		if !got[fmt.Sprintf("s%d", i)] {
			t.Fatalf("LookupEvents answered %d events, without s%d", len(evs), i)
		}
	}
	resp, err := http.Get(ts.endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	metric := func(name string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no %s:\n%s", name, body)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if n := metric("cairn_store_sealed_records"); n != 40 {
		t.Errorf("cairn_store_sealed_records %v, want 40", n)
	}
	if n := metric("cairn_store_sealed_blocks"); n < 1 {
		t.Errorf("cairn_store_sealed_blocks %v", n)
	}
	if n, live := metric("cairn_store_sealed_segment_bytes"), metric("cairn_store_sealed_live_bytes"); n <= 0 || live <= 0 || live > n {
		t.Errorf("cairn_store_sealed_segment_bytes %v, cairn_store_sealed_live_bytes %v", n, live)
	}
	if n := metric("cairn_store_sealed_reads_total"); n < 1 {
		t.Errorf("cairn_store_sealed_reads_total %v after lookups of sealed records", n)
	}
	// The import's block, written at its faster level, is compressed
	// again by the server in the background: none left pending, the
	// block written again, its records answered as before.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ts.endpoint + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if metric("cairn_store_sealed_pending_blocks") == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cairn_store_sealed_pending_blocks %v after 30 s", metric("cairn_store_sealed_pending_blocks"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := metric("cairn_store_sealed_writes_total"); n < 1 {
		t.Errorf("cairn_store_sealed_writes_total %v after the recompression", n)
	}
	if n, live := metric("cairn_store_sealed_segment_bytes"), metric("cairn_store_sealed_live_bytes"); n != live {
		t.Errorf("cairn_store_sealed_segment_bytes %v, cairn_store_sealed_live_bytes %v after the recompression: the import's segment should be gone", n, live)
	}
	again := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{
		StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC))})
	if len(again) != len(evs) {
		t.Fatalf("LookupEvents answered %d events after the recompression, %d before", len(again), len(evs))
	}
	for i := range evs {
		if aws.ToString(again[i].CloudTrailEvent) != aws.ToString(evs[i].CloudTrailEvent) {
			t.Fatalf("event %d after the recompression: %s, before: %s", i, aws.ToString(again[i].CloudTrailEvent), aws.ToString(evs[i].CloudTrailEvent))
		}
	}
}

// TestServerImportSeals: `cairn import --endpoint-url` of a day that ended
// long ago into a running server: the server's store seals the records
// as it appends them (docs/store.md, "Sealing during a server's import"),
// LookupEvents answers each once, the same files imported again add
// nothing, and the server compresses the blocks again in the background,
// answering the same events after.
func TestServerImportSeals(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	const files, per = 3, 100
	for f := range files {
		var recs []string
		for i := range per {
			recs = append(recs, importRecord(fmt.Sprintf("v%d-%d", f, i), "111111111111", "us-east-1"))
		}
		writeFile(t, filepath.Join(logs, fmt.Sprintf("f%d.json", f)), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	}
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	metric := func(name string) float64 {
		t.Helper()
		v, err := strconv.ParseFloat(metricAt(t, ts.endpoint, name), 64)
		if err != nil {
			t.Fatalf("/metrics %s: %v", name, err)
		}
		return v
	}
	lookup := func(when string) []string {
		t.Helper()
		evs := lookupAll(t, alice(ts), &cloudtrail.LookupEventsInput{
			StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC))})
		got := map[string]bool{}
		var raw []string
		for _, e := range evs {
			id := aws.ToString(e.EventId)
			if got[id] {
				t.Fatalf("%s: LookupEvents answered %s twice", when, id)
			}
			got[id] = true
			raw = append(raw, aws.ToString(e.CloudTrailEvent))
		}
		if len(got) != files*per {
			t.Fatalf("%s: LookupEvents answered %d events; want %d", when, len(got), files*per)
		}
		return raw
	}
	for _, when := range []string{"the import", "the import again"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{"import", "--no-progress", "--endpoint-url", ts.endpoint, logs}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d\n%s\n%s", when, code, out.String(), errb.String())
		}
		waitIngested(t, ts.endpoint)
		if n := metric("cairn_store_sealed_records"); n != files*per {
			t.Fatalf("after %s: cairn_store_sealed_records %v; want %d", when, n, files*per)
		}
	}
	before := lookup("after the imports")
	// The blocks, written at the import's faster level, are compressed
	// again once the server's appends stop sealing.
	for deadline := time.Now().Add(30 * time.Second); metric("cairn_store_sealed_pending_blocks") != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("cairn_store_sealed_pending_blocks %v after 30 s", metric("cairn_store_sealed_pending_blocks"))
		}
	}
	if n := metric("cairn_store_sealed_writes_total"); n < 2 {
		t.Errorf("cairn_store_sealed_writes_total %v after the recompression", n)
	}
	if after := lookup("after the recompression"); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("LookupEvents answers other events after the recompression")
	}
}

// TestServerImportSealsKeepsAccountsApart: a hostile tenant (bob) imports
// through the server, which seals them, records of an old day with the
// very event IDs another account (alice) imported and the server sealed
// before. Each account's copies are its own: bob's are stored, not taken
// for duplicates of alice's; each sees only its own, by time range, by
// EventId and when naming the other account; records bob sends in
// alice's account are refused and stored nowhere; alice's answers do not
// change.
func TestServerImportSealsKeepsAccountsApart(t *testing.T) {
	const files, per = 2, 100 // runs of 200 of a part and day: sealed
	write := func(dir, account, prefix string) string {
		os.MkdirAll(dir, 0o755)
		for f := range files {
			var recs []string
			for i := range per {
				recs = append(recs, importRecord(fmt.Sprintf("%s%d-%d", prefix, f, i), account, "us-east-1"))
			}
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d.json", f)), `{"Records":[`+strings.Join(recs, ",")+`]}`)
		}
		return dir
	}
	root := t.TempDir()
	aliceLogs := write(filepath.Join(root, "alice"), "111111111111", "v")
	bobLogs := write(filepath.Join(root, "bob"), "222222222222", "v")    // alice's IDs, bob's account
	intoAlice := write(filepath.Join(root, "into"), "111111111111", "x") // bob sending alice's account
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	importAs := func(key, secret, logs string) (int, string) {
		t.Helper()
		t.Setenv("AWS_ACCESS_KEY_ID", key)
		t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
		var out, errb bytes.Buffer
		code := run(context.Background(), []string{"import", "--no-progress", "--endpoint-url", ts.endpoint, logs}, &out, &errb)
		waitIngested(t, ts.endpoint)
		return code, out.String() + errb.String()
	}
	bobClient := ts.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")
	// own returns the events a client sees of the day, failing on any of
	// another account.
	own := func(who string, c *cloudtrail.Client, account string, attrs ...types.LookupAttribute) []string {
		t.Helper()
		evs := lookupAll(t, c, &cloudtrail.LookupEventsInput{LookupAttributes: attrs,
			StartTime: aws.Time(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)), EndTime: aws.Time(time.Date(2024, 1, 3, 0, 0, 0, 0, time.UTC))})
		var raw []string
		for _, e := range evs {
			r := aws.ToString(e.CloudTrailEvent)
			if !strings.Contains(r, `"recipientAccountId":"`+account+`"`) {
				t.Fatalf("%s sees another account's event: %s", who, r)
			}
			raw = append(raw, r)
		}
		return raw
	}
	if code, out := importAs("AKIAALICE00000000001", "alice-secret-key", aliceLogs); code != 0 {
		t.Fatalf("alice's import: exit %d\n%s", code, out)
	}
	before := own("alice", alice(ts), "111111111111")
	if len(before) != files*per {
		t.Fatalf("alice sees %d events; want %d", len(before), files*per)
	}
	if code, out := importAs("AKIABOB0000000000001", "bob-secret-key", bobLogs); code != 0 {
		t.Fatalf("bob's import of alice's IDs in his own account: exit %d (taken for duplicates?)\n%s", code, out)
	}
	if code, out := importAs("AKIABOB0000000000001", "bob-secret-key", intoAlice); code != exitRefused {
		t.Fatalf("bob's import into alice's account: exit %d; want %d\n%s", code, exitRefused, out)
	}
	v, err := strconv.ParseFloat(metricAt(t, ts.endpoint, "cairn_store_sealed_records"), 64)
	if err != nil || v != 2*files*per {
		t.Fatalf("cairn_store_sealed_records %v, %v; want %d (both accounts' copies sealed, nothing of bob's in alice's)", v, err, 2*files*per)
	}
	if got := own("bob", bobClient, "222222222222"); len(got) != files*per {
		t.Errorf("bob sees %d events; want his %d", len(got), files*per)
	}
	id := types.LookupAttribute{AttributeKey: types.LookupAttributeKeyEventId, AttributeValue: aws.String("v0-0")}
	if got := own("bob by EventId", bobClient, "222222222222", id); len(got) != 1 {
		t.Errorf("bob's EventId lookup of a shared ID: %d events; want his one", len(got))
	}
	acct := types.LookupAttribute{AttributeKey: types.LookupAttributeKey("AccountId"), AttributeValue: aws.String("111111111111")}
	if got := own("bob naming alice's account", bobClient, "222222222222", acct); len(got) != 0 {
		t.Errorf("bob naming alice's account sees %d events; want none", len(got))
	}
	if got := own("alice by EventId", alice(ts), "111111111111", id); len(got) != 1 {
		t.Errorf("alice's EventId lookup of a shared ID: %d events; want her one", len(got))
	}
	if after := own("alice", alice(ts), "111111111111"); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Error("alice's events changed after bob's imports")
	}
}
