// Package apiserver serves cairn's CloudTrail API: AWS JSON 1.1 over HTTP,
// every request SigV4-verified, every authenticated call recorded as a
// CloudTrail management event in the caller's account and region.
//
// Operations of the CloudTrail model that cairn does not implement yet
// answer UnsupportedOperationException naming the operation; targets outside
// the model answer UnknownOperationException.
package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/budget"
	"github.com/cairn-audit/cairn/internal/clientaddr"
	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// Target prefixes the server answers.
const (
	cloudTrailPrefix = "CloudTrail_20131101"
	// importPrefix is cairn's extension for sending records to a running
	// server (cairn import --endpoint-url).
	importPrefix = "CairnImport_20251101"
)

// Body limits.
const (
	maxBody       = 1 << 20
	maxImportBody = 8 << 20
)

// Caller is the verified identity behind a request: the principal, and
// the service its signature was scoped to.
type Caller struct {
	audit.Principal
	// Service is the signing name of the credential scope: cloudtrail,
	// or cloudtrail-data for the data plane (PutAuditEvents). Empty is
	// taken as right for either.
	Service string
}

// Authenticator verifies a request's SigV4 signature over body and names the
// caller. Its errors are *awsjson.Error values (the AWS error to answer).
type Authenticator interface {
	Authenticate(r *http.Request, body []byte) (Caller, error)
}

// HeaderAuthenticator is an Authenticator that can check a request from
// its header before its body is read. The server reads the body of a
// request only once AuthenticateHeader has passed it, and the bodies of
// requests it passed without verifying their signature
// (verified false) only within Config.MaxUnverifiedBody.
type HeaderAuthenticator interface {
	Authenticator
	// AuthenticateHeader refuses what the header alone shows is wrong
	// (no or a malformed signature, an unknown key, an expired
	// signature, a wrong signature over a declared payload hash) with
	// the error Authenticate would give. verified reports that the
	// signature is right but for the body matching its declared hash,
	// which Authenticate checks.
	AuthenticateHeader(r *http.Request) (verified bool, err error)
}

// History answers Event History lookups.
type History interface {
	Lookup(ctx context.Context, q audit.Query) (audit.Page, error)
}

// Recorder durably stores records. Submit blocks until they are durable or
// ctx ends; Enqueue only until they are queued (the writer's drain at
// shutdown stores them).
type Recorder interface {
	Submit(ctx context.Context, records ...audit.Record) (audit.AppendResult, error)
	Enqueue(ctx context.Context, records ...audit.Record) error
	// Commit returns once the records are durable (journaled or stored).
	Commit(ctx context.Context, records ...audit.Record) error
	// Admit admits a call of account, or returns the error to answer
	// instead (an *audit.Error: Throttling when the account's share of
	// the pipeline is used up, ServiceUnavailable for a write while the
	// disk is full). write marks a call that changes something (its
	// record must be durable). release is called once the call is
	// answered and recorded.
	Admit(account string, write bool) (release func(), err error)
}

