package chain

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// ErrNotFound is what Objects.Get returns (wrapped) for a missing object.
var ErrNotFound = errors.New("chain: object not found")

// Objects reads the buckets a validation walks through.
type Objects interface {
	// Get returns an object and its metadata; an error wrapping
	// ErrNotFound when it does not exist.
	Get(ctx context.Context, bucket, key string) ([]byte, map[string]string, error)
	// List returns every key of bucket under prefix after marker, sorted.
	List(ctx context.Context, bucket, prefix, marker string) ([]string, error)
}

// PublicKey is a key as ListPublicKeys returns it.
type PublicKey struct {
	Fingerprint string
	DER         []byte
}

// Validation checks a trail's digest and log files between Start and End
// exactly as `aws cloudtrail validate-logs` (awscli 1.x) does: the same
// listing, chain walk, output lines (stdout, and stderr for problems) and
// result.
type Validation struct {
	TrailARN   string
	Start, End time.Time
	// Bucket and Prefix locate the digests (the trail's S3BucketName and
	// S3KeyPrefix); Account defaults to the ARN's, SourceRegion to its
	// region; OrganizationID is set for organization trails.
	Bucket, Prefix, Account, SourceRegion, OrganizationID string
	Objects                                               Objects
	// PublicKeys lists the keys valid between two times (ListPublicKeys).
	PublicKeys func(ctx context.Context, start, end time.Time) ([]PublicKey, error)
	Verbose    bool
	Stdout     io.Writer
	Stderr     io.Writer
	// ReportUnlisted (cairn's extension, off by default as in the CLI)
	// also lists the log folder and reports the log files delivered
	// between Start and the newest valid digest that no digest names
	// (e.g. a file added to the bucket), which makes the result invalid.
	ReportUnlisted bool

	// verify checks a signature (rsa.VerifyPKCS1v15; the fuzz test
	// replaces it: RSA under the fuzzer's instrumentation is too slow).
	verify func(pub *rsa.PublicKey, hash crypto.Hash, hashed, sig []byte) error

	trailName, homeRegion                                string
	validDigests, invalidDigests, validLogs, invalidLogs int
	lastDoubleSpace                                      bool
	foundStart, foundEnd                                 time.Time
	named                                                map[string]bool // bucket/key of the log files valid digests name
	horizon                                              time.Time       // the newest valid digest's end
	unlisted                                             int
}

// ARNPattern is the CLI's check of a trail ARN.
var ARNPattern = regexp.MustCompile(`^arn:.+:cloudtrail:.+:\d{12}:trail/.+`)

const displayFormat = "2006-01-02T15:04:05Z"

// Run validates and writes the report. It returns whether everything was
// valid; an error means the validation could not run (exit status 255 in
// the CLI).
func (v *Validation) Run(ctx context.Context) (bool, error) {
	if !ARNPattern.MatchString(v.TrailARN) {
		return false, fmt.Errorf("Invalid trail ARN provided: %s", v.TrailARN)
	}
	if v.Start.After(v.End) {
		return false, errors.New("Invalid time range specified: start-time must occur before end-time")
	}
	parts := strings.Split(v.TrailARN, ":")
	v.homeRegion = parts[3]
	v.trailName = v.TrailARN[strings.LastIndex(v.TrailARN, "/")+1:]
	if v.Account == "" {
		v.Account = parts[4]
	}
	if v.SourceRegion == "" {
		v.SourceRegion = v.homeRegion
	}
	v.Start, v.End = v.Start.UTC(), v.End.UTC()
	v.lastDoubleSpace = true
	fmt.Fprintf(v.Stdout, "Validating log files for trail %s between %s and %s\n\n", v.TrailARN,
		v.Start.Format(displayFormat), v.End.Format(displayFormat))

	v.named = map[string]bool{}
	if err := v.traverse(ctx); err != nil {
		return false, err
	}
	if v.ReportUnlisted {
		if err := v.checkUnlisted(ctx); err != nil {
			return false, err
		}
	}
	v.summary()
	return v.invalidDigests == 0 && v.invalidLogs == 0 && v.unlisted == 0, nil
}

