package apiserver

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/lake"
)

// AuditEvents is what PutAuditEvents needs. Errors are *audit.Error values
// with their AWS codes (dataStatus gives their HTTP status).
type AuditEvents interface {
	PutAuditEvents(ctx context.Context, p audit.Principal, channelARN string, events []lake.AuditEvent) (lake.PutResult, error)
}

var (
	auditIDRE    = regexp.MustCompile(`^[-_A-Za-z0-9]{1,128}$`)
	externalIDRE = regexp.MustCompile(`^[\w+=,.@:\/-]+$`)
)

func dataErr(code string, status int, msg string) error {
	return &awsjson.Error{Code: code, Message: msg, Status: status}
}

// dataStatus is the HTTP status of the cloudtrail-data errors (REST-JSON,
// whose statuses differ from the CloudTrail API's).
var dataStatus = map[audit.Code]int{
	audit.CodeInvalidChannelARN:             http.StatusBadRequest,
	audit.CodeChannelNotFound:               http.StatusNotFound,
	audit.CodeChannelInsufficientPermission: http.StatusForbidden,
}

// putAuditEventsIn is PutAuditEvents' body.
type putAuditEventsIn struct {
	AuditEvents []auditEventIn `json:"auditEvents"`
}

type auditEventIn struct {
	ID                *string `json:"id"`
	EventData         *string `json:"eventData"`
	EventDataChecksum *string `json:"eventDataChecksum"`
}

type putResultOut struct {
	Successful []successEntry `json:"successful"`
	Failed     []failedEntry  `json:"failed"`
}

type successEntry struct {
	ID      string `json:"id"`
	EventID string `json:"eventID"`
}

type failedEntry struct {
	ID           string `json:"id"`
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
}

// putAuditEvents checks the call's shape and hands the events to l, which
// stores the valid ones durably before the answer and reports each.
func putAuditEvents(l AuditEvents) Handler {
	return func(ctx context.Context, req *Request) (any, error) {
		ref := req.Query.Get("channelArn")
		if ref == "" {
			return nil, dataErr("ValidationException", http.StatusBadRequest, "channelArn is required.")
		}
		if !strings.HasPrefix(ref, "arn:") || len(ref) > 256 {
			return nil, dataErr("InvalidChannelARN", http.StatusBadRequest, "The specified channel ARN is not valid.")
		}
		if x, ok := req.Query["externalId"]; ok && (len(x) != 1 || !externalIDRE.MatchString(x[0]) || len(x[0]) < 2 || len(x[0]) > 1224) {
			return nil, dataErr("ValidationException", http.StatusBadRequest, "externalId must be 2 to 1224 characters of letters, digits and +=,.@:/-_.")
		}
		var in putAuditEventsIn
		if evs, ok := putAuditEventsBody(req.Body); ok {
			in.AuditEvents = evs
		} else if err := awsjson.Decode(req.Body, &in); err != nil {
			return nil, err
		}
		if len(in.AuditEvents) < 1 || len(in.AuditEvents) > 100 {
			return nil, dataErr("ValidationException", http.StatusBadRequest, "auditEvents must have 1 to 100 items.")
		}
		seen := map[string]bool{}
		events := make([]lake.AuditEvent, 0, len(in.AuditEvents))
		for _, e := range in.AuditEvents {
			if e.ID == nil || !auditIDRE.MatchString(*e.ID) {
				return nil, dataErr("ValidationException", http.StatusBadRequest, "Each audit event needs an id of 1 to 128 letters, digits, '-' and '_'.")
			}
			if e.EventData == nil {
				return nil, dataErr("ValidationException", http.StatusBadRequest, "Each audit event needs eventData.")
			}
			if seen[*e.ID] {
				return nil, dataErr("DuplicatedAuditEventId", http.StatusBadRequest, "The audit event id "+*e.ID+" appears more than once.")
			}
			seen[*e.ID] = true
			events = append(events, lake.AuditEvent{ID: *e.ID, Data: *e.EventData, Checksum: e.EventDataChecksum})
		}
		res, err := l.PutAuditEvents(ctx, req.Caller.Principal, ref, events)
		var ae *audit.Error
		if errors.As(err, &ae) {
			if status, ok := dataStatus[ae.Code]; ok {
				return nil, dataErr(string(ae.Code), status, ae.Message)
			}
		}
		if err != nil {
			return nil, err
		}
		out := putResultOut{Successful: make([]successEntry, 0, len(res.Successful)), Failed: make([]failedEntry, 0, len(res.Failed))}
		for _, s := range res.Successful {
			out.Successful = append(out.Successful, successEntry{s.ID, s.EventID})
		}
		for _, f := range res.Failed {
			out.Failed = append(out.Failed, failedEntry{f.ID, f.Code, f.Message})
		}
		return out, nil
	}
}
