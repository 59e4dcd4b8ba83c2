package apiserver

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// warmMax bounds how many lookups WarmLookups runs.
const warmMax = 16

// WarmLookups runs qs (the store's last lookups before its restart,
// newest first: duckdb.Store.SavedLookups) through LookupEvents as a
// call would, from its JSON input to its page encoded, before the server
// answers, until budget has passed: a restarted server's first calls
// otherwise pay for the handler's and the encoder's first run (issue 19).
// Each runs for the account and region it was asked in, its output is
// discarded and nothing is recorded: no one made these calls. A lookup
// that fails is skipped (the store checks each query as it checks a
// caller's). It returns how many ran.
func (s *Server) WarmLookups(ctx context.Context, qs []audit.Query, budget time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	n := 0
	// Oldest first: each lookup goes first in the store's list of recent
	// lookups (the one its Close saves), which so keeps its order.
	for i := min(len(qs), warmMax) - 1; i >= 0 && ctx.Err() == nil; i-- {
		c, ok := warmCall(&qs[i])
		if !ok {
			continue
		}
		c.requestID = "warm"
		c.start = s.cfg.Now()
		out, err := s.lookupEvents(ctx, c)
		if err != nil {
			continue
		}
		awsjson.WriteJSON(discardWriter{}, c.requestID, http.StatusOK, out)
		n++
	}
	return n
}

// warmCall is the LookupEvents call that asks for q's first page: its
// caller (q's account and region; a responder for an every-account
// lookup) and its JSON input.
func warmCall(q *audit.Query) (*call, bool) {
	if q.After != nil || (!q.AnyAccount && q.Account == "") {
		return nil, false // a later page: its NextToken is not ours to make
	}
	in := map[string]any{}
	var attrs []map[string]string
	attr := func(k, v string) {
		attrs = append(attrs, map[string]string{"AttributeKey": k, "AttributeValue": v})
	}
	for _, a := range q.Attributes {
		attr(string(a.Key), a.Value)
	}
	region := q.Region
	if q.AnyRegion {
		attr(string(audit.AttrAWSRegion), "*")
		if region == "" {
			region = "us-east-1" // any: the attribute widens it
		}
	}
	if attrs != nil {
		in["LookupAttributes"] = attrs
	}
	if q.Category == audit.CategoryInsight {
		in["EventCategory"] = "insight"
	}
	if q.Limit > 0 {
		in["MaxResults"] = q.Limit
	}
	if !q.Start.IsZero() {
		in["StartTime"] = q.Start.Unix()
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, false
	}
	p := audit.Principal{AccountID: q.Account, Region: region, Responder: q.AnyAccount}
	return &call{caller: Caller{Principal: p, Service: "cloudtrail"}, body: body, op: "LookupEvents", readOnly: true}, true
}

// discardWriter is an http.ResponseWriter that keeps nothing.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (discardWriter) WriteHeader(int)             {}
