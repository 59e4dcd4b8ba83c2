package sigma

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const realDir = "../../../shared/testdata/real"

// realRecords returns every record of ../shared/testdata/real as raw JSON,
// or skips when the folder is absent.
func realRecords(t testing.TB) []json.RawMessage {
	t.Helper()
	if _, err := os.Stat(realDir); err != nil {
		t.Skipf("no real records: %v", err)
	}
	var out []json.RawMessage
	err := filepath.WalkDir(realDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz")) {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				return err
			}
			if data, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		var file struct{ Records []json.RawMessage }
		if err := json.Unmarshal(data, &file); err != nil {
			return nil // not a log file (e.g. a licence's JSON)
		}
		out = append(out, file.Records...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 1000 {
		t.Fatalf("only %d real records", len(out))
	}
	return out
}

// plain is the oracle: the record decoded by encoding/json and read with
// ordinary Go, independent of the engine.
type plain map[string]any

func (p plain) s(path ...string) string {
	var cur any = map[string]any(p)
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[k]
	}
	s, _ := cur.(string)
	return s
}

func (p plain) has(path ...string) bool {
	var cur any = map[string]any(p)
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[k]; !ok {
			return false
		}
	}
	return cur != nil
}

func privateIP(s string) bool {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return false
	}
	for _, p := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} {
		if netip.MustParsePrefix(p).Contains(a) {
			return true
		}
	}
	return false
}

// oracles say, in Go, what each fixture rule under testdata/rules means.
var oracles = map[string]func(plain) bool{
	"logging_tampering.yml": func(p plain) bool {
		n := p.s("eventName")
		return p.s("eventSource") == "cloudtrail.amazonaws.com" && (n == "StopLogging" || n == "DeleteTrail" || n == "UpdateTrail")
	},
	"console_login_without_mfa.yml": func(p plain) bool {
		return p.s("eventName") == "ConsoleLogin" && strings.EqualFold(p.s("responseElements", "ConsoleLogin"), "success") &&
			strings.EqualFold(p.s("additionalEventData", "MFAUsed"), "no")
	},
	"snapshot_shared.yml": func(p plain) bool {
		return p.s("eventSource") == "ec2.amazonaws.com" && p.s("eventName") == "ModifySnapshotAttribute"
	},
	"user_data_changed.yml": func(p plain) bool {
		return p.s("eventSource") == "ec2.amazonaws.com" && p.s("eventName") == "ModifyInstanceAttribute" &&
			(strings.EqualFold(p.s("requestParameters", "attribute"), "userData") || p.has("requestParameters", "userData"))
	},
	"access_key_for_another_user.yml": func(p plain) bool {
		return p.s("eventSource") == "iam.amazonaws.com" && p.s("eventName") == "CreateAccessKey" && p.has("requestParameters", "userName")
	},
	"guardduty_disruption.yml": func(p plain) bool {
		switch p.s("eventName") {
		case "CreateIPSet", "DeleteDetector", "DisassociateFromMasterAccount", "UpdateDetector", "StopMonitoringMembers":
			return p.s("eventSource") == "guardduty.amazonaws.com"
		}
		return false
	},
	"assumed_role_session.yml": func(p plain) bool {
		return p.s("userIdentity", "type") == "AssumedRole" && p.s("userIdentity", "sessionContext", "sessionIssuer", "type") == "Role"
	},
	"denied_outside_private_ranges.yml": func(p plain) bool {
		e := p.s("errorCode")
		return (strings.HasPrefix(strings.ToLower(e), "accessdenied") || strings.HasPrefix(strings.ToLower(e), "client.unauthorizedoperation")) &&
			!privateIP(p.s("sourceIPAddress"))
	},
}

// TestFixtureRulesOnRealRecords runs cairn's fixture rules (each mirroring
// a SigmaHQ CloudTrail rule, see their comments) over every real record and
// compares each verdict with the rule's meaning written in plain Go; each
// rule must fire at least once, so a rule that matches nothing fails too.
func TestFixtureRulesOnRealRecords(t *testing.T) {
	rules, errs := Load(Config{}, "testdata/rules")
	if errs != nil {
		t.Fatal(errs)
	}
	if len(rules) != len(oracles) {
		t.Fatalf("%d rules, %d oracles", len(rules), len(oracles))
	}
	raws := realRecords(t)
	recs := make([]Record, len(raws))
	plains := make([]plain, len(raws))
	for i, raw := range raws {
		var err error
		if recs[i], err = DecodeRecord(raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(raw, &plains[i]); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rules {
		oracle := oracles[filepath.Base(r.File)]
		if oracle == nil {
			t.Fatalf("no oracle for %s", r.File)
		}
		hits := 0
		for i, rec := range recs {
			p := plains[i]
			got, want := r.Match(rec), oracle(p)
			if got != want {
				t.Errorf("%s on %s: got %v, want %v", filepath.Base(r.File), p.s("eventID"), got, want)
			}
			if got {
				hits++
			}
		}
		if hits == 0 {
			t.Errorf("%s fired on no real record", filepath.Base(r.File))
		}
		t.Logf("%s: %d of %d records", filepath.Base(r.File), hits, len(recs))
	}
}

// TestSigmaHQFolder loads a folder of SigmaHQ's rules named by
// CAIRN_SIGMAHQ_RULES (fetched by the user, never committed; see
// scripts/sigmahq-load.sh), reports what loaded and why the others did
// not, and runs the loaded rules over the real records.
func TestSigmaHQFolder(t *testing.T) {
	dir := os.Getenv("CAIRN_SIGMAHQ_RULES")
	if dir == "" {
		t.Skip("CAIRN_SIGMAHQ_RULES not set")
	}
	rules, errs := Load(Config{}, dir)
	for _, e := range errs {
		t.Logf("refused: %v", e)
	}
	t.Logf("%d rules loaded, %d refused", len(rules), len(errs))
	if len(rules) == 0 {
		t.Fatal("no rule loaded")
	}
	recs := realRecords(t)
	decoded := make([]Record, len(recs))
	for i, raw := range recs {
		var err error
		if decoded[i], err = DecodeRecord(raw); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range rules {
		hits := 0
		for _, rec := range decoded {
			if r.Match(rec) {
				hits++
			}
		}
		t.Logf("%5d hits  %s  (%s)", hits, r.Title, filepath.Base(r.File))
	}
}

// BenchmarkMatch measures matching alone (records decoded beforehand):
// every fixture rule over every real record; reports rule×record
// evaluations per second and the cost of one record against all rules.
func BenchmarkMatch(b *testing.B) {
	rules, errs := Load(Config{}, "testdata/rules")
	if errs != nil {
		b.Fatal(errs)
	}
	// Twelve copies make about 100 rules, the figure the issue asks for.
	var all []*Rule
	for range 12 {
		all = append(all, rules...)
	}
	raws := realRecords(b)
	recs := make([]Record, len(raws))
	for i, raw := range raws {
		recs[i], _ = DecodeRecord(raw)
	}
	b.ResetTimer()
	n := 0
	for b.Loop() {
		rec := recs[n%len(recs)]
		n++
		for _, r := range all {
			r.Match(rec)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/1000, "µs/record")
	b.ReportMetric(float64(n*len(all))/b.Elapsed().Seconds(), "rule×records/s")
	b.ReportMetric(float64(len(all)), "rules")
}