// checkUnlisted reports the log files of the trail's log folder (for the
// account and source region) delivered from Start's minute to the minute
// of the newest valid digest's end that no valid digest names. Later
// files may be waiting for their digest; so may a file delivered in that
// last minute after the digest (key times are to the minute): it is
// reported, and a run after the next digest tells. A name without a
// delivery time is reported whatever its time.
func (v *Validation) checkUnlisted(ctx context.Context) error {
	if v.horizon.IsZero() {
		return nil
	}
	folder := strings.TrimSuffix(v.digestFolder(), "CloudTrail-Digest/"+v.SourceRegion) + "CloudTrail/" + v.SourceRegion + "/"
	keys, err := v.Objects.List(ctx, v.Bucket, folder, folder+v.Start.Format("2006/01/02"))
	if err != nil {
		return err
	}
	from, to := v.Start.Truncate(time.Minute), v.horizon.Truncate(time.Minute)
	for _, k := range keys {
		if v.named[v.Bucket+"/"+k] {
			continue
		}
		// ..._<YYYYMMDDTHHmmZ>_<16 chars>.json.gz
		if len(k) >= 39 && strings.HasSuffix(k, ".json.gz") {
			if t, err := time.Parse("20060102T1504Z", k[len(k)-39:len(k)-25]); err == nil && (t.Before(from) || t.After(to)) {
				continue
			}
		}
		v.unlisted++
		v.status(fmt.Sprintf("Log file\ts3://%s/%s\tINVALID: not named by any digest", v.Bucket, k), true)
	}
	return nil
}

func (v *Validation) digestFolder() string {
	p := "AWSLogs/"
	if v.OrganizationID != "" {
		p += v.OrganizationID + "/"
	}
	p += v.Account + "/CloudTrail-Digest/" + v.SourceRegion
	if v.Prefix != "" {
		p = v.Prefix + "/" + p
	}
	return p
}

// keyDate returns the timestamp characters of a digest key ([-24:-8]).
func keyDate(key string) string {
	if strings.HasSuffix(key, "_backfill.json.gz") {
		if len(key) < 33 {
			return ""
		}
		return key[len(key)-33 : len(key)-17]
	}
	if len(key) < 24 {
		return ""
	}
	return key[len(key)-24 : len(key)-8]
}

const keyDateFormat = "20060102T150405Z"

func (v *Validation) listDigests(ctx context.Context, bucket string) ([]string, error) {
	m := v.Start.Add(-time.Minute)
	marker := ObjectKey("", v.Account, v.SourceRegion, v.trailName, v.homeRegion, m)
	folder := "AWSLogs/"
	if v.OrganizationID != "" {
		folder += v.OrganizationID + "/"
	}
	marker = folder + v.Account + "/CloudTrail-Digest/" + v.SourceRegion + "/" + marker
	if v.Prefix != "" {
		marker = v.Prefix + "/" + marker
	}
	keys, err := v.Objects.List(ctx, bucket, v.digestFolder(), marker)
	if err != nil {
		return nil, err
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(v.digestFolder()) + `/\d+/\d+/\d+/` +
		regexp.QuoteMeta(v.Account+"_CloudTrail-Digest_"+v.SourceRegion+"_"+v.trailName+"_"+v.homeRegion+"_") + `.+(?:_backfill)?\.json\.gz$`)
	from, to := v.Start.Format(keyDateFormat), v.End.Add(time.Hour).Format(keyDateFormat)
	var out []string
	for _, k := range keys {
		if !re.MatchString(k) {
			continue
		}
		d := keyDate(k)
		if d > to {
			break
		}
		if d < from || strings.HasSuffix(k, "_backfill.json.gz") {
			continue // backfill digests: cairn writes none
		}
		out = append(out, k)
	}
	return out, nil
}

func parseKeyDate(key string) time.Time {
	t, _ := time.Parse(keyDateFormat, keyDate(key))
	return t
}

// lastDigest pops the newest digest (before before, when set).
func lastDigest(digests *[]string, before string) (string, time.Time) {
	var limit time.Time
	if before != "" {
		limit = parseKeyDate(before)
	}
	for len(*digests) > 0 {
		d := *digests
		k := d[len(d)-1]
		*digests = d[:len(d)-1]
		kd := parseKeyDate(k)
		if before == "" || kd.Before(limit) {
			return k, kd
		}
	}
	return "", time.Time{}
}

// digestError is a problem with one digest, reported and counted.
type digestError struct{ msg string }

func (e *digestError) Error() string { return e.msg }

