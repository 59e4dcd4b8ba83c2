package digest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Algorithms named in digests and their metadata.
const (
	SignatureAlgorithm = "SHA256withRSA"
	HashAlgorithm      = "SHA-256"
)

// Metadata keys of a digest object (x-amz-meta-signature on S3).
const (
	MetaSignature          = "signature"
	MetaSignatureAlgorithm = "signature-algorithm"
)

// LogFile is one log file a digest covers.
type LogFile struct {
	S3Bucket        string `json:"s3Bucket"`
	S3Object        string `json:"s3Object"`
	HashValue       string `json:"hashValue"`
	HashAlgorithm   string `json:"hashAlgorithm"`
	NewestEventTime string `json:"newestEventTime"`
	OldestEventTime string `json:"oldestEventTime"`
}

// File is a digest file's JSON, with AWS's members in AWS's order.
type File struct {
	AWSAccountID                string    `json:"awsAccountId"`
	DigestStartTime             string    `json:"digestStartTime"`
	DigestEndTime               string    `json:"digestEndTime"`
	DigestS3Bucket              string    `json:"digestS3Bucket"`
	DigestS3Object              string    `json:"digestS3Object"`
	DigestPublicKeyFingerprint  string    `json:"digestPublicKeyFingerprint"`
	DigestSignatureAlgorithm    string    `json:"digestSignatureAlgorithm"`
	NewestEventTime             *string   `json:"newestEventTime"`
	OldestEventTime             *string   `json:"oldestEventTime"`
	PreviousDigestS3Bucket      *string   `json:"previousDigestS3Bucket"`
	PreviousDigestS3Object      *string   `json:"previousDigestS3Object"`
	PreviousDigestHashValue     *string   `json:"previousDigestHashValue"`
	PreviousDigestHashAlgorithm *string   `json:"previousDigestHashAlgorithm"`
	PreviousDigestSignature     *string   `json:"previousDigestSignature"`
	LogFiles                    []LogFile `json:"logFiles"`
}

// TimeFormat is the format of times in digests.
const TimeFormat = "2006-01-02T15:04:05Z"

// FormatTime formats t as digests do (UTC, seconds).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// ObjectKey returns a digest's S3 key: prefix is the trail's digest folder for
// the account and region ([S3KeyPrefix/]AWSLogs/[org/]acct/CloudTrail-Digest/region/),
// end the digest's end time.
//
//	<prefix>YYYY/MM/DD/<acct>_CloudTrail-Digest_<region>_<trail>_<home>_<YYYYMMDDTHHmmssZ>.json.gz
func ObjectKey(prefix, account, region, trailName, homeRegion string, end time.Time) string {
	end = end.UTC()
	return fmt.Sprintf("%s%s/%s_CloudTrail-Digest_%s_%s_%s_%s.json.gz", prefix, end.Format("2006/01/02"),
		account, region, trailName, homeRegion, end.Format("20060102T150405Z"))
}

// StringToSign is the 4-line string a digest's signature covers:
// digestEndTime, bucket/key, the hex SHA-256 of the uncompressed digest,
// and the previous digest's signature ("null" for a starting digest).
func StringToSign(endTime, bucket, key string, uncompressed []byte, previousSignature *string) []byte {
	h := sha256.Sum256(uncompressed)
	prev := "null"
	if previousSignature != nil {
		prev = *previousSignature
	}
	return []byte(endTime + "\n" + bucket + "/" + key + "\n" + hex.EncodeToString(h[:]) + "\n" + prev)
}

// Signed is a digest ready to store.
type Signed struct {
	// JSON is the uncompressed digest; Gzip what is stored.
	JSON, Gzip []byte
	// Hash is the hex SHA-256 of JSON; Signature the hex signature.
	Hash, Signature string
}

// Metadata returns the object metadata a digest is stored with.
func (s *Signed) Metadata() map[string]string {
	return map[string]string{MetaSignature: s.Signature, MetaSignatureAlgorithm: SignatureAlgorithm}
}

// Sign serializes f, signs it with k and compresses it. f's fingerprint
// and algorithm are set from k.
func Sign(f *File, k *Key) (*Signed, error) {
	f.DigestPublicKeyFingerprint = k.Fingerprint
	f.DigestSignatureAlgorithm = SignatureAlgorithm
	if f.LogFiles == nil {
		f.LogFiles = []LogFile{}
	}
	js, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	sig, err := k.Sign(StringToSign(f.DigestEndTime, f.DigestS3Bucket, f.DigestS3Object, js, f.PreviousDigestSignature))
	if err != nil {
		return nil, fmt.Errorf("digest: sign: %w", err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(js)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	h := sha256.Sum256(js)
	return &Signed{JSON: js, Gzip: gz.Bytes(), Hash: hex.EncodeToString(h[:]), Signature: hex.EncodeToString(sig)}, nil
}

// HashLog returns the hex SHA-256 of a log file's uncompressed bytes.
func HashLog(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}