// SelfRecorder is a Recorder that can write a call's own record in the
// same durable write as the records the call submits (the ingest
// pipeline with a journal): an ImportRecords call then pays one journal
// write and fsync, not two. self makes the call's record from the counts,
// possibly in another goroutine; recorded tells whether that record was
// written (durable) with the records. When it is false the call is
// recorded as any other. The records may be read until they are written,
// after SubmitRecorded returns if ctx ended: the caller does not change
// them.
type SelfRecorder interface {
	SubmitRecorded(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (res audit.AppendResult, recorded bool, err error)
}

// EachRecorder is a SelfRecorder that also answers, for each record,
// whether it was a duplicate (ImportRecords of a log file counts them by
// account and region in one submission). ok false: it cannot tell per
// record, and submitted nothing.
type EachRecorder interface {
	SubmitRecordedEach(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (dup []bool, recorded, ok bool, err error)
}

// StoredRecorder is an EachRecorder that can also answer once a call's
// records and its own record are in the store rather than in the
// journal (the ingest pipeline's SubmitStoredEach): ImportRecords of a
// log file's bytes takes it, its records then not written to the
// journal as well (issue 15, session 35).
type StoredRecorder interface {
	SubmitStoredEach(ctx context.Context, records []audit.Record, self func(audit.AppendResult) (audit.Record, error)) (dup []bool, recorded, ok bool, err error)
}

// DiskWatcher is a Recorder that refuses writes while the disk is full
// (the ingest pipeline): a call whose own write failed for a full disk
// (a trail's or a tag's saved state, not only the pipeline's journal and
// store) tells it, so that the next writes are refused at admission and
// the operator's gauge says so.
type DiskWatcher interface {
	WriteFailed(err error)
}

// RecordsAdmitter is a Recorder that also bounds what a call may queue
// for accounts other than the caller's (a responder's import): it returns
// the error to answer instead of submitting records (ThrottlingException)
// while one of their accounts has its share of the pipeline queued.
type RecordsAdmitter interface {
	AdmitRecords(caller string, records []audit.Record) error
}

// Request is one verified call handed to an operation's Handler.
type Request struct {
	Caller Caller
	// Operation is the operation's name (CreateTrail).
	Operation string
	// Body is the request's JSON, at most 1 MiB; decode it with awsjson.Decode.
	Body      []byte
	RequestID string
	// Time is when the call arrived (Config.Now).
	Time time.Time
	// Query is the URL query of a cloudtrail-data (REST-JSON) call.
	Query url.Values
	// ResponseElements, set by a write operation's handler, is recorded as
	// the event's responseElements (JSON; nil records null). It is recorded
	// only when the call succeeds.
	ResponseElements []byte
	// tokens makes the NextTokens of Request.page.
	tokens tokenCodec
}

// Handler serves one operation: its output is marshalled as the response
// body; an error is answered as AWS answers it (*audit.Error with the code
// without "Exception", or *awsjson.Error). Handlers get requests only from
// verified callers and must scope everything they touch to req.Caller's
// account.
type Handler func(ctx context.Context, req *Request) (any, error)

// DefaultMaxUnverifiedBody is Config.MaxUnverifiedBody's default.
const DefaultMaxUnverifiedBody = 64 << 20

// Config configures a Server. Auth, History and Recorder are required.
type Config struct {
	Auth     Authenticator
	History  History
	Recorder Recorder
	// Handlers serve operations of the CloudTrail model by name, beside
	// the ones the server implements itself (LookupEvents).
	Handlers map[string]Handler
	// InsightsHandlers serve cairn's Insights extension
	// (CairnInsights_20251101.*, InsightsHandlers); nil answers
	// UnsupportedOperation.
	InsightsHandlers map[string]Handler
	// FindingsHandlers serve cairn's findings extension
	// (CairnFindings_20261201.*, FindingsHandlers); nil answers
	// UnsupportedOperation.
	FindingsHandlers map[string]Handler
	// DataHandlers serve the cloudtrail-data service's REST-JSON
	// operations by name (PutAuditEvents at POST /PutAuditEvents), signed
	// for the service cloudtrail-data. Their calls are recorded as data
	// events of eventSource cloudtrail-data.amazonaws.com.
	DataHandlers map[string]Handler
	// Retention hides records older than now-Retention from lookups; 0
	// keeps everything.
	Retention time.Duration
	// TokenKey signs NextTokens; at least 32 bytes, kept across restarts.
	TokenKey   []byte
	Now        func() time.Time
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// NewID returns event and request IDs (default: random UUIDs).
	NewID func() string
	// MaxUnverifiedBody bounds the bytes of request bodies read, all
	// requests together, before their signature can be verified (a
	// HeaderAuthenticator's unverified requests: those without
	// X-Amz-Content-Sha256, as botocore sends them). A request beyond it
	// gets ThrottlingException without its body being read. Default
	// DefaultMaxUnverifiedBody.
	MaxUnverifiedBody int64
	// TrustedProxies are the reverse proxies in front of the server: from
	// a peer in them, X-Forwarded-For names the client (clientaddr's rule,
	// shared by every edge). The client's address is the recorded
	// sourceIPAddress and the source every per-source limit and log line
	// names; from any other peer the header changes nothing. Empty: the
	// peer is the client.
	TrustedProxies []*net.IPNet
}

// Server is the CloudTrail API handler.
type Server struct {
	cfg        Config
	tokens     tokenCodec
	unverified *budget.Bytes
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	refusals   prometheus.Counter
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.NewID == nil {
		cfg.NewID = awsjson.NewRequestID
	}
	if cfg.MaxUnverifiedBody <= 0 {
		cfg.MaxUnverifiedBody = DefaultMaxUnverifiedBody
	}
	s := &Server{
		cfg:        cfg,
		tokens:     tokenCodec{key: cfg.TokenKey},
		unverified: budget.New(cfg.MaxUnverifiedBody),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_api_requests_total", Help: "CloudTrail API requests by operation and error code (\"\" = success).",
		}, []string{"operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cairn_api_request_duration_seconds", Help: "CloudTrail API request duration, recording included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"operation"}),
		refusals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_api_unverified_body_refusals_total",
			Help: "Requests answered ThrottlingException, their body unread, because api.max_unverified_body_mb was in use.",
		}),
	}
	unverified := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cairn_api_unverified_body_bytes",
		Help: "Bytes of request bodies being read before their signature can be verified.",
	}, func() float64 { return float64(s.unverified.InUse()) })
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.requests, s.duration, s.refusals, unverified)
	}
	return s
}

