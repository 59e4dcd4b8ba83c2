package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// BenchmarkLiveIngest measures live ingest into Event History and one
// logging trail (issue 15: at least 50k events/s): 4 clients
// (CAIRN_BENCH_INGEST_CLIENTS=n for another number) send ImportRecords
// calls of 100 records (SigV4, the SDK's signer through cairn's client),
// b.N calls in all, a call the server pushes back on sent again after a
// backoff. acked-events/s counts records acknowledged (journaled);
// stored-events/s runs until the last record is returned by LookupEvents;
// delivered-events/s until the last trail log file holding the
// benchmark's records was written (local bucket, delivered every second;
// its modification time). cpu-us/event
// is the CPU time of the whole test process (server, signing clients and
// the check of the delivered files; getrusage) from the first call until
// the files hold every record, over the records.
func BenchmarkLiveIngest(b *testing.B) {
	logs := b.TempDir()
	cfg := fmt.Sprintf(twoAccounts, 0) + fmt.Sprintf("buckets:\n  - name: local-logs\n    local_dir: %s\ndelivery:\n  interval: 1s\n", logs)
	ts := startServer(b, cfg, "")
	ctx := context.Background()
	ct := ts.client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("audit"), S3BucketName: aws.String("local-logs")}); err != nil {
		b.Fatal(err)
	}
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String("audit")}); err != nil {
		b.Fatal(err)
	}
	const perCall = 100
	clients := 4
	if n, err := strconv.Atoi(os.Getenv("CAIRN_BENCH_INGEST_CLIENTS")); err == nil && n > 0 {
		clients = n
	}
	// Sustained, not a burst into the queue: a call refused because the
	// account's backlog is past its share (ThrottlingException) is sent
	// again after a backoff, so the rates are what the writer keeps up with.
	sink := importSinkAttempts(ts, "AKIAALICE00000000001", "alice-secret-key", clients, 100)
	var next, acked atomic.Int64
	calls := int64(b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				c := next.Add(1) - 1
				if c >= calls {
					return
				}
				recs := make([]audit.Record, perCall)
				for i := range recs {
					recs[i] = accountRecord("111111111111", "live", int(c)*perCall+i, time.Now())
				}
				res, fails, err := sink.AppendReport(ctx, recs)
				if err != nil || len(fails) > 0 {
					b.Errorf("ImportRecords: %v %v", err, fails)
					return
				}
				acked.Add(int64(res.Inserted))
			}
		})
	}
	wg.Wait()
	ackedIn := time.Since(start)
	total := acked.Load()
	last := eventID("live", int(calls)*perCall-1)
	for {
		out, err := ct.LookupEvents(ctx, &cloudtrail.LookupEventsInput{LookupAttributes: []types.LookupAttribute{
			{AttributeKey: types.LookupAttributeKeyEventId, AttributeValue: aws.String(last)}}})
		// ThrottlingException: the account's backlog of records not yet
		// stored is past its share, and the pipeline pushes back on its
		// calls, reads included, until the writer catches up: poll again.
		if err != nil && errCode(err) != "ThrottlingException" {
			b.Fatal(err)
		}
		if err == nil && len(out.Events) == 1 {
			break
		}
		if time.Now().After(testwait.End(b)) {
			b.Fatalf("last record not stored before the binary's deadline (-timeout less %v)", testwait.Margin)
		}
		time.Sleep(20 * time.Millisecond)
	}
	storedIn := time.Since(start)
	var files deliveredFiles
	for files.count(logs, "live") < total {
		if time.Now().After(testwait.End(b)) {
			b.Fatalf("%d of %d records delivered before the binary's deadline (-timeout less %v)", files.count(logs, "live"), total, testwait.Margin)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Delivered when the last of the log files was written (its
	// modification time): counting the files' records is the benchmark's
	// own work, and after the last lookup it read every file at once
	// (about 2 s for 1M records), which the delivery rate had counted.
	deliveredIn, cpu := files.newest.Sub(start), processCPU()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-us/event")
	b.ReportMetric(float64(total)/ackedIn.Seconds(), "acked-events/s")
	b.ReportMetric(float64(total)/storedIn.Seconds(), "stored-events/s")
	b.ReportMetric(float64(total)/deliveredIn.Seconds(), "delivered-events/s")
}

// deliveredFiles counts the records of the trail's log files, reading
// each file once: a log file is written whole (atomically). Reading every
// file at every poll took 15% of the test's CPU, beside the server it
// measures; decoding each file once, 10%; reading each into a buffer grown
// from nothing, 5%.
type deliveredFiles struct {
	counted map[string]int64 // by path
	newest  time.Time        // the latest modification time of a file with the tag's records
	zr      *gzip.Reader
	buf     bytes.Buffer
}

// count returns how many records of the log files under dir have the
// benchmark's requestID tag, each file checked to be whole JSON.
func (f *deliveredFiles) count(dir, tag string) int64 {
	if f.counted == nil {
		f.counted = map[string]int64{}
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json.gz") || strings.Contains(p, "Digest") {
			return nil
		}
		if _, ok := f.counted[p]; ok {
			return nil
		}
		file, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer file.Close()
		if f.zr == nil {
			f.zr, err = gzip.NewReader(file)
		} else {
			err = f.zr.Reset(file)
		}
		if err != nil {
			return nil
		}
		f.buf.Reset()
		if _, err := f.buf.ReadFrom(f.zr); err != nil || !json.Valid(f.buf.Bytes()) {
			return nil
		}
		// The records are delivered byte for byte as sent: their
		// requestID member is found as the benchmark wrote it.
		n := int64(bytes.Count(f.buf.Bytes(), []byte(`"requestID":"REQ`+tag)))
		f.counted[p] = n
		// A file of other records only (the server's own, of the
		// benchmark's lookups) does not move the delivery's end.
		if info, err := d.Info(); err == nil && n > 0 && info.ModTime().After(f.newest) {
			f.newest = info.ModTime()
		}
		return nil
	})
	var n int64
	for _, c := range f.counted {
		n += c
	}
	return n
}

// processCPU is the CPU time the process used (user + system, all
// threads).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
