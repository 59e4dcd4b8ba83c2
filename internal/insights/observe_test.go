package insights

import (
	"testing"

	"github.com/go-json-experiment/json"
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
