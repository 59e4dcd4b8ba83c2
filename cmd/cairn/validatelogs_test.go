package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestValidateLogsMatchesTheAWSCLI delivers log and digest files to
// moto_server's S3, then validates them with the real
// `aws cloudtrail validate-logs` (keys through cairn's ListPublicKeys, S3
// through AWS_ENDPOINT_URL_S3) and with `cairn validate-logs`: both must
// accept the intact files and print the same lines and exit status after
// a log file is modified and after a digest is deleted.
func TestValidateLogsMatchesTheAWSCLI(t *testing.T) {
	moto := startMoto(t)
	ctx := context.Background()
	s3c := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(moto), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("x", "y", "")})
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf(`buckets:
  - name: audit-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
delivery:
  interval: 1s
  digest_interval: 2s
`, moto)
	ts := startServer(t, cfg, "")
	ct := alice(ts)
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("main"), S3BucketName: aws.String("audit-logs"),
		S3KeyPrefix: aws.String("team"), EnableLogFileValidation: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.TrailARN)
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("main")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{})
		time.Sleep(1500 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	if _, err := ct.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("main")}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	// The final digest follows StopLogging within a digest interval.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		st, err := ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("main")})
		if err != nil {
			t.Fatal(err)
		}
		if st.LatestDigestDeliveryTime != nil && st.LatestDigestDeliveryTime.After(stopped) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no digest after StopLogging: %+v", st)
		}
	}
	keys := func(folder string) []string {
		l, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs"), Prefix: aws.String("team/AWSLogs/111111111111/" + folder + "/")})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, o := range l.Contents {
			out = append(out, aws.ToString(o.Key))
		}
		sort.Strings(out)
		return out
	}
	// Files the last delivery wrote after StopLogging get one more digest:
	// wait until the bucket is still for a few digest intervals.
	digests, logs := keys("CloudTrail-Digest"), keys("CloudTrail")
	for still, deadline := 0, time.Now().Add(40*time.Second); still < 5 && time.Now().Before(deadline); {
		time.Sleep(time.Second)
		d, l := keys("CloudTrail-Digest"), keys("CloudTrail")
		if len(d) == len(digests) && len(l) == len(logs) {
			still++
		} else {
			still, digests, logs = 0, d, l
		}
	}
	if len(digests) < 3 || len(logs) < 2 {
		t.Fatalf("digests %v\nlogs %v", digests, logs)
	}
	end := time.Now().UTC().Add(time.Second).Format(time.RFC3339)
	args := []string{"--trail-arn", arn, "--start-time", start.Format(time.RFC3339), "--end-time", end, "--verbose", "--endpoint-url", ts.endpoint}
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIAALICE00000000001", "AWS_SECRET_ACCESS_KEY=alice-secret-key",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_S3="+moto, "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null")

	ours := func() (int, string, string) {
		t.Helper()
		for _, kv := range env[len(os.Environ()):] {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		var o, e bytes.Buffer
		code := run(ctx, append([]string{"validate-logs"}, args...), &o, &e)
		return code, o.String(), e.String()
	}
	haveCLI := awsCLIForValidation()
	theirs := func() (int, string, string) {
		t.Helper()
		cmd := exec.Command("aws", append([]string{"cloudtrail", "validate-logs"}, args...)...)
		cmd.Env = env
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if x, ok := err.(*exec.ExitError); ok {
			code = x.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, o.String(), e.String()
	}
	compare := func(what string, wantCode int, wantLine string) {
		t.Helper()
		code, o, e := ours()
		if code != wantCode || !strings.Contains(o+e, wantLine) {
			t.Errorf("%s: cairn validate-logs = %d\n%s\n%s", what, code, o, e)
		}
		if haveCLI != nil {
			return
		}
		tc, to, te := theirs()
		if tc != wantCode || !strings.Contains(to+te, wantLine) {
			t.Errorf("%s: aws cloudtrail validate-logs = %d\n%s\n%s", what, tc, to, te)
		}
		if os.Getenv("CAIRN_TEST_SHOW") != "" {
			t.Logf("%s: aws exit %d\n%s%s", what, tc, to, te)
		}
		if tc != code || to != o || te != e {
			t.Errorf("%s: outputs differ\n--- aws (%d)\n%s\n%s\n--- cairn (%d)\n%s\n%s", what, tc, to, te, code, o, e)
		}
	}
	if haveCLI != nil {
		t.Logf("checking cairn validate-logs only: %v", haveCLI)
	}
	compare("intact", 0, fmt.Sprintf("%d/%d digest files valid", len(digests), len(digests)))
	compare("intact", 0, fmt.Sprintf("%d/%d log files valid", len(logs), len(logs)))
	if _, _, e := ours(); e != "" {
		t.Errorf("intact chain: problems reported:\n%s", e)
	}

	// A modified log file.
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(logs[0]),
		Body: bytes.NewReader(gzipBytes(t, []byte(`{"Records":[]}`)))}); err != nil {
		t.Fatal(err)
	}
	compare("modified log", 1, "Log file\ts3://audit-logs/"+logs[0]+"\tINVALID: hash value doesn't match")
	// A deleted digest.
	if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(digests[1])}); err != nil {
		t.Fatal(err)
	}
	compare("deleted digest", 1, "Digest file\ts3://audit-logs/"+digests[1]+"\tINVALID: not found")
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzipWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipWriter(w *bytes.Buffer) *gzip.Writer { return gzip.NewWriter(w) }

// awsCLIForValidation reports why the installed AWS CLI cannot take part
// (nil when it can): it must be v1 with botocore 1.31 or later, which
// honours AWS_ENDPOINT_URL_S3.
func awsCLIForValidation() error {
	out, err := exec.Command("aws", "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("aws --version: %v", err)
	}
	var major, minor int
	i := strings.Index(string(out), "botocore/")
	if !strings.HasPrefix(string(out), "aws-cli/1.") || i < 0 {
		return fmt.Errorf("not AWS CLI v1 with botocore: %s", out)
	}
	if _, err := fmt.Sscanf(string(out[i:]), "botocore/%d.%d", &major, &minor); err != nil || major < 1 || major == 1 && minor < 31 {
		return fmt.Errorf("botocore older than 1.31 (no AWS_ENDPOINT_URL_S3): %s", out)
	}
	return nil
}
