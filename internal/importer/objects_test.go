package importer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/importer/importertest"
)

func TestParseS3URI(t *testing.T) {
	for _, c := range []struct{ uri, bucket, prefix string }{
		{"s3://audit-logs", "audit-logs", ""},
		{"s3://audit-logs/", "audit-logs", ""},
		{"s3://audit-logs/AWSLogs/123456789012/", "audit-logs", "AWSLogs/123456789012/"},
		{"s3://a.b-c/x", "a.b-c", "x"},
	} {
		b, p, err := importer.ParseS3URI(c.uri)
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("ParseS3URI(%q) = %q, %q, %v; want %q, %q", c.uri, b, p, err, c.bucket, c.prefix)
		}
	}
	for _, bad := range []string{"file:///x", "s3://", "s3:///x", "s3://ab/x", "s3://Upper/x", "s3://-ab/x", "s3://ab-/x",
		"s3://a_b_c/x", "s3://" + strings.Repeat("a", 64), "s3://bucket/a\x00b"} {
		if b, p, err := importer.ParseS3URI(bad); err == nil {
			t.Errorf("ParseS3URI(%q) = %q, %q; want an error", bad, b, p)
		}
	}
}

// failingList is a bucket whose listing fails after the first page.
type failingList struct {
	importer.Objects
	pages int
}

func (f *failingList) List(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	if f.pages++; f.pages > 1 {
		return nil, errors.New("connection reset")
	}
	return f.Objects.List(ctx, prefix, after, limit)
}

func TestRunObjects(t *testing.T) {
	raws := realSample(t, 1200)
	b, err := local.New("logs", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, body []byte) {
		t.Helper()
		if err := b.Put(ctx, key, body, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	// More objects than one listing page, one record each, in the S3
	// layout of a trail.
	want := byID(t)
	for i, r := range raws[:1100] {
		body := records([][]byte{r})
		if i%2 == 0 {
			body = gz(t, body)
		}
		put(fmt.Sprintf("AWSLogs/123456789012/CloudTrail/us-east-1/2024/01/02/123456789012_CloudTrail_us-east-1_%05d.json.gz", i), body)
		for k, v := range byID(t, r) {
			want[k] = v
		}
	}
	// What is skipped: digests, other services, hidden folders, other names.
	other := records(raws[1100:])
	put("AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/02/123456789012_CloudTrail-Digest_us-east-1_x.json.gz", other)
	put("AWSLogs/123456789012/elasticloadbalancing/us-east-1/x.log.gz", other)
	put("AWSLogs/123456789012/CloudTrail/.hidden/x.json", other)
	put("AWSLogs/123456789012/CloudTrail/readme.txt", other)
	// Outside the prefix.
	put("elsewhere/x.json", other)

	sink := &importertest.Sink{}
	rep, err := importer.RunObjects(ctx, b, "logs", "AWSLogs/", importer.Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	checkExact(t, sink, want)
	if rep.Files != 1100 || rep.Skipped != 4 || rep.Imported != 1100 || len(rep.Errors) != 0 {
		t.Errorf("report %+v; want 1100 files, 4 skipped", rep)
	}
	// A prefix that names another service's folder reads it (and its
	// log files are not CloudTrail's: each is a file error).
	rep, err = importer.RunObjects(ctx, b, "logs", "AWSLogs/123456789012/elasticloadbalancing/", importer.Options{Sink: &importertest.Sink{}})
	if err != nil || rep.Files != 1 || rep.Imported != int64(len(raws)-1100) {
		t.Errorf("other service's prefix: %+v, %v", rep, err)
	}
	// A corrupt object is one file error named by its s3:// location.
	put("bad/AWSLogs/123456789012/CloudTrail/x.json.gz", []byte("\x1f\x8bnot gzip"))
	put("bad/AWSLogs/123456789012/CloudTrail/y.json", other)
	rep, err = importer.RunObjects(ctx, b, "logs", "bad/", importer.Options{Sink: &importertest.Sink{}})
	if err != nil || rep.FileErrors != 1 || len(rep.Errors) != 1 || rep.Errors[0].File != "s3://logs/bad/AWSLogs/123456789012/CloudTrail/x.json.gz" ||
		rep.Imported != int64(len(raws)-1100) {
		t.Errorf("corrupt object: %+v, %v", rep, err)
	}
	// An empty prefix (nothing under it) imports nothing, without error.
	rep, err = importer.RunObjects(ctx, b, "logs", "none/", importer.Options{Sink: &importertest.Sink{}})
	if err != nil || rep.Files != 0 || rep.Records != 0 || len(rep.Errors) != 0 {
		t.Errorf("empty prefix: %+v, %v", rep, err)
	}
	// A listing that fails midway: the first page is read, the failure
	// is a file error of the prefix.
	rep, err = importer.RunObjects(ctx, &failingList{Objects: b}, "logs", "AWSLogs/", importer.Options{Sink: &importertest.Sink{}})
	if err != nil || rep.Files+rep.Skipped != 1000 || len(rep.Errors) != 1 || rep.Errors[0].File != "s3://logs/AWSLogs/" {
		t.Errorf("failed listing: files %d, errors %v, %v", rep.Files, rep.Errors, err)
	}
	// Cancelled.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := importer.RunObjects(cctx, b, "logs", "", importer.Options{Sink: &importertest.Sink{}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
