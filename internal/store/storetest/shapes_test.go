package storetest

import (
	"testing"
	"time"
)

func TestShapes(t *testing.T) {
	s := NewShapes(t, 1)
	t.Logf("%d usable real shapes", len(s.shapes))
	end := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	recs := s.Records(1000, end.Add(-time.Hour), end, "123456789012", "us-east-1")
	ids := map[string]bool{}
	for i, r := range recs {
		if r.Account != "123456789012" || r.Region != "us-east-1" || r.Time.Before(end.Add(-time.Hour)) || !r.Time.Before(end) {
			t.Fatalf("record %d: %s/%s at %v", i, r.Account, r.Region, r.Time)
		}
		if ids[r.EventID] {
			t.Fatalf("record %d repeats eventID %s", i, r.EventID)
		}
		ids[r.EventID] = true
	}
}
