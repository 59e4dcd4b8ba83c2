package client

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
)

// maxLookup bounds the records one History.Lookup returns.
const maxLookup = 20000

// History reads a cairn server's Event History through LookupEvents: as a
// one-pass feed of every management record of the caller's account and
// the client's region in [start, end), newest first (ReadAppended), and
// for lookups (Lookup). It serves insights.Retro as its feed and history.
// A History is used by one goroutine at a time.
type History struct {
	c          *cloudtrail.Client
	start, end time.Time
	next       *string
	done       bool
	seq        int64
	bad        int
}

// History returns the server's Event History between start and end (zero:
// unbounded).
func (c *Client) History(start, end time.Time) *History {
	return &History{c: c.CloudTrail, start: start, end: end}
}

// Unreadable is the number of records read whose CloudTrailEvent was not a
// record (skipped).
func (h *History) Unreadable() int { return h.bad }

func lookupInput(start, end time.Time, attrs []audit.Attribute, next *string) *cloudtrail.LookupEventsInput {
	in := &cloudtrail.LookupEventsInput{MaxResults: aws.Int32(50), NextToken: next}
	if !start.IsZero() {
		in.StartTime = aws.Time(start)
	}
	if !end.IsZero() {
		in.EndTime = aws.Time(end)
	}
	for _, a := range attrs {
		in.LookupAttributes = append(in.LookupAttributes, types.LookupAttribute{AttributeKey: types.LookupAttributeKey(a.Key), AttributeValue: aws.String(a.Value)})
	}
	return in
}

func (h *History) page(ctx context.Context, in *cloudtrail.LookupEventsInput) ([]audit.Record, *string, error) {
	out, err := h.c.LookupEvents(ctx, in)
	if err != nil {
		return nil, nil, fmt.Errorf("LookupEvents: %w", err)
	}
	recs := make([]audit.Record, 0, len(out.Events))
	for _, e := range out.Events {
		r, err := audit.Extract([]byte(aws.ToString(e.CloudTrailEvent)))
		if err != nil {
			h.bad++
			continue
		}
		recs = append(recs, r)
	}
	return recs, out.NextToken, nil
}

// ReadAppended returns the next records of the range, up to about limit
// (whole pages); after is ignored (one pass). It returns none once the
// range is read.
func (h *History) ReadAppended(ctx context.Context, _ int64, limit int) ([]audit.Appended, error) {
	var out []audit.Appended
	for !h.done && len(out) < limit {
		recs, next, err := h.page(ctx, lookupInput(h.start, h.end, nil, h.next))
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			h.seq++
			out = append(out, audit.Appended{Seq: h.seq, Record: r})
		}
		h.next, h.done = next, next == nil
	}
	return out, nil
}

// Lookup returns the records of q's range and attributes as one page, at
// most about 20,000 (whole pages); q's limit and cursor are ignored.
func (h *History) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	var p audit.Page
	var next *string
	for len(p.Records) < maxLookup {
		recs, n, err := h.page(ctx, lookupInput(q.Start, q.End, q.Attributes, next))
		if err != nil {
			return p, err
		}
		p.Records = append(p.Records, recs...)
		if next = n; next == nil {
			break
		}
	}
	return p, nil
}
