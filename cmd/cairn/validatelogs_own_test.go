package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// clearAWSEnv leaves no AWS_* variable set (AWS_EC2_METADATA_DISABLED
// included: asking EC2's metadata service for credentials fails the
// command) and a HOME without ~/.aws, until the test ends.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("HOME", t.TempDir())
}

// TestValidateLogsFindsCairnBuckets: validate-logs reads the files a trail
// delivered to cairn's own buckets (the built-in cairn-logs and a
// configured local one) from the data dir and config by itself, with no
// AWS credentials, region or endpoint in the environment: it neither
// looks the bucket up on AWS nor asks EC2 for credentials. A bucket that
// is not cairn's is named as such.
func TestValidateLogsFindsCairnBuckets(t *testing.T) {
	evidence := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("buckets:\n  - name: evidence\n    local_dir: %s\n"+
		"delivery:\n  interval: 1s\n  digest_interval: 2s\n", evidence)
	ts := startServer(t, cfg, "")
	ctx := context.Background()
	ct := alice(ts)
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	arns := map[string]string{}
	dirs := map[string]string{"cairn-logs": filepath.Join(ts.dataDir, "buckets", "cairn-logs"), "evidence": evidence}
	for name := range dirs {
		out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("to-" + name), S3BucketName: aws.String(name),
			EnableLogFileValidation: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		arns[name] = aws.ToString(out.TrailARN)
		if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("to-" + name)}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(dir, folder string) int {
		n := 0
		for key := range localFiles(t, dir) {
			if strings.Contains(key, "/"+folder+"/") {
				n++
			}
		}
		return n
	}
	for deadline := testwait.End(t); ; time.Sleep(200 * time.Millisecond) {
		if _, err := ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{}); err != nil {
			t.Fatal(err)
		}
		done := true
		for _, dir := range dirs {
			done = done && count(dir, "CloudTrail") > 0 && count(dir, "CloudTrail-Digest") >= 2
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no log files and two digests in each bucket before the test's deadline")
		}
	}
	ts.stop() // the final delivery and digests

	clearAWSEnv(t)
	validate := func(args ...string) (int, string, string) {
		var o, e bytes.Buffer
		code := run(ctx, append([]string{"validate-logs", "--data-dir", ts.dataDir, "--start-time", start.Format(time.RFC3339)}, args...), &o, &e)
		return code, o.String(), e.String()
	}
	for name, arn := range arns {
		args := []string{"--trail-arn", arn}
		if name == "evidence" {
			args = append(args, "--config", ts.config) // the configured bucket is named there
		}
		code, out, errOut := validate(args...)
		if code != 0 || errOut != "" || !strings.Contains(out, " digest files valid") || !strings.Contains(out, " log files valid") ||
			strings.Contains(out, "0/0") {
			t.Errorf("%s: validate-logs exited %d\n%s\n%s", name, code, out, errOut)
		}
	}
	if _, err := os.Stat(filepath.Join(ts.dataDir, "credentials.yaml")); err == nil {
		t.Error("validate-logs generated an account in a data dir served with a config")
	}
	// A trail's bucket that is not cairn's: said so, nothing asked of AWS.
	code, out, errOut := validate("--trail-arn", arns["evidence"], "--config", ts.config, "--s3-bucket", "somebody-elses")
	if code == 0 || !strings.Contains(errOut, "the bucket somebody-elses is not one of cairn's (cairn-logs, evidence)") {
		t.Errorf("a bucket that is not cairn's: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestValidateLogsDataDirOnPostgres: with a config that keeps the state
// in PostgreSQL (store.postgres), validate-logs --data-dir reads the trail
// and the public keys from the state the nodes share there (the data dir
// has no trails.json or keyring) and validates the chain; a trail the
// database does not hold is named as not found.
func TestValidateLogsDataDirOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf("store:\n  postgres: %q\n", dsn) +
		"delivery:\n  interval: 1s\n  digest_interval: 2s\n"
	ts := startServer(t, cfg, "")
	ctx := context.Background()
	ct := alice(ts)
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("shared"), S3BucketName: aws.String("cairn-logs"),
		EnableLogFileValidation: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.TrailARN)
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("shared")}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(ts.dataDir, "buckets", "cairn-logs")
	for deadline := testwait.End(t); ; time.Sleep(200 * time.Millisecond) {
		if _, err := ct.ListTrails(ctx, &cloudtrail.ListTrailsInput{}); err != nil {
			t.Fatal(err)
		}
		logs, digests := 0, 0
		for key := range localFiles(t, dir) {
			switch {
			case strings.Contains(key, "/CloudTrail-Digest/"):
				digests++
			case strings.Contains(key, "/CloudTrail/"):
				logs++
			}
		}
		if logs > 0 && digests >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no log files and two digests before the test's deadline")
		}
	}
	ts.stop()
	for _, f := range []string{"trails.json", "digest-keys.json"} {
		if _, err := os.Stat(filepath.Join(ts.dataDir, f)); err == nil {
			t.Fatalf("the data dir holds %s: the state is not only in PostgreSQL", f)
		}
	}

	clearAWSEnv(t)
	validate := func(arn string) (int, string, string) {
		var o, e bytes.Buffer
		code := run(ctx, []string{"validate-logs", "--data-dir", ts.dataDir, "--config", ts.config,
			"--start-time", start.Format(time.RFC3339), "--trail-arn", arn}, &o, &e)
		return code, o.String(), e.String()
	}
	code, stdout, stderr := validate(arn)
	if code != 0 || stderr != "" || !strings.Contains(stdout, " digest files valid") || !strings.Contains(stdout, " log files valid") ||
		strings.Contains(stdout, "0/0") {
		t.Errorf("validate-logs exited %d\n%s\n%s", code, stdout, stderr)
	}
	other := strings.Replace(arn, ":trail/shared", ":trail/nowhere", 1)
	if code, stdout, stderr := validate(other); code != 255 || !strings.Contains(stderr, "A trail could not be found for "+other) {
		t.Errorf("a trail not in the database: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