func (v *Validation) traverse(ctx context.Context) error {
	bucket := v.Bucket
	digests, err := v.listDigests(ctx, bucket)
	if err != nil {
		return err
	}
	keys, err := v.PublicKeys(ctx, v.Start, v.End.Add(2*time.Hour))
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("No public keys found between %s and %s", v.Start.Format(displayFormat), v.End.Add(2*time.Hour).Format(displayFormat))
	}
	byFP := map[string][]byte{}
	for _, k := range keys {
		byFP[k.Fingerprint] = k.DER
	}
	key, lastStart := lastDigest(&digests, "")
	// seen guards against a chain that loops back (only the key's holder
	// can sign one; the AWS CLI would walk it forever): a digest seen
	// before ends the chain as a starting digest would.
	seen := map[string]bool{}
	for key != "" && !v.Start.After(lastStart) {
		seen[bucket+"/"+key] = true
		d, err := v.loadDigest(ctx, byFP, bucket, key)
		var de *digestError
		switch {
		case err == nil:
		case errors.Is(err, ErrNotFound):
			v.invalidDigests++
			v.status(fmt.Sprintf("Digest file\ts3://%s/%s\tINVALID: not found", bucket, key), true)
			key, _ = lastDigest(&digests, key)
			continue
		case errors.As(err, &de):
			v.invalidDigests++
			v.status(de.msg, true)
			key, _ = lastDigest(&digests, key)
			continue
		default:
			return err
		}
		lastStart = d.start
		v.validDigests++
		v.track(d.start, d.end)
		if d.end.After(v.horizon) {
			v.horizon = d.end
		}
		for _, lf := range d.logFiles {
			v.named[text(lf["s3Bucket"])+"/"+text(lf["s3Object"])] = true
		}
		v.status(fmt.Sprintf("Digest file\ts3://%s/%s\tvalid", d.bucket, d.key), false)
		for _, lf := range d.logFiles {
			if err := v.checkLog(ctx, lf); err != nil {
				return err
			}
		}
		if d.prevBucket == nil || d.prevKey == nil || seen[*d.prevBucket+"/"+*d.prevKey] {
			next, nextEnd := lastDigest(&digests, key)
			if next != "" {
				v.status(fmt.Sprintf("No log files were delivered by CloudTrail between %s and %s",
					nextEnd.Format(displayFormat), lastStart.Format(displayFormat)), true)
			}
			key = next
			continue
		}
		key = *d.prevKey
		if *d.prevBucket != bucket {
			bucket = *d.prevBucket
			if digests, err = v.listDigests(ctx, bucket); err != nil {
				return err
			}
		}
	}
	return nil
}

type loaded struct {
	bucket, key         string
	start, end          time.Time
	prevBucket, prevKey *string
	logFiles            []map[string]any
}

var requiredKeys = []string{"digestPublicKeyFingerprint", "digestS3Bucket", "digestS3Object",
	"previousDigestSignature", "digestEndTime", "digestStartTime"}

func (v *Validation) loadDigest(ctx context.Context, keys map[string][]byte, bucket, key string) (*loaded, error) {
	loc := fmt.Sprintf("Digest file\ts3://%s/%s\t", bucket, key)
	body, meta, err := v.Objects.Get(ctx, bucket, key)
	if err != nil {
		return nil, err
	}
	invalid := &digestError{loc + "INVALID: invalid format"}
	raw, err := gunzip(body)
	if err != nil {
		return nil, invalid
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, invalid
	}
	sig, okSig := meta[MetaSignature]
	if _, okAlg := meta[MetaSignatureAlgorithm]; !okSig || !okAlg {
		return nil, &digestError{loc + "INVALID: signature verification failed"}
	}
	for _, k := range requiredKeys {
		if _, ok := m[k]; !ok {
			return nil, invalid
		}
	}
	if m["digestS3Bucket"] != bucket || m["digestS3Object"] != key {
		return nil, &digestError{loc + "INVALID: has been moved from its original location"}
	}
	fp := text(m["digestPublicKeyFingerprint"])
	der, ok := keys[fp]
	if !ok {
		return nil, &digestError{fmt.Sprintf("%sINVALID: public key not found in region %s for fingerprint %s", loc, v.homeRegion, fp)}
	}
	pub, err := x509.ParsePKCS1PublicKey(der)
	if err != nil {
		return nil, &digestError{fmt.Sprintf("%sINVALID: Unable to load PKCS #1 key with fingerprint %s", loc, fp)}
	}
	var prev *string
	if p, ok := m["previousDigestSignature"].(string); ok {
		prev = &p
	} else if m["previousDigestSignature"] != nil {
		s := text(m["previousDigestSignature"])
		prev = &s
	}
	sts := StringToSign(text(m["digestEndTime"]), bucket, key, raw, prev)
	sigBytes, err := hex.DecodeString(sig)
	if err != nil {
		msg := "Non-hexadecimal digit found"
		if len(sig)%2 == 1 {
			msg = "Odd-length string"
		}
		return nil, &digestError{loc + "INVALID: " + msg}
	}
	h := sha256.Sum256(sts)
	verify := v.verify
	if verify == nil {
		verify = rsa.VerifyPKCS1v15
	}
	if verify(pub, crypto.SHA256, h[:], sigBytes) != nil {
		return nil, &digestError{loc + "INVALID: signature verification failed"}
	}
	d := &loaded{bucket: bucket, key: key}
	if d.end, err = parseDigestTime(m["digestEndTime"]); err != nil {
		return nil, &digestError{loc + "INVALID: " + err.Error()}
	}
	if d.start, err = parseDigestTime(m["digestStartTime"]); err != nil {
		return nil, &digestError{loc + "INVALID: " + err.Error()}
	}
	if s, ok := m["previousDigestS3Bucket"].(string); ok {
		d.prevBucket = &s
	}
	if s, ok := m["previousDigestS3Object"].(string); ok {
		d.prevKey = &s
	}
	lfs, ok := m["logFiles"].([]any)
	if !ok && m["logFiles"] != nil {
		return nil, &digestError{loc + "INVALID: invalid format"}
	}
	for _, x := range lfs {
		lf, _ := x.(map[string]any)
		d.logFiles = append(d.logFiles, lf)
	}
	return d, nil
}

