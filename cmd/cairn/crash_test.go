package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cairn-audit/cairn/internal/audit"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/testaddr"
	"github.com/cairn-audit/cairn/internal/testproc"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestMain lets a test run this package's main as a separate process: the
// test binary started with CAIRN_TEST_MAIN=1 is the cairn command (so a
// test can kill -9 a real server process without building the binary).
func TestMain(m *testing.M) {
	if dir := os.Getenv("CAIRN_TEST_DUMP_STORE"); dir != "" {
		os.Exit(dumpStore(dir))
	}
	if os.Getenv("CAIRN_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		stopProfiles := startProfiles()
		code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stopProfiles()
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startProfiles starts a CPU profile of a process started with
// CAIRN_TEST_MAIN=1 when CAIRN_TEST_CPUPROFILE names a file prefix (the
// file is PREFIX.PID: a benchmark may restart its server), and the
// returned func stops it and, with CAIRN_TEST_MEMPROFILE, writes the
// allocations profile (PREFIX.PID) as the process exits.
func startProfiles() func() {
	var cpu *os.File
	if p := os.Getenv("CAIRN_TEST_CPUPROFILE"); p != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid()))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if p := os.Getenv("CAIRN_TEST_MEMPROFILE"); p != "" {
			if f, err := os.Create(fmt.Sprintf("%s.%d", p, os.Getpid())); err == nil {
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}
}

// dumpStore prints the account, region, category, time, readOnly and
// eventID of every record of the store in data dir dir, one JSON object a
// line, for a test reading the store in a separate process (opening the
// events store in the test process upsets later Lake tests' DuckDB).
func dumpStore(dir string) int {
	ctx := context.Background()
	st, err := duckdb.Open(filepath.Join(dir, storeFile), duckdb.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer st.Close()
	enc := json.NewEncoder(os.Stdout)
	for after := int64(0); ; {
		batch, err := st.ReadAppended(ctx, after, 5000)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if len(batch) == 0 {
			return 0
		}
		for _, a := range batch {
			r := &a.Record
			enc.Encode(storedRecord{r.Account, r.Region, r.Category, r.Time, r.ReadOnly, r.EventID})
		}
		after = batch[len(batch)-1].Seq
	}
}

type storedRecord struct {
	Account, Region string
	Category        audit.Category
	Time            time.Time
	ReadOnly        audit.Tri
	EventID         string
}

// serverProcess is `cairn serve` running as a child process.
type serverProcess struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan struct{} // closed when the process has exited
	err      error         // its Wait error, once done
}

// startServerProcess runs `cairn serve` (this test binary as the cairn
// command) on a free loopback port with dataDir and cfgPath, logging to
// logPath, and waits until it answers /healthz.
func startServerProcess(t testing.TB, dataDir, cfgPath, logPath string) *serverProcess {
	t.Helper()
	return startServerProcessLevel(t, dataDir, cfgPath, logPath, "debug")
}

// startServerProcessLevel is startServerProcess logging at level (a
// benchmark's server logs at info, as an operator's would).
func startServerProcessLevel(t testing.TB, dataDir, cfgPath, logPath, level string) *serverProcess {
	t.Helper()
	addr := testaddr.Free(t)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(os.Args[0], "serve", "--listen", addr, "--data-dir", dataDir, "--config", cfgPath, "--log-level", level)
	cmd.Env = append(os.Environ(), "CAIRN_TEST_MAIN=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := testproc.Start(cmd); err != nil {
		t.Fatal(err)
	}
	p := &serverProcess{cmd: cmd, endpoint: "http://" + addr, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	if err := testwait.Wait(t, func() error {
		select {
		case <-p.done:
			t.Fatalf("cairn serve exited: %v\n%s", p.err, tail(logPath))
		default:
		}
		resp, err := http.Get(p.endpoint + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}); err != nil {
		t.Fatalf("%s\n%s", testwait.Failure("cairn serve answering /healthz", err), tail(logPath))
	}
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *serverProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM (a graceful shutdown) and returns the exit error.
func (p *serverProcess) term(t testing.TB) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-testwait.Context(t).Done(): // a shutdown that hangs
		p.kill()
		return errors.New("no exit after SIGTERM before the test's deadline")
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// deliveredIDs reads log files once each (objects are never rewritten)
// and counts the eventIDs they hold.
type deliveredIDs struct {
	seen    map[string]bool
	count   map[string]int
	files   int
	digests int // digest files seen (S3)
}

func newDeliveredIDs() *deliveredIDs {
	return &deliveredIDs{seen: map[string]bool{}, count: map[string]int{}}
}

func (d *deliveredIDs) add(t *testing.T, key string, gz []byte) {
	t.Helper()
	d.seen[key] = true
	d.files++
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	var f struct {
		Records []struct {
			EventID string `json:"eventID"`
		}
	}
	if err := json.Unmarshal(body, &f); err != nil {
		t.Fatalf("%s: not a CloudTrail log file: %v", key, err)
	}
	for _, r := range f.Records {
		d.count[r.EventID]++
	}
}

// duplicates is the number of deliveries beyond the first of each event.
func (d *deliveredIDs) duplicates() int {
	n := 0
	for _, c := range d.count {
		n += c - 1
	}
	return n
}

// readLocal reads the log files of a local bucket not read before.
func (d *deliveredIDs) readLocal(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".json.gz") || !strings.Contains(path, "/CloudTrail/") {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if d.seen[rel] {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		d.add(t, rel, b)
		return nil
	})
}

// readS3 reads the log files of an S3 bucket not read before.
func (d *deliveredIDs) readS3(t *testing.T, s3c *s3.Client, bucketName string) {
	t.Helper()
	ctx := context.Background()
	p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucketName)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !d.seen[key] && strings.Contains(key, "/CloudTrail-Digest/") {
				d.seen[key] = true
				d.digests++
			}
			if d.seen[key] || !strings.HasSuffix(key, ".json.gz") || !strings.Contains(key, "/CloudTrail/") {
				continue
			}
			obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			d.add(t, key, b)
		}
	}
}

