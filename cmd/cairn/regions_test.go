package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// hostileRegions are credential-scope regions a call may not be signed
// for: each would become the awsRegion of its record and a folder of its
// log key.
var hostileRegions = []string{"..", "<script>", strings.Repeat("r", 300), "US-EAST-1", "", "us-east-1/../x",
	"../../../etc", "aws-global", "us-east-1a", "us_east_1"}

// signedCall sends a CloudTrail (or cloudtrail-data) call signed with the
// SDK's signer for region, the way any SDK would send it; it returns the
// status and the __type of the answer.
func signedCall(t *testing.T, endpoint, service, target, path, body, region string) (int, string) {
	t.Helper()
	r, _ := http.NewRequest("POST", endpoint+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		r.Header.Set("X-Amz-Target", target)
	}
	sum := sha256Hex(body)
	r.Header.Set("X-Amz-Content-Sha256", sum)
	creds := aws.Credentials{AccessKeyID: "AKIAALICE00000000001", SecretAccessKey: "alice-secret-key"}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, sum, service, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		Type string `json:"__type"`
	}
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Type
}

// storedRecords reads every record of a stopped server's store.
func storedRecords(t *testing.T, dataDir string) []audit.Record {
	t.Helper()
	st, err := openStore(context.Background(), &config.Config{}, dataDir, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []audit.Record
	for after := int64(0); ; {
		batch, err := st.ReadAppended(context.Background(), after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			return out
		}
		for _, a := range batch {
			out = append(out, a.Record)
		}
		after = batch[len(batch)-1].Seq
	}
}

// TestRegionsValidatedAtTheAPI: a call signed for something that is no
// region is refused at the door, through the SDK's client where the SDK
// lets the region through and through the SDK's signer otherwise, for
// the control plane, the data plane and the import target, with AWS's
// error; nothing is recorded in such a region. Real regions of every
// partition work and record their calls in their region.
func TestRegionsValidatedAtTheAPI(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	ctx := context.Background()
	for _, region := range hostileRegions {
		c := ts.client("AKIAALICE00000000001", "alice-secret-key", region)
		_, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{})
		// The SDK refuses some regions itself (no API error): then only
		// the signer's calls below reach the server.
		if code := errCode(err); err == nil || code != "" && code != "InvalidSignatureException" && code != "IncompleteSignatureException" {
			t.Errorf("LookupEvents through the SDK signed for %.20q = %v", region, err)
		}
		for _, call := range []struct{ service, target, path, body string }{
			{"cloudtrail", "CloudTrail_20131101.LookupEvents", "/", `{}`},
			{"cloudtrail", "CloudTrail_20131101.CreateTrail", "/", `{"Name":"t","S3BucketName":"b"}`},
			{"cloudtrail-data", "", "/PutAuditEvents?channelArn=x", `{"auditEvents":[]}`},
			{"cloudtrail", "CairnImport_20251101.ImportRecords", "/", `{"Records":[]}`},
		} {
			status, code := signedCall(t, ts.endpoint, call.service, call.target, call.path, call.body, region)
			want := "InvalidSignatureException"
			if strings.Contains(region, "/") {
				want = "IncompleteSignatureException" // the scope has too many parts
			}
			if status/100 != 4 || code != want {
				t.Errorf("%s%s signed for %.20q: %d %s; want 4xx %s", call.target, call.path, region, status, code, want)
			}
		}
	}
	for _, region := range []string{"us-gov-west-1", "cn-north-1", "ap-southeast-5", "eusc-de-east-1", "il-central-1"} {
		c := ts.client("AKIAALICE00000000001", "alice-secret-key", region)
		if _, err := c.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil {
			t.Errorf("DescribeTrails in %s: %v", region, err)
			continue
		}
		found := false
		for i := 0; i < 200 && !found; i++ {
			out, err := c.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: attr("EventName", "DescribeTrails")})
			if err != nil {
				t.Fatalf("LookupEvents in %s: %v", region, err)
			}
			found = len(out.Events) > 0
			time.Sleep(10 * time.Millisecond)
		}
		if !found {
			t.Errorf("DescribeTrails in %s was not recorded in %s", region, region)
		}
	}
	ts.stop()
	recs := storedRecords(t, ts.dataDir)
	if len(recs) == 0 {
		t.Fatal("nothing was recorded at all")
	}
	for _, r := range recs {
		if !audit.ValidRegion(r.Region) {
			t.Errorf("a record of %s in region %.20q", r.EventName, r.Region)
		}
	}
}

