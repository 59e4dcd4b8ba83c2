package lake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

// put sends a PutAuditEvents call signed with aws-sdk-go-v2's SigV4 signer.
func (e *env) put(t *testing.T, key, service, channel string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	if s, ok := body.(string); ok {
		b = []byte(s)
	}
	r, _ := http.NewRequest("POST", e.url+"/PutAuditEvents?channelArn="+url.QueryEscape(channel), bytes.NewReader(b))
	r.Header.Set("Content-Type", "application/json")
	return e.send(t, key, service, r, b)
}

func eventData(name, recipient string) string {
	return fmt.Sprintf(`{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice","details":{"team":"blue"}},"userAgent":"app/1","eventSource":"myapp.example.com","eventName":%q,"eventTime":"2026-01-02T03:04:05Z","UID":"u-%s","requestParameters":{"doc":"a","n":2},"sourceIPAddress":"10.0.0.1","recipientAccountId":%q}`, name, name, recipient)
}

func TestChannelsAndPutAuditEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const keyA, keyB = "AKIAAAAAAAAAAAAAAAAA", "AKIABBBBBBBBBBBBBBBB"
	a := e.client(keyA)
	field, cat := "eventCategory", "ActivityAuditLog"
	st, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("custom"),
		AdvancedEventSelectors: []types.AdvancedEventSelector{{FieldSelectors: []types.AdvancedFieldSelector{{Field: &field, Equals: []string{cat}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	mg, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("mgmt")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("chan"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: mg.EventDataStoreArn}}}); code(err) != "InvalidEventDataStoreCategoryException" {
		t.Errorf("channel to a management store: %v", err)
	}
	ch, err := a.CreateChannel(ctx, &cloudtrail.CreateChannelInput{Name: aws.String("chan"), Source: aws.String("Custom"),
		Destinations: []types.Destination{{Type: types.DestinationTypeEventDataStore, Location: st.EventDataStoreArn}}})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(ch.ChannelArn)

	good := eventData("Open", "111111111111")
	sum := sha256.Sum256([]byte(good))
	status, out := e.put(t, keyA, "cloudtrail-data", arn, map[string]any{"auditEvents": []map[string]any{
		{"id": "e1", "eventData": good, "eventDataChecksum": base64.StdEncoding.EncodeToString(sum[:])},
		{"id": "e2", "eventData": eventData("Close", "111111111111")},
		{"id": "bad-sum", "eventData": good, "eventDataChecksum": "AAAA"},
		{"id": "bad-recipient", "eventData": eventData("X", "222222222222")},
		{"id": "not-json", "eventData": "{not json"},
		{"id": "no-uid", "eventData": strings.Replace(good, `"UID"`, `"uid2"`, 1)},
		{"id": "long", "eventData": strings.Replace(good, `"errorCode"`, `"x"`, 1)[:len(good)-1] + `,"errorCode":"` + strings.Repeat("x", 300) + `"}`},
	}})
	if status != 200 {
		t.Fatalf("PutAuditEvents: %d %v", status, out)
	}
	failed := map[string]string{}
	for _, f := range out["failed"].([]any) {
		m := f.(map[string]any)
		failed[m["id"].(string)] = m["errorCode"].(string)
	}
	want := map[string]string{"bad-sum": "InvalidChecksum", "bad-recipient": "InvalidRecipient", "not-json": "InvalidData", "no-uid": "FieldNotFound", "long": "FieldTooLong"}
	for id, c := range want {
		if failed[id] != c {
			t.Errorf("%s: %q, want %s (%v)", id, failed[id], c, out)
		}
	}
	if n := len(out["successful"].([]any)); n != 2 {
		t.Errorf("successful: %d (%v)", n, out)
	}

	// Request errors.
	for name, c := range map[string]struct {
		key, service, channel string
		body                  any
		status                int
		code                  string
	}{
		"duplicate id":  {keyA, "cloudtrail-data", arn, map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": good}, {"id": "x", "eventData": good}}}, 400, "DuplicatedAuditEventId"},
		"other account": {keyB, "cloudtrail-data", arn, map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": good}}}, 403, "ChannelInsufficientPermission"},
		"no channel":    {keyA, "cloudtrail-data", strings.Replace(arn, "channel/", "channel/0", 1), map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": good}}}, 404, "ChannelNotFound"},
		"bad arn":       {keyA, "cloudtrail-data", "nope", map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": good}}}, 400, "InvalidChannelARN"},
		"empty":         {keyA, "cloudtrail-data", arn, map[string]any{"auditEvents": []map[string]any{}}, 400, "ValidationException"},
		"bad id":        {keyA, "cloudtrail-data", arn, map[string]any{"auditEvents": []map[string]any{{"id": "a b", "eventData": good}}}, 400, "ValidationException"},
		"malformed":     {keyA, "cloudtrail-data", arn, `{"auditEvents": [`, 400, "SerializationException"},
		"wrong service": {keyA, "cloudtrail", arn, map[string]any{"auditEvents": []map[string]any{{"id": "x", "eventData": good}}}, 403, "InvalidSignatureException"},
	} {
		status, out := e.put(t, c.key, c.service, c.channel, c.body)
		if status != c.status || out["__type"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", name, status, out, c.status, c.code)
		}
	}

	// Custom events are queryable at once.
	id := aws.ToString(st.EventDataStoreArn)
	id = id[strings.LastIndex(id, "/")+1:]
	rows := runQuery(t, a, `SELECT eventData.eventName AS name, eventData.userIdentity.principalId AS who, element_at(eventData.requestParameters, 'doc') AS doc, metadata.channelArn AS ch, eventCategory FROM `+id+` ORDER BY name`)
	if len(rows) != 2 || rows[0]["name"] != "Close" || rows[1]["who"] != "alice" || rows[1]["doc"] != "a" || rows[0]["ch"] != arn || rows[0]["eventCategory"] != "ActivityAuditLog" {
		t.Errorf("custom events: %v", rows)
	}
	g, err := a.GetChannel(ctx, &cloudtrail.GetChannelInput{Channel: &arn})
	if err != nil || g.IngestionStatus == nil || g.IngestionStatus.LatestIngestionSuccessTime == nil {
		t.Errorf("GetChannel: %v %+v", err, g)
	}
	if _, err := a.DeleteEventDataStore(ctx, &cloudtrail.DeleteEventDataStoreInput{EventDataStore: st.EventDataStoreArn}); code2(err) != "EventDataStoreTerminationProtectedException" {
		t.Errorf("delete protected: %v", err)
	}
	a.UpdateEventDataStore(ctx, &cloudtrail.UpdateEventDataStoreInput{EventDataStore: st.EventDataStoreArn, TerminationProtectionEnabled: aws.Bool(false)})
	if _, err := a.DeleteEventDataStore(ctx, &cloudtrail.DeleteEventDataStoreInput{EventDataStore: st.EventDataStoreArn}); code2(err) != "ChannelExistsForEDSException" {
		t.Errorf("delete a channel's store: %v", err)
	}
	if _, err := a.DeleteChannel(ctx, &cloudtrail.DeleteChannelInput{Channel: &arn}); err != nil {
		t.Fatal(err)
	}
	lc, err := a.ListChannels(ctx, &cloudtrail.ListChannelsInput{})
	if err != nil || len(lc.Channels) != 0 {
		t.Errorf("ListChannels: %v %+v", err, lc)
	}
}

var code2 = code

// TestAuditRecordOneBuffer: the stored record is built in one buffer
// (json.Compact used to find it too small and copy it into a larger one),
// and its length fits the capacity it was made with.
func TestAuditRecordOneBuffer(t *testing.T) {
	l, err := openTest("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	const acct = "111111111111"
	arn := "arn:aws:cloudtrail:us-east-1:" + acct + ":channel/" + strings.Repeat("c", 36)
	now := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	for _, data := range []string{eventData("Op", acct), `{"version":"1.0","userIdentity":{"type":"T","principalId":"p"},"eventSource":"s","eventName":"n","eventTime":"2026-01-02T03:04:05Z","UID":"u","recipientAccountId":"` + acct + `"}`} {
		raw, _, code, msg := l.auditRecord(AuditEvent{ID: "e", Data: data}, acct, "us-east-1", arn, now)
		if code != "" {
			t.Fatalf("auditRecord(%s): %s %s", data, code, msg)
		}
		if want := len(data) + len(arn) + len("us-east-1") + len(acct) + 512; cap(raw) != want {
			t.Errorf("record of %d bytes in a buffer of %d; want the %d it was made with", len(raw), cap(raw), want)
		}
	}
}
