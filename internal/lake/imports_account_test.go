package lake

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/local"
)

// logFile is a trail log file of n records: each of the accounts in turn
// owns one (through recipientAccountId, or only userIdentity.accountId
// when the account is prefixed with "ui:").
func logFile(tag string, n int, accounts ...string) []byte {
	var recs []string
	for i := range n {
		a := accounts[i%len(accounts)]
		recipient := `,"recipientAccountId":"` + a + `"`
		if acct, ok := strings.CutPrefix(a, "ui:"); ok {
			a, recipient = acct, ""
		}
		recs = append(recs, fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":%q},"eventTime":"2024-03-04T05:06:07Z",`+
			`"eventSource":"s3.amazonaws.com","eventName":"%s%d","awsRegion":"us-east-1","eventID":"%s-%d-%s","eventType":"AwsApiCall",`+
			`"eventCategory":"Management","readOnly":true%s}`, a, tag, i, tag, i, a, recipient))
	}
	return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`)
}

// TestImportsTakeOnlyTheCallersRecords is the hostile-tenant suite of
// imports: an account imports, from a configured bucket (cairn-logs, where
// cairn delivers every account's trails) and from a local root, only its
// own records; another account's delivered files are skipped unread and
// unnamed, its records in a shared file are refused and listed as
// failures. An organization store of the management account also takes the
// member accounts' records; nothing else does.
func TestImportsTakeOnlyTheCallersRecords(t *testing.T) {
	const acctC = "333333333333" // outside the organization
	ctx := context.Background()
	bdir := t.TempDir()
	logs, err := local.New("cairn-logs", bdir)
	if err != nil {
		t.Fatal(err)
	}
	key := func(acct, name string) string {
		return "AWSLogs/" + acct + "/CloudTrail/us-east-1/2024/03/04/" + acct + "_CloudTrail_us-east-1_20240304T0500Z_" + name + ".json"
	}
	orgKey := "AWSLogs/o-abcdefghij/" + acctB + "/CloudTrail/us-east-1/2024/03/04/" + acctB + "_CloudTrail_us-east-1_20240304T0500Z_org.json"
	for k, b := range map[string][]byte{
		key(acctA, "own"):     logFile("own", 10, acctA),
		key(acctB, "theirs"):  logFile("theirs", 7, acctB),
		orgKey:                logFile("org", 5, acctB),
		key(acctC, "outside"): logFile("outside", 3, acctC),
		"shared/mixed.json":   logFile("mixed", 12, acctA, acctB, acctC, "ui:"+acctA, "ui:"+acctB, "ui:"),
	} {
		if err := logs.Put(ctx, k, b, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "mixed.json"), logFile("local", 6, acctA, acctB), 0o600)

	e := newEnvWith(t, Options{ImportRoots: []string{root},
		Organization: &audit.Organization{ID: "o-abcdefghij", ManagementAccount: acctA, Members: []string{acctB}},
		Buckets: func(name string) (Bucket, bool) {
			if name == "cairn-logs" {
				return logs, true
			}
			return nil, false
		}})
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")
	store := func(c *cloudtrail.Client, name string, org bool) string {
		t.Helper()
		st, err := c.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name), RetentionPeriod: aws.Int32(3653),
			StartIngestion: aws.Bool(false), OrganizationEnabled: aws.Bool(org)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(st.EventDataStoreArn)[strings.LastIndex(aws.ToString(st.EventDataStoreArn), "/")+1:]
	}
	plainA, orgA, plainB := store(a, "plain", false), store(a, "org", true), store(b, "plain", false)
	// Only the management account makes organization stores, on create
	// and on update; a member is refused as AWS refuses it.
	if _, err := b.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("org"), OrganizationEnabled: aws.Bool(true)}); code(err) != "NotOrganizationMasterAccountException" {
		t.Errorf("a member's organization store: %v; want NotOrganizationMasterAccountException", err)
	}
	if _, err := b.UpdateEventDataStore(ctx, &cloudtrail.UpdateEventDataStoreInput{EventDataStore: aws.String(plainB), OrganizationEnabled: aws.Bool(true)}); code(err) != "NotOrganizationMasterAccountException" {
		t.Errorf("a member's store updated to an organization store: %v; want NotOrganizationMasterAccountException", err)
	}
	if _, err := newEnv(t).client("AKIAAAAAAAAAAAAAAAAA").CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("org"), OrganizationEnabled: aws.Bool(true)}); code(err) != "OrganizationsNotInUseException" {
		t.Errorf("an organization store where no organization is configured: %v; want OrganizationsNotInUseException", err)
	}

	type result struct {
		imported, failed int64
		failures         []types.ImportFailureListItem
		owners           map[string]int
	}
	imp := func(c *cloudtrail.Client, into, uri string) result {
		t.Helper()
		im, err := c.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{into},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri), S3BucketRegion: aws.String("us-east-1"),
				S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatalf("StartImport %s: %v", uri, err)
		}
		g := waitImport(t, c, im.ImportId)
		if g.ImportStatus != types.ImportStatusCompleted {
			t.Fatalf("import %s: %s", uri, g.ImportStatus)
		}
		f, err := c.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: im.ImportId})
		if err != nil {
			t.Fatal(err)
		}
		r := result{imported: aws.ToInt64(g.ImportStatistics.EventsCompleted), failed: aws.ToInt64(g.ImportStatistics.FailedEntries),
			failures: f.Failures, owners: map[string]int{}}
		for _, row := range runQuery(t, c, `SELECT coalesce(recipientAccountId, userIdentity.accountId) AS a, count(*) AS n FROM `+into+` GROUP BY 1`) {
			var n int
			fmt.Sscan(row["n"], &n)
			r.owners[row["a"]] = n
		}
		return r
	}
	check := func(name string, got result, imported int64, failed int, owners map[string]int) {
		t.Helper()
		if got.imported != imported || got.failed != int64(failed) || len(got.failures) != failed {
			t.Errorf("%s: imported %d, FailedEntries %d, %d failures listed; want %d, %d", name, got.imported, got.failed, len(got.failures), imported, failed)
		}
		for _, f := range got.failures {
			loc, msg := aws.ToString(f.Location), aws.ToString(f.ErrorMessage)
			if strings.Contains(loc, "AWSLogs/"+acctB) || strings.Contains(loc, "AWSLogs/"+acctC) || strings.Contains(loc, "o-abcdefghij") {
				t.Errorf("%s: a failure names another account's delivered file: %s", name, loc)
			}
			if !strings.Contains(msg, "AccountMismatch") && !strings.Contains(msg, "no recipientAccountId") {
				t.Errorf("%s: failure %s: %s", name, loc, msg)
			}
		}
		if fmt.Sprint(got.owners) != fmt.Sprint(owners) {
			t.Errorf("%s: the store holds records of %v; want %v", name, got.owners, owners)
		}
	}

	// The whole shared bucket into A's plain store: A's file and A's records
	// of the shared file (2 by recipientAccountId, 2 by userIdentity); B's
	// and C's delivered files unread and unnamed; in the shared file, B's,
	// C's and B's-by-userIdentity records refused (6), and the 2 records
	// naming no account invalid.
	check("bucket into plain", imp(a, plainA, "s3://cairn-logs"), 10+4, 6+2, map[string]int{acctA: 14})
	// Naming another account's folder outright: nothing.
	check("B's folder into plain", imp(a, plainA, "s3://cairn-logs/AWSLogs/"+acctB+"/"), 0, 0, map[string]int{acctA: 14})
	check("org folder into plain", imp(a, plainA, "s3://cairn-logs/AWSLogs/o-abcdefghij/"), 0, 0, map[string]int{acctA: 14})
	// A local root: the same rule.
	check("local into plain", imp(a, plainA, "file://"+root), 3, 3, map[string]int{acctA: 17})
	// The management account's organization store takes the member's
	// records too (its delivered files, the organization trail's, and its
	// records in the shared file), not the outsider's.
	check("bucket into org", imp(a, orgA, "s3://cairn-logs"), 10+7+5+4+4, 2+2, map[string]int{acctA: 14, acctB: 16})
	// A member account takes only its own, into any of its stores.
	check("bucket into B", imp(b, plainB, "s3://cairn-logs"), 7+5+4, 6+2, map[string]int{acctB: 16})
	if t.Failed() {
		return
	}
	// A's plain store never holds another account's record.
	if rows := runQuery(t, a, `SELECT count(*) AS n FROM `+plainA+` WHERE coalesce(recipientAccountId, userIdentity.accountId) <> '`+acctA+`'`); rows[0]["n"] != "0" {
		t.Errorf("A's store holds %s records of other accounts", rows[0]["n"])
	}
}

// TestImportRootsDoNotFollowSymlinksOut: a symlink inside lake.import_roots
// (to a file or a folder, at any depth) never makes an import read a file
// outside the roots; a link that stays inside is followed.
func TestImportRootsDoNotFollowSymlinksOut(t *testing.T) {
	ctx := context.Background()
	root, out := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(out, "secret.json"), logFile("secret", 4, acctA), 0o600))
	must(os.MkdirAll(filepath.Join(root, "sub", "deeper"), 0o755))
	must(os.WriteFile(filepath.Join(root, "own.json"), logFile("own", 3, acctA), 0o600))
	must(os.Symlink(filepath.Join(out, "secret.json"), filepath.Join(root, "link.json")))
	must(os.Symlink("../../../"+filepath.Base(out)+"/secret.json", filepath.Join(root, "sub", "deeper", "rel.json")))
	must(os.Symlink(filepath.Join(out, "secret.json"), filepath.Join(root, "sub", "deeper", "abs.json")))
	must(os.Symlink(out, filepath.Join(root, "outdir")))
	must(os.Symlink(out, filepath.Join(root, "sub", "outdir")))
	must(os.Symlink(filepath.Join(root, "own.json"), filepath.Join(root, "sub", "inside.json")))
	// rel.json's relative target only resolves when out sits next to root.
	if filepath.Dir(root) != filepath.Dir(out) {
		t.Fatalf("temp dirs %s and %s are not siblings", root, out)
	}

	e := newEnv(t, root)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("links"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.EventDataStoreArn)[strings.LastIndex(aws.ToString(st.EventDataStoreArn), "/")+1:]
	start := func(uri string) (*cloudtrail.StartImportOutput, error) {
		return a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{id},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri), S3BucketRegion: aws.String("us-east-1"),
				S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	}
	for _, src := range []string{"link.json", "outdir", "outdir/secret.json", "sub/outdir", "sub/outdir/secret.json",
		"sub/deeper/rel.json", "sub/deeper/abs.json", "sub/../outdir", "../" + filepath.Base(out)} {
		for _, uri := range []string{filepath.Join(root, src), "file://" + root + "/" + src} {
			if _, err := start(uri); code(err) != "InvalidImportSourceException" {
				t.Errorf("StartImport(%s) = %v; want InvalidImportSourceException", uri, err)
			}
		}
	}
	// The whole root and its sub folder: own.json (and inside.json, the same
	// records) are read, the links out are not.
	for _, src := range []string{root, root + "/sub"} {
		im, err := start("file://" + src)
		if err != nil {
			t.Fatal(err)
		}
		if g := waitImport(t, a, im.ImportId); g.ImportStatus != types.ImportStatusCompleted {
			t.Fatalf("import %s: %s", src, g.ImportStatus)
		}
	}
	rows := runQuery(t, a, `SELECT eventName, count(*) AS n FROM `+id+` GROUP BY 1 ORDER BY 1`)
	for _, r := range rows {
		if strings.HasPrefix(r["eventName"], "secret") {
			t.Errorf("an import read %s through a symlink out of the roots", r["eventName"])
		}
	}
	if len(rows) != 3 {
		t.Errorf("the store holds %v; want own.json's 3 events", rows)
	}
}

// TestResponderImportTakesEveryAccount: a responder's StartImport (its key
// marked responder in the config) loads every account's records of the
// source, as `cairn import --into` does for it; a tenant's import of the
// same file takes only its own (TestImportsTakeOnlyTheCallersRecords).
func TestResponderImportTakesEveryAccount(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "mixed.json"), logFile("r", 6, acctA, acctB), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, Options{ImportRoots: []string{root}})
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	for _, c := range []struct {
		name      string
		responder bool
		want      map[string]string
	}{
		{"responder", true, map[string]string{acctA: "3", acctB: "3"}},
		{"tenant", false, map[string]string{acctA: "3"}},
	} {
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(c.name), RetentionPeriod: aws.Int32(3653),
			StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		p := audit.Principal{AccountID: acctA, Responder: c.responder}
		im, err := e.lake.StartImport(ctx, p, ImportRequest{Destinations: []string{aws.ToString(st.EventDataStoreArn)},
			Source: filepath.Join(root, "mixed.json")})
		if err != nil {
			t.Fatalf("%s: StartImport: %v", c.name, err)
		}
		g := waitImport(t, a, aws.String(im.ID))
		if g.ImportStatus != types.ImportStatusCompleted {
			t.Fatalf("%s: import %s", c.name, g.ImportStatus)
		}
		id := aws.ToString(st.EventDataStoreArn)[strings.LastIndex(aws.ToString(st.EventDataStoreArn), "/")+1:]
		got := map[string]string{}
		for _, row := range runQuery(t, a, `SELECT recipientAccountId AS a, count(*) AS n FROM `+id+` GROUP BY 1`) {
			got[row["a"]] = row["n"]
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: the store holds %v; want %v", c.name, got, c.want)
		}
	}
}
