package apiserver

import (
	"context"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/trail"
)

// PublicKeys is what ListPublicKeys needs of the digest keys
// (trail.Keyring).
type PublicKeys interface {
	// Public returns region's keys whose validity window overlaps
	// [start, end], oldest first.
	Public(region string, start, end time.Time) []trail.SigningKey
	// Current returns the key that signs region's digests at now,
	// creating it when the region has none yet.
	Current(region string, now time.Time) (*trail.SigningKey, error)
}

// PublicKeyHandlers returns the handler of ListPublicKeys, for
// Config.Handlers.
func PublicKeyHandlers(k PublicKeys) map[string]Handler {
	return map[string]Handler{"ListPublicKeys": publicKeyHandlers{k}.listPublicKeys}
}

type publicKeyHandlers struct{ keys PublicKeys }

type listPublicKeysInput struct {
	StartTime *awsjson.Timestamp
	EndTime   *awsjson.Timestamp
	NextToken *string
}

type publicKeyOut struct {
	Value             []byte
	ValidityStartTime awsjson.Timestamp
	ValidityEndTime   awsjson.Timestamp
	Fingerprint       string
}

type listPublicKeysOutput struct {
	PublicKeyList []publicKeyOut
}

// listPublicKeys returns the keys of the caller's region (its SigV4
// scope) whose validity overlaps [StartTime, EndTime]; each defaults to
// the time of the call, and EndTime may lie in the future (the AWS CLI
// asks for end+2h). All keys fit one page: cairn never returns NextToken.
func (h publicKeyHandlers) listPublicKeys(_ context.Context, req *Request) (any, error) {
	var in listPublicKeysInput
	if err := awsjson.Decode(req.Body, &in); err != nil {
		return nil, err
	}
	if in.NextToken != nil && *in.NextToken != "" {
		return nil, audit.Errorf(audit.CodeInvalidToken, "Reached end of keys.")
	}
	now := req.Time
	if now.IsZero() {
		now = time.Now()
	}
	start, end := now, now
	if in.StartTime != nil {
		start = in.StartTime.Time()
	}
	if in.EndTime != nil {
		end = in.EndTime.Time()
	}
	if start.After(end) {
		return nil, audit.Errorf(audit.CodeInvalidTimeRange, "Start time must be earlier than or equal to end time.")
	}
	// AWS lists the region's current key whether or not a digest was
	// signed with it yet: a validator can fetch it before the first
	// digest arrives (issue 14 item 15).
	if !end.Before(now) {
		if _, err := h.keys.Current(req.Caller.Region, now); err != nil {
			return nil, err
		}
	}
	out := listPublicKeysOutput{PublicKeyList: []publicKeyOut{}}
	for _, k := range h.keys.Public(req.Caller.Region, start, end) {
		out.PublicKeyList = append(out.PublicKeyList, publicKeyOut{Value: k.DER, Fingerprint: k.Fingerprint,
			ValidityStartTime: awsjson.NewTimestamp(k.Start), ValidityEndTime: awsjson.NewTimestamp(k.End)})
	}
	return out, nil
}
