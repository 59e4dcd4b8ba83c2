package cloudtrailmodel

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServices(t *testing.T) {
	ct := CloudTrail()
	for _, tc := range []struct{ name, got, want string }{
		{"TargetPrefix", ct.TargetPrefix, "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"},
		{"Protocol", ct.Protocol, "json"},
		{"JSONVersion", ct.JSONVersion, "1.1"},
		{"SigningName", ct.SigningName, "cloudtrail"},
		{"APIVersion", ct.APIVersion, "2013-11-01"},
		{"data Protocol", CloudTrailData().Protocol, "rest-json"},
		{"data TargetPrefix", CloudTrailData().TargetPrefix, ""},
		{"data SigningName", CloudTrailData().SigningName, "cloudtrail-data"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q; want %q", tc.name, tc.got, tc.want)
		}
	}
	if n := len(ct.Operations); n != 60 {
		t.Errorf("CloudTrail has %d operations; want the model's 60", n)
	}
	ops := Operations()
	if len(ops) != len(ct.Operations) || !sort.SliceIsSorted(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name }) {
		t.Errorf("Operations() = %d operations, sorted %v", len(ops), sort.SliceIsSorted(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name }))
	}
	for _, op := range ops {
		if op.Method != "POST" || op.URI != "/" {
			t.Errorf("%s route = %s %s; want POST /", op.Name, op.Method, op.URI)
		}
	}
	if _, ok := Operation("NoSuchOperation"); ok {
		t.Error(`Operation("NoSuchOperation") found`)
	}
}

func TestLookupEventsFacts(t *testing.T) {
	ct := CloudTrail()
	op, ok := Operation("LookupEvents")
	if !ok || !op.ReadOnly || op.InputShape != "LookupEventsRequest" {
		t.Fatalf("LookupEvents = %+v, %v; want a read-only operation", op, ok)
	}
	mr, _ := op.Member("MaxResults")
	if mr.Type != "integer" || mr.Required || mr.Min == nil || *mr.Min != 1 || mr.Max == nil || *mr.Max != 50 {
		t.Errorf("MaxResults = %+v; want an optional integer 1..50", mr)
	}
	ec, _ := op.Member("EventCategory")
	if diff := cmp.Diff([]string{"insight"}, ec.Enum); diff != "" {
		t.Errorf("EventCategory enum (-want +got):\n%s", diff)
	}
	for _, n := range []string{"StartTime", "EndTime"} {
		if m, _ := op.Member(n); m.Type != "timestamp" {
			t.Errorf("%s type = %q; want timestamp", n, m.Type)
		}
	}
	// The model documents no max for LookupAttributes (its documentation
	// says only one item is supported; the server enforces that).
	la, _ := op.Member("LookupAttributes")
	if la.Type != "list" || la.Min != nil || la.Max != nil {
		t.Errorf("LookupAttributes = %+v; want a list without bounds", la)
	}
	list, ok := ct.Shape(la.Shape)
	if !ok || list.Member != "LookupAttribute" {
		t.Fatalf("shape %s = %+v, %v", la.Shape, list, ok)
	}
	attr, _ := ct.Shape(list.Member)
	key, _ := attr.MemberNamed("AttributeKey")
	want := []string{"EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource", "AccessKeyId"}
	if !key.Required || !cmp.Equal(key.Enum, want) {
		t.Errorf("AttributeKey = %+v; want required with enum %v", key, want)
	}
	val, _ := attr.MemberNamed("AttributeValue")
	if !val.Required || val.Min == nil || *val.Min != 1 || val.Max == nil || *val.Max != 2000 {
		t.Errorf("AttributeValue = %+v; want required, length 1..2000", val)
	}
	wantErrs := []string{"InvalidLookupAttributesException", "InvalidTimeRangeException", "InvalidMaxResultsException",
		"InvalidNextTokenException", "InvalidEventCategoryException", "UnsupportedOperationException", "OperationNotPermittedException"}
	if diff := cmp.Diff(wantErrs, op.Errors); diff != "" {
		t.Errorf("LookupEvents errors (-want +got):\n%s", diff)
	}
}

