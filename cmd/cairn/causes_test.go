package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/awsclient"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// refusingS3 is an S3 endpoint whose buckets exist (HeadBucket answers)
// but refuse every write, each bucket its own way, with error text naming
// an internal host and path, as a real S3-compatible store may.
func refusingS3(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bucket, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		if r.Method == http.MethodHead || r.Method == http.MethodGet {
			w.WriteHeader(http.StatusOK)
			return
		}
		io.Copy(io.Discard, r.Body)
		var status int
		var code string
		switch bucket {
		case "refusing":
			status, code = http.StatusForbidden, "AccessDenied"
		case "vanished":
			status, code = http.StatusNotFound, "NoSuchBucket"
		case "broken": // the connection drops mid-answer
			hj, _ := w.(http.Hijacker)
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
			return
		default:
			status, code = http.StatusInternalServerError, "InternalError"
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>denied by s3-internal.corp.example for /srv/objects/%s</Message><RequestId>r</RequestId></Error>`, code, bucket)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// bodyRecorder is an SDK HTTP client that keeps every response body.
type bodyRecorder struct {
	mu     sync.Mutex
	bodies []string
	next   aws.HTTPClient
}

func (b *bodyRecorder) Do(r *http.Request) (*http.Response, error) {
	resp, err := b.next.Do(r)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	b.mu.Lock()
	b.bodies = append(b.bodies, string(body))
	b.mu.Unlock()
	return resp, err
}

// s3Code is what a status field may hold: an S3-style error code.
var s3Code = regexp.MustCompile(`^[A-Za-z0-9.]{1,64}$`)

// TestCausesNeverReachTheWire: what failed inside cairn (a bucket that
// refuses writes, unreachable or gone; a data dir file that cannot be
// saved) reaches the client as an AWS code with a generic message:
// GetTrailStatus's LatestDeliveryError and LatestDigestDeliveryError hold
// the S3 error code, as AWS does, and no response body names a host, a
// path or Go error text. The causes go to the log.
func TestCausesNeverReachTheWire(t *testing.T) {
	s3srv := refusingS3(t)
	local := t.TempDir()
	dataDir := t.TempDir()
	buckets := "buckets:\n  - name: folder-logs\n    local_dir: " + local + "\n"
	for _, b := range []string{"refusing", "vanished", "broken"} {
		buckets += fmt.Sprintf("  - name: %s\n    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}\n", b, s3srv.URL)
	}
	cfg := fmt.Sprintf(twoAccounts, 90) + buckets + "delivery:\n  interval: 1s\n  digest_interval: 1s\n"
	ts := startServer(t, cfg, dataDir)
	rec := &bodyRecorder{next: awsclient.HTTPClient(nil)}
	ct := cloudtrail.New(cloudtrail.Options{Region: "us-east-1", BaseEndpoint: aws.String(ts.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", ""),
		RetryMaxAttempts: 1, HTTPClient: rec})
	ctx := context.Background()

	// The local folder cannot hold the trail's keys: AWSLogs is a file,
	// made before the trails log (delivering every second, a trail made
	// first could make the folder before this test wrote its file).
	if err := os.WriteFile(filepath.Join(local, "AWSLogs"), []byte("not a folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"refusing": "AccessDenied", "vanished": "NoSuchBucket", "broken": "", "folder-logs": ""}
	for name := range want {
		if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("t-" + name), S3BucketName: aws.String(name),
			EnableLogFileValidation: aws.Bool(true)}); err != nil {
			t.Fatalf("CreateTrail on %s: %v", name, err)
		}
		if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("t-" + name)}); err != nil {
			t.Fatal(err)
		}
	}
	status := map[string]*cloudtrail.GetTrailStatusOutput{}
	for deadline := testwait.End(t); ; {
		done := true
		for name := range want {
			st, err := ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("t-" + name)})
			if err != nil {
				t.Fatal(err)
			}
			status[name] = st
			if aws.ToString(st.LatestDeliveryError) == "" || aws.ToString(st.LatestDigestDeliveryError) == "" {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, code := range want {
		st := status[name]
		for field, got := range map[string]string{"LatestDeliveryError": aws.ToString(st.LatestDeliveryError),
			"LatestDigestDeliveryError": aws.ToString(st.LatestDigestDeliveryError)} {
			if !s3Code.MatchString(got) || (code != "" && got != code) {
				t.Errorf("%s of the trail on %s = %q; want an S3 error code (%s)", field, name, got, code)
			}
		}
	}

	// A data dir file that cannot be saved: trails.json is a folder now.
	reg := filepath.Join(dataDir, "trails.json")
	if err := os.Rename(reg, reg+".saved"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(reg, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"CreateTrail": func() error {
			_, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("late"), S3BucketName: aws.String("folder-logs")})
			return err
		},
		"StopLogging": func() error {
			_, err := ct.StopLogging(ctx, &cloudtrail.StopLoggingInput{Name: aws.String("t-refusing")})
			return err
		},
		"DeleteTrail": func() error {
			_, err := ct.DeleteTrail(ctx, &cloudtrail.DeleteTrailInput{Name: aws.String("t-vanished")})
			return err
		},
	} {
		if err := call(); errCode(err) != "InternalFailure" {
			t.Errorf("%s with an unsavable trails.json = %v; want InternalFailure", name, err)
		}
	}

	host := strings.TrimPrefix(s3srv.URL, "http://")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, body := range rec.bodies {
		for _, leak := range []string{dataDir, local, host, "s3-internal", "/srv/", "trails.json", "atomicfile", "tmp-", "bucket ", "dial tcp", "EOF"} {
			if strings.Contains(body, leak) {
				t.Errorf("a response names %q: %.300s", leak, body)
			}
		}
	}
}
