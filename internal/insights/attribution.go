package insights

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/go-json-experiment/json"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Lookuper reads Event History; the store satisfies it.
type Lookuper interface {
	Lookup(ctx context.Context, q audit.Query) (audit.Page, error)
}

// maxAttributionRecords bounds the records read for one window.
const maxAttributionRecords = 20000

// topValues is how many values each attribution list shows (AWS: up to 5).
const topValues = 5

type attrView struct {
	UserIdentity struct {
		ARN string `json:"arn"`
	} `json:"userIdentity"`
	UserAgent string `json:"userAgent"`
	ErrorCode string `json:"errorCode"`
}

// Attributions computes an Insight's attributions from the stored records
// of its series: the top user identities, user agents and (for call-rate
// Insights) error codes, as average calls per minute, in the Insight's window
// and in the baseline window, the hour before it. They are computed from
// the store when the record is written: nil when history is nil.
func Attributions(ctx context.Context, history Lookuper, in Insight) ([]audit.InsightAttribution, error) {
	if history == nil {
		return nil, nil
	}
	mins := in.InsightMinutes
	from := in.Start
	if in.State == "End" {
		mins = max(1, int(in.End.Sub(in.Start)/time.Minute))
	}
	ins, err := countWindow(ctx, history, in, from, from.Add(time.Duration(mins)*time.Minute))
	if err != nil {
		return nil, err
	}
	base, err := countWindow(ctx, history, in, from.Add(-time.Hour), from)
	if err != nil {
		return nil, err
	}
	names := []string{"userIdentityArn", "userAgent"}
	if in.InsightType == CallRate {
		names = append(names, "errorCode")
	}
	out := make([]audit.InsightAttribution, 0, len(names))
	for i, name := range names {
		out = append(out, audit.InsightAttribution{
			Attribute: name,
			Insight:   top(ins[i], float64(mins)),
			Baseline:  top(base[i], 60),
		})
	}
	return out, nil
}

// countWindow counts the series' calls in [from, to) by identity ARN, user
// agent and error code ("null" for none, as AWS writes it).
func countWindow(ctx context.Context, h Lookuper, in Insight, from, to time.Time) ([3]map[string]int, error) {
	var c [3]map[string]int
	for i := range c {
		c[i] = map[string]int{}
	}
	q := audit.Query{Account: in.Account, Region: in.Region, Category: audit.CategoryManagement,
		Start: from, End: to.Add(-time.Second), Limit: 1000,
		Attributes: []audit.Attribute{{Key: audit.AttrEventName, Value: in.EventName}, {Key: audit.AttrEventSource, Value: in.EventSource}}}
	seen := 0
	for seen < maxAttributionRecords {
		p, err := h.Lookup(ctx, q)
		if err != nil {
			return c, err
		}
		for _, r := range p.Records {
			seen++
			var v attrView
			if json.Unmarshal(r.Raw, &v, lenient) != nil {
				continue
			}
			if in.InsightType == CallRate && r.ReadOnly != audit.False || in.InsightType == ErrorRate && v.ErrorCode != in.ErrorCode {
				continue
			}
			ec := v.ErrorCode
			if ec == "" {
				ec = "null"
			}
			c[0][v.UserIdentity.ARN]++
			c[1][v.UserAgent]++
			c[2][ec]++
		}
		if p.Next == nil {
			break
		}
		q.After = p.Next
	}
	return c, nil
}

func top(counts map[string]int, minutes float64) []audit.InsightValue {
	out := make([]audit.InsightValue, 0, len(counts))
	for v, n := range counts {
		if v == "" {
			continue
		}
		out = append(out, audit.InsightValue{Value: v, Average: round(float64(n) / minutes)})
	}
	slices.SortFunc(out, func(a, b audit.InsightValue) int {
		if c := cmp.Compare(b.Average, a.Average); c != 0 {
			return c
		}
		return cmp.Compare(a.Value, b.Value)
	})
	if len(out) > topValues {
		out = out[:topValues]
	}
	return out
}
