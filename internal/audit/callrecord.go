package audit

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"time"
)

// Limits of the fields of a call record, in bytes (longer values are cut
// at a character boundary).
const (
	maxUserAgent    = 1024
	maxErrorCode    = 1024
	maxErrorMessage = 1024
	maxRequestID    = 256
)

// Call is an HTTP API call as the edge that served or forwarded it saw it:
// the input of CallRecord. The edge decides what it alone knows (who the
// caller is, the call's name and region, its parameters, its outcome);
// CallRecord decides how a CloudTrail record says it.
type Call struct {
	// Identity is the record's userIdentity; Account receives the record
	// (recipientAccountId).
	Identity *UserIdentity
	Account  string
	// Time is when the request arrived (eventTime, to the second).
	Time time.Time
	// Source is the eventSource (cloudtrail.amazonaws.com), Name the
	// operation (eventName; "" is recorded as UnknownOperation), Region
	// the awsRegion, APIVersion the service's API version, if recorded.
	Source, Name, Region, APIVersion string
	// SourceIP is the caller's address, as the edge believes it (a
	// trusted proxy's X-Forwarded-For...); UserAgent is the request's
	// User-Agent header, cut to 1024 bytes.
	SourceIP, UserAgent string
	// RequestParameters and ResponseElements are JSON objects or nil
	// (recorded as null). ResponseElements is recorded only for a
	// successful call; the edge decides which operations' responses
	// AWS records (writes, and some reads such as STS AssumeRole).
	RequestParameters, ResponseElements json.RawMessage
	// AdditionalEventData is a JSON object or nil (left out).
	AdditionalEventData json.RawMessage
	// RequestID is the service's request ID (cut to 256 bytes), EventID
	// the record's unique ID.
	RequestID, EventID string
	ReadOnly           bool
	// Data marks a data event (eventCategory Data, managementEvent
	// false); else a management event.
	Data bool
	// ErrorCode and ErrorMessage are the error the caller got ("" on
	// success), each cut to 1024 bytes.
	ErrorCode, ErrorMessage string
	Resources               []EventResource
	// TLS describes the client's TLS connection; nil when it had none.
	TLS *CallTLS
	// FromConsole marks a call made with a console session's credentials
	// (sessionCredentialFromConsole "true").
	FromConsole bool
}

// CallTLS is a call's TLS connection, as the edge's crypto/tls saw it.
type CallTLS struct {
	// Version is the protocol version number (0x0304 for TLS 1.3).
	Version uint16
	// CipherSuite is the suite's IANA name (tls.CipherSuiteName).
	CipherSuite string
	// Host is the Host header the client sent.
	Host string
}

// CallRecord returns the CloudTrail record (eventType AwsApiCall) of the
// API call c. It is the one place that decides the fields every call
// record shares: eventVersion, eventType, eventCategory and
// managementEvent, the limits of client-supplied fields, when
// responseElements is recorded, and how tlsDetails names the connection.
func CallRecord(c Call) *Event {
	ro := c.ReadOnly
	mgmt := !c.Data
	ev := &Event{
		EventVersion:        EventVersion,
		UserIdentity:        c.Identity,
		EventTime:           FormatTime(c.Time),
		EventSource:         c.Source,
		EventName:           c.Name,
		AWSRegion:           c.Region,
		SourceIPAddress:     c.SourceIP,
		UserAgent:           Truncate(c.UserAgent, maxUserAgent),
		ErrorCode:           Truncate(c.ErrorCode, maxErrorCode),
		ErrorMessage:        Truncate(c.ErrorMessage, maxErrorMessage),
		RequestParameters:   c.RequestParameters,
		AdditionalEventData: c.AdditionalEventData,
		RequestID:           Truncate(c.RequestID, maxRequestID),
		EventID:             c.EventID,
		ReadOnly:            &ro,
		Resources:           c.Resources,
		EventType:           "AwsApiCall",
		APIVersion:          c.APIVersion,
		ManagementEvent:     &mgmt,
		RecipientAccountID:  c.Account,
		EventCategory:       "Management",
	}
	if c.Data {
		ev.EventCategory = "Data"
	}
	if ev.EventName == "" {
		ev.EventName = "UnknownOperation"
	}
	if c.ErrorCode == "" {
		ev.ResponseElements = c.ResponseElements
	}
	if c.FromConsole {
		ev.SessionCredentialFromConsole = "true"
	}
	if c.TLS != nil {
		ev.TLSDetails = &TLSDetails{TLSVersion: TLSVersionName(c.TLS.Version), CipherSuite: c.TLS.CipherSuite,
			ClientProvidedHostHeader: c.TLS.Host}
	}
	return ev
}

// TLSVersionName names a TLS protocol version as CloudTrail's tlsDetails
// does (TLSv1.3, TLSv1.2, TLSv1.1, TLSv1); other numbers are written as
// crypto/tls.VersionName writes them (0x0300 is SSLv3, the rest 0x%04X).
func TLSVersionName(v uint16) string {
	switch v {
	case 0x0304:
		return "TLSv1.3"
	case 0x0303:
		return "TLSv1.2"
	case 0x0302:
		return "TLSv1.1"
	case 0x0301:
		return "TLSv1"
	case 0x0300:
		return "SSLv3"
	}
	return fmt.Sprintf("0x%04X", v)
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

// CipherSuiteName names a TLS cipher suite as CloudTrail's records do
// (tlsDetails.cipherSuite, S3's additionalEventData.CipherSuite): OpenSSL
// names for TLS 1.2 (ECDHE-RSA-AES128-GCM-SHA256: 2,235 real records),
// the IANA names of TLS 1.3 (TLS_AES_128_GCM_SHA256), crypto/tls's for
// the rest.
func CipherSuiteName(id uint16) string {
	if n, ok := openSSLCiphers[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

// Identity returns the userIdentity of a call signed with p's access key:
// an IAM user.
func (p Principal) Identity() *UserIdentity {
	return &UserIdentity{Type: "IAMUser", PrincipalID: p.PrincipalID, ARN: p.ARN, AccountID: p.AccountID,
		AccessKeyID: p.AccessKeyID, UserName: p.UserName}
}
