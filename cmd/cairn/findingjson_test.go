package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/sigma"
	"github.com/cairn-audit/cairn/internal/sigma/builtin"
)

// checkFindingJSON: appendFindingJSON writes what json.Encoder writes, or
// declines.
func checkFindingJSON(t *testing.T, f sigma.Finding) {
	t.Helper()
	var want bytes.Buffer
	werr := json.NewEncoder(&want).Encode(f)
	got, ok := appendFindingJSON(nil, &f)
	if !ok {
		if werr == nil {
			t.Fatalf("%#v: appendFindingJSON declined; Encode wrote %s", f, want.Bytes())
		}
		return
	}
	if werr != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("%#v:\nappendFindingJSON %s\nEncode            %s (%v)", f, got, want.Bytes(), werr)
	}
}

// TestFindingJSONLikeEncode: the findings of the built-in hunts over the
// real records, and findings with hostile strings and times, are written
// byte for byte as json.Encoder writes them.
func TestFindingJSONLikeEncode(t *testing.T) {
	rules, err := builtin.Rules()
	if err != nil {
		t.Fatal(err)
	}
	h := sigma.Hunt{Rules: rules, Stateful: builtin.Stateful(huntParams(config.DefaultHunts()))}
	n := 0
	for _, r := range audittest.RealRecords(t) {
		rec, err := sigma.DecodeRecord(r.Raw)
		if err != nil {
			continue
		}
		h.Run(rec, func(f sigma.Finding) { checkFindingJSON(t, f); n++ })
	}
	if n < 50 {
		t.Errorf("%d findings of the real records", n)
	}
	for _, s := range hostileFindingStrings {
		checkFindingJSON(t, hostileFinding(s, time.Date(2024, 2, 29, 23, 59, 59, 123456789, time.UTC)))
	}
	for _, tm := range []time.Time{{}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)} {
		checkFindingJSON(t, hostileFinding("x", tm))
	}
}

var hostileFindingStrings = []string{"", "plain", `"quoted"`, `back\slash`, "<script>&amp;</script>", "tab\tnl\ncr\r",
	"\x00\x01\x1f\x7f", "é日本\U0001F600", "\xff\xfe bad utf-8", "\u2028\u2029", "\b\f"}

func hostileFinding(s string, t time.Time) sigma.Finding {
	return sigma.Finding{RuleID: s, Title: s + "t", Level: s, Tags: []string{s, "attack.t1"}, EventID: s, EventTime: t,
		EventSource: s, EventName: s, Account: s, Region: s, Principal: s, Detail: s}
}

func FuzzFindingJSON(f *testing.F) {
	for _, s := range hostileFindingStrings {
		f.Add(s, int64(1700000000), false)
	}
	f.Fuzz(func(t *testing.T, s string, sec int64, noTags bool) {
		fd := hostileFinding(s, time.Unix(sec, sec%1000*1e6).UTC())
		if noTags {
			fd.Tags = nil
		}
		checkFindingJSON(t, fd)
	})
}
