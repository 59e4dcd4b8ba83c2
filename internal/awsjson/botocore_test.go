package awsjson

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

// botocoreParse is run by python3: for each response on stdin it runs
// botocore's own AWS JSON 1.1 parser, with the operation's output shape
// from botocore's CloudTrail model when "op" is set, and prints the parsed
// result as JSON.
const botocoreParse = `
import json, sys
import botocore.session
from botocore.parsers import create_parser
model = botocore.session.get_session().get_service_model("cloudtrail")
parser = create_parser("json")
out = []
for c in json.load(sys.stdin):
    resp = {"status_code": c["status"], "headers": {k.lower(): v for k, v in c["headers"].items()}, "body": c["body"].encode()}
    shape = model.operation_model(c["op"]).output_shape if c.get("op") else None
    parsed = parser.parse(resp, shape)
    out.append(json.loads(json.dumps(parsed, default=lambda o: o.isoformat())))
print(json.dumps(out))
`

// needBotocore skips the test unless python3 can import botocore.
func needBotocore(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	if out, err := exec.Command("python3", "-c", "import botocore").CombinedOutput(); err != nil {
		t.Skipf("botocore is not installed: %v %s", err, out)
	}
}

type botoCase struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body"`
	Op      string            `json:"op,omitempty"`
}

func toBotoCase(w *httptest.ResponseRecorder, op string) botoCase {
	h := map[string]string{}
	for k := range w.Header() {
		h[k] = w.Header().Get(k)
	}
	return botoCase{Status: w.Code, Headers: h, Body: w.Body.String(), Op: op}
}

func runBotocore(t *testing.T, cases []botoCase) []map[string]any {
	t.Helper()
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "-c", botocoreParse)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("botocore: %v\n%s", err, stderr)
	}
	var parsed []map[string]any
	if err := json.Unmarshal(out, &parsed); err != nil {
		t.Fatalf("botocore output %s: %v", out, err)
	}
	return parsed
}

// TestErrorEnvelopeParsesInBotocore checks that botocore, as the AWS CLI
// and boto3 run it, reads the code, message, status and request ID of the
// envelopes WriteError writes.
func TestErrorEnvelopeParsesInBotocore(t *testing.T) {
	needBotocore(t)
	errs := []*Error{
		{Code: "TrailNotFoundException", Message: `Unknown trail: "x" for the user: 123456789012`},
		{Code: "ThrottlingException", Message: "Rate exceeded"},
		{Code: CodeRequestEntityTooLarge, Message: "Request body is larger than the limit of 10 bytes."},
		{Code: CodeInternalFailure, Message: "ünïcode <&> and\nnewline"},
		{Code: "MissingAuthenticationTokenException", Message: "Missing Authentication Token"},
	}
	var cases []botoCase
	for i, e := range errs {
		w := httptest.NewRecorder()
		WriteError(w, "req-"+string(rune('a'+i)), e)
		cases = append(cases, toBotoCase(w, ""))
	}
	for i, got := range runBotocore(t, cases) {
		e := errs[i]
		errObj, _ := got["Error"].(map[string]any)
		meta, _ := got["ResponseMetadata"].(map[string]any)
		if errObj["Code"] != e.Code || errObj["Message"] != e.Message {
			t.Errorf("botocore parsed %v; want code %q message %q", errObj, e.Code, e.Message)
		}
		if meta["RequestId"] != "req-"+string(rune('a'+i)) || meta["HTTPStatusCode"] != float64(StatusFor(e.Code)) {
			t.Errorf("botocore metadata %v; want request ID req-%c, status %d", meta, 'a'+i, StatusFor(e.Code))
		}
	}
}

// TestResponseParsesInBotocore checks that botocore reads a LookupEvents
// response written by WriteJSON with its model, timestamps included.
func TestResponseParsesInBotocore(t *testing.T) {
	needBotocore(t)
	w := httptest.NewRecorder()
	WriteJSON(w, "req-1", http.StatusOK, sampleLookupOutput())
	got := runBotocore(t, []botoCase{toBotoCase(w, "LookupEvents")})[0]
	events, _ := got["Events"].([]any)
	if len(events) != 1 {
		t.Fatalf("botocore parsed %v; want one event", got)
	}
	ev := events[0].(map[string]any)
	if ev["EventTime"] != "2015-09-01T20:35:57.497000+00:00" {
		t.Errorf("EventTime = %v; want 2015-09-01T20:35:57.497000+00:00", ev["EventTime"])
	}
	if ev["EventName"] != "ConsoleLogin" || got["NextToken"] != "tok/en+==" {
		t.Errorf("botocore parsed %v", got)
	}
	if meta, _ := got["ResponseMetadata"].(map[string]any); meta["RequestId"] != "req-1" {
		t.Errorf("RequestId = %v; want req-1", meta["RequestId"])
	}
}
