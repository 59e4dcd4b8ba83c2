package insights

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/cairn-audit/cairn/internal/audit"
)

// InsightEventVersion is the eventVersion of the Insights records cairn
// writes, as in AWS's published Insights records.
const InsightEventVersion = "1.08"

// ids derives the record's eventID and the Insight's sharedEventID from the
// series, the start minute and the state, so that detecting the same
// Insight again (a restart, a second `cairn insights` run) makes the same
// records, which the store then refuses as duplicates.
func ids(in Insight) (eventID, sharedID string) {
	base := in.Account + "\x00" + in.Region + "\x00" + in.InsightType + "\x00" + in.EventSource + "\x00" +
		in.EventName + "\x00" + in.ErrorCode + "\x00" + strconv.FormatInt(in.Start.Unix(), 10) + "\x00" + strconv.FormatBool(in.Decrease)
	return uuidOf(base + "\x00" + in.State), uuidOf(base)
}

// uuidOf formats the first 16 bytes of SHA-256(s) as a version-5-style UUID.
func uuidOf(s string) string {
	h := sha256.Sum256([]byte("cairn-insight\x00" + s))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// Event returns the CloudTrail Insights record of in, in AWS's format
// (eventType AwsCloudTrailInsight, no userIdentity or top-level eventName).
// attributions may be nil.
func Event(in Insight, attributions []audit.InsightAttribution) *audit.Event {
	eventID, shared := ids(in)
	t := in.Start
	if in.State == "End" {
		t = in.End
	}
	dur := in.InsightMinutes
	base := in.BaselineMinutes
	return &audit.Event{
		EventVersion:       InsightEventVersion,
		EventTime:          audit.FormatTime(t),
		AWSRegion:          in.Region,
		EventID:            eventID,
		EventType:          "AwsCloudTrailInsight",
		RecipientAccountID: in.Account,
		SharedEventID:      shared,
		EventCategory:      "Insight",
		InsightDetails: &audit.InsightDetails{
			State:       in.State,
			EventSource: in.EventSource,
			EventName:   in.EventName,
			InsightType: in.InsightType,
			ErrorCode:   in.ErrorCode,
			InsightContext: &audit.InsightContext{
				Statistics: &audit.InsightStatistics{
					Baseline:         audit.InsightAverage{Average: round(in.BaselineAverage)},
					Insight:          audit.InsightAverage{Average: round(in.InsightAverage)},
					InsightDuration:  &dur,
					BaselineDuration: &base,
				},
				Attributions: attributions,
			},
		},
	}
}

// Record marshals in as a stored record.
func Record(in Insight, attributions []audit.InsightAttribution) (audit.Record, error) {
	raw, err := Event(in, attributions).Marshal()
	if err != nil {
		return audit.Record{}, fmt.Errorf("insights: marshal: %w", err)
	}
	return audit.Extract(raw)
}

// round keeps averages readable and stable across platforms.
func round(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 6, 64), 64)
	return r
}
