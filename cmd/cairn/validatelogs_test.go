package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestValidateLogsMatchesTheAWSCLI delivers log and digest files to
// moto_server's S3, then validates them with the real
// `aws cloudtrail validate-logs` (keys through cairn's ListPublicKeys, S3
// through AWS_ENDPOINT_URL_S3) and with `cairn validate-logs`: both must
// accept the intact files and print the same lines and exit status after
// a log file is added (neither reports it: validate-logs checks the files
// digests name), modified and deleted, and after a digest is deleted.
//
// It waits for conditions, never for time: the bucket is complete when
// the StopLogging call is delivered, every log file is named by a digest
// and the trail's digest chain has ended with nothing pending
// (digest-chains.json); no call is made in StopLogging's second, so
// nothing recorded later can be delivered.
func TestValidateLogsMatchesTheAWSCLI(t *testing.T) {
	moto := mototest.Start(t)
	ctx := context.Background()
	s3c := newS3(moto, "x", "y", 0) // moto is not under test: the SDK's retries
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
	keys := func(folder string) []string {
		t.Helper()
		var out []string
		p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String("audit-logs"), Prefix: aws.String("team/AWSLogs/111111111111/" + folder + "/")})
		for p.HasMorePages() {
			l, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range l.Contents {
				out = append(out, aws.ToString(o.Key))
			}
		}
		sort.Strings(out)
		return out
	}
	get := func(key string) []byte {
		t.Helper()
		obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Body.Close()
		zr, err := gzip.NewReader(obj.Body)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return b
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		testwait.Until(t, what, cond)
	}
	// Calls spread over three log files, and two digests at least.
	for i := 0; i < 3; i++ {
		n := len(keys("CloudTrail"))
		if _, err := ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{}); err != nil {
			t.Fatal(err)
		}
		waitFor("a log file", func() bool { return len(keys("CloudTrail")) > n })
	}
	waitFor("two digests", func() bool { return len(keys("CloudTrail-Digest")) >= 2 })
	if _, err := ct.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("main")}); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	// Records of calls after StopLogging's second are not delivered.
	time.Sleep(time.Until(stopAt.Truncate(time.Second).Add(time.Second)))
	var digests, logs []string
	state := ""
	defer func() {
		if t.Failed() {
			t.Logf("last state of the bucket: %s\ndigests %v\nlogs %v", state, digests, logs)
		}
	}()
	waitFor("the complete bucket", func() bool {
		st, err := ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("main")})
		if err != nil {
			t.Fatal(err)
		}
		state = fmt.Sprintf("status: digest %v (%s) delivery %v (%s); stopped %v", aws.ToTime(st.LatestDigestDeliveryTime), aws.ToString(st.LatestDigestDeliveryError),
			aws.ToTime(st.LatestDeliveryTime), aws.ToString(st.LatestDeliveryError), stopAt)
		// The chain has ended (its final digest written after the stop)
		// with nothing waiting for a digest: digest-chains.json says so.
		// (LatestDigestDeliveryTime cannot: it is to the second, and a
		// digest written just after the stop may still be a regular one.)
		var chains []struct {
			TrailARN string            `json:"trailArn"`
			Ended    bool              `json:"ended"`
			Pending  []json.RawMessage `json:"pending"`
		}
		b, err := os.ReadFile(filepath.Join(ts.dataDir, "digest-chains.json"))
		if err != nil || json.Unmarshal(b, &chains) != nil || len(chains) != 1 || chains[0].TrailARN != arn || !chains[0].Ended || len(chains[0].Pending) > 0 {
			state += fmt.Sprintf("; chains %s", b)
			return false
		}
		digests, logs = keys("CloudTrail-Digest"), keys("CloudTrail")
		named := map[string]bool{}
		for _, d := range digests {
			var f struct{ LogFiles []struct{ S3Object string } }
			if err := json.Unmarshal(get(d), &f); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			for _, l := range f.LogFiles {
				named[l.S3Object] = true
			}
		}
		stopDelivered := false
		for _, l := range logs {
			if !named[l] {
				state += "; not in a digest: " + l
				return false
			}
			stopDelivered = stopDelivered || bytes.Contains(get(l), []byte(`"eventName":"StopLogging"`))
		}
		return stopDelivered
	})
	if len(digests) < 3 || len(logs) < 4 {
		t.Fatalf("digests %v\nlogs %v", digests, logs)
	}
	end := time.Now().UTC().Add(time.Second).Format(time.RFC3339)
	args := []string{"--trail-arn", arn, "--start-time", start.Format(time.RFC3339), "--end-time", end, "--verbose", "--endpoint-url", ts.endpoint}
	env := append(os.Environ(), "AWS_ACCESS_KEY_ID=AKIAALICE00000000001", "AWS_SECRET_ACCESS_KEY=alice-secret-key",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_REGION=us-east-1", "AWS_ENDPOINT_URL_S3="+moto, "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null")

	ours := func(extra ...string) (int, string, string) {
		t.Helper()
		for _, kv := range env[len(os.Environ()):] {
			k, v, _ := strings.Cut(kv, "=")
			t.Setenv(k, v)
		}
		var o, e bytes.Buffer
		code := run(ctx, append(append([]string{"validate-logs"}, args...), extra...), &o, &e)
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
	intact := fmt.Sprintf("%d/%d digest files valid", len(digests), len(digests))
	compare("intact", 0, intact)
	compare("intact", 0, fmt.Sprintf("%d/%d log files valid", len(logs), len(logs)))
	if _, _, e := ours(); e != "" {
		t.Errorf("intact chain: problems reported:\n%s", e)
	}
	_, intactOut, _ := ours()
	// --s3-prefix without --s3-bucket names the folder in the trail's
	// bucket, as the AWS CLI documents it (its code takes the trail's
	// prefix instead, validating another folder than the one asked for).
	if code, o, e := ours("--s3-prefix", "team"); code != 0 || o != intactOut || e != "" {
		t.Errorf("--s3-prefix team (the trail's) = %d\n%s\n%s", code, o, e)
	}
	if code, o, e := ours("--s3-prefix", "elsewhere"); strings.Contains(o, intact) || !strings.Contains(o, "No digests found") {
		t.Errorf("--s3-prefix elsewhere (no digests there) = %d\n%s\n%s; want the folder asked for, not the trail's", code, o, e)
	}
	if code, o, e := ours("--report-unlisted"); code != 0 || e != "" || !strings.Contains(o, "\n0 log files not named by any digest\n") {
		t.Errorf("intact, --report-unlisted = %d\n%s\n%s", code, o, e)
	}

	// An added log file, in the folder and named like cairn's: digests
	// do not name it, so validate-logs does not look at it (AWS's
	// semantics): the same report as the intact bucket.
	added := logs[len(logs)-1][:len(logs[len(logs)-1])-len("AbCdEfGhIjKlMnOp.json.gz")] + "AddedByAnAttackr.json.gz"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(added),
		Body: bytes.NewReader(gzipBytes(t, []byte(`{"Records":[]}`)))}); err != nil {
		t.Fatal(err)
	}
	compare("added log", 0, intact)
	if _, o, e := ours(); o != intactOut || e != "" || strings.Contains(o, added) {
		t.Errorf("added log: the report changed:\n%s\n%s", o, e)
	}
	// cairn's --report-unlisted finds it.
	if code, o, e := ours("--report-unlisted"); code != 1 || strings.TrimSpace(e) != "Log file\ts3://audit-logs/"+added+"\tINVALID: not named by any digest" ||
		!strings.Contains(o, "\n1 log files not named by any digest\n") {
		t.Errorf("added log, --report-unlisted = %d\n%s\n%q", code, o, e)
	}
	// A modified log file.
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(logs[0]),
		Body: bytes.NewReader(gzipBytes(t, []byte(`{"Records":[]}`)))}); err != nil {
		t.Fatal(err)
	}
	compare("modified log", 1, "Log file\ts3://audit-logs/"+logs[0]+"\tINVALID: hash value doesn't match")
	// A deleted log file.
	if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("audit-logs"), Key: aws.String(logs[1])}); err != nil {
		t.Fatal(err)
	}
	compare("deleted log", 1, "Log file\ts3://audit-logs/"+logs[1]+"\tINVALID: not found")
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