// TestImportRefusesInvalidRegions: records whose awsRegion is no region
// are refused, each reported, offline and through the server; the others
// are stored.
func TestImportRefusesInvalidRegions(t *testing.T) {
	dir := t.TempDir()
	var recs []string
	// A publisher's anonymised region and an availability zone's name are
	// region names a record may carry (audit.ValidRecordRegion), though
	// no call may be signed for them.
	good := []string{"us-gov-west-1", "cn-north-1", "ap-southeast-5", "us-north-2r"}
	var hostile []string
	for _, r := range hostileRegions {
		if r == "us-east-1a" {
			good = append(good, r)
			continue
		}
		hostile = append(hostile, r)
	}
	hostile = append(hostile, "us-east-1.")
	for i, region := range append(append([]string(nil), good...), hostile...) {
		r, _ := json.Marshal(region)
		recs = append(recs, fmt.Sprintf(`{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",`+
			`"eventName":"ListBuckets","awsRegion":%s,"eventID":"e%d","recipientAccountId":"111111111111"}`, r, i))
	}
	os.MkdirAll(dir+"/logs", 0o755)
	writeFile(t, dir+"/logs/a.json", `{"Records":[`+strings.Join(recs, ",")+`]}`)
	cfg := fmt.Sprintf(twoAccounts, 0)
	check := func(how string, code int, stdout, stderr string) {
		t.Helper()
		var rep struct{ Records, Imported, Rejected int }
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("%s: report %q: %v", how, stdout, err)
		}
		if code != 1 || rep.Records != len(recs) || rep.Imported != len(good) || rep.Rejected != len(hostile) {
			t.Errorf("%s: exit %d, report %+v; want %d imported, %d rejected", how, code, rep, len(good), len(hostile))
		}
		// Every hostile record is named (the empty region is "no awsRegion").
		for i := len(good) + 1; i <= len(recs); i++ {
			if !strings.Contains(stderr, fmt.Sprintf("a.json: record %d: ", i)) {
				t.Errorf("%s: record %d is not reported: %s", how, i, stderr)
			}
		}
	}

	// Offline.
	dataDir := t.TempDir()
	writeFile(t, dataDir+"/cairn.yaml", cfg)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--data-dir", dataDir, "--config", dataDir + "/cairn.yaml", "--no-progress", "--max-errors", "100",
		"--output", "json", dir + "/logs"}, &stdout, &stderr)
	check("offline", code, stdout.String(), stderr.String())

	// Through the server, into a fresh data dir; then into a CloudTrail
	// Lake event data store (StartImport reads the files the same way).
	ts := startServer(t, cfg+"lake:\n  import_roots: ["+dir+"]\n", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAALICE00000000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "alice-secret-key")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"import", "--endpoint-url", ts.endpoint, "--region", "us-east-1", "--no-progress", "--max-errors", "100",
		"--output", "json", dir + "/logs"}, &stdout, &stderr)
	check("through the server", code, stdout.String(), stderr.String())
	eds, err := alice(ts).CreateEventDataStore(context.Background(), &cloudtrail.CreateEventDataStoreInput{Name: aws.String("imports"),
		RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"import", "--endpoint-url", ts.endpoint, "--into", aws.ToString(eds.EventDataStoreArn),
		dir + "/logs"}, &stdout, &stderr)
	if want := fmt.Sprintf("events %d\tfailed %d", len(good), len(hostile)); code != 1 || !strings.Contains(stdout.String(), want) {
		t.Errorf("import --into a Lake store: exit %d, %s%s; want %q", code, stdout.String(), stderr.String(), want)
	}
	ts.stop()
	for _, d := range []string{dataDir, ts.dataDir} {
		n := 0
		for _, r := range storedRecords(t, d) {
			if !audit.ValidRecordRegion(r.Region) {
				t.Errorf("%s holds a record in region %.20q", d, r.Region)
			}
			if r.EventName == "ListBuckets" {
				n++
			}
		}
		if n != len(good) {
			t.Errorf("%s holds %d imported records; want %d", d, n, len(good))
		}
	}
}

