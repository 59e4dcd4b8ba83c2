package gateway

import (
	"crypto/tls"
	"net/http"
	"strconv"
	"strings"
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
		if sc.presigned || r.URL.Query().Get("AWSAccessKeyId") != "" {
			out["AuthenticationMethod"] = "QueryString"
		} else {
			out["AuthenticationMethod"] = "AuthHeader"
		}
	}
	if r.TLS != nil {
		out["CipherSuite"] = cipherSuite(r.TLS.CipherSuite)
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

// openSSLCiphers are the OpenSSL names AWS writes (additionalEventData's
// CipherSuite, tlsDetails.cipherSuite) for Go's TLS 1.2 suites; TLS 1.3
// suites have one name in both.
var openSSLCiphers = map[uint16]string{
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA:          "ECDHE-ECDSA-AES128-SHA",
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA:          "ECDHE-ECDSA-AES256-SHA",
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
	tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	tls.TLS_RSA_WITH_AES_128_CBC_SHA:                  "AES128-SHA",
	tls.TLS_RSA_WITH_AES_256_CBC_SHA:                  "AES256-SHA",
}

// cipherSuite names a TLS cipher suite as AWS's records do.
func cipherSuite(id uint16) string {
	if n, ok := openSSLCiphers[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

// s3Unrecorded reports whether an S3 request header member is one AWS
// leaves out of requestParameters: the body's length and checksums.
func s3Unrecorded(header string) bool {
	h := strings.ToLower(header)
	return h == "content-length" || h == "content-md5" || h == "x-amz-sdk-checksum-algorithm" ||
		strings.HasPrefix(h, "x-amz-checksum-") || strings.HasPrefix(h, "x-amz-server-side-encryption-customer-key")
}
