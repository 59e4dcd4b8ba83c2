package chain

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// memObjects is a bucket in memory.
type memObjects map[string][2]any

func (m memObjects) Get(_ context.Context, b, k string) ([]byte, map[string]string, error) {
	o, ok := m[b+"/"+k]
	if !ok {
		return nil, nil, ErrNotFound
	}
	return o[0].([]byte), o[1].(map[string]string), nil
}

func (m memObjects) List(_ context.Context, b, prefix, marker string) ([]string, error) {
	var out []string
	for k := range m {
		k = strings.TrimPrefix(k, b+"/")
		if strings.HasPrefix(k, prefix) && k > marker {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// FuzzValidateDigest feeds hostile digest bodies and signatures to the
// validator: it reports them, it never panics or gives up. Signatures are
// taken as valid (RSA is too slow under the fuzzer) so that every part of
// a digest is parsed.
func FuzzValidateDigest(f *testing.F) {
	der, err := os.ReadFile("testdata/fuzz-key.der") // a fixed key: no key generation per worker
	if err != nil {
		f.Fatal(err)
	}
	priv, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		f.Fatal(err)
	}
	pubDER := x509.MarshalPKCS1PublicKey(&priv.PublicKey)
	sum := md5.Sum(pubDER)
	k := PublicKey{Fingerprint: hex.EncodeToString(sum[:]), DER: pubDER}
	key := "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2026/11/20/111122223333_CloudTrail-Digest_us-east-1_main_us-east-1_20261120T110000Z.json.gz"
	good := []byte(`{"awsAccountId":"111122223333","digestStartTime":"2026-11-20T10:00:00Z","digestEndTime":"2026-11-20T11:00:00Z","digestS3Bucket":"b","digestS3Object":"` + key + `","digestPublicKeyFingerprint":"` + k.Fingerprint + `","digestSignatureAlgorithm":"SHA256withRSA","previousDigestSignature":null,"logFiles":[{"s3Bucket":"b","s3Object":"x","hashValue":"00"}]}`)
	f.Add(good, "00ff")
	f.Add([]byte(`{"digestS3Bucket":"b","digestS3Object":"`+key+`","logFiles":[1,{"s3Bucket":[]}],"digestPublicKeyFingerprint":"`+k.Fingerprint+`","previousDigestSignature":7,"digestEndTime":{},"digestStartTime":null}`), "zz")
	f.Add([]byte(`{"digestS3Bucket":"b","digestS3Object":"`+key+`","previousDigestS3Bucket":"b","previousDigestS3Object":"`+key+`","digestPublicKeyFingerprint":"`+k.Fingerprint+`","previousDigestSignature":null,"digestEndTime":"2026-11-20T11:00:00Z","digestStartTime":"2026-11-20T10:00:00Z"}`), "0")
	f.Add([]byte(`{"digestS3Bucket":"b","digestS3Object":"`+key+`","previousDigestS3Bucket":"b","previousDigestS3Object":"`+key+`","digestPublicKeyFingerprint":"`+k.Fingerprint+`","previousDigestSignature":null,"digestEndTime":"2026-11-20T11:00:00Z","digestStartTime":"2026-11-20T10:00:00Z"}`), "00")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(body)
		w.Close()
		objs := memObjects{"b/" + key: {buf.Bytes(), map[string]string{MetaSignature: sig, MetaSignatureAlgorithm: SignatureAlgorithm}},
			"b/x": {[]byte("nope"), map[string]string{}}}
		var out, errs bytes.Buffer
		v := &Validation{TrailARN: "arn:aws:cloudtrail:us-east-1:111122223333:trail/main", Start: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC),
			End: time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC), Bucket: "b", Objects: objs, Stdout: &out, Stderr: &errs,
			PublicKeys: func(context.Context, time.Time, time.Time) ([]PublicKey, error) {
				return []PublicKey{{Fingerprint: k.Fingerprint, DER: k.DER}}, nil
			},
			verify: func(*rsa.PublicKey, crypto.Hash, []byte, []byte) error { return nil }}
		if _, err := v.Run(context.Background()); err != nil {
			t.Fatalf("validation gave up: %v", err)
		}
	})
}
