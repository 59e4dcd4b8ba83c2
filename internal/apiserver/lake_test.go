package apiserver

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/cloudtrailmodel"
	"github.com/cairn-audit/cairn/internal/lake"
)

// fakeLake answers the few Lake methods these tests call; the others
// (the nil embedded Lake) are not called.
type fakeLake struct {
	Lake
	got audit.Principal
}

func (f *fakeLake) CreateEventDataStore(ctx context.Context, p audit.Principal, in lake.CreateStoreRequest) (lake.EventDataStore, error) {
	f.got = p
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return lake.EventDataStore{ID: "eds-1", Account: p.AccountID, Region: p.Region, Name: *in.Name, Status: lake.StatusCreated,
		BillingMode: "EXTENDABLE_RETENTION_PRICING", RetentionPeriod: 366, Created: now, Updated: now}, nil
}

func (f *fakeLake) EventDataStore(ctx context.Context, p audit.Principal, ref string) (lake.EventDataStore, error) {
	return lake.EventDataStore{}, audit.Errorf(audit.CodeEventDataStoreNotFound, "The specified event data store was not found.")
}

func (f *fakeLake) StartQuery(ctx context.Context, p audit.Principal, statement string) (string, error) {
	return "q-1", nil
}

func (f *fakeLake) PutAuditEvents(ctx context.Context, p audit.Principal, channelARN string, events []lake.AuditEvent) (lake.PutResult, error) {
	switch {
	case strings.HasSuffix(channelARN, "/gone"):
		return lake.PutResult{}, audit.Errorf(audit.CodeChannelNotFound, "The specified channel was not found.")
	case strings.HasSuffix(channelARN, "/theirs"):
		return lake.PutResult{}, audit.Errorf(audit.CodeChannelInsufficientPermission, "no")
	}
	return lake.PutResult{Successful: []lake.PutSuccess{{ID: events[0].ID, EventID: "e-1"}}}, nil
}

// TestLakeEdge: the Lake operations are served by the edge over the
// interfaces it declares: it passes the caller's Principal, derives a write
// call's responseElements from its output, answers Lake's *audit.Error
// codes, and gives cloudtrail-data errors their REST-JSON statuses.
func TestLakeEdge(t *testing.T) {
	for op := range LakeHandlers(&fakeLake{}) {
		if _, ok := cloudtrailmodel.Operation(op); !ok {
			t.Errorf("LakeHandlers serves %s, not an operation of the CloudTrail model", op)
		}
	}
	f := &fakeLake{}
	st := audittest.NewMemStore()
	s := New(Config{Auth: fakeAuth{}, History: st, Recorder: syncRecorder{st},
		TokenKey: []byte("0123456789abcdef0123456789abcdef"), Handlers: LakeHandlers(f), DataHandlers: LakeDataHandlers(f)})

	code, resp := do(t, s, "111111111111", "CreateEventDataStore", `{"Name":"alpha"}`)
	if code != 200 || resp["EventDataStoreArn"] != "arn:aws:cloudtrail:us-east-1:111111111111:eventdatastore/eds-1" || resp["Status"] != "CREATED" {
		t.Errorf("CreateEventDataStore = %d %v", code, resp)
	}
	if f.got.AccountID != "111111111111" || f.got.Region != "us-east-1" {
		t.Errorf("Lake got the principal %+v", f.got)
	}
	if code, resp := do(t, s, "111111111111", "GetEventDataStore", `{"EventDataStore":"x"}`); code != 400 || resp["__type"] != "EventDataStoreNotFoundException" {
		t.Errorf("GetEventDataStore of an unknown store = %d %v", code, resp)
	}
	if code, resp := do(t, s, "111111111111", "StartQuery", `{"QueryStatement":"SELECT 1"}`); code != 200 || resp["QueryId"] != "q-1" {
		t.Errorf("StartQuery = %d %v", code, resp)
	}
	page, err := st.Lookup(context.Background(), audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10})
	if err != nil || len(page.Records) != 3 {
		t.Fatalf("records = %d, %v", len(page.Records), err)
	}
	for _, r := range page.Records {
		var m map[string]any
		json.Unmarshal(r.Raw, &m)
		re, _ := m["responseElements"].(map[string]any)
		switch r.EventName {
		case "CreateEventDataStore":
			if re["eventDataStoreArn"] != "arn:aws:cloudtrail:us-east-1:111111111111:eventdatastore/eds-1" || re["status"] != "CREATED" {
				t.Errorf("CreateEventDataStore record: %s", r.Raw)
			}
		case "StartQuery":
			if re["queryId"] != "q-1" {
				t.Errorf("StartQuery record: %s", r.Raw)
			}
		case "GetEventDataStore":
			if m["responseElements"] != nil {
				t.Errorf("GetEventDataStore record: %s", r.Raw)
			}
		}
	}

	for _, c := range []struct {
		channel string
		status  int
		code    string
	}{
		{"arn:aws:cloudtrail:us-east-1:111111111111:channel/c", 200, ""},
		{"arn:aws:cloudtrail:us-east-1:111111111111:channel/gone", 404, "ChannelNotFound"},
		{"arn:aws:cloudtrail:us-east-1:222222222222:channel/theirs", 403, "ChannelInsufficientPermission"},
		{"not-an-arn", 400, "InvalidChannelARN"},
	} {
		r := httptest.NewRequest("POST", "/PutAuditEvents?channelArn="+c.channel, strings.NewReader(`{"auditEvents":[{"id":"a","eventData":"{}"}]}`))
		r.Header.Set("X-Test-Account", "111111111111")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		var out map[string]any
		json.Unmarshal(w.Body.Bytes(), &out)
		if got, _ := out["__type"].(string); w.Code != c.status || got != c.code {
			t.Errorf("PutAuditEvents to %s = %d %s; want %d %s", c.channel, w.Code, w.Body.String(), c.status, c.code)
		}
	}
}
