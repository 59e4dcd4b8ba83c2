package trail

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// fakeTrails is a registry of fixed trails.
type fakeTrails struct {
	mu     sync.Mutex
	trails []Trail
	status map[string]string
}

func (f *fakeTrails) Trails() []Trail {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Trail(nil), f.trails...)
}

func (f *fakeTrails) setDigestStatus(_ context.Context, arn string, at time.Time, e string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status == nil {
		f.status = map[string]string{}
	}
	f.status[arn] = e
	return nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

type fixture struct {
	dir    string
	bkt    *local.Bucket
	trails *fakeTrails
	keys   *Keyring
	w      *DigestWriter
	clk    *clock
	t0     time.Time
}

func newFixture(t *testing.T, prefix string) *fixture {
	t.Helper()
	dir := t.TempDir()
	bkt, err := local.New("audit-logs", filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	clk := &clock{t0}
	tr := Trail{Name: "main", Account: "111122223333", HomeRegion: "us-east-1", S3BucketName: "audit-logs",
		S3KeyPrefix: prefix, LogFileValidationEnabled: true, Logging: true, StartLoggingTime: t0}
	ft := &fakeTrails{trails: []Trail{tr}}
	keys, err := OpenKeyring(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewDigestWriter(DigestConfig{Dir: dir, Trails: ft, Bucket: func(n string) (Bucket, bool) { return bkt, n == "audit-logs" },
		Keys: keys, Interval: time.Hour, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, bkt: bkt, trails: ft, keys: keys, w: w, clk: clk, t0: t0}
}

// deliver puts a log file in the bucket and tells the writer, as the
// trail deliverer does.
func (f *fixture) deliver(t *testing.T, region, body string) string {
	t.Helper()
	tr := f.trails.trails[0]
	key := tr.keyPrefix(tr.Account, folderLogs, region) + f.clk.t.Format("2006/01/02/") + tr.Account +
		"_CloudTrail_" + region + "_" + f.clk.t.Format("20060102T1504Z") + "_AbCdEfGhIjKlMnOp.json.gz"
	if err := f.bkt.Put(context.Background(), key, gz(t, []byte(body)), "application/json", nil); err != nil {
		t.Fatal(err)
	}
	f.w.LogDelivered(context.Background(), tr, tr.Account, region, key, chain.HashLog([]byte(body)), f.clk.t.Add(-3*time.Minute), f.clk.t.Add(-time.Minute))
	return key
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) validate(t *testing.T, start, end time.Time) (ok bool, stdout, stderr string) {
	t.Helper()
	return f.validateWith(t, start, end, false)
}

func (f *fixture) validateWith(t *testing.T, start, end time.Time, unlisted bool) (ok bool, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	tr := f.trails.trails[0]
	v := &chain.Validation{TrailARN: tr.ARN(), Start: start, End: end, Bucket: "audit-logs", Prefix: tr.S3KeyPrefix,
		Objects: BucketObjects(func(n string) (Bucket, bool) { return f.bkt, n == "audit-logs" }),
		PublicKeys: func(_ context.Context, s, e time.Time) ([]chain.PublicKey, error) {
			var out []chain.PublicKey
			for _, k := range f.keys.Public("us-east-1", s, e) {
				out = append(out, chain.PublicKey{Fingerprint: k.Fingerprint, DER: k.DER})
			}
			return out, nil
		},
		Verbose: true, Stdout: &out, Stderr: &errb, ReportUnlisted: unlisted}
	ok, err := v.Run(context.Background())
	if err != nil {
		t.Fatalf("validation: %v", err)
	}
	return ok, out.String(), errb.String()
}

// digests returns the digest keys in the bucket, oldest first.
func (f *fixture) digests(t *testing.T) []string {
	keys, err := f.bkt.List(context.Background(), "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if strings.Contains(k, "/CloudTrail-Digest/") {
			out = append(out, k)
		}
	}
	return out
}

func readDigest(t *testing.T, b Bucket, key string) (map[string]any, map[string]string, []byte) {
	t.Helper()
	body, meta, err := b.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := gunzipBytes(body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m, meta, raw
}

func TestDigestChain(t *testing.T) {
	f := newFixture(t, "ct")
	f.clk.t = f.t0.Add(10 * time.Minute)
	log1 := f.deliver(t, "us-east-1", `{"Records":[{"eventVersion":"1.11"}]}`)
	f.clk.t = f.t0.Add(59 * time.Minute)
	f.w.WriteDue(context.Background()) // not yet an hour
	if d := f.digests(t); len(d) != 0 {
		t.Fatalf("digest before the interval: %v", d)
	}
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(2 * time.Hour) // nothing delivered: a digest all the same
	f.w.WriteDue(context.Background())
	d := f.digests(t)
	if len(d) != 2 {
		t.Fatalf("digests: %v", d)
	}
	want := "ct/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261120T110000Z.json.gz"
	if d[0] != want {
		t.Errorf("key %s\nwant %s", d[0], want)
	}
	first, meta1, raw1 := readDigest(t, f.bkt, d[0])
	if first["previousDigestSignature"] != nil || first["previousDigestS3Object"] != nil || first["digestStartTime"] != "2026-11-20T10:00:00Z" ||
		first["digestEndTime"] != "2026-11-20T11:00:00Z" || first["digestS3Object"] != d[0] || first["digestS3Bucket"] != "audit-logs" ||
		first["newestEventTime"] != "2026-11-20T10:09:00Z" || first["oldestEventTime"] != "2026-11-20T10:07:00Z" ||
		first["digestSignatureAlgorithm"] != "SHA256withRSA" || first["awsAccountId"] != "111122223333" {
		t.Errorf("starting digest: %v", first)
	}
	lfs := first["logFiles"].([]any)
	if len(lfs) != 1 || lfs[0].(map[string]any)["s3Object"] != log1 ||
		lfs[0].(map[string]any)["hashValue"] != chain.HashLog([]byte(`{"Records":[{"eventVersion":"1.11"}]}`)) {
		t.Errorf("log files: %v", lfs)
	}
	if meta1[MetaSignatureAlgorithm] != "SHA256withRSA" || len(meta1[MetaSignature]) != 512 {
		t.Errorf("metadata %v", meta1)
	}
	second, _, _ := readDigest(t, f.bkt, d[1])
	if second["previousDigestSignature"] != meta1[MetaSignature] || second["previousDigestS3Object"] != d[0] ||
		second["previousDigestHashValue"] != chain.HashLog(raw1) || second["previousDigestHashAlgorithm"] != "SHA-256" ||
		second["digestStartTime"] != "2026-11-20T11:00:00Z" || second["newestEventTime"] != nil ||
		len(second["logFiles"].([]any)) != 0 {
		t.Errorf("second digest: %v", second)
	}
	// SigningKey order as AWS writes it.
	if !strings.HasPrefix(string(raw1), `{"awsAccountId":"111122223333","digestStartTime":`) {
		t.Errorf("digest JSON starts %.60s", raw1)
	}

	ok, out, errs := f.validate(t, f.t0, f.t0.Add(2*time.Hour))
	if !ok || errs != "" || !strings.Contains(out, "2/2 digest files valid") || !strings.Contains(out, "1/1 log files valid") ||
		!strings.Contains(out, "Log file\ts3://audit-logs/"+log1+"\tvalid") {
		t.Fatalf("validation of an intact chain: ok=%v\n%s\n%s", ok, out, errs)
	}

	// A restarted writer continues the chain.
	w2, err := NewDigestWriter(DigestConfig{Dir: f.dir, Trails: f.trails, Bucket: f.w.cfg.Bucket, Keys: f.keys, Interval: time.Hour, Now: f.clk.now})
	if err != nil {
		t.Fatal(err)
	}
	f.clk.t = f.t0.Add(3 * time.Hour)
	w2.WriteDue(context.Background())
	d = f.digests(t)
	third, _, _ := readDigest(t, f.bkt, d[2])
	if third["previousDigestS3Object"] != d[1] {
		t.Errorf("chain broken by a restart: %v", third["previousDigestS3Object"])
	}
}

func TestValidationFindsTampering(t *testing.T) {
	f := newFixture(t, "")
	f.clk.t = f.t0.Add(5 * time.Minute)
	log1 := f.deliver(t, "us-east-1", `{"Records":[{"a":1}]}`)
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(65 * time.Minute)
	log2 := f.deliver(t, "us-east-1", `{"Records":[{"a":2}]}`)
	f.clk.t = f.t0.Add(2 * time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(3 * time.Hour)
	f.w.WriteDue(context.Background())
	d := f.digests(t)
	ctx := context.Background()

	// A modified log file.
	if err := f.bkt.Put(ctx, log2, gz(t, []byte(`{"Records":[{"a":3}]}`)), "", nil); err != nil {
		t.Fatal(err)
	}
	ok, out, errs := f.validate(t, f.t0, f.t0.Add(3*time.Hour))
	if ok || errs != "\nLog file\ts3://audit-logs/"+log2+"\tINVALID: hash value doesn't match\n\n" ||
		!strings.Contains(out, "3/3 digest files valid") || !strings.Contains(out, "1/2 log files valid, 1/2 log files INVALID") {
		t.Errorf("modified log: ok=%v\n%s\n%q", ok, out, errs)
	}
	// A deleted log file.
	os.Remove(filepath.Join(f.dir, "bucket", filepath.FromSlash(log1)))
	_, _, errs = f.validate(t, f.t0, f.t0.Add(3*time.Hour))
	if !strings.Contains(errs, "Log file\ts3://audit-logs/"+log1+"\tINVALID: not found") {
		t.Errorf("deleted log: %q", errs)
	}
	// A deleted digest: reported, and the walk goes on to the older one.
	os.Remove(filepath.Join(f.dir, "bucket", filepath.FromSlash(d[1])))
	ok, out, errs = f.validate(t, f.t0, f.t0.Add(3*time.Hour))
	if ok || !strings.Contains(errs, "Digest file\ts3://audit-logs/"+d[1]+"\tINVALID: not found") ||
		!strings.Contains(out, "2/3 digest files valid, 1/3 digest files INVALID") {
		t.Errorf("deleted digest: ok=%v\n%s\n%q", ok, out, errs)
	}
	// A digest whose body was changed: its signature fails.
	m, meta, _ := readDigest(t, f.bkt, d[0])
	m["logFiles"] = []any{}
	js, _ := json.Marshal(m)
	f.bkt.Put(ctx, d[0], gz(t, js), "", meta)
	_, _, errs = f.validate(t, f.t0, f.t0.Add(3*time.Hour))
	if !strings.Contains(errs, "Digest file\ts3://audit-logs/"+d[0]+"\tINVALID: signature verification failed") {
		t.Errorf("changed digest: %q", errs)
	}
	// A digest copied elsewhere has been moved.
	body, meta, _ := f.bkt.Get(ctx, d[2])
	moved := strings.Replace(d[2], "T130000Z", "T130500Z", 1)
	f.bkt.Put(ctx, moved, body, "", meta)
	_, _, errs = f.validate(t, f.t0, f.t0.Add(3*time.Hour))
	if !strings.Contains(errs, "Digest file\ts3://audit-logs/"+moved+"\tINVALID: has been moved from its original location") {
		t.Errorf("moved digest: %q", errs)
	}
}

func TestStoppedTrailEndsChain(t *testing.T) {
	f := newFixture(t, "")
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(90 * time.Minute)
	f.trails.trails[0].Logging = false
	f.w.WriteDue(context.Background()) // final digest
	f.clk.t = f.t0.Add(3 * time.Hour)
	f.trails.trails[0].Logging = true
	f.trails.trails[0].StartLoggingTime = f.clk.t
	f.w.WriteDue(context.Background()) // chain begins
	f.clk.t = f.t0.Add(4 * time.Hour)
	f.w.WriteDue(context.Background()) // starting digest
	d := f.digests(t)
	if len(d) != 3 {
		t.Fatalf("digests %v", d)
	}
	final, _, _ := readDigest(t, f.bkt, d[1])
	restart, _, _ := readDigest(t, f.bkt, d[2])
	if final["previousDigestS3Object"] != d[0] || restart["previousDigestS3Object"] != nil || restart["digestStartTime"] != "2026-11-20T13:00:00Z" {
		t.Errorf("final %v\nrestart %v", final, restart)
	}
	ok, _, errs := f.validate(t, f.t0, f.t0.Add(4*time.Hour))
	if !ok || errs != "\nNo log files were delivered by CloudTrail between 2026-11-20T11:30:00Z and 2026-11-20T13:00:00Z\n\n" {
		t.Errorf("gap: ok=%v %q", ok, errs)
	}
}

func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	kr, err := OpenKeyring(dir, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k1, _ := kr.Current("us-east-1", t0)
	k1b, _ := kr.Current("us-east-1", t0.Add(23*time.Hour))
	k2, _ := kr.Current("us-east-1", t0.Add(25*time.Hour))
	k3, _ := kr.Current("eu-west-1", t0)
	if k1 != k1b || k1.Fingerprint == k2.Fingerprint || k3.Fingerprint == k1.Fingerprint {
		t.Fatal("rotation")
	}
	if !strings.HasPrefix(base64.StdEncoding.EncodeToString(k1.DER), "MIIBCgKCAQEA") || len(k1.Fingerprint) != 32 {
		t.Errorf("public key is not PKCS#1 DER of RSA-2048: %s", base64.StdEncoding.EncodeToString(k1.DER)[:12])
	}
	kr2, err := OpenKeyring(dir, 24*time.Hour) // persisted
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := kr2.Current("us-east-1", t0.Add(26*time.Hour)); k.Fingerprint != k2.Fingerprint {
		t.Error("keys not kept across a restart")
	}
	if fi, _ := os.Stat(filepath.Join(dir, keysFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", fi.Mode())
	}
	// A save replaces a keys file someone opened up with one of mode 0600.
	if err := os.Chmod(filepath.Join(dir, keysFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kr2.Current("us-east-1", t0.Add(50*time.Hour)); err != nil { // rotates: saves
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, keysFile)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode after a save %v", fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, keysFile+".tmp*")); len(left) != 0 {
		t.Errorf("saves left temporary files: %v", left)
	}

}

// TestRealCLIValidatorAcceptsSignature runs the AWS CLI's own
// Sha256RSADigestValidator over a digest cairn signed.
func TestRealCLIValidatorAcceptsSignature(t *testing.T) {
	if err := exec.Command("python3", "-c", "import awscli.customizations.cloudtrail.validation").Run(); err != nil {
		t.Skip("python3 with awscli is not installed: skipping the AWS CLI's validator")
	}
	f := newFixture(t, "p")
	f.clk.t = f.t0.Add(5 * time.Minute)
	f.deliver(t, "us-east-1", `{"Records":[]}`)
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(2 * time.Hour)
	f.w.WriteDue(context.Background())
	k, _ := f.keys.Current("us-east-1", f.clk.t)
	for _, key := range f.digests(t) {
		_, meta, raw := readDigest(t, f.bkt, key)
		script := `
import sys, json, base64
from awscli.customizations.cloudtrail.validation import Sha256RSADigestValidator
raw = open(sys.argv[1], "rb").read()
data = json.loads(raw)
data["_signature"] = sys.argv[2]
Sha256RSADigestValidator().validate(data["digestS3Bucket"], data["digestS3Object"], sys.argv[3], data, raw)
print("valid")
`
		p := filepath.Join(t.TempDir(), "d.json")
		os.WriteFile(p, raw, 0o644)
		out, err := exec.Command("python3", "-c", script, p, meta[MetaSignature], base64.StdEncoding.EncodeToString(k.DER)).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "valid" {
			t.Errorf("the CLI's validator refused %s: %v\n%s", key, err, out)
		}
		// And refuses a changed one.
		bad := bytes.Replace(raw, []byte(`"awsAccountId":"111122223333"`), []byte(`"awsAccountId":"111122223334"`), 1)
		os.WriteFile(p, bad, 0o644)
		if out, err := exec.Command("python3", "-c", script, p, meta[MetaSignature], base64.StdEncoding.EncodeToString(k.DER)).CombinedOutput(); err == nil {
			t.Errorf("the CLI's validator accepted a changed digest: %s", out)
		}
	}
}

func TestValidationRefusesForgedDigest(t *testing.T) {
	f := newFixture(t, "")
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	d := f.digests(t)
	// A digest signed by a key cairn never published, put where the next
	// one would be.
	other, err := OpenKeyring(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := other.Current("us-east-1", f.clk.t)
	key := strings.Replace(d[0], "T110000Z", "T120000Z", 1)
	prev := "00"
	s, err := SignDigest(&DigestFile{AWSAccountID: "111122223333", DigestStartTime: "2026-11-20T11:00:00Z", DigestEndTime: "2026-11-20T12:00:00Z",
		DigestS3Bucket: "audit-logs", DigestS3Object: key, PreviousDigestSignature: &prev}, k)
	if err != nil {
		t.Fatal(err)
	}
	f.bkt.Put(context.Background(), key, s.Gzip, "", s.Metadata())
	ok, out, errs := f.validate(t, f.t0, f.t0.Add(2*time.Hour))
	if ok || !strings.Contains(errs, "Digest file\ts3://audit-logs/"+key+"\tINVALID: public key not found in region us-east-1 for fingerprint "+k.Fingerprint) ||
		!strings.Contains(out, "1/2 digest files valid, 1/2 digest files INVALID") {
		t.Errorf("forged digest: ok=%v\n%s\n%q", ok, out, errs)
	}
	// Without its signature metadata.
	f.bkt.Put(context.Background(), key, s.Gzip, "", map[string]string{"x": "y"})
	_, _, errs = f.validate(t, f.t0, f.t0.Add(2*time.Hour))
	if !strings.Contains(errs, key+"\tINVALID: signature verification failed") {
		t.Errorf("unsigned digest: %q", errs)
	}
	// Not a digest at all.
	f.bkt.Put(context.Background(), key, []byte("not gzip"), "", s.Metadata())
	_, _, errs = f.validate(t, f.t0, f.t0.Add(2*time.Hour))
	if !strings.Contains(errs, key+"\tINVALID: invalid format") {
		t.Errorf("garbage digest: %q", errs)
	}
}

func gunzipBytes(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestDeletedTrailGetsFinalDigest(t *testing.T) {
	f := newFixture(t, "pre")
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(70 * time.Minute)
	f.deliver(t, "us-east-1", `{"Records":[{"last":true}]}`)
	tr := f.trails.trails[0]
	f.trails.trails = nil // DeleteTrail
	f.clk.t = f.t0.Add(80 * time.Minute)
	f.w.WriteDue(context.Background())
	f.clk.t = f.t0.Add(3 * time.Hour)
	f.w.WriteDue(context.Background()) // nothing more: the chain ended
	d := f.digests(t)
	if len(d) != 2 {
		t.Fatalf("digests %v", d)
	}
	final, _, _ := readDigest(t, f.bkt, d[1])
	if final["previousDigestS3Object"] != d[0] || len(final["logFiles"].([]any)) != 1 || !strings.HasPrefix(d[1], "pre/AWSLogs/") {
		t.Errorf("final digest of a deleted trail: %v", final)
	}
	f.trails.trails = []Trail{tr} // for the validation's ARN
	if ok, out, errs := f.validate(t, f.t0, f.t0.Add(3*time.Hour)); !ok || !strings.Contains(out, "2/2 digest files valid") {
		t.Errorf("validation: %v\n%s\n%s", ok, out, errs)
	}
}

// ReportUnlisted (cairn's extension) reports log files no digest names
// between the start and the newest digest's minute: an added file, one
// with a name that is not a delivery's; not the files delivered after the
// newest digest (waiting for the next), nor files before the start.
func TestReportUnlisted(t *testing.T) {
	f := newFixture(t, "p")
	ctx := context.Background()
	f.clk.t = f.t0.Add(5 * time.Minute)
	log1 := f.deliver(t, "us-east-1", `{"Records":[{"a":1}]}`)
	f.clk.t = f.t0.Add(time.Hour)
	f.w.WriteDue(ctx)
	f.clk.t = f.t0.Add(70 * time.Minute)
	f.deliver(t, "us-east-1", `{"Records":[{"a":2}]}`) // pending: after the newest digest
	folder := log1[:strings.LastIndex(log1, "/")+1]
	if ok, out, errs := f.validateWith(t, f.t0, f.t0.Add(2*time.Hour), true); !ok || errs != "" || !strings.Contains(out, "\n0 log files not named by any digest\n") {
		t.Errorf("intact: ok=%v\n%s\n%q", ok, out, errs)
	}
	added := folder + "111122223333_CloudTrail_us-east-1_20261120T1030Z_AddedByAnAttackr.json.gz"
	odd := folder + "notes.txt"
	before := "p/AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/19/111122223333_CloudTrail_us-east-1_20261119T2300Z_OlderThanTheStart.json.gz"
	for _, k := range []string{added, odd, before} {
		if err := f.bkt.Put(ctx, k, gz(t, []byte(`{"Records":[]}`)), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	ok, out, errs := f.validateWith(t, f.t0, f.t0.Add(2*time.Hour), true)
	want := "\nLog file\ts3://audit-logs/" + added + "\tINVALID: not named by any digest\n\n" +
		"Log file\ts3://audit-logs/" + odd + "\tINVALID: not named by any digest\n\n"
	if ok || errs != want || !strings.Contains(out, "\n2 log files not named by any digest\n") {
		t.Errorf("added: ok=%v\n%s\n%q\nwant %q", ok, out, errs, want)
	}
	// Without the option: AWS's report, the added files unseen.
	if ok, out, errs := f.validate(t, f.t0, f.t0.Add(2*time.Hour)); !ok || errs != "" || strings.Contains(out, "not named") {
		t.Errorf("without --report-unlisted: ok=%v\n%s\n%q", ok, out, errs)
	}
}

// TestDigestRunReturnsAfterItsWrite: a cancelled Run returns nil, and
// only after the digest write under way returned.
func TestDigestRunReturnsAfterItsWrite(t *testing.T) {
	f := newFixture(t, "")
	f.w.WriteDue(context.Background()) // the chain begins
	f.clk.t = f.t0.Add(time.Hour + time.Second)
	s := &stalling{Bucket: f.bkt, started: make(chan struct{})}
	f.w.cfg.Bucket = func(string) (Bucket, bool) { return s, true }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.w.Run(ctx) }()
	<-s.started
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
	// A write that shutdown interrupted is no delivery failure: the
	// status shows no error, and the digest is written at the next start.
	f.trails.mu.Lock()
	defer f.trails.mu.Unlock()
	if e := f.trails.status[f.trails.trails[0].ARN()]; e != "" {
		t.Errorf("LatestDigestDeliveryError after a shutdown = %q; want none", e)
	}
}

// TestKeyringTempFiles: the server's OpenKeyring removes the temporary
// files a crash left beside the keys file (they hold private keys), a run
// leaves none, and ReadPublicKeys (validate-logs, possibly while a server
// saves keys) reads the keys and removes nothing.
func TestKeyringTempFiles(t *testing.T) {
	dir := t.TempDir()
	kr, err := OpenKeyring(dir, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	k, err := kr.Current("us-east-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	temps := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, keysFile+".tmp-*"))
		return m
	}
	if got := temps(); len(got) != 0 {
		t.Fatalf("a save left %v", got)
	}
	// A crash between writing the temporary file and its rename.
	left := filepath.Join(dir, keysFile+".tmp-12345")
	if err := os.WriteFile(left, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ReadPublicKeys(dir, "us-east-1", t0, t0.Add(time.Hour))
	if err != nil || len(pub) != 1 || pub[0].Fingerprint != k.Fingerprint {
		t.Fatalf("ReadPublicKeys = %v, %v; want the one key", pub, err)
	}
	if got := temps(); len(got) != 1 {
		t.Fatalf("ReadPublicKeys touched the temporary files: %v", got)
	}
	if _, err := OpenKeyring(dir, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := temps(); len(got) != 0 {
		t.Errorf("OpenKeyring left %v", got)
	}
}

// TestDigestWriterRemovesTempFiles: the writer owns digest-chains.json
// and removes the temporary files a crash left beside it.
func TestDigestWriterRemovesTempFiles(t *testing.T) {
	f := newFixture(t, "")
	left := filepath.Join(f.dir, stateFile+".tmp-777")
	if err := os.WriteFile(left, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewDigestWriter(DigestConfig{Dir: f.dir, Trails: f.trails, Bucket: f.w.cfg.Bucket, Keys: f.keys}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("temporary file left: %v", err)
	}
}
