package apiserver

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/awsjson"
)

// samePutAsDecode checks putAuditEventsBody against awsjson.Decode: when
// the fast reader takes a body, the general decoder takes it too and reads
// the same events.
func samePutAsDecode(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	got, ok := putAuditEventsBody(body)
	if !ok {
		return false
	}
	var in putAuditEventsIn
	if err := awsjson.Decode(body, &in); err != nil {
		t.Fatalf("putAuditEventsBody took %q, which awsjson.Decode refuses: %v", body, err)
	}
	if len(got) == 0 && len(in.AuditEvents) == 0 {
		return true
	}
	if diff := cmp.Diff(in.AuditEvents, got); diff != "" {
		t.Fatalf("putAuditEventsBody(%q) differs from awsjson.Decode (-decode +fast):\n%s", body, diff)
	}
	return true
}

func TestPutAuditEventsBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		fast bool
	}{
		{`{"auditEvents":[]}`, true},
		{`{"auditEvents":[{}]}`, true},
		{`{"auditEvents":[{"id":"a","eventData":"{\"x\":1}"}]}`, true},
		{` { "auditEvents" : [ { "eventDataChecksum" : "c" , "eventData" : "d\"\\\/\b\f\n\r\t" , "id" : "a" } , {"id":"b"} ] } `, true},
		{`{"auditEvents":[{"id":"\u00e9\u4e2d","eventData":"é中😀\ud83d\ude00"}]}`, true},
		{`{"auditEvents":[{"id":"a","eventData":"{\"recipientAccountId\":\"2\",\"recipientAccountId\":\"1\"}"}]}`, true},
		{`{"auditEvents":[{"id":"a","eventData":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}]}`, true},
		// The general decoder's: each of these it refuses or reads
		// differently from the one shape.
		{`{}`, false},
		{``, false},
		{`[]`, false},
		{`{"auditEvents":null}`, false},
		{`{"auditEvents":[null]}`, false},
		{`{"auditEvents":[{"id":null}]}`, false},
		{`{"auditEvents":[{"id":1}]}`, false},
		{`{"auditEvents":[{"id":["a"]}]}`, false},
		{`{"auditEvents":[{"id":"a","id":"b"}]}`, false},
		{`{"auditEvents":[{"ID":"a"}]}`, false},
		{`{"auditEvents":[{"\u0069d":"a"}]}`, false},
		{`{"auditEvents":[{"other":"a"}]}`, false},
		{`{"auditEvents":[{"id":"a"}],"auditEvents":[]}`, false},
		{`{"auditEvents":[{"id":"a"}],"x":1}`, false},
		{`{"auditEvents":[{"id":"a"}]}x`, false},
		{`{"auditEvents":[{"id":"a"}]}{}`, false},
		{`{"auditEvents":[{"id":"a"},]}`, false},
		{`{"auditEvents":[{"id":"a",}]}`, false},
		{`{"auditEvents":[{"id":"a"}]`, false},
		{`{"auditEvents":[{"id":"a`, false},
		{`{"auditEvents":[{"id":"a\`, false},
		{`{"auditEvents":[{"id`, false},
		{`{"auditEvents":"a"}`, false},
		{`{"auditEvents":[{"id":"\ud83d"}]}`, false},
		{`{"auditEvents":[{"id":"\udc00\ud800"}]}`, false},
		{`{"auditEvents":[{"id":"\u0000"}]}`, false},
		{"{\"auditEvents\":[{\"id\":\"a\x00\"}]}", false},
		{"{\"auditEvents\":[{\"id\":\"a\x01\"}]}", false},
		{"{\"auditEvents\":[{\"id\":\"\xff\"}]}", false},
		{"{\"auditEvents\":[{\"id\":\"\xed\xa0\x80\"}]}", false},
		{"\u00a0{\"auditEvents\":[]}", false},
		{`{"auditEvents":[{"id":"a"}],"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`, false},
	} {
		if got := samePutAsDecode(t, []byte(tc.body)); got != tc.fast {
			t.Errorf("putAuditEventsBody(%q) ok = %v; want %v", tc.body, got, tc.fast)
		}
	}
}

// A body as the SDKs send it (encoding/json's escapes of <, > and &
// included) is read by the fast reader, each event's fields its own.
func TestPutAuditEventsBodyOfAnSDK(t *testing.T) {
	type ev struct {
		ID        string  `json:"id"`
		EventData string  `json:"eventData"`
		Checksum  *string `json:"eventDataChecksum,omitempty"`
	}
	var evs []ev
	sum := "q1w2e3=="
	for i := range 100 {
		e := ev{ID: fmt.Sprintf("e%d", i), EventData: fmt.Sprintf(`{"version":"1.0","eventName":"Op<%d>&","requestParameters":{"doc":"a\nb"}}`, i)}
		if i%3 == 0 {
			e.Checksum = &sum
		}
		evs = append(evs, e)
	}
	body, err := json.Marshal(map[string]any{"auditEvents": evs})
	if err != nil {
		t.Fatal(err)
	}
	if !samePutAsDecode(t, body) {
		t.Fatalf("the fast reader refused an SDK's body")
	}
	got, _ := putAuditEventsBody(body)
	if *got[7].ID != "e7" || *got[7].EventData != evs[7].EventData || got[7].EventDataChecksum != nil || *got[9].EventDataChecksum != sum {
		t.Errorf("event 7 = %q %q %v, 9's checksum %v", *got[7].ID, *got[7].EventData, got[7].EventDataChecksum, got[9].EventDataChecksum)
	}
}

func FuzzPutAuditEventsBody(f *testing.F) {
	f.Add([]byte(`{"auditEvents":[{"id":"a","eventData":"{\"x\":\"\\u00e9\"}","eventDataChecksum":"c"}]}`))
	f.Add([]byte(` {"auditEvents" :[ {} ,{"id":"b"}]} `))
	for _, b := range []string{`{"auditEvents":[{"id":"\udc00\ud800"}]}`, `{"auditEvents":[{"id":"\u0000"}]}`,
		"{\"auditEvents\":[{\"id\":\"\xff\"}]}", `{"auditEvents":[{"id":"a","id":"b"}]}`, `{"auditEvents":[{"id":null}]}`,
		`{"auditEvents":[{"\u0069d":"a"}]}`, `{"auditEvents":[{"id":"a"}]}x`} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		samePutAsDecode(t, body)
	})
}
