package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/chromedp/chromedp"

	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// chromium returns the Chromium to drive, or skips t without one; with
// CAIRN_REQUIRE_CHROMIUM=1 (scripts/check.sh, CI) a missing one fails t.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CAIRN_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("CAIRN_REQUIRE_CHROMIUM=1 and no chromium on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH; set CAIRN_REQUIRE_CHROMIUM=1 to fail instead")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile at 1280×800.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 800),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	// The browser's calls end at the test's deadline (testwait), not at a
	// fixed 90 s: under load 12-15 the whole walk took longer than that.
	cancelT := context.CancelFunc(func() {})
	if d, ok := testwait.Deadline(t); ok {
		ctx, cancelT = context.WithDeadline(ctx, d)
	}
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil { // start the browser
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page as NAME.png in $CAIRN_CONSOLE_SCREENSHOTS
// (docs/console to refresh the docs' pictures), else nowhere.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CAIRN_CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()) // the viewport, PNG
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser drives the console in headless Chromium against a
// real cairn serve holding real records: sign in with a key, filter by
// EventName and ReadOnly=false (the rows are LookupEvents' answer), open a
// record (LookupEvents' CloudTrailEvent), download JSON (every page, the
// CloudTrailEvents of LookupEvents in order, byte for byte) and CSV, and
// start a trail's logging from the trails page.
func TestConsoleInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	logs := aliceLogs(t, "opensearch-catalog", "invictus-ir-aws_dataset", "plaso")
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0)+"lake:\n  import_roots: ["+logs+"]\n", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"import", "--endpoint-url", ts.endpoint, logs}, &out, &errb); code != 0 {
		t.Fatalf("import: %d\n%s\n%s", code, out.String(), errb.String())
	}
	// ImportRecords answers once its records are in the journal: wait until
	// the store holds them, so that the console and LookupEvents see the same.
	waitIngested(t, ts.endpoint)
	api := alice(ts)
	bg := context.Background()
	if _, err := api.CreateTrail(bg, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("cairn-logs")}); err != nil {
		t.Fatal(err)
	}

	// The write event most frequent on LookupEvents' first page, other than
	// those this test's own actions record (CreateTrail above, the
	// ConsoleLogin of the sign-in below: it would add a row after want).
	first, err := api.LookupEvents(bg, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
		{AttributeKey: types.LookupAttributeKeyReadOnly, AttributeValue: aws.String("false")}}})
	if err != nil || len(first.Events) == 0 {
		t.Fatalf("no write events imported: %v", err)
	}
	counts := map[string]int{}
	name := ""
	for _, e := range first.Events {
		if n := aws.ToString(e.EventName); n != "CreateTrail" && n != "ConsoleLogin" {
			counts[n]++
			if counts[n] > counts[name] {
				name = n
			}
		}
	}
	filter := []types.LookupAttribute{{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String(name)},
		{AttributeKey: types.LookupAttributeKeyReadOnly, AttributeValue: aws.String("false")}}
	want := lookupAll(t, api, &cloudtrail.LookupEventsInput{LookupAttributes: filter})

	// Sign in: a browser at / is sent to the console's sign-in.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.endpoint+"/"),
		chromedp.WaitVisible(chromedp.ID("signin-form")),
		chromedp.SendKeys(chromedp.ID("access_key_id"), "AKIAALICE00000000001"),
	); err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(loc, "/console/signin") {
		t.Errorf("a browser at / landed on %s; want the sign-in", loc)
	}
	screenshot(t, ctx, "signin")
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("secret_access_key"), "alice-secret-key"),
		chromedp.Click(chromedp.ID("signin-submit")),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("events-table")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "event-history")

	// Filter by EventName and ReadOnly=false through the form.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("k-new"), "EventName"),
		chromedp.SendKeys(chromedp.ID("v-new"), name),
		chromedp.Click(chromedp.ID("attr-add")),
		chromedp.SetValue(chromedp.ID("k-new-1"), "ReadOnly"),
		chromedp.SendKeys(chromedp.ID("v-new-1"), "false"),
		chromedp.Click(chromedp.ID("filter-apply")),
		chromedp.WaitVisible(chromedp.CSS(`#event-filter input[value="false"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if loc, err = chromedp.Run(ctx, chromedp.Location()); err != nil {
		t.Fatal(err)
	}
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("tr[data-event-id]")).map(r => r.dataset.eventId)`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "k=EventName") || !strings.Contains(loc, "k=ReadOnly") || !strings.Contains(loc, "v=false") {
		t.Errorf("the URL %s does not carry the filter", loc)
	}
	var wantIDs []string
	for _, e := range want {
		wantIDs = append(wantIDs, aws.ToString(e.EventId))
	}
	if n := min(50, len(wantIDs)); !slices.Equal(ids, wantIDs[:n]) {
		t.Errorf("filtered rows = %d %v; want LookupEvents' first page, %d events", len(ids), ids, n)
	}
	screenshot(t, ctx, "event-history-filtered")

	// Open the first record.
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-event-id] a`)),
		chromedp.WaitVisible(chromedp.ID("event-record")),
	); err != nil {
		t.Fatal(err)
	}
	record, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("event-record")))
	if err != nil {
		t.Fatal(err)
	}
	var got, wantRec any
	json.Unmarshal([]byte(record), &got)
	json.Unmarshal([]byte(aws.ToString(want[0].CloudTrailEvent)), &wantRec)
	if got == nil || fmt.Sprint(got) != fmt.Sprint(wantRec) {
		t.Errorf("the record page shows %.200s; want LookupEvents' CloudTrailEvent", record)
	}
	screenshot(t, ctx, "event-record")

	// Download JSON and CSV as the page's links do (the browser's session).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("event-back"))); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("download-json")); err != nil {
		t.Fatal(err)
	}
	jsonDoc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.getElementById("download-json").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	csvDoc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.getElementById("download-csv").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Records []json.RawMessage }
	if err := json.Unmarshal([]byte(jsonDoc), &doc); err != nil {
		t.Fatalf("JSON download: %v: %.200s", err, jsonDoc)
	}
	if len(doc.Records) != len(want) {
		t.Fatalf("JSON download holds %d records; LookupEvents %d", len(doc.Records), len(want))
	}
	for i, r := range doc.Records {
		if string(r) != aws.ToString(want[i].CloudTrailEvent) {
			t.Fatalf("JSON download record %d differs from LookupEvents' CloudTrailEvent", i)
		}
	}
	if lines := strings.Count(strings.TrimSpace(csvDoc), "\n"); !strings.HasPrefix(csvDoc, "Event ID,Event time,") || lines < len(want) {
		t.Errorf("CSV download: %d lines for %d events: %.100s", lines, len(want), csvDoc)
	}

	// Trails: start logging from the console.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.endpoint+"/console/trails?region=us-east-1"),
		chromedp.WaitVisible(chromedp.ID("trails-table")),
		chromedp.Click(chromedp.CSS(`#trails-table button[value="start"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#trails-table button[value="stop"]`)),
	); err != nil {
		t.Fatal(err)
	}
	st, err := api.GetTrailStatus(bg, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")})
	if err != nil || !aws.ToBool(st.IsLogging) {
		t.Errorf("after Start logging in the console: IsLogging %v, %v", st != nil && aws.ToBool(st.IsLogging), err)
	}
	// Create: AWS's validation message for a bad name, then a trail that
	// logs; delete it again (the confirmation accepted).
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS("#create-trail summary")),
		chromedp.SendKeys(chromedp.ID("trail-name"), "bad name!"),
		chromedp.Click(chromedp.ID("create-trail-submit")),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("page-error")); err != nil {
		t.Fatal(err)
	}
	msg, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("page-error")))
	if err != nil || !strings.HasPrefix(msg, "InvalidTrailNameException: ") {
		t.Errorf("creating a trail named %q shows %q; want AWS's InvalidTrailNameException", "bad name!", msg)
	}
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("trail-name")),
		chromedp.SendKeys(chromedp.ID("trail-name"), "from-console"),
		chromedp.Click(chromedp.ID("create-trail-submit")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-trail-arn$=":trail/from-console"] button[value="stop"]`)),
	); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "trails")
	if st, err := api.GetTrailStatus(bg, &cloudtrail.GetTrailStatusInput{Name: aws.String("from-console")}); err != nil || !aws.ToBool(st.IsLogging) {
		t.Errorf("the trail created in the console: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.confirm = () => true, true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`tr[data-trail-arn$=":trail/from-console"] .delete-trail button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr[data-trail-arn$=":trail/from-console"]`)),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := api.GetTrailStatus(bg, &cloudtrail.GetTrailStatusInput{Name: aws.String("from-console")}); errCode(err) != "TrailNotFoundException" {
		t.Errorf("after Delete in the console, GetTrailStatus = %v; want TrailNotFoundException", err)
	}
	// The StartLogging calls are in Event History as the console's.
	var starts []types.Event
	testwait.UntilNil(t, "2 StartLogging records (Start logging, and the start of the trail created)", func() error {
		evs, err := api.LookupEvents(bg, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("StartLogging")},
			{AttributeKey: types.LookupAttributeKeyAccessKeyId, AttributeValue: aws.String("AKIAALICE00000000001")}}})
		if err != nil {
			t.Fatal(err)
		}
		if starts = evs.Events; len(starts) != 2 {
			return fmt.Errorf("%d StartLogging records", len(starts))
		}
		return nil
	})
	for _, e := range starts {
		if ev := aws.ToString(e.CloudTrailEvent); !strings.Contains(ev, `"sessionCredentialFromConsole":"true"`) {
			t.Errorf("StartLogging record %s is not from the console", ev)
		}
	}

	// Insights: an Insight on the filtered events, imported as the
	// detector writes it; its chart counts them from Event History.
	start := aws.ToTime(want[0].EventTime).Truncate(time.Minute)
	in := insights.Insight{Key: insights.Key{Account: "111111111111", Region: "us-east-1", InsightType: "ApiCallRateInsight",
		EventSource: aws.ToString(want[0].EventSource), EventName: name}, State: "Start", Start: start,
		BaselineAverage: 0.01, BaselineMinutes: 10080, InsightAverage: 3, InsightMinutes: 1}
	var recs []json.RawMessage
	for _, state := range []string{"Start", "End"} {
		in.State, in.End = state, start.Add(2*time.Minute)
		r, err := insights.Record(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r.Raw)
	}
	insDir := t.TempDir()
	b, _ := json.Marshal(map[string]any{"Records": recs})
	if err := os.WriteFile(filepath.Join(insDir, "insights.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run(context.Background(), []string{"import", "--endpoint-url", ts.endpoint, insDir}, &out, &errb); code != 0 {
		t.Fatalf("import of the Insight: %d\n%s", code, errb.String())
	}
	waitIngested(t, ts.endpoint)
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.endpoint+"/console/insights?region=us-east-1")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("insights-table")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "insights")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`tr[data-insight-id] a`))); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("insight-chart")); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS("#insight-chart title")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(title, "Calls a minute of "+name) || strings.Contains(title, "(0 events") {
		t.Errorf("the chart's title is %q; want the calls of %s", title, name)
	}
	screenshot(t, ctx, "insight-chart")

	// Lake: a store holding the real records; a sample query run from the
	// editor shows what GetQueryResults answers, and downloads as CSV.
	eds, err := api.CreateEventDataStore(bg, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("console"),
		RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	storeID := aws.ToString(eds.EventDataStoreArn)
	storeID = storeID[strings.LastIndex(storeID, "/")+1:]
	if code := run(context.Background(), []string{"import", "--endpoint-url", ts.endpoint, "--into", storeID, logs}, &out, &errb); code != 0 {
		t.Fatalf("import --into: %d\n%s", code, errb.String())
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.endpoint+"/console/lake?region=us-east-1")); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("query-form")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`button.sample:nth-of-type(2)`))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "lake")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("query-run"))); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("results-table")); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "lake-results")
	queryID, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("query-id")))
	if err != nil {
		t.Fatal(err)
	}
	res, err := api.GetQueryResults(bg, &cloudtrail.GetQueryResultsInput{QueryId: aws.String(queryID)})
	if err != nil {
		t.Fatal(err)
	}
	cells, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("#results-table tbody tr")).map(r => Array.from(r.cells).map(c => c.textContent))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != len(res.QueryResultRows) || len(cells) < 2 {
		t.Fatalf("results table has %d rows; GetQueryResults %d", len(cells), len(res.QueryResultRows))
	}
	for i, row := range res.QueryResultRows {
		var vals []string
		for _, cell := range row {
			for _, v := range cell {
				vals = append(vals, v)
			}
		}
		if !slices.Equal(cells[i], vals) {
			t.Errorf("results row %d = %v; GetQueryResults %v", i, cells[i], vals)
		}
	}
	csvText, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch(document.getElementById("query-download").href).then(r => r.text())`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(strings.TrimSpace(csvText), "\n"); lines != len(res.QueryResultRows) || !strings.HasPrefix(csvText, "eventSource,calls\n") {
		t.Errorf("CSV download: %d rows, %.80q; want %d rows under eventSource,calls", lines, csvText, len(res.QueryResultRows))
	}

	// Create an event data store in the console: AWS's validation message
	// for a bad name, then one without termination protection; delete it.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(ts.endpoint+"/console/lake?region=us-east-1"),
		chromedp.WaitVisible(chromedp.ID("stores-table")),
		chromedp.Click(chromedp.CSS("#create-store summary")),
		chromedp.SendKeys(chromedp.ID("store-name"), "x!"),
		chromedp.Click(chromedp.ID("create-store-submit")),
	); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(ctx, chromedp.ID("page-error")); err != nil {
		t.Fatal(err)
	}
	if msg, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.ID("page-error"))); err != nil || !strings.HasPrefix(msg, "InvalidParameterException: ") {
		t.Errorf("creating a store named %q shows %q; want AWS's InvalidParameterException", "x!", msg)
	}
	if err := chromedp.Do(ctx,
		chromedp.Clear(chromedp.ID("store-name")),
		chromedp.SendKeys(chromedp.ID("store-name"), "from-console"),
		chromedp.Click(chromedp.ID("store-protection")),
		chromedp.Click(chromedp.ID("create-store-submit")),
	); err != nil {
		t.Fatal(err)
	}
	// The page after the create selects the new store. (Another store was
	// selected before it, so waiting for any selected row could return
	// before the create was answered.)
	testwait.UntilNil(t, "the Lake page selecting the store created in the console", func() error {
		// Evaluate fails while the page navigates: try again.
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const th = document.querySelector('#stores-table tr[aria-current="true"] th'); return !!th && th.textContent.trim() === "from-console" && !!document.querySelector('#stores-table tr[aria-current="true"] .delete-store button') })()`))
		if err == nil && !ok {
			err = errors.New("not selected")
		}
		return err
	})
	screenshot(t, ctx, "lake-stores")
	stores, err := api.ListEventDataStores(bg, &cloudtrail.ListEventDataStoresInput{})
	if err != nil {
		t.Fatal(err)
	}
	var created string
	for _, s := range stores.EventDataStores {
		if aws.ToString(s.Name) == "from-console" {
			created = aws.ToString(s.EventDataStoreArn)
		}
	}
	if got, err := api.GetEventDataStore(bg, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(created)}); err != nil || aws.ToBool(got.TerminationProtectionEnabled) {
		t.Fatalf("the store created in the console: %+v, %v; want it, unprotected", got, err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.confirm = () => true, true`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(`#stores-table tr[aria-current="true"] .delete-store button`)),
		chromedp.WaitNotPresent(chromedp.CSS(`#stores-table tr[data-store-id="`+created[strings.LastIndex(created, "/")+1:]+`"] .delete-store`)),
	); err != nil {
		t.Fatal(err)
	}
	if got, err := api.GetEventDataStore(bg, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(created)}); err != nil || got.Status != "PENDING_DELETION" {
		t.Errorf("after Delete in the console: %v, %v; want PENDING_DELETION", got.Status, err)
	}

	// Phone width: every page fits the screen (wide tables scroll inside
	// their box, not the page).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844)); err != nil {
		t.Fatal(err)
	}
	for _, pg := range []struct{ name, path, sel string }{
		{"event-history-phone", "/console/events?region=us-east-1", "events-table"},
		{"", "/console/event?region=us-east-1&id=" + wantIDs[0], "event-record"},
		{"", "/console/insights?region=us-east-1", "insights-table"},
		{"", "/console/trails?region=us-east-1", "trails-table"},
		{"", "/console/lake?region=us-east-1", "query-form"},
		{"", "/console/lake/query?region=us-east-1&id=" + queryID, "results-table"},
	} {
		if err := chromedp.Do(ctx, chromedp.Navigate(ts.endpoint+pg.path)); err != nil {
			t.Fatal(err)
		}
		if err := waitFor(ctx, chromedp.ID(pg.sel)); err != nil {
			t.Fatal(err)
		}
		over, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth - document.documentElement.clientWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if over > 0 {
			t.Errorf("%s at 390 px is %d px wider than the screen", pg.path, over)
		}
		if pg.name != "" {
			screenshot(t, ctx, pg.name)
		}
	}
}

// waitFor waits for sel until shortly before ctx's deadline (the test's:
// newBrowser), leaving time to tell, on failure, where the browser is and
// what the page says.
func waitFor(ctx context.Context, sel chromedp.ID) error {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if d, ok := ctx.Deadline(); ok {
		wctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
	}
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(sel)); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		return fmt.Errorf("waiting for #%s: %w; at %s: %.500s", string(sel), err, loc, body)
	}
	return nil
}
