package gateway

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/gateway/routes"
)

// refusal is an answer the gateway gives itself, without forwarding.
type refusal struct {
	status        int
	code, message string
	reason        string // metric label
}

// scopeRefusal is the answer to a call whose SigV4 credential scope is
// malformed or names no region (scope.valid), as AWS answers it: the
// region a record lands in comes from the scope, so a call that could
// plant records (and log keys) in a "region" such as '..' is refused at
// the door, neither forwarded nor recorded.
func scopeRefusal(sc scope, svc *routes.Service) refusal {
	if sc.service == "" {
		return refusal{status: http.StatusBadRequest, code: "IncompleteSignatureException", reason: "malformed_credential",
			message: "Credential should be scoped to a valid region, service and date, and end in aws4_request."}
	}
	reg := audit.Truncate(sc.region, 64)
	if svc != nil && svc.Protocol == "rest-xml" { // S3
		if sc.presigned {
			return refusal{status: http.StatusBadRequest, code: "AuthorizationQueryParametersError", reason: "invalid_region",
				message: "Error parsing the X-Amz-Credential parameter; the region '" + reg + "' is wrong."}
		}
		return refusal{status: http.StatusBadRequest, code: "AuthorizationHeaderMalformed", reason: "invalid_region",
			message: "The authorization header is malformed; the region '" + reg + "' is wrong."}
	}
	return refusal{status: http.StatusForbidden, code: "InvalidSignatureException", reason: "invalid_region",
		message: "Credential should be scoped to a valid region, not '" + reg + "'. "}
}

// refuse writes f in the wire format of svc's protocol: JSON with
// __type for JSON and REST-JSON services, <ErrorResponse> for query
// services (InvalidSignatureException is SignatureDoesNotMatch there),
// <Response><Errors> for EC2, <Error> for S3. A request of no known
// service gets JSON when it names an X-Amz-Target, else query XML.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, svc *routes.Service, f refusal) {
	g.refused.WithLabelValues(f.reason).Inc()
	id := audit.NewID()
	proto := "query"
	switch {
	case svc != nil:
		proto = svc.Protocol
	case r.Header.Get("X-Amz-Target") != "":
		proto = "json"
	}
	h := w.Header()
	h.Set("X-Amzn-RequestId", id)
	var body []byte
	switch proto {
	case "json", "rest-json":
		h.Set("Content-Type", "application/x-amz-json-1.1")
		h.Set("X-Amzn-ErrorType", f.code)
		body, _ = json.Marshal(map[string]string{"__type": f.code, "message": f.message})
	default:
		code := f.code
		if code == "InvalidSignatureException" {
			code = "SignatureDoesNotMatch"
		} else if code == "IncompleteSignatureException" {
			code = "IncompleteSignature"
		}
		var b strings.Builder
		b.WriteString(xml.Header)
		switch proto {
		case "rest-xml":
			h.Set("X-Amz-Request-Id", id)
			b.WriteString("<Error><Code>" + code + "</Code><Message>" + xmlText(f.message) + "</Message><RequestId>" + id + "</RequestId></Error>")
		case "ec2":
			b.WriteString("<Response><Errors><Error><Code>" + code + "</Code><Message>" + xmlText(f.message) +
				"</Message></Error></Errors><RequestID>" + id + "</RequestID></Response>")
		default:
			b.WriteString("<ErrorResponse><Error><Type>Sender</Type><Code>" + code + "</Code><Message>" + xmlText(f.message) +
				"</Message></Error><RequestId>" + id + "</RequestId></ErrorResponse>")
		}
		h.Set("Content-Type", "text/xml")
		body = []byte(b.String())
	}
	w.WriteHeader(f.status)
	_, _ = w.Write(body)
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