// call is one request in flight.
type call struct {
	r         *http.Request
	requestID string
	start     time.Time
	caller    Caller
	op        string
	readOnly  bool
	body      []byte
	// responseElements is recorded for write calls.
	responseElements []byte
	// data marks a cloudtrail-data call.
	data bool
	// ext marks an operation of cairn's Insights extension.
	ext bool
	// release ends the call's admission (Recorder.Admit), once answered
	// and recorded.
	release func()
	// console is the caller of a console call (ServeConsole): verified
	// by the console's session, not by a signature.
	console *Caller
	// source is the client's address (Config.TrustedProxies), decided
	// once at the door: the record's sourceIPAddress, and what anything
	// keyed on the caller's source (limits, logs) must use.
	source string
	// recorded marks a call whose handler had its durable record written
	// already, with its records (SelfRecorder): serveCall records it no
	// more.
	recorded bool
	// frames is the body of an ImportRecords call whose records are
	// framed by their lengths (FramedImportContentType), not JSON; body
	// is then nil.
	frames []byte
	// file is the body of an ImportRecords call that is a log file's
	// bytes (FileImportContentType); body is then nil.
	file []byte
}

// ServeHTTP answers one API request, then records it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.serveCall(w, &call{r: r, requestID: s.cfg.NewID(), start: s.cfg.Now(),
		source: clientaddr.Trusted(s.cfg.TrustedProxies).Of(r).IP})
}

// ServeConsole answers one call the console makes for a signed-in session
// of p (its account and the region it chose) through the same dispatch,
// admission, handlers and recording as a signed call: r carries the
// operation's X-Amz-Target and JSON body as a signed request would, and
// nothing of it is taken as identity. The call is recorded as AWS records
// console use: sessionCredentialFromConsole "true", r's User-Agent, no
// tlsDetails. r's RemoteAddr is the browser's address as the console
// decided it (behind the console's trusted proxies); it is not resolved
// again.
func (s *Server) ServeConsole(w http.ResponseWriter, r *http.Request, p audit.Principal) {
	s.serveCall(w, &call{r: r, requestID: s.cfg.NewID(), start: s.cfg.Now(), console: &Caller{Principal: p, Service: "cloudtrail"},
		source: clientaddr.Trusted(nil).Of(r).IP})
}