func TestPutAuditEventsFacts(t *testing.T) {
	op, ok := CloudTrailData().Operation("PutAuditEvents")
	if !ok || op.Method != "POST" || op.URI != "/PutAuditEvents" || op.ReadOnly {
		t.Fatalf("PutAuditEvents = %+v, %v", op, ok)
	}
	ch, _ := op.Member("channelArn")
	if !ch.Required || ch.Location != "querystring" || ch.LocationName != "channelArn" {
		t.Errorf("channelArn = %+v; want a required query-string member", ch)
	}
	ev, _ := op.Member("auditEvents")
	if !ev.Required || ev.Min == nil || *ev.Min != 1 || ev.Max == nil || *ev.Max != 100 {
		t.Errorf("auditEvents = %+v; want required, 1..100 items", ev)
	}
	if !CloudTrailData().IsError("DuplicatedAuditEventId") || CloudTrailData().IsError("TrailNotFoundException") {
		t.Error("CloudTrailData().IsError disagrees with the model")
	}
}

func TestReadOnlyRule(t *testing.T) {
	for op, want := range map[string]bool{"LookupEvents": true, "DescribeTrails": true, "GetTrail": true,
		"ListTags": true, "SearchSampleQueries": true, "GetQueryResults": true, "CreateTrail": false, "StopLogging": false,
		"PutEventSelectors": false, "StartQuery": false, "GenerateQuery": false, "AddTags": false} {
		got, ok := Operation(op)
		if !ok {
			t.Errorf("no operation %s", op)
			continue
		}
		if got.ReadOnly != want {
			t.Errorf("%s ReadOnly = %v; want %v", op, got.ReadOnly, want)
		}
	}
}

// TestTablesAreClosed checks that every shape a member or shape names is in
// the table, and every documented error is an error shape.
func TestTablesAreClosed(t *testing.T) {
	for _, s := range []*Service{CloudTrail(), CloudTrailData()} {
		if !sort.StringsAreSorted(s.Errors) {
			t.Errorf("%s: Errors not sorted", s.Name)
		}
		check := func(where, shape string) {
			if _, ok := s.Shape(shape); !ok {
				t.Errorf("%s: %s names shape %q, which is not in the table", s.Name, where, shape)
			}
		}
		for _, op := range s.OperationList() {
			for _, m := range op.Input {
				check(op.Name+"."+m.Name, m.Shape)
			}
			for _, e := range op.Errors {
				if !s.IsError(e) {
					t.Errorf("%s: %s documents %s, not an error shape", s.Name, op.Name, e)
				}
			}
		}
		for _, sh := range s.Shapes {
			for _, m := range sh.Members {
				check(sh.Name+"."+m.Name, m.Shape)
			}
			if sh.Type == "list" {
				check(sh.Name+" member", sh.Member)
			}
			if sh.Type == "map" {
				check(sh.Name+" key", sh.Key)
				check(sh.Name+" value", sh.Value)
			}
		}
	}
}

// botocoreData returns the data directory and version of the botocore
// python3 finds, skipping the test when there is none.
func botocoreData(t *testing.T) (dir, version string) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	out, err := exec.Command("python3", "-c", "import botocore,os;print(os.path.dirname(botocore.__file__));print(botocore.__version__)").Output()
	if err != nil {
		t.Skipf("botocore is not installed: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		t.Fatalf("python3 printed %q", out)
	}
	return filepath.Join(f[0], "data"), f[1]
}

