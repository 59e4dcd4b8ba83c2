// Package sigv4 verifies AWS Signature Version 4 on incoming HTTP requests,
// in the Authorization header and in presigned query strings, the way AWS
// services do, with AWS's error codes and messages.
package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Algorithm is the only signing algorithm verified.
const Algorithm = "AWS4-HMAC-SHA256"

// Special payload hashes a client may sign instead of the body's hash.
const (
	UnsignedPayload = "UNSIGNED-PAYLOAD"
	streamingPrefix = "STREAMING-"
)

const (
	amzDateFormat = "20060102T150405Z"
	maxPresign    = 7 * 24 * time.Hour
)

// Error is a verification failure as AWS answers it. Code carries the
// Exception suffix of JSON services (InvalidSignatureException).
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func incomplete(format string, args ...any) *Error {
	return &Error{Code: "IncompleteSignatureException", Message: fmt.Sprintf(format, args...), Status: http.StatusBadRequest}
}

func invalid(format string, args ...any) *Error {
	return &Error{Code: "InvalidSignatureException", Message: fmt.Sprintf(format, args...), Status: http.StatusForbidden}
}

var (
	errMissing = &Error{Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token", Status: http.StatusForbidden}
	errUnknown = &Error{Code: "UnrecognizedClientException", Message: "The security token included in the request is invalid.", Status: http.StatusForbidden}
	errMatch   = invalid("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
)

// Auth is the parsed, unverified signature of a request.
type Auth struct {
	AccessKeyID   string
	Date          string // credential scope date, YYYYMMDD
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
	// Time is X-Amz-Date (or Date).
	Time         time.Time
	SessionToken string
	Presigned    bool
	// Expires is X-Amz-Expires of a presigned URL.
	Expires time.Duration
}

// Parse reads a request's SigV4 signature without verifying it. The
// recording gateway uses it to learn the service and region of a call.
func Parse(r *http.Request) (Auth, error) {
	var a Auth
	h := r.Header.Get("Authorization")
	q := r.URL.Query()
	switch {
	case h != "":
		alg, rest, _ := strings.Cut(h, " ")
		if alg != Algorithm {
			if strings.HasPrefix(alg, "AWS4-") {
				return a, incomplete("Unsupported AWS 'algorithm': '%s'.", audit.Clip(alg, 128))
			}
			return a, incomplete("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=%s", audit.Clip(alg, 128))
		}
		params := map[string]string{}
		for _, part := range strings.Split(rest, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok {
				params[k] = v
			}
		}
		var missing []string
		for _, k := range []string{"Credential", "Signature", "SignedHeaders"} {
			if params[k] == "" {
				missing = append(missing, fmt.Sprintf("Authorization header requires '%s' parameter.", k))
			}
		}
		if len(missing) > 0 {
			return a, incomplete("%s Authorization=%s", strings.Join(missing, " "), audit.Clip(h, 128))
		}
		if err := a.credential(params["Credential"]); err != nil {
			return a, err
		}
		a.SignedHeaders = strings.Split(params["SignedHeaders"], ";")
		a.Signature = params["Signature"]
		a.SessionToken = r.Header.Get("X-Amz-Security-Token")
		t, err := requestTime(r.Header.Get("X-Amz-Date"), r.Header.Get("Date"))
		if err != nil {
			return a, err
		}
		a.Time = t
	case q.Has("X-Amz-Algorithm") || q.Has("X-Amz-Credential") || q.Has("X-Amz-Signature"):
		a.Presigned = true
		if alg := q.Get("X-Amz-Algorithm"); alg != Algorithm {
			return a, incomplete("Unsupported AWS 'algorithm': '%s'.", audit.Clip(alg, 128))
		}
		var missing []string
		for _, k := range []string{"X-Amz-Credential", "X-Amz-Signature", "X-Amz-SignedHeaders", "X-Amz-Date"} {
			if q.Get(k) == "" {
				missing = append(missing, fmt.Sprintf("AWS query-string parameters must include '%s'.", k))
			}
		}
		if len(missing) > 0 {
			return a, incomplete("%s Re-examine the query-string parameters.", strings.Join(missing, " "))
		}
		if err := a.credential(q.Get("X-Amz-Credential")); err != nil {
			return a, err
		}
		a.SignedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
		a.Signature = q.Get("X-Amz-Signature")
		a.SessionToken = q.Get("X-Amz-Security-Token")
		t, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
		if err != nil {
			return a, incomplete("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
		}
		a.Time = t
		secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresign {
			return a, incomplete("X-Amz-Expires must be a number of seconds from 1 to 604800.")
		}
		a.Expires = time.Duration(secs) * time.Second
	default:
		return a, errMissing
	}
	if a.Date != a.Time.Format("20060102") {
		return a, invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
			audit.Clip(a.Date, 128), a.Time.Format("20060102"), a.Time.Format(amzDateFormat))
	}
	return a, nil
}

func (a *Auth) credential(c string) error {
	parts := strings.Split(c, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || parts[1] == "" || parts[3] == "" {
		return incomplete("Credential should be scoped to a valid region, service and date, and end in aws4_request: %s", audit.Clip(c, 128))
	}
	a.AccessKeyID, a.Date, a.Region, a.Service = parts[0], parts[1], parts[2], parts[3]
	if !audit.ValidRegion(a.Region) {
		// As AWS answers a scope whose region is no region: 403, the
		// region quoted (JSON- or XML-escaped by whoever writes it).
		return invalid("Credential should be scoped to a valid region, not '%s'. ", audit.Clip(a.Region, 128))
	}
	return nil
}

func requestTime(amzDate, date string) (time.Time, error) {
	if amzDate != "" {
		t, err := time.Parse(amzDateFormat, amzDate)
		if err != nil {
			return t, incomplete("Date must be in ISO-8601 'basic format'. Got '%s'. See http://en.wikipedia.org/wiki/ISO_8601", audit.Clip(amzDate, 128))
		}
		return t, nil
	}
	if date != "" {
		if t, err := http.ParseTime(date); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
}

// Verifier checks signatures against known keys.
type Verifier struct {
	// Secret returns the secret key of an access key ID.
	Secret func(accessKeyID string) (secret string, ok bool)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxSkew is the tolerated clock difference (default 15 minutes).
	MaxSkew time.Duration
}

// Result is a verified signature.
type Result struct {
	AccessKeyID, Region, Service, SessionToken string
	Time                                       time.Time
	Presigned                                  bool
}

// Verify checks r's signature over body (the whole request body, already
// read). On failure it returns an *Error.
//
// The payload hash is as AWS computes it: S3 (service s3) takes the
// X-Amz-Content-Sha256 header, UNSIGNED-PAYLOAD and STREAMING-* included,
// and refuses a body that does not match a declared hash with
// XAmzContentSHA256Mismatch; every other service signs the SHA-256 of the
// body, so a request signed over UNSIGNED-PAYLOAD, STREAMING-* or another
// body's hash gets InvalidSignatureException, the signature not matching.
// For those services cairn refuses such an X-Amz-Content-Sha256 header
// even when it is not signed (AWS would ignore it): no body is accepted
// beside a header that describes another.
func (v *Verifier) Verify(r *http.Request, body []byte) (Result, error) {
	a, secret, err := v.prepare(r)
	if err != nil {
		return Result{}, err
	}
	payload, err := payloadHash(r, body, &a)
	if err != nil {
		return Result{}, err
	}
	want := Signature(secret, &a, CanonicalRequest(r, &a, payload))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(a.Signature))) {
		return Result{}, errMatch
	}
	return Result{AccessKeyID: a.AccessKeyID, Region: a.Region, Service: a.Service, SessionToken: a.SessionToken,
		Time: a.Time, Presigned: a.Presigned}, nil
}

// VerifyHeader checks what of r's signature can be checked before its body
// is read, so that a server reads bodies only of callers it can name: the
// signature's form, its time, that the key exists, and, when the request
// declares its payload hash (X-Amz-Content-Sha256 holding a lowercase hex
// SHA-256, or for S3 UNSIGNED-PAYLOAD or STREAMING-*), the signature over
// that hash: verified then reports that the signature is right, and Verify
// must still check the body against the hash. Without a declared hash
// (botocore's JSON clients send none) the signature covers the body's
// hash and only Verify can check it. A request to a service other than S3
// that declares UNSIGNED-PAYLOAD or STREAMING-* cannot be right (those
// services sign the body's hash) and is refused here. Failures are
// *Error values, the ones Verify would return.
func (v *Verifier) VerifyHeader(r *http.Request) (verified bool, err error) {
	a, secret, err := v.prepare(r)
	if err != nil {
		return false, err
	}
	declared := r.Header.Get("X-Amz-Content-Sha256")
	special := declared == UnsignedPayload || strings.HasPrefix(declared, streamingPrefix)
	var payload string
	switch {
	case special && a.Service != "s3":
		return false, errMatch
	case special, isHash(declared):
		payload = declared
	case declared == "" && a.Presigned && a.Service == "s3":
		payload = UnsignedPayload
	default:
		return false, nil
	}
	want := Signature(secret, &a, CanonicalRequest(r, &a, payload))
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(a.Signature))) {
		return false, errMatch
	}
	return true, nil
}

