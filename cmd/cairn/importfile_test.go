package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	gocmp "github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestImportFilesThroughServerReportAsOffline: `cairn import
// --endpoint-url` sends .json.gz files whole (ImportRecords with the
// file's bytes) and reports exactly what the offline import of the same
// files reports, in its JSON output: per account and region, the first
// errors of each file by record number and the rest counted, a truncated
// file's records before the damage (the client reads a file the server
// refuses), a file named .json.gz that is not gzip, plain .json files;
// and again, every record already there. The server recorded the files'
// calls with their keys.
func TestImportFilesThroughServerReportAsOffline(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "AWSLogs")
	region := filepath.Join(logs, "111111111111", "CloudTrail", "us-east-1", "2021", "05", "04")
	os.MkdirAll(region, 0o755)
	os.MkdirAll(filepath.Join(logs, "111111111111", "CloudTrail-Digest"), 0o755)
	var handedRaw []string
	for _, h := range handedLogs() {
		handedRaw = append(handedRaw, string(h.raw()))
	}
	file := func(recs ...string) []byte { return []byte(`{"Records":[` + strings.Join(recs, ",") + `]}`) }
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(region, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Many accounts and regions, one record twice.
	write("a.json.gz", gzipBytes(t, file(append(handedRaw[:30], handedRaw[3])...)))
	// Invalid records between good ones: 3 named, the rest counted.
	write("b.json.gz", gzipBytes(t, file(handedRaw[30], `{"eventID":"no-time"}`, `17`, `"x"`, `{"eventID":"x2"}`, `[]`, handedRaw[31])))
	// Truncated: the records before the damage are imported.
	trunc := gzipBytes(t, file(handedRaw[32:44]...))
	write("c.json.gz", trunc[:len(trunc)*2/3])
	// Not gzip, though named so; and a plain file.
	write("d.json.gz", file(handedRaw[44:46]...))
	write("e.json", file(handedRaw[46:]...))
	// A digest file is skipped, and an empty gzip file is read.
	os.WriteFile(filepath.Join(logs, "111111111111", "CloudTrail-Digest", "x.json.gz"), gzipBytes(t, []byte(`{}`)), 0o600)
	write("f.json.gz", gzipBytes(t, nil))

	imp := func(args ...string) (int, map[string]any, string) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"import", "--no-progress", "--output", "json"}, args...), &stdout, &stderr)
		var rep map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatalf("report %q: %v\n%s", stdout.String(), err, stderr.String())
		}
		delete(rep, "Seconds")
		delete(rep, "Bytes")
		// Errors come in no particular order (files are read at once).
		errors := rep["Errors"].([]any)
		slices.SortFunc(errors, func(a, b any) int {
			x, y := a.(map[string]any), b.(map[string]any)
			return cmp.Or(strings.Compare(x["File"].(string), y["File"].(string)), int(x["Record"].(float64)-y["Record"].(float64)))
		})
		return code, rep, stderr.String()
	}
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, responderConfig())
	offCode, offline, _ := imp("--data-dir", dataDir, "--config", cfgPath, logs)
	offCode2, offline2, _ := imp("--data-dir", dataDir, "--config", cfgPath, logs)

	ts := startServer(t, responderConfig(), "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIARESPONDER0000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "responder-secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	code, served, errs := imp("--endpoint-url", ts.endpoint, "--region", "us-east-1", logs)
	if code != offCode || offCode != exitRefused {
		t.Errorf("exit %d through the server, %d offline; want %d\n%s", code, offCode, exitRefused, errs)
	}
	if diff := gocmp.Diff(offline, served); diff != "" {
		t.Errorf("report through the server differs from offline (-offline +server):\n%s", diff)
	}
	if offline["Imported"].(float64) < 35 || offline["Rejected"].(float64) != 5 || offline["FileErrors"].(float64) != 2 {
		t.Errorf("offline report %v; want 35 and more imported, 5 rejected, 2 file errors (c and f)", offline)
	}
	code, served2, errs := imp("--endpoint-url", ts.endpoint, "--region", "us-east-1", logs)
	if code != offCode2 {
		t.Errorf("again: exit %d through the server, %d offline\n%s", code, offCode2, errs)
	}
	if diff := gocmp.Diff(offline2, served2); diff != "" {
		t.Errorf("again: report through the server differs from offline (-offline +server):\n%s", diff)
	}

	// The gzip files went whole: their calls are recorded with their keys
	// (a.json.gz and b.json.gz twice; c.json.gz was refused, then read
	// by the client and sent framed, as d.json.gz and e.json were).
	ct := ts.client("AKIARESPONDER0000001", "responder-secret", "us-east-1")
	want := map[string]int{"a.json.gz": 2, "b.json.gz": 2, "f.json.gz": 2}
	files := map[string]int{}
	// The calls' records reach the store within the pipeline's delay.
	_ = testwait.Wait(t, func() error {
		out, err := ct.LookupEvents(context.Background(), &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50),
			LookupAttributes: []types.LookupAttribute{{AttributeKey: types.LookupAttributeKeyEventName, AttributeValue: aws.String("ImportRecords")}}})
		if err != nil {
			t.Fatal(err)
		}
		files = map[string]int{}
		for _, e := range out.Events {
			var ev struct {
				RequestParameters struct {
					File string `json:"file"`
				}
			}
			json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &ev)
			if ev.RequestParameters.File != "" {
				files[filepath.Base(ev.RequestParameters.File)]++
			}
		}
		if fmt.Sprint(files) != fmt.Sprint(want) {
			return errors.New("not yet")
		}
		return nil
	})
	if want := map[string]int{"a.json.gz": 2, "b.json.gz": 2, "f.json.gz": 2}; fmt.Sprint(files) != fmt.Sprint(want) {
		t.Errorf("files imported whole, by the server's records: %v; want %v", files, want)
	}
}