func text(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	b, _ := json.Marshal(x)
	return string(b)
}

func parseDigestTime(x any) (time.Time, error) {
	s, _ := x.(string)
	for _, f := range []string{TimeFormat, time.RFC3339Nano, keyDateFormat} {
		if t, err := time.Parse(f, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("Unable to parse date value: %s", text(x))
}

func (v *Validation) checkLog(ctx context.Context, lf map[string]any) error {
	b, k := text(lf["s3Bucket"]), text(lf["s3Object"])
	loc := fmt.Sprintf("Log file\ts3://%s/%s\t", b, k)
	body, _, err := v.Objects.Get(ctx, b, k)
	switch {
	case errors.Is(err, ErrNotFound):
		v.invalidLogs++
		v.status(loc+"INVALID: not found", true)
		return nil
	case err != nil:
		return err
	}
	raw, err := gunzip(body)
	hv, ok := lf["hashValue"].(string)
	if err != nil || !ok {
		v.invalidLogs++
		v.status(loc+"INVALID: invalid format", true)
		return nil
	}
	if HashLog(raw) != hv {
		v.invalidLogs++
		v.status(loc+"INVALID: hash value doesn't match", true)
		return nil
	}
	v.validLogs++
	v.status(loc+"valid", false)
	return nil
}

func gunzip(b []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	r.Multistream(true)
	return io.ReadAll(r)
}

func (v *Validation) track(start, end time.Time) {
	s := start
	if s.Before(v.Start) {
		s = v.Start
	}
	if v.foundStart.IsZero() || s.Before(v.foundStart) {
		v.foundStart = s
	}
	e := end
	if e.After(v.End) {
		e = v.End
	}
	if v.foundEnd.IsZero() || e.After(v.foundEnd) {
		v.foundEnd = e
	}
}

// status writes a line as the CLI does: problems always, to stderr,
// surrounded by blank lines; the rest only when verbose.
func (v *Validation) status(msg string, isError bool) {
	if isError {
		if v.lastDoubleSpace {
			fmt.Fprintf(v.Stderr, "%s\n\n", msg)
		} else {
			fmt.Fprintf(v.Stderr, "\n%s\n\n", msg)
		}
		v.lastDoubleSpace = true
	} else if v.Verbose {
		v.lastDoubleSpace = false
		fmt.Fprintf(v.Stdout, "%s\n", msg)
	}
}

func (v *Validation) summary() {
	w := v.Stdout
	if !v.lastDoubleSpace {
		fmt.Fprint(w, "\n")
	}
	fmt.Fprintf(w, "Results requested for %s to %s\n", v.Start.Format(displayFormat), v.End.Format(displayFormat))
	if v.validDigests+v.invalidDigests == 0 {
		fmt.Fprint(w, "No digests found\n")
		return
	}
	if v.foundStart.IsZero() || v.foundEnd.IsZero() {
		fmt.Fprint(w, "No valid digests found in range\n")
	} else {
		fmt.Fprintf(w, "Results found for %s to %s:\n", v.foundStart.Format(displayFormat), v.foundEnd.Format(displayFormat))
	}
	ratio(w, v.validDigests, v.invalidDigests, "digest")
	ratio(w, v.validLogs, v.invalidLogs, "log")
	if v.ReportUnlisted {
		fmt.Fprintf(w, "\n%d log files not named by any digest", v.unlisted)
	}
	fmt.Fprint(w, "\n")
}

func ratio(w io.Writer, valid, invalid int, name string) {
	total := valid + invalid
	if total > 0 {
		fmt.Fprintf(w, "\n%d/%d %s files valid", valid, total, name)
		if invalid > 0 {
			fmt.Fprintf(w, ", %d/%d %s files INVALID", invalid, total, name)
		}
	}
}