func (s *Server) serveCall(w http.ResponseWriter, c *call) {
	defer func() {
		if c.release != nil {
			c.release()
		}
	}()
	resp, err := s.serve(c)
	opLabel := c.op
	if opLabel == "" || !c.known() {
		opLabel = "unknown"
	}
	code := ""
	var aerr *awsjson.Error
	if err != nil {
		aerr = s.wireError(c, err)
		code = aerr.Code
		err = aerr
	}
	// A write call (StopLogging, DeleteTrail, PutEventSelectors...) is
	// answered only once its record is durable (the pipeline's journal, an
	// fsync): a client that saw its answer can rely on the record, even if
	// cairn is killed the next instant, and a responder hunting for
	// logging tampering finds it. Read calls (LookupEvents...) are answered
	// first and their records queued: a graceful shutdown drains the queue
	// after the last handler, a crash may lose the last 50 ms of them (the
	// pipeline journals them within 50 ms, then stores them in batches).
	// A refused call's record is queued: the pipeline is saturated, or
	// the disk full.
	recorded := c.recorded
	if !recorded && c.durableRecord() && code != string(audit.CodeThrottling)+"Exception" && code != string(audit.CodeServiceUnavailable)+"Exception" {
		recorded = true
		if rerr := s.record(c, err, true); rerr != nil && aerr == nil {
			// The call is not acknowledged without its durable record
			// (a disk that filled meanwhile: ServiceUnavailable).
			aerr = s.wireError(c, rerr)
			code = aerr.Code
		}
	}
	if aerr != nil {
		awsjson.WriteError(w, c.requestID, aerr)
	} else {
		awsjson.WriteJSON(w, c.requestID, http.StatusOK, resp)
	}
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if c.caller.AccountID != "" && !recorded {
		s.record(c, err, false)
	}
	s.requests.WithLabelValues(opLabel, code).Inc()
	s.duration.WithLabelValues(opLabel).Observe(s.cfg.Now().Sub(c.start).Seconds())
}

// durableRecord tells whether c's record is written before c is answered
// (unless c is refused for throttling or a full disk): a known write
// call of an account.
func (c *call) durableRecord() bool {
	return c.caller.AccountID != "" && c.known() && !c.readOnly
}

func (c *call) known() bool {
	_, ok := cloudtrailmodel.Operation(c.op)
	return ok || c.op == "ImportRecords" || c.data && c.op == "PutAuditEvents" || c.ext
}