// missing returns the ids of want not delivered.
func (d *deliveredIDs) missing(want map[string]bool) []string {
	var out []string
	for id := range want {
		if d.count[id] == 0 {
			out = append(out, id)
		}
	}
	return out
}

// crashRecord is a CloudTrail record of alice's account written through
// the ImportRecords extension.
func crashRecord(n int, at time.Time) []byte {
	name, ro := "ListBuckets", true
	if n%2 == 1 {
		name, ro = "CreateBucket", false
	}
	return fmt.Appendf(nil, `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAALICE0000000001","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111","accessKeyId":"AKIAALICE00000000001","userName":"alice"},"eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":%q,"awsRegion":"us-east-1","sourceIPAddress":"192.0.2.10","userAgent":"crash-test","requestParameters":{"bucketName":"b-%d"},"responseElements":null,"requestID":"REQ%012d","eventID":"%08x-0000-4000-8000-%012x","readOnly":%t,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`,
		at.UTC().Format(time.RFC3339), name, n, n, n, n, ro)
}

// TestCrashDuringDeliveryLosesNothing kills `cairn serve` with SIGKILL
// while two trails deliver (one to moto_server's S3, one to a local folder
// with write events only) and events are written steadily through the API
// (ImportRecords and the server's own recorded calls), several times, then
// restarts it on the same data dir: after the restart's delivery every
// stored event a trail selects is in exactly one log file of its bucket:
// a batch a kill interrupted is written again under the same keys
// (exactly once), never under new ones.
func TestCrashDuringDeliveryLosesNothing(t *testing.T) {
	moto := mototest.Start(t)
	ctx := context.Background()
	s3c := newS3(moto, "x", "y", 0) // moto is not under test: the SDK's retries
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	dataDir, localDir := filepath.Join(work, "data"), filepath.Join(work, "local-logs")
	cfgPath, logPath := filepath.Join(work, "cairn.yaml"), filepath.Join(work, "serve.log")
	cfg := fmt.Sprintf(twoAccounts, 90) + fmt.Sprintf(`buckets:
  - name: audit-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
  - name: local-logs
    local_dir: %q
delivery:
  interval: 1s
  digest_interval: 2s
`, moto, localDir)
	writeFile(t, cfgPath, cfg)
	defer func() {
		if t.Failed() {
			t.Logf("serve log:\n%s", tail(logPath))
		}
	}()

	var endpoint atomic.Pointer[string]
	proc := startServerProcess(t, dataDir, cfgPath, logPath)
	endpoint.Store(&proc.endpoint)
	// The SDK's retries (3 attempts): a call cut by a kill may be retried
	// once the server is back; only acknowledged records are checked.
	client := func() *cloudtrail.Client {
		return newCloudTrail(*endpoint.Load(), "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 3)
	}
	ct := client()
	created, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("to-s3"), S3BucketName: aws.String("audit-logs"),
		EnableLogFileValidation: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("to-local"), S3BucketName: aws.String("local-logs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.PutEventSelectors(ctx, &cloudtrail.PutEventSelectorsInput{TrailName: aws.String("to-local"),
		EventSelectors: []types.EventSelector{{IncludeManagementEvents: aws.Bool(true), ReadWriteType: types.ReadWriteTypeWriteOnly}}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"to-s3", "to-local"} {
		if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: aws.String(name)}); err != nil {
			t.Fatal(err)
		}
	}
	// Events from the next whole second on are selected by both trails'
	// logging periods; the seconds before are left out of the check.
	from := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(from))

	// Writers: ImportRecords calls of 20 records, and calls the server
	// records itself. A call that fails (the server is down) is retried
	// by nobody; only acknowledged records must survive.
	var (
		wg   sync.WaitGroup
		stop = make(chan struct{})
		acks = &ackedImports{ids: map[string]bool{}}
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		n := 0
		for {
			select {
			case <-stop:
				return
			default:
			}
			recs := make([]audit.Record, 20)
			ids := make([]string, len(recs))
			for i := range recs {
				n++
				recs[i].Raw = crashRecord(n, time.Now())
				ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)
			}
			if !acks.send(ctx, t, *endpoint.Load(), recs, ids) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			c := client()
			c.ListTrails(ctx, &cloudtrail.ListTrailsInput{})
			c.GetTrailStatus(ctx, &cloudtrail.GetTrailStatusInput{Name: aws.String("to-s3")})
			time.Sleep(30 * time.Millisecond)
		}
	}()
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	s3IDs, localIDs := newDeliveredIDs(), newDeliveredIDs()
	const crashes = 3
	for i := range crashes {
		// Kill while delivery is busy: both buckets have received new
		// log files since this run started, and the S3 trail a digest
		// (so the chain goes across the crashes), then at a random moment
		// of the next second (a 1 s interval).
		s3Files, localFiles, digests := s3IDs.files, localIDs.files, s3IDs.digests
		for deadline := testwait.End(t); s3IDs.files < s3Files+2 || localIDs.files < localFiles+2 || s3IDs.digests == digests; {
			if time.Now().After(deadline) {
				t.Fatalf("run %d: no delivery before the test's deadline (files: s3 %d, local %d; digests %d)", i+1, s3IDs.files, localIDs.files, s3IDs.digests)
			}
			time.Sleep(200 * time.Millisecond)
			s3IDs.readS3(t, s3c, "audit-logs")
			localIDs.readLocal(t, localDir)
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Millisecond)
		proc.kill()
		t.Logf("run %d: SIGKILL after %d records acknowledged; files so far: s3 %d (and %d digests), local %d", i+1, acks.written.Load(), s3IDs.files, s3IDs.digests, localIDs.files)
		proc = startServerProcess(t, dataDir, cfgPath, logPath)
		endpoint.Store(&proc.endpoint)
	}
	// Writes go on for a while after the last restart, then stop.
	for deadline := acks.written.Load() + 200; acks.written.Load() < deadline; {
		time.Sleep(100 * time.Millisecond)
	}
	stopWriters()
	if t.Failed() {
		return
	}

	// Every event LookupEvents has now (the store) that a trail selects
	// reaches its bucket through the restarted server's delivery.
	selectedNow := func() (all, writes map[string]bool) {
		all, writes = map[string]bool{}, map[string]bool{}
		for _, e := range lookupAll(t, client(), &cloudtrail.LookupEventsInput{StartTime: aws.Time(from)}) {
			var r struct {
				EventID  string `json:"eventID"`
				ReadOnly *bool  `json:"readOnly"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &r); err != nil {
				t.Fatal(err)
			}
			all[r.EventID] = true
			if r.ReadOnly != nil && !*r.ReadOnly {
				writes[r.EventID] = true
			}
		}
		return all, writes
	}
	waitIngested(t, proc.endpoint)
	all, writes := selectedNow()
	acks.mu.Lock()
	for id := range acks.ids {
		if !all[id] {
			t.Errorf("acknowledged record %s is not in the store after the crashes", id)
		}
	}
	acks.mu.Unlock()
	for deadline := testwait.End(t); ; {
		s3IDs.readS3(t, s3c, "audit-logs")
		localIDs.readLocal(t, localDir)
		ms, ml := s3IDs.missing(all), localIDs.missing(writes)
		if len(ms) == 0 && len(ml) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("at the test's deadline, after the last restart, not delivered: to S3 %d of %d (e.g. %v), to the local folder %d of %d (e.g. %v)",
				len(ms), len(all), ms[:min(3, len(ms))], len(ml), len(writes), ml[:min(3, len(ml))])
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A graceful stop; then the whole store, read directly, against the
	// buckets: every record a trail selects is there.
	if err := proc.term(t); err != nil {
		t.Fatalf("cairn serve after SIGTERM: %v", err)
	}
	s3IDs.readS3(t, s3c, "audit-logs")
	localIDs.readLocal(t, localDir)

	// The S3 trail's digests still validate: files delivered before a
	// crash and written again after it are in digests or in none, and the
	// chain goes on across the restarts.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_CONFIG_FILE": "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	var vo, ve bytes.Buffer
	code := run(ctx, []string{"validate-logs", "--trail-arn", aws.ToString(created.TrailARN), "--start-time", from.Add(-time.Minute).UTC().Format(time.RFC3339),
		"--data-dir", dataDir, "--s3-endpoint-url", moto}, &vo, &ve)
	if code != 0 || ve.Len() > 0 {
		t.Errorf("cairn validate-logs after the crashes = %d\n%s%s", code, vo.String(), ve.String())
	}
	t.Logf("validate-logs: %s", strings.TrimSpace(vo.String()))
	// Log files written before a crash but not recorded for a digest
	// (their batch delivered again after it) are in no digest: counted.
	vo.Reset()
	ve.Reset()
	run(ctx, []string{"validate-logs", "--trail-arn", aws.ToString(created.TrailARN), "--start-time", from.Add(-time.Minute).UTC().Format(time.RFC3339),
		"--data-dir", dataDir, "--s3-endpoint-url", moto, "--report-unlisted"}, &vo, &ve)
	t.Logf("validate-logs --report-unlisted: %s\n%s", strings.TrimSpace(vo.String()[strings.LastIndex(vo.String(), "\n\n")+1:]), ve.String())
	dump := exec.Command(os.Args[0])
	dump.Env = append(os.Environ(), "CAIRN_TEST_DUMP_STORE="+dataDir)
	var dumped, dumpErr bytes.Buffer
	dump.Stdout, dump.Stderr = &dumped, &dumpErr
	if err := dump.Run(); err != nil {
		t.Fatalf("reading the store: %v\n%s", err, dumpErr.String())
	}
	all, writes = map[string]bool{}, map[string]bool{}
	for dec := json.NewDecoder(&dumped); dec.More(); {
		var r storedRecord
		if err := dec.Decode(&r); err != nil {
			t.Fatal(err)
		}
		if r.Account != "111111111111" || r.Region != "us-east-1" || r.Category != audit.CategoryManagement || r.Time.Before(from) {
			continue
		}
		all[r.EventID] = true
		if r.ReadOnly == audit.False {
			writes[r.EventID] = true
		}
	}
	if ms := s3IDs.missing(all); len(ms) > 0 {
		t.Errorf("the store has %d records of the S3 trail's selection that are not in its bucket: %v", len(ms), ms[:min(5, len(ms))])
	}
	if ml := localIDs.missing(writes); len(ml) > 0 {
		t.Errorf("the store has %d write records not in the local trail's folder: %v", len(ml), ml[:min(5, len(ml))])
	}
	tmp := 0
	filepath.WalkDir(localDir, func(path string, e fs.DirEntry, err error) error {
		if err == nil && strings.Contains(e.Name(), ".tmp-") {
			tmp++
		}
		return nil
	})
	t.Logf("%d crashes; %d records acknowledged, %d selected by the S3 trail, %d by the local trail (write events)",
		crashes, acks.written.Load(), len(all), len(writes))
	t.Logf("S3 trail: %d files, %d duplicate deliveries; local trail: %d files, %d duplicate deliveries; %d temporary files left in the folder",
		s3IDs.files, s3IDs.duplicates(), localIDs.files, localIDs.duplicates(), tmp)
	if n, m := s3IDs.duplicates(), localIDs.duplicates(); n != 0 || m != 0 {
		t.Errorf("%d events delivered twice to S3, %d to the local folder; want each in exactly one log file", n, m)
	}
}

// ackedImports is what ImportRecords acknowledged to a crash test's
// writer: the records' event IDs, and how many.
type ackedImports struct {
	mu      sync.Mutex
	ids     map[string]bool
	written atomic.Int64
}

// send imports recs (ids their event IDs) into endpoint as alice, in one
// attempt, and keeps them once acknowledged. A call that fails (the
// server killed under it) is not acknowledged; one answered with records
// not stored is the test's error, and send returns false.
func (a *ackedImports) send(ctx context.Context, t *testing.T, endpoint string, recs []audit.Record, ids []string) bool {
	sink := cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: endpoint, Region: "us-east-1", MaxAttempts: 1,
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
		Credentials: credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", "")})
	res, fails, err := sink.AppendReport(ctx, recs)
	if err != nil {
		return true
	}
	if len(fails) != 0 || res.Inserted != len(recs) {
		t.Errorf("ImportRecords: %+v %+v", res, fails)
		return false
	}
	a.mu.Lock()
	for _, id := range ids {
		a.ids[id] = true
	}
	a.mu.Unlock()
	a.written.Add(int64(len(recs)))
	return true
}
