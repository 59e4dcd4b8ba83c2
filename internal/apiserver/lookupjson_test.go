package apiserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// stdEvent and stdPage are the shapes a LookupEvents page had when
// encoding/json wrote it (CloudTrailEvent a string).
type stdEvent struct {
	EventID         string            `json:"EventId"`
	EventName       string            `json:"EventName,omitempty"`
	ReadOnly        string            `json:"ReadOnly,omitempty"`
	AccessKeyID     string            `json:"AccessKeyId,omitempty"`
	EventTime       awsjson.Timestamp `json:"EventTime"`
	EventSource     string            `json:"EventSource,omitempty"`
	Username        string            `json:"Username,omitempty"`
	Resources       []resourceOut     `json:"Resources"`
	CloudTrailEvent string            `json:"CloudTrailEvent"`
}

type stdPage struct {
	Events    []stdEvent `json:"Events"`
	NextToken string     `json:"NextToken,omitempty"`
}

// stdJSON is what awsjson.WriteJSON wrote for p before lookupEventsOutput
// appended itself: encoding/json without HTML escaping.
func stdJSON(t *testing.T, p lookupEventsOutput) string {
	t.Helper()
	sp := stdPage{NextToken: p.NextToken}
	if p.Events != nil {
		sp.Events = []stdEvent{}
	}
	for _, e := range p.Events {
		sp.Events = append(sp.Events, stdEvent{e.EventID, e.EventName, e.ReadOnly, e.AccessKeyID, e.EventTime,
			e.EventSource, e.Username, e.Resources, string(e.CloudTrailEvent)})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sp); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// TestLookupOutputJSON: a LookupEvents page appends itself byte for byte
// as encoding/json writes it, for real records (the golden events and
// the shared real ones), hostile strings, empty and nil fields.
func TestLookupOutputJSON(t *testing.T) {
	var recs []audit.Record
	f, err := os.Open("testdata/events.golden.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		_, raw, _ := strings.Cut(sc.Text(), "\t")
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	f.Close()
	real, _ := filepath.Glob("../../../shared/testdata/real/traildiscover/*.json")
	for _, p := range real[:min(len(real), 200)] {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var file struct{ Records []json.RawMessage }
		if json.Unmarshal(b, &file) != nil {
			continue
		}
		for _, raw := range file.Records {
			if r, err := audit.Extract(raw); err == nil {
				recs = append(recs, r)
			}
		}
	}
	hostile := []string{"", "\x00\"\\<>&", "\u2028\u2029", "\xff\xfe", "日本 🚀", "\n\t\b\f\r\x1f"}
	for i, h := range hostile {
		recs = append(recs, audit.Record{
			EventID: "id" + h, EventName: h, EventSource: h, Username: h, AccessKeyID: h,
			ReadOnly:  audit.Tri(i % 3),
			Time:      time.UnixMilli(int64(i) * 1_700_000_000_123),
			Resources: []audit.Resource{{Type: h, Name: h}, {Type: h}, {Name: h}, {}},
			Raw:       []byte(`{"x":"` + h + `"}`),
		})
	}
	var events []eventOut
	for i := range recs {
		events = append(events, eventFor(&recs[i]))
	}
	if len(real) > 0 && len(events) < 100 {
		t.Fatalf("only %d records", len(events))
	}
	nilRes := eventFor(&recs[0])
	nilRes.Resources = nil
	pages := []lookupEventsOutput{
		{Events: []eventOut{}},
		{},
		{Events: events, NextToken: "tok+/=\"<"},
		{Events: events[:1]},
		{Events: []eventOut{nilRes}, NextToken: "x"},
	}
	for i, p := range pages {
		want := stdJSON(t, p)
		if got := string(p.AppendJSON(nil)); got != want {
			for j := range min(len(got), len(want)) {
				if got[j] != want[j] {
					t.Fatalf("page %d differs at byte %d:\n got %q\nwant %q", i, j, got[max(0, j-60):min(len(got), j+60)], want[max(0, j-60):min(len(want), j+60)])
				}
			}
			t.Fatalf("page %d: lengths %d and %d", i, len(got), len(want))
		}
	}
	var _ awsjson.JSONAppender = lookupEventsOutput{}
}
