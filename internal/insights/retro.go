package insights

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// RetroOptions scope a retro run.
type RetroOptions struct {
	// Account and Region select the history analysed; "" means every one.
	Account, Region string
	// Start and End bound the Insights reported (Start of the Insight in
	// [Start, End)); zero means unbounded. The 7 days before Start are read
	// as the baseline.
	Start, End time.Time
	Params     Params
	// DryRun finds and reports Insights without storing them.
	DryRun bool
	// Progress, when set, is called after every batch read from the store.
	Progress func(read int64)
}

// RetroResult is what a retro run found and stored.
type RetroResult struct {
	Records  int64 // records read from the store
	Analysed int64 // of them, in scope and analysed
	Late     int64
	Insights []Insight
	Stored   int // Insights records newly stored
	Already  int // Insights records that were already stored
}

// Retro runs the detector over the history a store holds (imported logs
// included, whatever the order they were imported in) and stores the
// Insights records it finds, so that a responder gets Insights on an account
// that never enabled them. Running it twice stores nothing new.
//
// It reads the whole append feed once, keeps the in-scope observations
// (about 100 bytes each, strings shared) and sorts them by event time, so
// that the result does not depend on import order.
func Retro(ctx context.Context, feed Feed, history Lookuper, sink Sink, opts RetroOptions) (RetroResult, error) {
	var res RetroResult
	from := time.Time{}
	if !opts.Start.IsZero() {
		from = opts.Start.Add(-hoursKept * time.Hour)
	}
	intern := map[string]string{}
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		intern[s] = s
		return s
	}
	var obs []Observation
	var pos int64
	for {
		batch, err := feed.ReadAppended(ctx, pos, batchSize)
		if err != nil {
			return res, fmt.Errorf("insights: reading the store: %w", err)
		}
		for _, a := range batch {
			pos = a.Seq
			res.Records++
			r := a.Record
			if opts.Account != "" && r.Account != opts.Account || opts.Region != "" && r.Region != opts.Region ||
				!from.IsZero() && r.Time.Before(from) || !opts.End.IsZero() && !r.Time.Before(opts.End) {
				continue
			}
			o, ok := Observe(r)
			if !ok {
				continue
			}
			o.Account, o.Region, o.EventSource, o.EventName, o.ErrorCode =
				in(o.Account), in(o.Region), in(o.EventSource), in(o.EventName), in(o.ErrorCode)
			obs = append(obs, o)
		}
		if opts.Progress != nil {
			opts.Progress(res.Records)
		}
		if len(batch) < batchSize {
			break
		}
	}
	slices.SortStableFunc(obs, func(a, b Observation) int { return a.Time.Compare(b.Time) })
	res.Analysed = int64(len(obs))
	var found []Insight
	det, err := NewDetector(opts.Params, func(i Insight) {
		if (opts.Start.IsZero() || !i.Start.Before(opts.Start)) && (opts.End.IsZero() || i.Start.Before(opts.End)) {
			found = append(found, i)
		}
	})
	if err != nil {
		return res, err
	}
	for _, o := range obs {
		det.Observe(o)
	}
	if len(obs) > 0 {
		// judge every minute up to the last record; an Insight still
		// unusual then stays open (a Start without an End)
		det.Flush(obs[len(obs)-1].Time.Add(opts.Params.Lateness + time.Minute))
	}
	res.Late = det.Stats().Late
	res.Insights = found
	if opts.DryRun || len(found) == 0 {
		return res, nil
	}
	recs := make([]audit.Record, 0, len(found))
	for _, i := range found {
		attrs, err := Attributions(ctx, history, i)
		if err != nil {
			return res, fmt.Errorf("insights: attributions: %w", err)
		}
		rec, err := Record(i, attrs)
		if err != nil {
			return res, err
		}
		recs = append(recs, rec)
	}
	ar, err := sink.Append(ctx, recs)
	if err != nil {
		return res, fmt.Errorf("insights: storing: %w", err)
	}
	res.Stored, res.Already = ar.Inserted, ar.Duplicates
	return res, nil
}
