package apiserver

import (
	"maps"
	"strconv"

	"github.com/cairn-audit/cairn/internal/audit"
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

// page slices n items by a NextToken (an offset) and a MaxResults.
func page(n int, token *string, max *int, def int) (start, end int, next *string, err error) {
	if token != nil {
		v, e := strconv.Atoi(*token)
		if e != nil || v < 0 || v > n || strconv.Itoa(v) != *token {
			return 0, 0, nil, audit.Errorf(audit.CodeInvalidNextToken, "The NextToken is not valid.")
		}
		start = v
	}
	lim := def
	if max != nil {
		lim = *max
	}
	end = min(n, start+lim)
	if end < n {
		s := strconv.Itoa(end)
		next = &s
	}
	return start, end, next, nil
}
