package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairn-audit/cairn/internal/audit"
)

// ImportTarget is the X-Amz-Target of cairn's ImportRecords operation.
const ImportTarget = "CairnImport_20251101.ImportRecords"

// Per-call limits of ImportRecords.
const (
	maxCallRecords = 1000
	maxCallBytes   = 7 << 20
)

// RemoteConfig configures a RemoteSink.
type RemoteConfig struct {
	Endpoint    string
	Region      string
	Credentials aws.CredentialsProvider
	HTTPClient  *http.Client
	// MaxAttempts per call for throttling and server errors (default 6).
	MaxAttempts int
}

// RemoteSink sends records to a running cairn server (cairn import
// --endpoint-url), SigV4-signed like any AWS call.
type RemoteSink struct {
	cfg    RemoteConfig
	signer *v4.Signer
}

// NewRemoteSink returns a RemoteSink.
func NewRemoteSink(cfg RemoteConfig) *RemoteSink {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 6
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	return &RemoteSink{cfg: cfg, signer: v4.NewSigner()}
}

// Append sends records; refused records are not counted.
func (s *RemoteSink) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
	res, _, err := s.AppendReport(ctx, records)
	return res, err
}

type importOutput struct {
	Inserted   int
	Duplicates int
	Failed     []struct {
		Index        int
		ErrorCode    string
		ErrorMessage string
	}
}

// AppendReport sends records in calls of at most 1000 records and 7 MiB,
// and reports the records the server refused.
func (s *RemoteSink) AppendReport(ctx context.Context, records []audit.Record) (audit.AppendResult, []Failure, error) {
	var (
		total audit.AppendResult
		fails []Failure
	)
	for start := 0; start < len(records); {
		end, size := start, 0
		for end < len(records) && end-start < maxCallRecords && (end == start || size+len(records[end].Raw) < maxCallBytes) {
			size += len(records[end].Raw) + 8
			end++
		}
		raws := make([]string, 0, end-start)
		for _, r := range records[start:end] {
			raws = append(raws, string(r.Raw))
		}
		body, _ := json.Marshal(map[string][]string{"Records": raws})
		out, err := s.call(ctx, body)
		if err != nil {
			return total, fails, err
		}
		total.Inserted += out.Inserted
		total.Duplicates += out.Duplicates
		for _, f := range out.Failed {
			fails = append(fails, Failure{Index: start + f.Index, Message: f.ErrorCode + ": " + f.ErrorMessage})
		}
		start = end
	}
	return total, fails, nil
}

// call sends one ImportRecords call, retrying throttling and server errors
// with capped exponential backoff and jitter.
func (s *RemoteSink) call(ctx context.Context, body []byte) (*importOutput, error) {
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		creds, err := s.cfg.Credentials.Retrieve(ctx)
		if err != nil {
			return nil, fmt.Errorf("credentials: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Endpoint+"/", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", ImportTarget)
		if err := s.signer.SignHTTP(ctx, creds, req, hash, "cloudtrail", s.cfg.Region, time.Now()); err != nil {
			return nil, err
		}
		resp, err := s.cfg.HTTPClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			var out importOutput
			if err := json.Unmarshal(b, &out); err != nil {
				return nil, fmt.Errorf("ImportRecords: bad response: %w", err)
			}
			return &out, nil
		}
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		retry := e.Type == "ThrottlingException" || resp.StatusCode >= 500
		if !retry || attempt >= s.cfg.MaxAttempts {
			if e.Type == "" {
				return nil, fmt.Errorf("ImportRecords: HTTP %d", resp.StatusCode)
			}
			return nil, fmt.Errorf("ImportRecords: %s: %s", e.Type, e.Message)
		}
		select {
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
