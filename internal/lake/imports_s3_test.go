package lake

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	localbucket "github.com/cairn-audit/cairn/internal/bucket/local"
	s3bucket "github.com/cairn-audit/cairn/internal/bucket/s3"
	"github.com/cairn-audit/cairn/internal/mototest"
)

// gated is a bucket whose objects, after the first few opened, are opened
// only once the import is cancelled (then with the cancellation's error):
// an import of it is still running when StopImport comes.
type gated struct {
	Bucket
	mu     sync.Mutex
	opened int
}

func (g *gated) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	g.mu.Lock()
	g.opened++
	n := g.opened
	g.mu.Unlock()
	if n > 3 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return g.Bucket.Open(ctx, key)
}

// s3Layout is where a trail would have delivered a real data file.
func s3Layout(rel string) string {
	name := strings.ReplaceAll(filepath.ToSlash(rel), "/", "-")
	return "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/10/111111111111_CloudTrail_us-east-1_20230710T1200Z_" + name
}

func TestImportsFromS3(t *testing.T) {
	// Real logs, owned by the importing account (cairn imports only the
	// caller's own records).
	real := audittest.Rehome(t, audittest.RealDataDir(t), "111111111111")
	moto := mototest.Start(t)
	ctx := context.Background()
	s3opts := s3bucket.Options{Endpoint: moto, Region: "us-east-1", AccessKeyID: "x", SecretAccessKey: "y", PathStyle: true}
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	local, err := localbucket.New("local-logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s3b := s3bucket.New("audit-logs", s3opts)
	gate := &gated{Bucket: s3b}
	buckets := map[string]Bucket{
		"audit-logs":   s3b,
		"missing-logs": s3bucket.New("missing-logs", s3opts), // configured, not on the endpoint
		"local-logs":   local,
		"gated-logs":   gate,
	}
	// Every real data file, bytes unchanged, in the S3 layout, into both
	// buckets.
	files := 0
	err = filepath.WalkDir(real, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") && !strings.HasSuffix(p, ".json.gz") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, p)
		for _, bk := range []interface {
			Put(context.Context, string, []byte, string, map[string]string) error
		}{s3b, local} {
			if err := bk.Put(ctx, s3Layout(rel), b, "", nil); err != nil {
				return err
			}
		}
		files++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, Options{ImportRoots: []string{real},
		Buckets: func(name string) (Bucket, bool) { b, ok := buckets[name]; return b, ok }})
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	newStore := func(name string) string {
		t.Helper()
		st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(st.EventDataStoreArn)
		return arn[strings.LastIndex(arn, "/")+1:]
	}
	start := func(into, uri string) (*cloudtrail.StartImportOutput, error) {
		return a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{into},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String(uri), S3BucketRegion: aws.String("us-east-1"),
				S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/import")}}})
	}
	imp := func(t *testing.T, into, uri string) *cloudtrail.GetImportOutput {
		t.Helper()
		im, err := start(into, uri)
		if err != nil {
			t.Fatalf("StartImport %s: %v", uri, err)
		}
		if aws.ToString(im.ImportSource.S3.S3LocationUri) != uri {
			t.Errorf("StartImport answered the source %q; want %q", aws.ToString(im.ImportSource.S3.S3LocationUri), uri)
		}
		return waitImport(t, a, im.ImportId)
	}
	// Group-by over what a store holds, to compare stores.
	summary := func(t *testing.T, id string) string {
		t.Helper()
		rows := runQuery(t, a, `SELECT eventSource, count(*) AS n, count(DISTINCT eventID) AS d, min(eventTime) AS lo, max(eventTime) AS hi FROM `+id+
			` GROUP BY eventSource ORDER BY eventSource`)
		return fmt.Sprint(rows)
	}
	count := func(t *testing.T, id string) string {
		t.Helper()
		return runQuery(t, a, `SELECT count(*) AS n FROM `+id)[0]["n"]
	}

	fromPath, fromS3, fromLocal := newStore("from-path"), newStore("from-s3"), newStore("from-local-bucket")
	gp := imp(t, fromPath, real)
	t.Run("s3", func(t *testing.T) {
		g := imp(t, fromS3, "s3://audit-logs/AWSLogs/")
		if g.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(g.ImportStatistics.FilesCompleted) != int64(files) ||
			aws.ToInt64(g.ImportStatistics.EventsCompleted) != aws.ToInt64(gp.ImportStatistics.EventsCompleted) ||
			aws.ToInt64(g.ImportStatistics.FailedEntries) != 0 {
			t.Errorf("s3 import %s %+v; path import %+v, %d files", g.ImportStatus, g.ImportStatistics, gp.ImportStatistics, files)
		}
		if got, want := summary(t, fromS3), summary(t, fromPath); got != want {
			t.Errorf("s3 import holds\n%s\nwant (path import)\n%s", got, want)
		}
		n := count(t, fromS3)
		// Records in a publisher's fictional regions are taken too.
		if want := len(audittest.RealRecords(t)); n != fmt.Sprint(want) {
			t.Errorf("s3 import holds %s events; want every real record, %d", n, want)
		}
		// Again: nothing new (idempotent), the same counts.
		g2 := imp(t, fromS3, "s3://audit-logs")
		if g2.ImportStatus != types.ImportStatusCompleted || count(t, fromS3) != n ||
			aws.ToInt64(g2.ImportStatistics.EventsCompleted) != aws.ToInt64(g.ImportStatistics.EventsCompleted) {
			t.Errorf("second import: %s %+v, %s events (was %s)", g2.ImportStatus, g2.ImportStatistics, count(t, fromS3), n)
		}
	})
	t.Run("local bucket", func(t *testing.T) {
		g := imp(t, fromLocal, "s3://local-logs/AWSLogs/111111111111/CloudTrail/")
		if g.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(g.ImportStatistics.FilesCompleted) != int64(files) {
			t.Errorf("local bucket import %s %+v", g.ImportStatus, g.ImportStatistics)
		}
		if got, want := summary(t, fromLocal), summary(t, fromPath); got != want {
			t.Errorf("local bucket import holds\n%s\nwant (path import)\n%s", got, want)
		}
	})
	t.Run("refused sources", func(t *testing.T) {
		for _, uri := range []string{"s3://not-configured/AWSLogs/", "s3://missing-logs/AWSLogs/", "s3://Bad_Bucket/x", "s3://", "s3:///x", "https://audit-logs.s3.amazonaws.com/x"} {
			if _, err := start(fromS3, uri); code(err) != "InvalidImportSourceException" {
				t.Errorf("StartImport %s = %v; want InvalidImportSourceException", uri, err)
			}
		}
	})
	t.Run("empty prefix", func(t *testing.T) {
		empty := newStore("empty")
		g := imp(t, empty, "s3://audit-logs/nothing-here/")
		st := g.ImportStatistics
		if g.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(st.FilesCompleted) != 0 || aws.ToInt64(st.EventsCompleted) != 0 || aws.ToInt64(st.FailedEntries) != 0 {
			t.Errorf("empty prefix: %s %+v", g.ImportStatus, st)
		}
		if n := count(t, empty); n != "0" {
			t.Errorf("empty prefix imported %s events", n)
		}
	})
	t.Run("corrupt object", func(t *testing.T) {
		// A corrupt object beside a good one, under their own prefix.
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(`{"Records":[{"eventVersion":"1.08","eventID":`))
		zw.Close()
		good, err := os.ReadFile(filepath.Join(real, "nexthink-cloudtrail-s3-to-kinesis", "cloudtrail-log-file.json.gz"))
		if err != nil {
			t.Fatal(err)
		}
		corruptKey := "corrupt/AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/10/111111111111_CloudTrail_us-east-1_20230710T1200Z_broken.json.gz"
		s3b.Put(ctx, corruptKey, gz.Bytes()[:gz.Len()-12], "", nil) // cut short
		s3b.Put(ctx, "corrupt/AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/10/111111111111_CloudTrail_us-east-1_20230710T1200Z_good.json.gz", good, "", nil)

		id := newStore("corrupt")
		g := imp(t, id, "s3://audit-logs/corrupt/")
		if g.ImportStatus != types.ImportStatusCompleted || aws.ToInt64(g.ImportStatistics.FilesCompleted) != 2 ||
			aws.ToInt64(g.ImportStatistics.EventsCompleted) != 18 || aws.ToInt64(g.ImportStatistics.FailedEntries) != 1 {
			t.Errorf("corrupt: %s %+v", g.ImportStatus, g.ImportStatistics)
		}
		f, err := a.ListImportFailures(ctx, &cloudtrail.ListImportFailuresInput{ImportId: g.ImportId})
		if err != nil || len(f.Failures) != 1 || aws.ToString(f.Failures[0].Location) != "s3://audit-logs/"+corruptKey ||
			aws.ToString(f.Failures[0].ErrorType) != "FILE_ERROR" {
			t.Fatalf("ListImportFailures = %+v, %v", f, err)
		}
		t.Logf("failure: %s", aws.ToString(f.Failures[0].ErrorMessage))
		if n := count(t, id); n != "18" {
			t.Errorf("the good object's 18 events should be in; %s are", n)
		}
	})
	t.Run("stop", func(t *testing.T) {
		id := newStore("stopped")
		im, err := start(id, "s3://gated-logs/AWSLogs/")
		if err != nil {
			t.Fatal(err)
		}
		s, err := a.StopImport(ctx, &cloudtrail.StopImportInput{ImportId: im.ImportId})
		if err != nil || s.ImportStatus != types.ImportStatusStopped {
			t.Fatalf("StopImport = %+v, %v", s, err)
		}
		e.lake.mu.Lock()
		done := e.lake.imports[aws.ToString(im.ImportId)].done
		e.lake.mu.Unlock()
		<-done // the import's goroutine returned: reads and appends ended
		g, err := a.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: im.ImportId})
		if err != nil || g.ImportStatus != types.ImportStatusStopped || aws.ToInt64(g.ImportStatistics.FilesCompleted) > 3 {
			t.Errorf("after the stop: %+v, %v", g, err)
		}
		if _, err := a.StopImport(ctx, &cloudtrail.StopImportInput{ImportId: im.ImportId}); err != nil {
			t.Errorf("StopImport again: %v", err)
		}
	})
}
