package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// smallDisk mounts a tmpfs of size MiB on a new temp folder for the test.
// Mounting needs root: CI runs the suite as root, and scripts/check.sh sets
// CAIRN_REQUIRE_TMPFS=1, so there a failed mount fails the test; elsewhere
// it skips.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a small tmpfs (run as root, as CI does; CAIRN_REQUIRE_TMPFS=1 makes this a failure): %v: %s", err, out)
		if os.Getenv("CAIRN_REQUIRE_TMPFS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the file system has at most leave bytes
// free (0: until a write fails with ENOSPC). It returns the file's path.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		free := int64(st.Bavail) * int64(st.Bsize)
		if leave > 0 && free <= leave {
			return path
		}
		n := int64(len(chunk))
		if leave > 0 {
			n = min(n, free-leave)
		}
		if _, err := f.Write(chunk[:max(n, 4096)]); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

// TestDiskFullRefusesWritesAndRecovers fills the small disk of the data
// dir, below the free-space floor or to the last byte: write calls
// (ImportRecords, CreateTrail, AddTags, PutEventSelectors) are refused with
// ServiceUnavailableException (503), never a 500 or a hang; the server
// stays up, reads work, the log and cairn_ingest_disk_full say so. Once
// space is freed, writes succeed again by themselves, and every write
// acknowledged before, during and after is there.
func TestDiskFullRefusesWritesAndRecovers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		minFree int   // ingest.min_free_mb
		leave   int64 // bytes the filler leaves free
	}{
		{"below the free-space floor", 16, 8 << 20},
		{"to the last byte", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := smallDisk(t, 96)
			dataDir := filepath.Join(disk, "data")
			if err := os.Mkdir(dataDir, 0o700); err != nil {
				t.Fatal(err)
			}
			logs := t.TempDir() // the trail's bucket, on another disk
			cfg := fmt.Sprintf(twoAccounts, 0) + fmt.Sprintf("buckets:\n  - name: local-logs\n    local_dir: %s\ntrails:\n  max_per_region: 100\ningest:\n  min_free_mb: %d\n", logs, tc.minFree)
			ts := startServer(t, cfg, dataDir)
			ctx := context.Background()
			ct := noRetryOnRefusal(ts, "AKIAALICE00000000001", "alice-secret-key")
			sink := importSink(ts, "AKIAALICE00000000001", "alice-secret-key", 1)
			acked := map[string]bool{} // event IDs of acknowledged imports
			n := 0
			importCall := func() error {
				recs := make([]audit.Record, 3)
				ids := make([]string, len(recs))
				for i := range recs {
					n++
					recs[i] = accountRecord("111111111111", "disk", n, time.Now())
					ids[i] = eventID("disk", n)
				}
				res, fails, err := sink.AppendReport(ctx, recs)
				if err == nil {
					if res.Inserted != len(recs) || len(fails) != 0 {
						t.Fatalf("ImportRecords = %+v, %v", res, fails)
					}
					for _, id := range ids {
						acked[id] = true
					}
				}
				return err
			}
			tags := map[string]bool{}
			trailARN := ""
			writes := []struct {
				op string
				do func(i int) error
			}{
				{"ImportRecords", func(int) error { return importCall() }},
				{"AddTags", func(i int) error {
					k := fmt.Sprint("k", i)
					_, err := ct.AddTags(ctx, &cloudtrail.AddTagsInput{ResourceId: aws.String(trailARN), TagsList: []types.Tag{{Key: aws.String(k), Value: aws.String("v")}}})
					if err == nil {
						tags[k] = true
					}
					return err
				}},
				{"CreateTrail", func(i int) error {
					_, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String(fmt.Sprint("t", i)), S3BucketName: aws.String("local-logs")})
					return err
				}},
				{"PutEventSelectors", func(int) error {
					_, err := ct.PutEventSelectors(ctx, &cloudtrail.PutEventSelectorsInput{TrailName: aws.String("audit"),
						EventSelectors: []types.EventSelector{{ReadWriteType: types.ReadWriteTypeWriteOnly}}})
					return err
				}},
			}
			// Before: a trail and acknowledged imports.
			out, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")})
			if err != nil {
				t.Fatal(err)
			}
			trailARN = aws.ToString(out.TrailARN)
			for i, w := range writes {
				if err := w.do(100 + i); err != nil {
					t.Fatalf("%s before the disk filled: %v", w.op, err)
				}
			}

			filler := fill(t, disk, tc.leave)
			// The free space is read at most every 100 ms.
			time.Sleep(150 * time.Millisecond)

			// While full: every write is acknowledged or refused with
			// ServiceUnavailableException; refusals come (a page of slack
			// may take the first small writes).
			refused := 0
			for i := range 12 {
				w := writes[i%len(writes)]
				err := w.do(200 + i)
				switch code := errCode(err); {
				case err == nil:
				case code == "ServiceUnavailableException":
					refused++
					if !strings.Contains(err.Error(), "disk") {
						t.Errorf("%s refusal does not say why: %v", w.op, err)
					}
				default:
					var re *cairnclient.ImportError
					if errors.As(err, &re) && re.Code == "ServiceUnavailableException" && re.Status == http.StatusServiceUnavailable {
						refused++
						continue
					}
					t.Errorf("%s on a full disk = %v; want success or ServiceUnavailableException", w.op, err)
				}
			}
			if refused < 6 {
				t.Errorf("%d of 12 writes refused on a full disk; want the writes refused", refused)
			}
			if got := metric(t, ts, "cairn_ingest_disk_full"); got != "1" {
				t.Errorf("cairn_ingest_disk_full = %q while full; want 1", got)
			}
			// Reads work.
			if _, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(5)}); err != nil {
				t.Errorf("LookupEvents on a full disk: %v", err)
			}
			if _, err := ct.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("audit")}); err != nil {
				t.Errorf("GetTrailStatus on a full disk: %v", err)
			}
			if _, err := ct.DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{}); err != nil {
				t.Errorf("DescribeTrails on a full disk: %v", err)
			}

			// Space freed: writes resume by themselves.
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			deadline := testwait.End(t)
			for {
				err := importCall()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("writes still refused at the test's deadline, space freed: %v", err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			for i, w := range writes {
				if err := w.do(300 + i); err != nil {
					t.Errorf("%s once space was freed: %v", w.op, err)
				}
			}
			if got := metric(t, ts, "cairn_ingest_disk_full"); got != "0" {
				t.Errorf("cairn_ingest_disk_full = %q after recovery; want 0", got)
			}

			// Every acknowledged write is there, also after a restart.
			check := func(when string) {
				found := map[string]bool{}
				for _, e := range lookupAll(t, ct, &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventSource, "s3.amazonaws.com")}) {
					found[aws.ToString(e.EventId)] = true
				}
				lost := 0
				for id := range acked {
					if !found[id] {
						lost++
					}
				}
				if lost > 0 {
					t.Errorf("%s: %d of %d acknowledged imported records missing", when, lost, len(acked))
				}
				lt, err := ct.ListTags(ctx, &cloudtrail.ListTagsInput{ResourceIdList: []string{trailARN}})
				if err != nil {
					t.Fatalf("%s: ListTags: %v", when, err)
				}
				have := map[string]bool{}
				for _, rt := range lt.ResourceTagList {
					for _, tg := range rt.TagsList {
						have[aws.ToString(tg.Key)] = true
					}
				}
				for k := range tags {
					if !have[k] {
						t.Errorf("%s: acknowledged tag %s missing", when, k)
					}
				}
			}
			waitIngested(t, ts.endpoint)
			check("after recovery")
			ts.stop()
			ts = startServer(t, cfg, dataDir)
			ct = noRetryOnRefusal(ts, "AKIAALICE00000000001", "alice-secret-key")
			check("after a restart")
		})
	}
}

