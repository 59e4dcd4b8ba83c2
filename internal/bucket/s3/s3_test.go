package s3

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/cairn-audit/cairn/internal/bucket/objects"
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
		if got := errors.Is(err, objects.ErrKeyRefused); got != tc.key {
			t.Errorf("classifyPut(%v) is ErrKeyRefused: %v; want %v", tc.err, got, tc.key)
		}
		if got := errors.Is(err, objects.ErrRequestRefused); got != tc.req {
			t.Errorf("classifyPut(%v) is ErrRequestRefused: %v; want %v", tc.err, got, tc.req)
		}
		if got := objects.ErrorCode(err); got != tc.code {
			t.Errorf("ErrorCode(%v) = %q; want %q", tc.err, got, tc.code)
		}
	}
}
