package trail

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// DigestLogFile is one log file a digest covers.
type DigestLogFile struct {
	S3Bucket        string `json:"s3Bucket"`
	S3Object        string `json:"s3Object"`
	HashValue       string `json:"hashValue"`
	HashAlgorithm   string `json:"hashAlgorithm"`
	NewestEventTime string `json:"newestEventTime"`
	OldestEventTime string `json:"oldestEventTime"`
}

// DigestFile is a digest file's JSON, with AWS's members in AWS's order.
type DigestFile struct {
	AWSAccountID                string          `json:"awsAccountId"`
	DigestStartTime             string          `json:"digestStartTime"`
	DigestEndTime               string          `json:"digestEndTime"`
	DigestS3Bucket              string          `json:"digestS3Bucket"`
	DigestS3Object              string          `json:"digestS3Object"`
	DigestPublicKeyFingerprint  string          `json:"digestPublicKeyFingerprint"`
	DigestSignatureAlgorithm    string          `json:"digestSignatureAlgorithm"`
	NewestEventTime             *string         `json:"newestEventTime"`
	OldestEventTime             *string         `json:"oldestEventTime"`
	PreviousDigestS3Bucket      *string         `json:"previousDigestS3Bucket"`
	PreviousDigestS3Object      *string         `json:"previousDigestS3Object"`
	PreviousDigestHashValue     *string         `json:"previousDigestHashValue"`
	PreviousDigestHashAlgorithm *string         `json:"previousDigestHashAlgorithm"`
	PreviousDigestSignature     *string         `json:"previousDigestSignature"`
	LogFiles                    []DigestLogFile `json:"logFiles"`
}

// Names shared with the chain package.
const (
	SignatureAlgorithm     = chain.SignatureAlgorithm
	HashAlgorithm          = chain.HashAlgorithm
	MetaSignature          = chain.MetaSignature
	MetaSignatureAlgorithm = chain.MetaSignatureAlgorithm
	TimeFormat             = chain.TimeFormat
)

// SignedDigest is a digest ready to store.
type SignedDigest struct {
	// JSON is the uncompressed digest; Gzip what is stored.
	JSON, Gzip []byte
	// Hash is the hex SHA-256 of JSON; Signature the hex signature.
	Hash, Signature string
}

// Metadata returns the object metadata a digest is stored with.
func (s *SignedDigest) Metadata() map[string]string {
	return map[string]string{MetaSignature: s.Signature, MetaSignatureAlgorithm: SignatureAlgorithm}
}

// Sign serializes f, signs it with k and compresses it. f's fingerprint
// and algorithm are set from k.
func SignDigest(f *DigestFile, k *SigningKey) (*SignedDigest, error) {
	f.DigestPublicKeyFingerprint = k.Fingerprint
	f.DigestSignatureAlgorithm = SignatureAlgorithm
	if f.LogFiles == nil {
		f.LogFiles = []DigestLogFile{}
	}
	js, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	sig, err := k.Sign(chain.StringToSign(f.DigestEndTime, f.DigestS3Bucket, f.DigestS3Object, js, f.PreviousDigestSignature))
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
	return &SignedDigest{JSON: js, Gzip: gz.Bytes(), Hash: hex.EncodeToString(h[:]), Signature: hex.EncodeToString(sig)}, nil
}