// TestCallerTextCannotMarkTheDiskFull: an error answer that quotes the
// caller's input ("no space left on device" as an import source) must not
// make cairn believe its disk is full and refuse every account's writes.
func TestCallerTextCannotMarkTheDiskFull(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 0), "")
	ctx := context.Background()
	mallory := newCloudTrail(ts.endpoint, "us-east-1", "AKIABOB0000000000001", "bob-secret-key", 1)
	eds, err := mallory.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("text"), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	// Two answers that quote the caller: a trail's bucket, a Lake import's source.
	_, err = mallory.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("text"), S3BucketName: aws.String("no space left on device")})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("CreateTrail into a bucket named so: %v; want an error quoting it", err)
	}
	_, err = mallory.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{aws.ToString(eds.EventDataStoreArn)},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("s3://no space left on device"),
			S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::222222222222:role/x")}}})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("StartImport of a source that is no S3 URI: %v; want an error quoting it", err)
	}
	if got := metric(t, ts, "cairn_ingest_disk_full"); got != "0" {
		t.Fatalf("cairn_ingest_disk_full = %q after a caller's text; want 0", got)
	}
	sink := importSink(ts, "AKIAALICE00000000001", "alice-secret-key", 1)
	if _, err := sink.Append(ctx, []audit.Record{accountRecord("111111111111", "text", 1, time.Now())}); err != nil {
		t.Fatalf("another account's import after it: %v", err)
	}
}
