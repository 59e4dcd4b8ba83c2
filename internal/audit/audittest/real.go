package audittest

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// RealRecord is one record of the real CloudTrail test data.
type RealRecord struct {
	File  string // path relative to the data root
	Index int    // 0-based position in the file
	Raw   []byte // the record's exact bytes
}

// RealDataDir returns the folder of real CloudTrail records shared with the
// project (../shared/testdata/real from the repository root), or skips t
// when it is missing (as on a laptop without shared/; CI has it).
func RealDataDir(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "shared", "testdata", "real")
	if _, err := os.Stat(root); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("real test data not found at %s", root)
		}
		t.Skipf("real test data not found at %s", root)
	}
	return root
}

// RealRecords returns every record of the real test data, exact bytes.
func RealRecords(t testing.TB) []RealRecord {
	t.Helper()
	root := RealDataDir(t)
	var out []RealRecord
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return err
			}
			if b, err = io.ReadAll(zr); err != nil {
				return err
			}
		}
		var f struct{ Records []json.RawMessage }
		if err := json.Unmarshal(b, &f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		for i, r := range f.Records {
			out = append(out, RealRecord{File: rel, Index: i, Raw: r})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// InRealRegion reports whether the record's awsRegion is an AWS region
// (audit.ValidRegion). Two publishers (datadog-stratus-red-team,
// traildiscover) replaced regions with fictional ones (us-north-2r,
// sagov-westsouth-1r): imports take them (audit.ValidRecordRegion), but no
// call can be signed for them (a responder reads them with AwsRegion).
func (r RealRecord) InRealRegion() bool {
	var v struct {
		AWSRegion string `json:"awsRegion"`
	}
	return json.Unmarshal(r.Raw, &v) == nil && audit.ValidRegion(v.AWSRegion)
}

// RealRecordsInRealRegions returns the real records whose awsRegion is an
// AWS region: those a call can be signed for.
func RealRecordsInRealRegions(t testing.TB) []RealRecord {
	t.Helper()
	var out []RealRecord
	for _, r := range RealRecords(t) {
		if r.InRealRegion() {
			out = append(out, r)
		}
	}
	return out
}
