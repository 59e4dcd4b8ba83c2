package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/importer"
)

// agedLogFile is a trail log file of account's records, one per age
// (eventTime = now - age), tagged so their eventIDs are distinct.
func agedLogFile(tag, account string, now time.Time, ages []time.Duration) []byte {
	var recs []string
	for i, age := range ages {
		recs = append(recs, fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":%q},"eventTime":%q,`+
			`"eventSource":"s3.amazonaws.com","eventName":"Get%d","awsRegion":"us-east-1","eventID":"%s-%d","eventType":"AwsApiCall",`+
			`"eventCategory":"Management","readOnly":true,"recipientAccountId":%q}`,
			account, now.Add(-age).UTC().Format(time.RFC3339), i, tag, i, account))
	}
	return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`)
}

// TestImportsKeepWhatTheyReport: an import applies its store's retention
// period (judged by eventTime, as AWS judges it): a record older than the
// retention is not loaded and is reported, counted, in ListImportFailures;
// what the import reports as EventsCompleted is queryable and stays through
// the retention sweep and a restart; imports (GetImport, ListImports,
// ListImportFailures, their statistics) survive the restart, a completed
// one, a stopped one and one the shutdown interrupted alike, and stay the
// importing account's only.
func TestImportsKeepWhatTheyReport(t *testing.T) {
	const day = 24 * time.Hour
	ctx := context.Background()
	now := time.Now()
	// Ages around each retention's edge, plus records of 2021.
	ages := []time.Duration{time.Hour, 6 * day, 8 * day, 30 * day, 365 * day, 367 * day, 5 * 365 * day, 5 * 365 * day}
	root, gdir := t.TempDir(), t.TempDir()
	for _, f := range []string{"a", "b", "c", "d", "e"} {
		os.WriteFile(filepath.Join(root, f+".json"), agedLogFile(f, acctA, now, ages), 0o600)
	}
	logs, err := local.New("gated-logs", gdir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := logs.Put(ctx, fmt.Sprintf("AWSLogs/%s/CloudTrail/us-east-1/2024/01/01/f%d.json", acctA, i), agedLogFile(fmt.Sprintf("g%d", i), acctA, now, ages), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	g := &gated{Bucket: logs}
	dir := t.TempDir()
	opts := Options{ImportRoots: []string{root}, Buckets: func(name string) (Bucket, bool) {
		if name == "gated-logs" {
			return g, true
		}
		return nil, false
	}}
	e := newEnvIn(t, dir, opts)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	start := func(c *cloudtrail.Client, store, uri string) *string {
		t.Helper()
		im, err := c.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{store},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri), S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatalf("StartImport %s: %v", uri, err)
		}
		return im.ImportId
	}
	count := func(c *cloudtrail.Client, id string) string {
		t.Helper()
		return runQuery(t, c, `SELECT count(*) AS n FROM `+id)[0]["n"]
	}
	type imported struct {
		id, store      string
		events, failed int64
		failures       []string
		status         types.ImportStatus
	}
	var done []imported
	// Each retention keeps the records younger than it: 5 files of
	// len(ages) records each.
	for _, c := range []struct {
		retention int32
		kept      int // records of one file within the retention
	}{{7, 2}, {30, 3}, {366, 5}, {3653, 8}} {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("retention-%d", c.retention)),
			RetentionPeriod: aws.Int32(c.retention), StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		id := storeID(st.EventDataStoreArn)
		imp := start(a, id, root)
		got := waitImport(t, a, imp)
		kept, expired := int64(5*c.kept), int64(5*(len(ages)-c.kept))
		wantFailed := int64(0)
		if expired > 0 {
			wantFailed = 1
		}
		if got.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(got.ImportStatistics.EventsCompleted) != kept ||
			aws.ToInt64(got.ImportStatistics.FailedEntries) != wantFailed || aws.ToInt64(got.ImportStatistics.FilesCompleted) != 5 {
			t.Errorf("retention %d: import %s, %s; want COMPLETED, %d events, %d failed entries, 5 files", c.retention, got.ImportStatus, stats(got.ImportStatistics), kept, wantFailed)
		}
		f, err := a.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: imp})
		if err != nil || int64(len(f.Failures)) != wantFailed {
			t.Fatalf("retention %d: ListImportFailures = %+v, %v", c.retention, f, err)
		}
		var msgs []string
		for _, x := range f.Failures {
			msgs = append(msgs, aws.ToString(x.ErrorMessage))
			if want := fmt.Sprintf("%d records are older than the event data store's retention period (%d days)", expired, c.retention); !strings.Contains(aws.ToString(x.ErrorMessage), want) ||
				aws.ToString(x.Location) != root {
				t.Errorf("retention %d: failure %s at %s; want %q at %s", c.retention, aws.ToString(x.ErrorMessage), aws.ToString(x.Location), want, root)
			}
		}
		if n := count(a, id); n != fmt.Sprint(kept) {
			t.Errorf("retention %d: %s events queryable; the import reported %d", c.retention, n, kept)
		}
		// The sweep keeps what the import reported.
		if err := e.lake.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(a, id); n != fmt.Sprint(kept) {
			t.Errorf("retention %d: %s events after the retention sweep; the import reported %d", c.retention, n, kept)
		}
		done = append(done, imported{aws.ToString(imp), id, kept, wantFailed, msgs, types.ImportStatusCompleted})
	}

	// A stopped import, and one still reading when the server stops.
	for _, status := range []types.ImportStatus{types.ImportStatusStopped, types.ImportStatusFailed} {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("gated-" + string(status)), RetentionPeriod: aws.Int32(3653)})
		if err != nil {
			t.Fatal(err)
		}
		id := storeID(st.EventDataStoreArn)
		g.mu.Lock()
		g.opened = 0
		g.mu.Unlock()
		imp := start(a, id, "s3://gated-logs/AWSLogs/")
		if status == types.ImportStatusStopped {
			if _, err := a.StopImport(ctx, &cloudtrail.StopImportInput{ImportId: imp}); err != nil {
				t.Fatal(err)
			}
			waitImport(t, a, imp)
			e.lake.mu.Lock()
			ch := e.lake.imports[aws.ToString(imp)].done
			e.lake.mu.Unlock()
			<-ch
		}
		done = append(done, imported{id: aws.ToString(imp), store: id, status: status, events: -1, failed: -1})
	}

	// Restart: the server stops (interrupting the gated import) and a new
	// one opens the same data dir.
	if err := e.lake.Close(); err != nil {
		t.Fatal(err)
	}
	e = newEnvIn(t, dir, opts)
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")
	list, err := a.ListImports(ctx, &cloudtrail.ListImportsInput{})
	if err != nil || len(list.Imports) != len(done) {
		t.Errorf("ListImports after the restart: %d imports, %v; want %d", len(list.Imports), err, len(done))
	}
	for _, im := range done {
		got, err := a.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: &im.id})
		if err != nil {
			t.Errorf("GetImport %s after the restart: %v", im.id, err)
			continue
		}
		if got.ImportStatus != im.status {
			t.Errorf("import %s after the restart: %s; want %s", im.id, got.ImportStatus, im.status)
		}
		f, err := a.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: &im.id})
		if err != nil {
			t.Errorf("ListImportFailures %s after the restart: %v", im.id, err)
			continue
		}
		if im.events >= 0 {
			if aws.ToInt64(got.ImportStatistics.EventsCompleted) != im.events || aws.ToInt64(got.ImportStatistics.FailedEntries) != im.failed {
				t.Errorf("import %s after the restart: %s; want %d events, %d failed entries", im.id, stats(got.ImportStatistics), im.events, im.failed)
			}
			var msgs []string
			for _, x := range f.Failures {
				msgs = append(msgs, aws.ToString(x.ErrorMessage))
			}
			if fmt.Sprint(msgs) != fmt.Sprint(im.failures) {
				t.Errorf("import %s failures after the restart: %q; want %q", im.id, msgs, im.failures)
			}
			if n := count(a, im.store); n != fmt.Sprint(im.events) {
				t.Errorf("store %s after the restart: %s events; the import reported %d", im.store, n, im.events)
			}
		}
		if im.status == types.ImportStatusFailed && (len(f.Failures) == 0 || !strings.Contains(aws.ToString(f.Failures[len(f.Failures)-1].ErrorMessage), "shutting down")) {
			t.Errorf("interrupted import %s: failures %+v; want one saying cairn was shutting down", im.id, f.Failures)
		}
		if _, err := b.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: &im.id}); code(err) != "ImportNotFoundException" {
			t.Errorf("another account's GetImport %s after the restart: %v", im.id, err)
		}
		// ListImportFailures models no ImportNotFoundException: an
		// unknown import is its InvalidParameterException.
		if _, err := b.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: &im.id}); code(err) != "InvalidParameterException" {
			t.Errorf("another account's ListImportFailures %s after the restart: %v", im.id, err)
		}
	}
	if l, err := b.ListImports(ctx, &cloudtrail.ListImportsInput{}); err != nil || len(l.Imports) != 0 {
		t.Errorf("another account's ListImports after the restart: %+v, %v", l, err)
	}
	// Nothing runs after the restart: a new import of the account starts.
	if im := start(a, done[0].store, root); waitImport(t, a, im).ImportStatus != types.ImportStatusCompleted {
		t.Errorf("a new import after the restart did not complete")
	}
}

// stats shows ImportStatistics' counts.
func stats(s *types.ImportStatistics) string {
	if s == nil {
		return "no statistics"
	}
	return fmt.Sprintf("%d files, %d events, %d failed entries", aws.ToInt64(s.FilesCompleted), aws.ToInt64(s.EventsCompleted), aws.ToInt64(s.FailedEntries))
}

// TestSinkKeepsEachStoresRetention: the Sink behind every import (the
// API's, and cairn import --into without a server) applies each store's
// retention: the importer drops what every store's retention refuses
// (MinTime, counted Expired), and a store never takes a record older than
// its own retention, even one handed to the Sink directly.
func TestSinkKeepsEachStoresRetention(t *testing.T) {
	const day = 24 * time.Hour
	ctx := context.Background()
	l, err := openTest("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := audit.Principal{AccountID: acctA, Region: "us-east-1"}
	short, err := l.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("short"), RetentionPeriod: ptr(7)})
	if err != nil {
		t.Fatal(err)
	}
	long, err := l.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("long"), RetentionPeriod: ptr(366)})
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	now := time.Now()
	ages := []time.Duration{time.Hour, 6 * day, 8 * day, 30 * day, 365 * day, 367 * day, 5 * 365 * day}
	os.WriteFile(filepath.Join(root, "aged.json"), agedLogFile("s", acctA, now, ages), 0o600)
	for _, c := range []struct {
		name            string
		stores          []string
		imported        int64
		expired         int64
		inShort, inLong string
	}{
		{"short store", []string{short.ID}, 2, 5, "2", "0"},
		{"long store", []string{long.ID}, 5, 2, "2", "5"},
		{"both stores", []string{short.ID, long.ID}, 0, 2, "2", "5"}, // all 5 already in one or both
	} {
		sink, err := l.NewSink(ctx, acctA, c.stores)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := importer.Run(ctx, []string{filepath.Join(root, "aged.json")}, importer.Options{Sink: sink, Accounts: sink.Accounts, MinTime: sink.MinTime()})
		if err == nil {
			err = sink.Finish(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if rep.Imported != c.imported || rep.Expired != c.expired {
			t.Errorf("%s: imported %d, expired %d; want %d, %d", c.name, rep.Imported, rep.Expired, c.imported, c.expired)
		}
		for id, want := range map[string]string{short.ID: c.inShort, long.ID: c.inLong} {
			res, err := l.Query(ctx, acctA, `SELECT count(*) AS n FROM `+id)
			if err != nil || *res.Rows[0][0] != want {
				t.Errorf("%s: store %s holds %v events (%v); want %s", c.name, id, res, err, want)
			}
		}
	}
	// Handed directly, a record older than a store's retention is not
	// stored in it (nor reported as inserted).
	sink, err := l.NewSink(ctx, acctA, []string{short.ID})
	if err != nil {
		t.Fatal(err)
	}
	old := now.Add(-10 * day)
	res, fails, err := sink.AppendReport(ctx, []audit.Record{{Account: acctA, EventID: "direct-old", Time: old,
		Raw: []byte(`{"eventID":"direct-old","eventTime":"` + old.UTC().Format(time.RFC3339) + `","recipientAccountId":"` + acctA + `"}`)}})
	if err != nil || res.Inserted != 0 || len(fails) != 1 || fails[0].Code != "Expired" {
		t.Errorf("AppendReport of an expired record: %+v, %+v, %v; want nothing inserted, one Expired failure", res, fails, err)
	}
	if r, err := l.Query(ctx, acctA, `SELECT count(*) AS n FROM `+short.ID+` WHERE eventID = 'direct-old'`); err != nil || *r.Rows[0][0] != "0" {
		t.Errorf("the short store took a record older than its retention: %v, %v", r, err)
	}
}
