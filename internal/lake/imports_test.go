package lake

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

func waitImport(t *testing.T, c *cloudtrail.Client, id *string) *cloudtrail.GetImportOutput {
	t.Helper()
	for i := 0; i < 1200; i++ {
		g, err := c.GetImport(context.Background(), &cloudtrail.GetImportInput{ImportId: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.ImportStatus != types.ImportStatusInitializing && g.ImportStatus != types.ImportStatusInProgress {
			return g
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("import did not end")
	return nil
}

func TestImports(t *testing.T) {
	real := audittest.RealDataDir(t)
	dir := t.TempDir()
	// One real data set, plus a malformed file.
	src := audittest.Rehome(t, filepath.Join(real, "invictus-ir-aws_dataset"), "111111111111")
	if err := os.CopyFS(filepath.Join(dir, "real"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"Records":[{"eventID":`), 0o600)
	e := newEnv(t, dir)
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("imported"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	start := func(uri string) (*cloudtrail.StartImportOutput, error) {
		return a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{id},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri), S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	}
	for _, bad := range []string{"/etc", "file:///etc/passwd", dir + "/../", "s3://bucket/x", "relative/path"} {
		if _, err := start(bad); code(err) != "InvalidImportSourceException" {
			t.Errorf("%s: %v", bad, err)
		}
	}
	im, err := start("file://" + dir)
	if err != nil {
		t.Fatal(err)
	}
	g := waitImport(t, a, im.ImportId)
	if g.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(g.ImportStatistics.EventsCompleted) == 0 {
		t.Fatalf("import: %+v %+v", g, g.ImportStatistics)
	}
	f, err := a.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: im.ImportId})
	if err != nil || len(f.Failures) != 1 || !strings.HasSuffix(aws.ToString(f.Failures[0].Location), "broken.json") {
		t.Errorf("failures: %v %+v", err, f)
	}
	n := runQuery(t, a, `SELECT count(*) AS n, count(DISTINCT eventID) AS d FROM `+id)
	if n[0]["n"] != n[0]["d"] || n[0]["n"] == "0" {
		t.Errorf("imported: %v", n)
	}
	// Again: nothing new.
	im2, err := start(dir)
	if err != nil {
		t.Fatal(err)
	}
	waitImport(t, a, im2.ImportId)
	if m := runQuery(t, a, `SELECT count(*) AS n FROM `+id); m[0]["n"] != n[0]["n"] {
		t.Errorf("second import changed the count: %v then %v", n, m)
	}
	l, err := a.ListImports(ctx, &cloudtrail.ListImportsInput{Destination: &id})
	if err != nil || len(l.Imports) != 2 {
		t.Errorf("ListImports: %v %+v", err, l)
	}
	if _, err := e.client("AKIABBBBBBBBBBBBBBBB").GetImport(ctx, &cloudtrail.GetImportInput{ImportId: im.ImportId}); code(err) != "ImportNotFoundException" {
		t.Errorf("other account's import: %v", err)
	}
	t.Logf("imported %s events", n[0]["n"])
}

// TestImportLoadBegins: Options.LoadBegins is called as each import's load
// begins and what it returned once the load ended (cairn serve lowers
// Go's GOGC with it while loads run).
func TestImportLoadBegins(t *testing.T) {
	real := audittest.RealDataDir(t)
	dir := t.TempDir()
	src := audittest.Rehome(t, filepath.Join(real, "invictus-ir-aws_dataset"), "111111111111")
	if err := os.CopyFS(filepath.Join(dir, "real"), os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	begun, ended := 0, 0
	e := newEnvWith(t, Options{ImportRoots: []string{dir}, LoadBegins: func() func() {
		mu.Lock()
		defer mu.Unlock()
		if begun != ended {
			t.Errorf("a load began with %d begun and %d ended; imports of one account do not overlap", begun, ended)
		}
		begun++
		return func() {
			mu.Lock()
			defer mu.Unlock()
			ended++
		}
	}})
	ctx := context.Background()
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("imported"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	for i := range 2 {
		im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{id},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("file://" + dir), S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatal(err)
		}
		if g := waitImport(t, a, im.ImportId); g.ImportStatus != types.ImportStatusCompleted {
			t.Fatalf("import %d: %s", i, g.ImportStatus)
		}
		// The load ends (its function returns) just after its status is saved.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			b, d := begun, ended
			mu.Unlock()
			if b == i+1 && d == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after import %d: %d loads begun, %d ended; want %d and %d", i, b, d, i+1, i+1)
			}
		}
	}
}
