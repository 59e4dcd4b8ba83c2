package apiserver

import (
	"maps"
	"slices"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
)

// Lake is what the CloudTrail Lake operations need (internal/lake's Lake).
type Lake interface {
	EventDataStores
	Queries
	Imports
	Channels
	AuditEvents
}

// LakeHandlers returns the CloudTrail Lake operations of the CloudTrail
// API (event data stores, queries, imports, channels), for
// Config.Handlers.
func LakeHandlers(l Lake) map[string]Handler {
	h := storeHandlers(l)
	maps.Copy(h, queryHandlers(l))
	maps.Copy(h, importHandlers(l))
	maps.Copy(h, channelHandlers(l))
	return h
}

// LakeDataHandlers returns the cloudtrail-data operations
// (PutAuditEvents), for Config.DataHandlers.
func LakeDataHandlers(l AuditEvents) map[string]Handler {
	return map[string]Handler{"PutAuditEvents": putAuditEvents(l)}
}

// written records out as the call's responseElements and returns it: the
// output of a write operation.
func written[T any](req *Request, out T) (any, error) {
	req.ResponseElements = ResponseElements(out)
	return out, nil
}

// maxResults checks a list operation's MaxResults (named name): 1 to 1000.
func maxResults(name string, v *int) error {
	if v != nil && (*v < 1 || *v > 1000) {
		return audit.Errorf(audit.CodeInvalidMaxResults, "%s must be between 1 and 1000.", name)
	}
	return nil
}

// page slices n items of the listing of req's operation, caller and
// filters by a NextToken and a MaxResults (def when nil). Its tokens are
// opaque and tamper-checked (tokenCodec.encodeOffset): a token of another
// listing, caller or operation, or one altered, is refused with the
// operation's modeled token error (tokenError).
func (req *Request) page(n int, token *string, max *int, def int, filters ...string) (start, end int, next *string, err error) {
	fp := scope(req.Operation, req.Caller.Principal, filters...)
	if token != nil {
		v, e := req.tokens.decodeOffset(fp, *token)
		if e != nil || v > n {
			return 0, 0, nil, tokenError(req.Operation)
		}
		start = v
	}
	lim := def
	if max != nil {
		lim = *max
	}
	end = min(n, start+lim)
	if end < n {
		next = req.offsetToken(end, filters...)
	}
	return start, end, next, nil
}

// offsetToken is the NextToken resuming req's listing (of filters) at
// item off.
func (req *Request) offsetToken(off int, filters ...string) *string {
	s := req.tokens.encodeOffset(scope(req.Operation, req.Caller.Principal, filters...), off)
	return &s
}

// timeFilter is t's text for a token's filters ("" when nil).
func timeFilter(t *awsjson.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.Time().UTC().Format(time.RFC3339Nano)
}

// tokenError is the error answering a NextToken operation op did not
// issue: the token error its model documents (InvalidNextTokenException,
// or InvalidTokenException for ListTags and ListPublicKeys). ListTrails
// documents none; it answers OperationNotPermittedException, one of its
// two modeled errors, so that SDKs map it to an exception class.
func tokenError(op string) error {
	mop, _ := cloudtrailmodel.Operation(op)
	for _, c := range []audit.Code{audit.CodeInvalidNextToken, audit.CodeInvalidToken} {
		if slices.Contains(mop.Errors, string(c)+"Exception") {
			return audit.Errorf(c, "The NextToken is not valid: it is malformed, or was issued for other parameters.")
		}
	}
	return audit.Errorf(audit.CodeOperationNotPermitted, "The NextToken is not valid: it is malformed, or was issued for other parameters.")
}