// serve authenticates and dispatches; the returned error is what the client
// gets (mapped by wireError).
func (s *Server) serve(c *call) (any, error) {
	r := c.r
	prefix, op, ok := awsjson.ParseTarget(r.Header.Get("X-Amz-Target"))
	limit := int64(maxBody)
	if prefix == importPrefix {
		limit = maxImportBody
	}
	var caller bodyCaller
	if c.console != nil {
		body, err := awsjson.ReadBody(r, limit)
		if err != nil {
			return nil, err
		}
		caller = bodyCaller{Caller: *c.console, body: body}
	} else {
		var err error
		if caller, err = s.authenticate(r, limit); err != nil {
			return nil, err
		}
	}
	c.caller, c.body = caller.Caller, caller.body
	if c.console == nil && prefix == importPrefix && op == "ImportRecords" && isFramedImport(r) {
		// ImportRecords' framed body (importframes.go) is not text: the
		// handler checks its records one by one, as text is checked
		// below, and nothing records it (no parameters but the count).
		c.frames, c.body = c.body, nil
		if c.frames == nil {
			c.frames = []byte{} // no records
		}
	} else if c.console == nil && prefix == importPrefix && op == "ImportRecords" && isFileImport(r) {
		// A log file's bytes (importfile.go), gzip, not text either.
		c.file, c.body = c.body, nil
		if c.file == nil {
			c.file = []byte{}
		}
	}
	// Every operation's input is text (issue 11 item 12): refused before
	// any handler sees it, and recorded without its parameters.
	if err := awsjson.CheckText(c.body); err != nil {
		c.body = nil
		return nil, err
	}
	if name := strings.TrimPrefix(r.URL.Path, "/"); r.Header.Get("X-Amz-Target") == "" && s.cfg.DataHandlers[name] != nil {
		return s.serveData(c, name)
	}
	if caller.Service == "cloudtrail-data" {
		return nil, &awsjson.Error{Code: "InvalidSignatureException", Status: http.StatusForbidden,
			Message: "Credential should be scoped to correct service: 'cloudtrail'. "}
	}
	if r.Method != http.MethodPost || !ok {
		return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Missing or malformed X-Amz-Target header.", Status: http.StatusBadRequest}
	}
	if len(op) > 128 {
		op = op[:128]
	}
	c.op = op
	switch {
	case prefix == cloudTrailPrefix:
		mop, known := cloudtrailmodel.Operation(op)
		if !known {
			return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Unknown operation " + op + ".", Status: http.StatusBadRequest}
		}
		c.readOnly = mop.ReadOnly
	case prefix == importPrefix && op == "ImportRecords":
		c.readOnly = false
	case prefix == insightsPrefix:
		ro, known := insightsOps[op]
		if !known {
			return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Unknown operation " + prefix + "." + op + ".", Status: http.StatusBadRequest}
		}
		c.readOnly, c.ext = ro, true
	case prefix == findingsPrefix:
		ro, known := findingsOps[op]
		if !known {
			return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Unknown operation " + prefix + "." + op + ".", Status: http.StatusBadRequest}
		}
		c.readOnly, c.ext = ro, true
	default:
		return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Unknown operation " + prefix + "." + op + ".", Status: http.StatusBadRequest}
	}
	// Each account has its share of the ingest pipeline: one flooding it
	// is throttled, the others are not (see docs/security.md).
	release, err := s.cfg.Recorder.Admit(caller.AccountID, !c.readOnly)
	if err != nil {
		return nil, err
	}
	c.release = release
	ctx := r.Context()
	if op == "LookupEvents" || s.cfg.Handlers[op] != nil && prefix == cloudTrailPrefix {
		if err := checkEnums(op, c.body); err != nil {
			return nil, err
		}
	}
	switch op {
	case "LookupEvents":
		return s.lookupEvents(ctx, c)
	case "ImportRecords":
		if prefix == importPrefix {
			return s.importRecords(ctx, c)
		}
	}
	if prefix == insightsPrefix {
		h := s.cfg.InsightsHandlers[op]
		if h == nil {
			return nil, audit.Errorf(audit.CodeUnsupportedOperation, "This cairn server does not run the Insights detector on request.")
		}
		req := &Request{Caller: c.caller, Operation: op, Body: c.body, RequestID: c.requestID, Time: c.start}
		out, err := h(ctx, req)
		c.responseElements = req.ResponseElements
		return out, err
	}
	if prefix == findingsPrefix {
		h := s.cfg.FindingsHandlers[op]
		if h == nil {
			return nil, audit.Errorf(audit.CodeUnsupportedOperation, "Live detection is not configured on this cairn server (detections in its config).")
		}
		req := &Request{Caller: c.caller, Operation: op, Body: c.body, RequestID: c.requestID, Time: c.start, tokens: s.tokens}
		return h(ctx, req)
	}
	if h := s.cfg.Handlers[op]; h != nil && prefix == cloudTrailPrefix {
		req := &Request{Caller: c.caller, Operation: op, Body: c.body, RequestID: c.requestID, Time: c.start, tokens: s.tokens}
		out, err := h(ctx, req)
		c.responseElements = req.ResponseElements
		return out, err
	}
	return nil, audit.Errorf(audit.CodeUnsupportedOperation, "cairn does not implement %s yet.", op)
}

// authenticate reads the body of r (at most limit bytes) and verifies its
// signature, in the order that keeps callers cairn cannot name from making
// it hold memory (issue 11 item 4): what the header shows is checked
// first, before a byte of the body is read; a body whose signature covers
// it is then read only within the unverified-body budget, its bytes
// reserved from Content-Length (limit when unknown) before reading. The
// caller returned carries the body.
func (s *Server) authenticate(r *http.Request, limit int64) (bodyCaller, error) {
	verified := false
	if ha, ok := s.cfg.Auth.(HeaderAuthenticator); ok {
		v, err := ha.AuthenticateHeader(r)
		if err != nil {
			return bodyCaller{}, err
		}
		verified = v
	} else {
		verified = true // nothing to check before the body: no budget
	}
	if err := awsjson.CheckLength(r, limit); err != nil {
		return bodyCaller{}, err
	}
	if !verified && r.Body != nil && r.Body != http.NoBody {
		n := r.ContentLength
		if n < 0 {
			n = limit
		}
		if !s.unverified.Take(n) {
			s.refusals.Inc()
			return bodyCaller{}, audit.Errorf(audit.CodeThrottling, "Rate exceeded")
		}
		defer s.unverified.Give(n)
	}
	body, err := awsjson.ReadBody(r, limit)
	if err != nil {
		return bodyCaller{}, err
	}
	caller, err := s.cfg.Auth.Authenticate(r, body)
	if err != nil {
		return bodyCaller{}, err
	}
	return bodyCaller{Caller: caller, body: body}, nil
}

