package bucket

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// s3Err is an S3 answer as the SDK returns it: an API error inside a
// response error that knows the HTTP status.
func s3Err(status int, code string) error {
	return &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      &smithy.GenericAPIError{Code: code, Message: "m"},
	}
}

func TestPutErrorsAreClassified(t *testing.T) {
	for _, tc := range []struct {
		err      error
		key, req bool
		code     string
	}{
		{s3Err(400, "KeyTooLongError"), true, false, "KeyTooLongError"},
		{s3Err(414, "UriTooLong"), true, false, "UriTooLong"},
		{s3Err(400, "InvalidArgument"), false, true, "InvalidArgument"},
		{s3Err(403, "AccessDenied"), false, false, "AccessDenied"},
		{s3Err(404, "NoSuchBucket"), false, false, "NoSuchBucket"},
		{s3Err(503, "SlowDown"), false, false, "SlowDown"},
		{s3Err(400, "RequestTimeout"), false, false, "RequestTimeout"},
		{s3Err(429, "TooManyRequests"), false, false, "TooManyRequests"},
		{s3Err(500, "InternalError"), false, false, "InternalError"},
		{s3Err(400, "<script>alert(1)</script>"), false, true, "InternalError"},
		{fmt.Errorf("put: %w", errors.New("dial tcp: connection refused")), false, false, "InternalError"},
		{fmt.Errorf("open: %w", fs.ErrPermission), false, false, "AccessDenied"},
	} {
		err := classifyPut(tc.err)
		if got := errors.Is(err, ErrKeyRefused); got != tc.key {
			t.Errorf("classifyPut(%v) is ErrKeyRefused: %v; want %v", tc.err, got, tc.key)
		}
		if got := errors.Is(err, ErrRequestRefused); got != tc.req {
			t.Errorf("classifyPut(%v) is ErrRequestRefused: %v; want %v", tc.err, got, tc.req)
		}
		if got := ErrorCode(err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q; want %q", tc.err, got, tc.code)
		}
	}
}

func TestLocalRefusesKeysItCannotHold(t *testing.T) {
	l, err := NewLocal("b", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"a/../b", "../x", "a//b", "/abs", "a\\b", strings.Repeat("k", 1025), "x" + metaSuffix} {
		err := l.Put(context.Background(), key, []byte("x"), "", nil)
		if !errors.Is(err, ErrKeyRefused) || ErrorCode(err) == "InternalError" {
			t.Errorf("Put(%.20q) = %v (code %s); want ErrKeyRefused with a code", key, err, ErrorCode(err))
		}
	}
	if err := l.Put(context.Background(), "AWSLogs/1/CloudTrail/us-gov-west-1/k.json.gz", []byte("x"), "", nil); err != nil {
		t.Errorf("Put(valid key) = %v", err)
	}
}