// prepare parses r's signature and checks everything but the signature
// itself, returning the key's secret.
func (v *Verifier) prepare(r *http.Request) (Auth, string, error) {
	a, err := Parse(r)
	if err != nil {
		return a, "", err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	now = now.UTC()
	skew := v.MaxSkew
	if skew <= 0 {
		skew = 15 * time.Minute
	}
	if a.Presigned {
		if a.Time.After(now.Add(skew)) {
			return a, "", invalid("Signature not yet current: %s is still later than %s (%s + %d min.)",
				a.Time.Format(amzDateFormat), now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), int(skew/time.Minute))
		}
		if now.After(a.Time.Add(a.Expires)) {
			return a, "", invalid("Signature expired: %s is now earlier than %s (%s - %d sec.)",
				a.Time.Add(a.Expires).Format(amzDateFormat), now.Format(amzDateFormat), now.Format(amzDateFormat), int(a.Expires/time.Second))
		}
	} else {
		if a.Time.Before(now.Add(-skew)) {
			return a, "", invalid("Signature expired: %s is now earlier than %s (%s - %d min.)",
				a.Time.Format(amzDateFormat), now.Add(-skew).Format(amzDateFormat), now.Format(amzDateFormat), int(skew/time.Minute))
		}
		if a.Time.After(now.Add(skew)) {
			return a, "", invalid("Signature not yet current: %s is still later than %s (%s + %d min.)",
				a.Time.Format(amzDateFormat), now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), int(skew/time.Minute))
		}
	}
	if !contains(a.SignedHeaders, "host") {
		return a, "", invalid("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	secret, ok := v.Secret(a.AccessKeyID)
	if !ok {
		return a, "", errUnknown
	}
	return a, secret, nil
}

// payloadHash is the payload hash of r's canonical request (see Verify).
func payloadHash(r *http.Request, body []byte, a *Auth) (string, error) {
	sum := sha256.Sum256(body)
	h := hex.EncodeToString(sum[:])
	declared := r.Header.Get("X-Amz-Content-Sha256")
	if a.Service != "s3" {
		// AWS would find the signature wrong; cairn refuses these
		// even when the header was not signed.
		if declared == UnsignedPayload || strings.HasPrefix(declared, streamingPrefix) || isHash(declared) && declared != h {
			return "", errMatch
		}
		return h, nil
	}
	switch {
	case declared == UnsignedPayload || strings.HasPrefix(declared, streamingPrefix):
		return declared, nil
	case declared == "" && a.Presigned:
		return UnsignedPayload, nil
	}
	if declared != "" && !strings.EqualFold(declared, h) {
		return "", &Error{Code: "XAmzContentSHA256Mismatch", Status: http.StatusBadRequest,
			Message: "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	return h, nil
}

// isHash reports whether s is a SHA-256 in lowercase hex, as signers
// write it.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// CanonicalRequest builds the SigV4 canonical request of r for a.
func CanonicalRequest(r *http.Request, a *Auth, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	if a.Service != "s3" {
		// Non-S3 services sign the path encoded a second time.
		path = escape(path, false)
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery, a.Presigned))
	b.WriteByte('\n')
	names := append([]string(nil), a.SignedHeaders...)
	sort.Strings(names)
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(headerValue(r, n))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(names, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	default:
		vals = r.Header.Values(name)
		if len(vals) == 0 && name == "content-length" && r.ContentLength >= 0 {
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func canonicalQuery(raw string, presigned bool) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		if presigned && k == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, kv{escape(k, true), escape(v, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// escape percent-encodes everything but RFC 3986 unreserved characters
// (and '/' unless encodeSlash).
func escape(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encodeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// Signature returns the hex signature of a canonical request.
func Signature(secret string, a *Auth, canonical string) string {
	scope := a.Date + "/" + a.Region + "/" + a.Service + "/aws4_request"
	h := sha256.Sum256([]byte(canonical))
	sts := Algorithm + "\n" + a.Time.UTC().Format(amzDateFormat) + "\n" + scope + "\n" + hex.EncodeToString(h[:])
	k := hmacSHA256([]byte("AWS4"+secret), a.Date)
	k = hmacSHA256(k, a.Region)
	k = hmacSHA256(k, a.Service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, sts))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