// bodyCaller is a verified caller and the body its signature covers.
type bodyCaller struct {
	Caller
	body []byte
}

// serveData dispatches a cloudtrail-data (REST-JSON) call.
func (s *Server) serveData(c *call, op string) (any, error) {
	c.op, c.data = op, true
	if c.caller.Service != "" && c.caller.Service != "cloudtrail-data" {
		return nil, &awsjson.Error{Code: "InvalidSignatureException", Status: http.StatusForbidden,
			Message: "Credential should be scoped to correct service: 'cloudtrail-data'. "}
	}
	if c.r.Method != http.MethodPost {
		return nil, &awsjson.Error{Code: "UnknownOperationException", Message: "Unknown operation " + c.r.Method + " /" + op + ".", Status: http.StatusBadRequest}
	}
	release, err := s.cfg.Recorder.Admit(c.caller.AccountID, true)
	if err != nil {
		return nil, err
	}
	c.release = release
	req := &Request{Caller: c.caller, Operation: op, Body: c.body, RequestID: c.requestID, Time: c.start, Query: c.r.URL.Query()}
	return s.cfg.DataHandlers[op](c.r.Context(), req)
}

// wireError maps any error to the AWS error the client gets: an
// awsjson.Error or audit.Error gives its code and message (never its
// cause); any other error (a path, S3 or driver text) is answered
// InternalFailure with a generic message. Causes go to the log with the
// request ID.
func (s *Server) wireError(c *call, err error) *awsjson.Error {
	if w, ok := s.cfg.Recorder.(DiskWatcher); ok {
		w.WriteFailed(err)
	}
	var we *awsjson.Error
	if errors.As(err, &we) {
		if we.Cause != nil { // the client gets the code and message only
			s.cfg.Logger.Warn("api: error cause", "request_id", c.requestID, "operation", c.op, "source_ip", c.source, "code", we.Code, "err", we.Cause)
		}
		return we
	}
	var de *audit.Error
	if errors.As(err, &de) {
		if de.Err != nil { // the client gets the code and message only
			s.cfg.Logger.Warn("api: error cause", "request_id", c.requestID, "operation", c.op, "source_ip", c.source, "code", string(de.Code), "err", de.Err)
		}
		code := string(s.modeled(c, de.Code)) + "Exception"
		return &awsjson.Error{Code: code, Message: de.Message, Status: awsjson.StatusFor(code)}
	}
	if errors.Is(err, context.Canceled) {
		return &awsjson.Error{Code: "RequestCanceled", Message: "The request was canceled.", Status: 499}
	}
	s.cfg.Logger.Error("api: internal error", "request_id", c.requestID, "operation", c.op, "err", err)
	return &awsjson.Error{Code: "InternalFailure", Message: "The request processing has failed because of an unknown error, exception or failure.", Status: http.StatusInternalServerError}
}

// commonCodes are the codes any operation may answer, modeled or not:
// the service's and the transport's (AWS's "Common Errors").
var commonCodes = []audit.Code{audit.CodeThrottling, audit.CodeServiceUnavailable, audit.CodeUnsupportedOperation}

// synonyms are, for a code a feature raises, the codes an operation may
// model for the same fault instead, tried in order.
var synonyms = map[audit.Code][]audit.Code{
	audit.CodeInvalidTimeRange:            {audit.CodeInvalidDateRange},
	audit.CodeInvalidDateRange:            {audit.CodeInvalidTimeRange},
	audit.CodeInvalidNextToken:            {audit.CodeInvalidToken},
	audit.CodeInvalidToken:                {audit.CodeInvalidNextToken},
	audit.CodeTrailNotProvided:            {audit.CodeInvalidTrailName},
	audit.CodeInvalidParameterCombination: {audit.CodeInvalidEventSelectors},
	audit.CodeInvalidMaxResults:           {},
	audit.CodeImportNotFound:              {},
	audit.CodeChannelNotFound:             {audit.CodeResourceNotFound},
	audit.CodeEventDataStoreNotFound:      {audit.CodeResourceNotFound},
}

