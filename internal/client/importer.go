package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
)

// ImportTarget is the X-Amz-Target of cairn's ImportRecords operation, the
// extension a running server offers for `cairn import --endpoint-url`.
const ImportTarget = "CairnImport_20251101.ImportRecords"

// FramedContentType is the Content-Type of an ImportRecords body of
// records framed by their lengths (apiserver.FramedImportContentType):
// each record's length as an unsigned varint, then its bytes.
const FramedContentType = "application/x-cairn-record-frames"

// jsonContentType is the Content-Type of the JSON bodies (AWS JSON 1.1).
const jsonContentType = "application/x-amz-json-1.1"

// Limits of one ImportRecords call.
const (
	maxCallRecords = 1000
	maxCallBody    = 8 << 20
	maxResponse    = 16 << 20
)

// ImporterConfig configures an Importer.
type ImporterConfig struct {
	// Endpoint is the server's URL (http://localhost:8080).
	Endpoint string
	// Region signs the requests (the server's region).
	Region string
	// Credentials sign the requests; the records must belong to their
	// account.
	Credentials aws.CredentialsProvider
	// HTTPClient sends the requests (default: a client with a 2-minute
	// timeout).
	HTTPClient *http.Client
	// MaxAttempts bounds the tries of a call that is throttled or meets a
	// server error (default 8), with capped exponential backoff between.
	MaxAttempts int
}

// Importer is an importer.Sink (and ReportingSink) that sends records to a running cairn server with
// the ImportRecords extension, SigV4-signed for the service "cloudtrail".
// The server stores them byte for byte and deduplicates like a store.
type Importer struct {
	cfg    ImporterConfig
	signer *v4.Signer
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	// jsonOnly: the server refused a framed body; the records go as JSON.
	jsonOnly atomic.Bool
}

// ImportError is an AWS JSON error the server answered with.
type ImportError struct {
	Op      string // the operation (default ImportRecords)
	Status  int    // HTTP status
	Code    string // __type, without a namespace
	Message string
}

// Error returns the AWS error code and message.
func (e *ImportError) Error() string {
	op := e.Op
	if op == "" {
		op = "ImportRecords"
	}
	if e.Code == "" {
		return fmt.Sprintf("%s: HTTP %d", op, e.Status)
	}
	return fmt.Sprintf("%s: %s: %s", op, e.Code, e.Message)
}

