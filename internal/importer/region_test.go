package importer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/importer"
)

// hostileRegions are awsRegion values no record may carry: each would
// become a log key's folder, and no lookup could name it.
var hostileRegions = []string{"..", "<script>", strings.Repeat("r", 300), "US-EAST-1", "us-east-1/../x",
	"../../etc", "us-east-1\u0000", "aws-global", " us-east-1", "us-east-1.", "us-" + strings.Repeat("x", 40) + "-1"}

// TestInvalidRegionsAreRefused: an import refuses each record whose
// awsRegion is no AWS region, reports it as a failure naming the record,
// and stores the others unchanged, valid unusual regions included.
func TestInvalidRegionsAreRefused(t *testing.T) {
	mk := func(i int, region string) []byte {
		r, _ := json.Marshal(region)
		return fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:%02dZ","eventSource":"ec2.amazonaws.com",`+
			`"eventName":"RunInstances","awsRegion":%s,"eventID":"id-%d","eventType":"AwsApiCall","recipientAccountId":"123456789012"}`, i%60, r, i)
	}
	var raws, good [][]byte
	bad := map[int]string{} // record number (1-based) -> region
	// The good ones: unusual AWS regions, and a publisher's anonymised
	// region name (real logs carry them; audit.ValidRecordRegion).
	goodRegions := []string{"us-gov-west-1", "cn-north-1", "ap-southeast-5", "eusc-de-east-1", "il-central-1", "us-north-2r"}
	for i, region := range append(goodRegions, hostileRegions...) {
		raw := mk(i, region)
		raws = append(raws, raw)
		if i < len(goodRegions) {
			good = append(good, raw)
		} else {
			bad[i+1] = region
		}
	}
	dir := t.TempDir()
	p := write(t, dir, "f.json", records(raws))
	rep, sink := run(t, importer.Options{}, p)
	checkExact(t, sink, byID(t, good...))
	if rep.Rejected != int64(len(bad)) || rep.Imported != int64(len(good)) {
		t.Errorf("report %+v; want %d imported, %d rejected", rep, len(good), len(bad))
	}
	for _, e := range rep.Errors {
		if _, ok := bad[e.Record]; !ok || e.File != p || !strings.Contains(e.Error(), "is not a region name") {
			t.Errorf("error %v", e)
		}
		delete(bad, e.Record)
	}
	if len(bad) != 0 {
		t.Errorf("records refused without an error naming them: %v", bad)
	}
}
