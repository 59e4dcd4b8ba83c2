// Package chain reads and checks CloudTrail digest files and walks their
// chain exactly as `aws cloudtrail validate-logs` does. It holds the digest
// format's names (key layout, string to sign, hashes) and depends on the
// standard library only, so that its parsers can be fuzzed quickly.
package chain

import (
	"crypto/sha256"
	"encoding/hex"
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

// HashLog returns the hex SHA-256 of a log file's uncompressed bytes.
func HashLog(raw []byte) string {
	h := sha256.Sum256(raw)
	return hex.EncodeToString(h[:])
}
