package gateway

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// s3EventData adds what AWS writes in every S3 record's
// additionalEventData (testdata/real: 992 of the 996 S3 records):
// SignatureVersion (SigV4, SigV2) and AuthenticationMethod (AuthHeader,
// QueryString) of a signed call, CipherSuite over TLS, bytesTransferredIn
// (the request body; an aws-chunked upload's decoded length) and
// bytesTransferredOut (the response body), and the upstream's x-amz-id-2.
func s3EventData(out map[string]any, r *http.Request, sc scope, st *state) {
	switch {
	case sc.sigv4:
		out["SignatureVersion"] = "SigV4"
	case sc.accessKey != "":
		out["SignatureVersion"] = "SigV2"
	}
	if sc.accessKey != "" || sc.sigv4 {
		if sc.presigned || st.query.Get("AWSAccessKeyId") != "" {
			out["AuthenticationMethod"] = "QueryString"
		} else {
			out["AuthenticationMethod"] = "AuthHeader"
		}
	}
	if r.TLS != nil {
		out["CipherSuite"] = audit.CipherSuiteName(r.TLS.CipherSuite)
	}
	in := st.bytesIn
	if d, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64); err == nil && d >= 0 {
		in = d
	}
	out["bytesTransferredIn"] = in
	out["bytesTransferredOut"] = st.bytesOut
	if v := st.respHeader.Get("X-Amz-Id-2"); v != "" {
		out["x-amz-id-2"] = v
	}
}

// s3Unrecorded reports whether an S3 request header member is one AWS
// leaves out of requestParameters: the body's length and checksums.
func s3Unrecorded(header string) bool {
	h := strings.ToLower(header)
	return h == "content-length" || h == "content-md5" || h == "x-amz-sdk-checksum-algorithm" ||
		strings.HasPrefix(h, "x-amz-checksum-") || strings.HasPrefix(h, "x-amz-server-side-encryption-customer-key")
}