// NewImporter returns an Importer for cfg.
func NewImporter(cfg ImporterConfig) *Importer {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 2 * time.Minute}
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	return &Importer{cfg: cfg, signer: v4.NewSigner(), now: time.Now, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Append sends records; records the server refuses are counted neither as
// Inserted nor as Duplicates (use AppendReport to learn which).
func (s *Importer) Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error) {
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

// AppendReport sends records in calls of at most 1000 records and 8 MiB
// and returns the records refused: by the server (other accounts, expired,
// invalid), or here when a record is not valid UTF-8 (a JSON string cannot
// carry it unchanged). An error stops at the failing call; the calls before
// it are stored.
//
// The records go framed by their lengths (FramedContentType), each as it
// was read; a server that refuses that body (one from before it answers
// SerializationException) gets the call again as JSON, and so do all the
// Importer's later calls.
func (s *Importer) AppendReport(ctx context.Context, records []audit.Record) (audit.AppendResult, []importer.Failure, error) {
	var (
		total audit.AppendResult
		fails []importer.Failure
		body  []byte
		index []int // batch index of each record in body
		enc   []byte
	)
	framed := !s.jsonOnly.Load()
	// The body of the first call is sized for its records (as JSON
	// strings they are about a tenth longer than the records); a body of
	// 1 MiB made for every call, whatever its size, was most of the CPU of
	// the clients of BenchmarkLiveIngest (the zeroing of fresh memory).
	size := 64
	for _, rec := range records[:min(len(records), maxCallRecords)] {
		if size += len(rec.Raw)*9/8 + 3; size > maxCallBody {
			break
		}
	}
	body = make([]byte, 0, min(size, maxCallBody+64))
	send := func() error {
		if len(index) == 0 {
			return nil
		}
		var out importOutput
		if framed {
			err := s.call(ctx, ImportTarget, FramedContentType, body, &out)
			if re := (*ImportError)(nil); errors.As(err, &re) && re.Code == "SerializationException" {
				// A server from before framed bodies: these records and
				// all that follow go as JSON.
				s.jsonOnly.Store(true)
				framed = false
				sub := make([]audit.Record, len(index))
				for j, i := range index {
					sub[j] = records[i]
				}
				res, subFails, err := s.AppendReport(ctx, sub)
				total.Inserted += res.Inserted
				total.Duplicates += res.Duplicates
				for _, f := range subFails {
					if f.Index >= 0 && f.Index < len(index) {
						f.Index = index[f.Index]
					}
					fails = append(fails, f)
				}
				body, index = body[:0], index[:0]
				return err
			}
			if err != nil {
				return err
			}
		} else {
			body = append(body, "]}"...)
			if err := s.call(ctx, ImportTarget, jsonContentType, body, &out); err != nil {
				return err
			}
		}
		total.Inserted += out.Inserted
		total.Duplicates += out.Duplicates
		for _, f := range out.Failed {
			i := -1
			if f.Index >= 0 && f.Index < len(index) {
				i = index[f.Index]
			}
			fails = append(fails, importer.Failure{Index: i, Code: f.ErrorCode, Message: f.ErrorMessage})
		}
		body, index = body[:0], index[:0]
		return nil
	}
	for i, rec := range records {
		if !utf8.Valid(rec.Raw) {
			fails = append(fails, importer.Failure{Index: i, Code: "InvalidRecord",
				Message: "the record is not valid UTF-8, which a JSON string cannot carry unchanged"})
			continue
		}
		var n int // what the record adds to the body
		wasFramed := framed
		if framed {
			n = uvarintLen(uint64(len(rec.Raw))) + len(rec.Raw)
		} else {
			enc = appendJSONString(enc[:0], rec.Raw)
			n = 1 + len(enc) + 2
		}
		if len(index) == maxCallRecords || len(index) > 0 && len(body)+n > maxCallBody {
			if err := send(); err != nil {
				return total, fails, err
			}
			if wasFramed && !framed { // the server took no framed body
				enc = appendJSONString(enc[:0], rec.Raw)
			}
		}
		switch {
		case framed:
			body = binary.AppendUvarint(body, uint64(len(rec.Raw)))
			body = append(body, rec.Raw...)
		case len(index) == 0:
			body = append(body, `{"Records":[`...)
			body = append(body, enc...)
		default:
			body = append(body, ',')
			body = append(body, enc...)
		}
		index = append(index, i)
	}
	if err := send(); err != nil {
		return total, fails, err
	}
	return total, fails, nil
}

// uvarintLen is the length of x as an unsigned varint.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// appendJSONString appends s as a JSON string that decodes to exactly s
// (valid UTF-8): only the quote, the backslash and control bytes are
// escaped.
func appendJSONString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// call sends one call of cairn's extension target (Prefix.Operation), its
// body of Content-Type contentType, and decodes its output into out,
// retrying throttling and server errors with capped exponential backoff
// and full jitter.
func (s *Importer) call(ctx context.Context, target, contentType string, body []byte, out any) error {
	op := target[strings.IndexByte(target, '.')+1:]
	if s.cfg.Credentials == nil {
		return errors.New(op + ": no credentials")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	const base, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	for attempt := 1; ; attempt++ {
		b, err := s.try(ctx, target, contentType, body, hash)
		if err == nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s: malformed response: %w", op, err)
			}
			return nil
		}
		var re *ImportError
		retry := errors.As(err, &re) && (re.Code == "ThrottlingException" || re.Status >= 500)
		if !retry || attempt >= s.cfg.MaxAttempts {
			return err
		}
		backoff := min(base<<(attempt-1), maxBackoff)
		if err := s.sleep(ctx, rand.N(backoff)+1); err != nil {
			return err
		}
	}
}

// try sends one signed request and returns the body of a 200 answer.
func (s *Importer) try(ctx context.Context, target, contentType string, body []byte, hash string) ([]byte, error) {
	op := target[strings.IndexByte(target, '.')+1:]
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-Amz-Target", target)
	// Declared, the hash lets the server check the signature before it
	// reads the body: the call is not held to its budget for bodies it
	// must read to verify (docs/security.md).
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if err := s.signer.SignHTTP(ctx, creds, req, hash, "cloudtrail", s.cfg.Region, s.now()); err != nil {
		return nil, fmt.Errorf("%s: signing: %w", op, err)
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s: reading the response: %w", op, err)
	}
	if resp.StatusCode == http.StatusOK {
		return b, nil
	}
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(b, &e) // a body that is not an AWS error leaves the code empty
	code := e.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if e.Message == "" {
		e.Message = e.Message2
	}
	if code == "" && resp.StatusCode == http.StatusTooManyRequests {
		code = "ThrottlingException"
	}
	return nil, &ImportError{Op: op, Status: resp.StatusCode, Code: code, Message: audit.Clip(e.Message, 1024)}
}

var _ importer.ReportingSink = (*Importer)(nil)
