package insights

import (
	"testing"

	"github.com/go-json-experiment/json"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

var errorCodeCases = []string{
	`{"eventID":"a","errorCode":"AccessDenied","eventTime":"x"}`,
	`{"eventID":"a", "errorCode" : "Client.UnauthorizedOperation" }`,
	`{"requestParameters":{"errorCode":"inner"},"eventID":"a"}`,
	`{"responseElements":{"x":["errorCode",{"errorCode":"deep"}]},"errorCode":"Top"}`,
	`{"userAgent":"\"errorCode\":\"fake\"","eventID":"a"}`,
	`{"userAgent":"a\\","errorCode":"AfterEscape"}`,
	`{"errorCode":"Esc\u0041ped"}`,
	`{"errorCode":null}`,
	`{"errorCode":42}`,
	`{"errorCode":"First","errorCode":"Last"}`,
	`{"eventID":"errorCode"}`,
	`{"a":{"b":{"c":"errorCode"}},"errorCode":"X"}`,
	`{}`,
	`not json "errorCode":"x"`,
}

// TestErrorCode checks the scan against the JSON decoder.
func TestErrorCode(t *testing.T) {
	for _, c := range errorCodeCases {
		if got, want := errorCode([]byte(c)), slowErrorCode([]byte(c)); got != want {
			t.Errorf("%s: scan %q, decoder %q", c, got, want)
		}
	}
}

// FuzzErrorCode: on any JSON object the scan agrees with the decoder.
func FuzzErrorCode(f *testing.F) {
	for _, c := range errorCodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var probe map[string]any
		if jsonValid(raw, &probe) != nil {
			errorCode(raw) // must not panic
			return
		}
		if got, want := errorCode(raw), slowErrorCode(raw); got != want {
			t.Errorf("%q: scan %q, decoder %q", raw, got, want)
		}
	})
}

func jsonValid(raw []byte, v *map[string]any) error { return json.Unmarshal(raw, v, lenient) }

// TestObserveTrustsTheScannerOnErrorCode: on every real record (and a few
// made to mislead a search), Observe of the record as audit.Extract reads
// it (HasErrorCode True or False: no search of the record when False)
// gives what it gives the same record with HasErrorCode Unset (the record
// searched as before), and some real records have an errorCode.
func TestObserveTrustsTheScannerOnErrorCode(t *testing.T) {
	raws := [][]byte{
		[]byte(`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventName":"GetObject","readOnly":true,"responseElements":{"errorCode":"x"}}`),
		[]byte(`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventName":"GetObject","readOnly":true,"errorCode":"AccessDenied"}`),
		[]byte(`{"eventID":"e","eventTime":"2024-01-01T00:00:00Z","awsRegion":"r","recipientAccountId":"1","eventName":"GetObject","readOnly":true,"error\u0043ode":"AccessDenied"}`),
	}
	for _, rr := range audittest.RealRecords(t) {
		raws = append(raws, rr.Raw)
	}
	known, errored := 0, 0
	for _, raw := range raws {
		r, err := audit.Extract(raw)
		if err != nil {
			continue
		}
		if r.HasErrorCode != audit.Unset {
			known++
		}
		got, gotOK := Observe(r)
		r.HasErrorCode = audit.Unset
		want, wantOK := Observe(r)
		if got != want || gotOK != wantOK {
			t.Fatalf("Observe = %+v, %v; searched: %+v, %v\nrecord: %.300q", got, gotOK, want, wantOK, raw)
		}
		if got.ErrorCode != "" {
			errored++
		}
	}
	if known < len(raws)*9/10 || errored == 0 {
		t.Errorf("%d of %d records with HasErrorCode known, %d with an errorCode; want most known and some errored", known, len(raws), errored)
	}
	t.Logf("%d of %d records with HasErrorCode known, %d with an errorCode", known, len(raws), errored)
}