type rawModel struct {
	Operations map[string]struct {
		Input  *struct{ Shape string }  `json:"input"`
		Errors []struct{ Shape string } `json:"errors"`
	} `json:"operations"`
	Shapes map[string]struct {
		Required  []string                          `json:"required"`
		Members   map[string]struct{ Shape string } `json:"members"`
		Exception bool                              `json:"exception"`
	} `json:"shapes"`
}

func readModel(t *testing.T, dir string) rawModel {
	t.Helper()
	var r io.Reader
	if b, err := os.ReadFile(filepath.Join(dir, "service-2.json")); err == nil {
		r = bytes.NewReader(b)
	} else {
		f, err := os.Open(filepath.Join(dir, "service-2.json.gz"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if r, err = gzip.NewReader(f); err != nil {
			t.Fatal(err)
		}
	}
	var m rawModel
	if err := json.NewDecoder(r).Decode(&m); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return m
}

// TestMatchesBotocoreModel reads the installed botocore models directly
// and checks the table against them: the same operations (60 for
// CloudTrail), errors, input members and required flags, and error shapes.
func TestMatchesBotocoreModel(t *testing.T) {
	data, version := botocoreData(t)
	if version != BotocoreVersion {
		t.Logf("botocore %s is installed; the table is from %s", version, BotocoreVersion)
	}
	for _, tc := range []struct {
		svc *Service
		dir string
	}{
		{CloudTrail(), "cloudtrail/2013-11-01"},
		{CloudTrailData(), "cloudtrail-data/2021-08-11"},
	} {
		m := readModel(t, filepath.Join(data, tc.dir))
		var wantOps, gotOps []string
		for n := range m.Operations {
			wantOps = append(wantOps, n)
		}
		sort.Strings(wantOps)
		for _, op := range tc.svc.OperationList() {
			gotOps = append(gotOps, op.Name)
		}
		if diff := cmp.Diff(wantOps, gotOps); diff != "" {
			t.Errorf("%s operations (-botocore +table):\n%s", tc.dir, diff)
		}
		if tc.svc == CloudTrail() && len(wantOps) != 60 {
			t.Logf("botocore's CloudTrail model now has %d operations", len(wantOps))
		}
		for name, mop := range m.Operations {
			op, ok := tc.svc.Operation(name)
			if !ok {
				continue
			}
			var errs []string
			for _, e := range mop.Errors {
				errs = append(errs, e.Shape)
			}
			if diff := cmp.Diff(errs, op.Errors); diff != "" {
				t.Errorf("%s errors (-botocore +table):\n%s", name, diff)
			}
			want := map[string]bool{}
			if mop.Input != nil {
				in := m.Shapes[mop.Input.Shape]
				for mn := range in.Members {
					want[mn] = false
				}
				for _, r := range in.Required {
					want[r] = true
				}
			}
			got := map[string]bool{}
			for _, mem := range op.Input {
				got[mem.Name] = mem.Required
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s input members and required flags (-botocore +table):\n%s", name, diff)
			}
		}
		var excs []string
		for n, sh := range m.Shapes {
			if sh.Exception {
				excs = append(excs, n)
			}
		}
		sort.Strings(excs)
		if diff := cmp.Diff(excs, tc.svc.Errors); diff != "" {
			t.Errorf("%s error shapes (-botocore +table):\n%s", tc.dir, diff)
		}
	}
}

// TestGeneratedIsFresh regenerates the table from the installed botocore
// and compares it with the committed zz_generated.go. It runs only when the
// installed botocore is the version the table was generated from.
func TestGeneratedIsFresh(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	data, version := botocoreData(t)
	if version != BotocoreVersion {
		t.Skipf("botocore %s is installed; the table is from %s (run go generate to update it)", version, BotocoreVersion)
	}
	out := filepath.Join(t.TempDir(), "zz_generated.go")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "run", "./gen", "-data", data, "-version", version, "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run ./gen: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("zz_generated.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("zz_generated.go is stale: run go generate ./internal/cloudtrailmodel\n%s", cmp.Diff(string(want), string(got)))
	}
}