// modeled returns the code to answer for code on c's operation: code when
// the operation's model documents it (or it is a common code), else the
// first documented synonym, else InvalidParameter or OperationNotPermitted
// when documented. boto3
// and the other SDKs map only modeled codes to exception classes: an
// operation answers only those (issue 14). A code with no documented
// stand-in is answered as it is, and logged.
func (s *Server) modeled(c *call, code audit.Code) audit.Code {
	op, ok := cloudtrailmodel.Operation(c.op)
	if !ok || c.data || slices.Contains(commonCodes, code) || slices.Contains(op.Errors, string(code)+"Exception") {
		return code
	}
	// Every implemented operation models OperationNotPermitted: the last
	// resort (AddTags from outside a trail's home region...).
	if m := modeledCode(op, synonyms[code]...); m != "" {
		return m
	}
	s.cfg.Logger.Warn("api: answering an error code the operation does not model", "operation", c.op, "code", code)
	return code
}

// record stores the CloudTrail event of call c. errResp is what the client
// gets (nil on success). With durable it returns once the record is
// durable; else once it is queued. It returns the error it logged.
func (s *Server) record(c *call, errResp error, durable bool) error {
	rec, err := eventRecord(s.event(c, errResp))
	if err == nil {
		// A canceled request still gets its record; only shutdown
		// (ErrClosed) can stop it.
		ctx := context.WithoutCancel(c.r.Context())
		if durable {
			err = s.cfg.Recorder.Commit(ctx, rec)
		} else {
			err = s.cfg.Recorder.Enqueue(ctx, rec)
		}
	}
	if err != nil {
		s.cfg.Logger.Error("api: recording the call failed", "request_id", c.requestID, "operation", c.op, "err", err)
	}
	return err
}

// eventRecord is ev as a record to store.
func eventRecord(ev *audit.Event) (audit.Record, error) {
	raw, err := ev.Marshal()
	if err != nil {
		return audit.Record{}, err
	}
	return audit.Extract(raw)
}

// event builds the record AWS would write for c (audit.CallRecord decides
// the fields every call record shares).
func (s *Server) event(c *call, errResp error) *audit.Event {
	rc := audit.Call{
		Identity: c.caller.Identity(),
		Account:  c.caller.AccountID,
		// When the request was made (AWS: "the date and time the request was
		// made"), the time the operation itself saw (Request.Time): a
		// StopLogging that answers in the next second is still before the
		// trail's StopLoggingTime.
		Time:        c.start,
		Source:      "cloudtrail.amazonaws.com",
		Name:        c.op,
		Region:      c.caller.Region,
		SourceIP:    c.source,
		UserAgent:   c.r.UserAgent(),
		RequestID:   c.requestID,
		EventID:     s.cfg.NewID(),
		ReadOnly:    c.readOnly,
		Data:        c.data,
		FromConsole: c.console != nil,
	}
	if c.data {
		rc.Source = "cloudtrail-data.amazonaws.com"
		rc.RequestParameters = dataParameters(c.op, c.r.URL.Query())
	} else {
		rc.RequestParameters = operationParameters(c.op, c.body)
	}
	var we *awsjson.Error
	if errors.As(errResp, &we) {
		rc.ErrorCode, rc.ErrorMessage = we.Code, we.Message
	}
	if errResp == nil && !c.readOnly {
		// CloudTrail's records of its own reads carry no response.
		rc.ResponseElements = c.responseElements
	}
	if c.r.TLS != nil {
		rc.TLS = &audit.CallTLS{Version: c.r.TLS.Version, CipherSuite: audit.CipherSuiteName(c.r.TLS.CipherSuite), Host: c.r.Host}
	}
	if c.console != nil {
		rc.TLS = nil // console credentials: no tlsDetails, as AWS records console use
	}
	return audit.CallRecord(rc)
}