// TestUndeliverableRecordDoesNotStallTheTrail: a record stored before
// regions were validated, in region '..', is set aside by the trail's
// delivery (GetTrailStatus and the metric say so) and the events after
// it are delivered, once each.
func TestUndeliverableRecordDoesNotStallTheTrail(t *testing.T) {
	logs := t.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 0) + fmt.Sprintf("buckets:\n  - name: local-logs\n    local_dir: %s\ndelivery:\n  interval: 1s\n", logs)
	dataDir := t.TempDir()
	ts := startServer(t, cfg, dataDir)
	ctx := context.Background()
	ct := alice(ts)
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs"),
		IsMultiRegionTrail: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("audit")}); err != nil {
		t.Fatal(err)
	}
	ts.stop()

	// A legacy record, below the API: straight into the store.
	st, err := openStore(context.Background(), &config.Config{}, dataDir, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	var legacy []audit.Record
	for i, region := range []string{"..", "<script>", strings.Repeat("r", 300)} {
		r, _ := json.Marshal(region)
		raw := fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%q,"eventSource":"ec2.amazonaws.com","eventName":"Legacy",`+
			`"awsRegion":%s,"eventID":"legacy-%d","eventType":"AwsApiCall","recipientAccountId":"111111111111"}`,
			time.Now().UTC().Format(audit.TimeFormat), r, i)
		rec, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		legacy = append(legacy, rec)
	}
	if _, err := st.Append(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	st.Close()

	ts = startServer(t, cfg, dataDir)
	ct = alice(ts)
	for i := 0; i < 3; i++ {
		if _, err := ct.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil {
			t.Fatal(err)
		}
	}
	// A round writes its files before it saves the trail's position and
	// status: wait for the files, then for the status the round that set
	// the legacy records aside saved (the first server set none aside).
	var names map[string]int
	deadline := testwait.End(t)
	for ; ; time.Sleep(50 * time.Millisecond) {
		names = eventNames(t, logRecords(t, localFiles(t, logs)))
		if names["DescribeTrails"] >= 3 || time.Now().After(deadline) {
			break
		}
	}
	var status *cloudtrail.GetTrailStatusOutput
	for ; ; time.Sleep(50 * time.Millisecond) {
		if status, err = ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")}); err != nil {
			t.Fatal(err)
		}
		if aws.ToString(status.LatestDeliveryError) == "InvalidArgument" || time.Now().After(deadline) {
			break
		}
	}
	if aws.ToString(status.LatestDeliveryError) != "InvalidArgument" || status.LatestDeliveryTime == nil {
		t.Errorf("GetTrailStatus: LatestDeliveryError %q, LatestDeliveryTime %v; want InvalidArgument and a delivery time",
			aws.ToString(status.LatestDeliveryError), status.LatestDeliveryTime)
	}
	// The metric counts a set-aside before its round saves the status.
	resp, err := http.Get(ts.endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `cairn_trail_records_set_aside_total{code="InvalidArgument"} 3`) {
		t.Errorf("/metrics does not count the 3 records set aside")
	}
	// Read again, later: still each DescribeTrails once.
	if names = eventNames(t, logRecords(t, localFiles(t, logs))); names["DescribeTrails"] != 3 || names["Legacy"] != 0 {
		t.Errorf("delivered %v; want the 3 DescribeTrails after the legacy records, once each, and no legacy record", names)
	}
}
