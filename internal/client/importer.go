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
	// ThrottledWait, when set, keeps a throttled call trying past
	// MaxAttempts until its waits add up to it: a bulk import waits for a
	// pipeline that pushes back (ThrottlingException while an account's
	// records queue) rather than stopping.
	ThrottledWait time.Duration
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
	// noFiles: the server took no log file (one from before them); the
	// files' records go framed or as JSON.
	noFiles atomic.Bool
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
			enc = audit.AppendJSONString(enc[:0], rec.Raw, false)
			n = 1 + len(enc) + 2
		}
		if len(index) == maxCallRecords || len(index) > 0 && len(body)+n > maxCallBody {
			if err := send(); err != nil {
				return total, fails, err
			}
			if wasFramed && !framed { // the server took no framed body
				enc = audit.AppendJSONString(enc[:0], rec.Raw, false)
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

// FileContentType is the Content-Type of an ImportRecords body that is
// one .json.gz log file's bytes as they are
// (apiserver.FileImportContentType): the server reads the file and
// answers its report.
const FileContentType = "application/x-cairn-cloudtrail-gz"

// fileKeyHeader names the file of a FileContentType call
// (apiserver.FileKeyHeader).
const fileKeyHeader = "X-Cairn-File-Key"

// fileOutput is the answer to a FileContentType call, the file's report.
type fileOutput struct {
	Files, Skipped, FileErrors                       int64
	Records, Imported, Duplicates, Rejected, Expired int64
	Groups                                           []struct {
		Account, Region                        string
		Records, Imported, Duplicates, Refused int64
		Reasons                                map[string]int64
	}
	Errors []struct {
		Record  int
		Code    string
		Message string
	}
	ErrorsOmitted int64
}

// ImportFile sends one gzip log file's bytes (content, at most 8 MiB) in
// one ImportRecords call and returns the file's report, made by the
// server as `cairn import` makes it offline (importer.FileSink). ok is
// false when the server did not take the file, nothing of it stored: one
// from before files (SerializationException or
// UnknownOperationException: no later file is sent either), or one that
// refused this file's content (InvalidLogFileException: not gzip,
// truncated, corrupt; RequestEntityTooLargeException: it decompresses past
// the server's bound); the importer then reads the file here and sends
// its records. Other errors are the call's (after its retries).
func (s *Importer) ImportFile(ctx context.Context, name string, content []byte) (importer.Report, bool, error) {
	if s.noFiles.Load() {
		return importer.Report{}, false, nil
	}
	var out fileOutput
	err := s.callWith(ctx, ImportTarget, FileContentType, fileKey(name), content, &out)
	var re *ImportError
	switch {
	case errors.As(err, &re) && (re.Code == "SerializationException" || re.Code == "UnknownOperationException"):
		s.noFiles.Store(true)
		return importer.Report{}, false, nil
	case errors.As(err, &re) && (re.Code == "InvalidLogFileException" || re.Code == "RequestEntityTooLargeException"):
		return importer.Report{}, false, nil
	case err != nil:
		return importer.Report{}, false, err
	}
	if err := out.check(); err != nil {
		return importer.Report{}, false, fmt.Errorf("ImportRecords: %s: malformed response: %w", name, err)
	}
	rep := importer.Report{Files: out.Files, Skipped: out.Skipped, FileErrors: out.FileErrors,
		Records: out.Records, Imported: out.Imported, Duplicates: out.Duplicates, Rejected: out.Rejected,
		Expired: out.Expired, ErrorsOmitted: out.ErrorsOmitted}
	for _, g := range out.Groups {
		rep.Groups = append(rep.Groups, importer.Group{Account: g.Account, Region: g.Region, Records: g.Records,
			Imported: g.Imported, Duplicates: g.Duplicates, Refused: g.Refused, Reasons: g.Reasons})
	}
	for _, e := range out.Errors {
		rep.Errors = append(rep.Errors, importer.RecordError{File: name, Record: e.Record, Code: e.Code,
			Err: errors.New(audit.Clip(e.Message, 1024))})
	}
	return rep, true, nil
}

// check refuses an answer whose counts do not add up, which the report
// would carry on.
func (o *fileOutput) check() error {
	neg := o.Files < 0 || o.Skipped < 0 || o.FileErrors < 0 || o.Records < 0 || o.Imported < 0 ||
		o.Duplicates < 0 || o.Rejected < 0 || o.Expired < 0 || o.ErrorsOmitted < 0
	if neg || o.Files+o.Skipped != 1 || o.Records != o.Imported+o.Duplicates+o.Rejected+o.Expired || len(o.Groups) > 1000 || len(o.Errors) > 1000 {
		return errors.New("the file's counts do not add up")
	}
	var sum int64
	for _, g := range o.Groups {
		if g.Records < 0 || g.Imported < 0 || g.Duplicates < 0 || g.Refused < 0 || g.Records != g.Imported+g.Duplicates+g.Refused {
			return errors.New("a group's counts do not add up")
		}
		sum += g.Records
	}
	for i := range o.Groups {
		if o.Groups[i].Reasons == nil {
			o.Groups[i].Reasons = map[string]int64{}
		}
	}
	if sum != o.Records {
		return errors.New("the groups do not add up to the file's records")
	}
	return nil
}

// fileKey is the X-Cairn-File-Key header of a file: its name, made text of
// at most 1,024 bytes.
func fileKey(name string) http.Header {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f { // ASCII text: signed and checked alike on both sides
			return '?'
		}
		return r
	}, name)
	if len(name) > 1024 {
		name = name[len(name)-1024:]
	}
	return http.Header{fileKeyHeader: {name}}
}

// uvarintLen is the length of x as an unsigned varint.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// call sends one call of cairn's extension target (Prefix.Operation), its
// body of Content-Type contentType, and decodes its output into out,
// retrying throttling and server errors with capped exponential backoff
// and full jitter.
func (s *Importer) call(ctx context.Context, target, contentType string, body []byte, out any) error {
	return s.callWith(ctx, target, contentType, nil, body, out)
}

// callWith is call with more headers, signed with the rest.
func (s *Importer) callWith(ctx context.Context, target, contentType string, header http.Header, body []byte, out any) error {
	op := target[strings.IndexByte(target, '.')+1:]
	if s.cfg.Credentials == nil {
		return errors.New(op + ": no credentials")
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	const base, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	var waited time.Duration // waits after throttling
	for attempt := 1; ; attempt++ {
		b, err := s.try(ctx, target, contentType, header, body, hash)
		if err == nil {
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("%s: malformed response: %w", op, err)
			}
			return nil
		}
		var re *ImportError
		throttled := errors.As(err, &re) && re.Code == "ThrottlingException"
		retry := throttled || re != nil && re.Status >= 500
		patient := throttled && waited < s.cfg.ThrottledWait
		if !retry || attempt >= s.cfg.MaxAttempts && !patient {
			return err
		}
		backoff := min(base<<min(attempt-1, 16), maxBackoff)
		d := rand.N(backoff) + 1
		if throttled {
			waited += d
		}
		if err := s.sleep(ctx, d); err != nil {
			return err
		}
	}
}

// try sends one signed request and returns the body of a 200 answer.
func (s *Importer) try(ctx context.Context, target, contentType string, header http.Header, body []byte, hash string) ([]byte, error) {
	op := target[strings.IndexByte(target, '.')+1:]
	creds, err := s.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Endpoint+"/", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	for k, v := range header {
		req.Header[k] = v
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

var (
	_ importer.ReportingSink = (*Importer)(nil)
	_ importer.FileSink      = (*Importer)(nil)
)
