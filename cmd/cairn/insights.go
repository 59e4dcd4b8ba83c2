package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/insights"
)

// insightsStateFile is where the live runner saves its state in a data
// dir (and an offline import, insights.Importing).
const insightsStateFile = "insights.state"

// insightParams maps the config's insights section to detector parameters.
func insightParams(c config.Insights) insights.Params {
	p := insights.Params{
		Lateness: c.Lateness, WarmUp: c.WarmUp, Ratio: c.Ratio, Z: c.Z, MinCount: c.MinCount,
		StartMinutes: c.StartMinutes, EndMinutes: c.EndMinutes, MaxSeries: c.MaxSeries,
		DecreaseWindow: c.Decreases.WindowMinutes, DecreaseRatio: c.Decreases.Ratio, DecreaseMinExpected: c.Decreases.MinExpected,
	}
	for _, m := range c.Decreases.Series {
		p.Decreases = append(p.Decreases, insights.Match{EventSource: m.EventSource, EventName: m.EventName})
	}
	return p
}

// newInsightsRunner returns the live detector the config asks for (nil
// for "off"). It saves its position and state in dataDir/insights.state,
// or in the shared state on PostgreSQL (so that another node resumes
// from it), and resumes from there at the next start. The
// store's commits, when it tells them (the DuckDB store's OnCommitted),
// wake the runner and hand it their observations (commitSignal).
func newInsightsRunner(cfg *config.Config, dataDir string, state audit.StateStore, feed insights.Feed, history insights.Lookuper, sink insights.Sink,
	enabled insights.Enabler, log *slog.Logger, reg prometheus.Registerer, store any) *insights.Runner {
	if cfg.Insights.Live == "off" {
		return nil
	}
	follow := insights.NewFollowing()
	wake := commitSignal(store, follow)
	if wake == nil {
		follow = nil
	}
	rc := insights.RunnerConfig{Feed: feed, Sink: sink, History: history, Params: insightParams(cfg.Insights), Logger: log, Registerer: reg,
		StatePath: filepath.Join(dataDir, insightsStateFile), Wake: wake, Following: follow}
	if shared(state) {
		rc.StatePath, rc.State = "", state
	}
	if cfg.Insights.Live == "all" {
		rc.All = true
	} else {
		rc.Enabled = enabled
	}
	return insights.NewRunner(rc)
}

// wakeRecords is how many records the store commits before it wakes the
// live Insights runner (commitSignal). A bulk import commits thousands at
// a time and must be read from the store's tail before it leaves it; a
// server's own API calls commit a record or a few each, and waking the
// runner for each of those cost LookupEvents at 10M about 4% of its
// throughput (619 against 646 requests/s, session 16): they wait for
// the runner's Poll as before.
const wakeRecords = 1000

// commitSignal returns a channel signalled (without blocking, so at most
// one signal waits) each time store has committed wakeRecords records
// since the last signal, when it tells (the DuckDB store's OnCommitted;
// nil otherwise): the live Insights runner's Wake. follow (nil: none) is
// given every commit: the runner's Following.
func commitSignal(store any, follow *insights.Following) <-chan struct{} {
	st, ok := store.(interface {
		OnCommitted(func(first int64, recs []*audit.Record))
	})
	if !ok {
		return nil
	}
	wake := make(chan struct{}, 1)
	var committed atomic.Int64
	st.OnCommitted(func(first int64, recs []*audit.Record) {
		if follow != nil {
			follow.Committed(first, recs)
		}
		if committed.Add(int64(len(recs))) < wakeRecords {
			return
		}
		committed.Store(0)
		select {
		case wake <- struct{}{}:
		default:
		}
	})
	return wake
}

func insightsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn insights", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "data dir whose history is analysed (when a server holds it, the detector runs in that server)")
	endpoint := fs.String("endpoint-url", "", "run the detector inside the cairn server at this URL instead, over the history of the caller's account in --region (AWS credential variables apply; the server's config sets the parameters)")
	cfgPath := fs.String("config", "", "config file (YAML); its insights section sets the detector's parameters")
	account := fs.String("account", "", "analyse this account only (default: every account)")
	region := fs.String("region", "", "analyse this region only (default: every region)")
	start := fs.String("start", "", "report Insights starting at or after this time (RFC 3339 or YYYY-MM-DD); the 7 days before are the baseline")
	end := fs.String("end", "", "report Insights starting before this time (RFC 3339 or YYYY-MM-DD)")
	dryRun := fs.Bool("dry-run", false, "find and print Insights without storing them")
	output := fs.String("output", "table", "output format: table or json")
	noProgress := fs.Bool("no-progress", false, "do not show progress")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn insights [flags]\n\nRuns the Insights detector over the history stored in a data dir (imported logs\nincluded) and stores the Insights events it finds, visible with\n  aws cloudtrail lookup-events --event-category insight\nRunning it twice stores nothing new.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("insights takes no arguments, got %q", fs.Arg(0))}
	}
	if *output != "table" && *output != "json" {
		return usageError{fmt.Sprintf("--output %q: want table or json", *output)}
	}
	opts := insights.RetroOptions{Account: *account, Region: *region, DryRun: *dryRun}
	var err error
	if opts.Start, err = parseWhen("--start", *start); err != nil {
		return err
	}
	if opts.End, err = parseWhen("--end", *end); err != nil {
		return err
	}
	if !opts.Start.IsZero() && !opts.End.IsZero() && !opts.End.After(opts.Start) {
		return usageError{"--end must be after --start"}
	}
	log, err := newLogger(stderr, *logFormat, "warn")
	if err != nil {
		return err
	}
	began := time.Now()
	if !*noProgress {
		opts.Progress = func(n int64) {
			fmt.Fprintf(stderr, "\rcairn: read %d records (%.0fs)", n, time.Since(began).Seconds())
		}
	}
	finish := func(res insights.RetroResult, err error) error {
		if !*noProgress {
			fmt.Fprintln(stderr)
		}
		if err != nil {
			return err
		}
		printInsights(stdout, *output, res, time.Since(began))
		return nil
	}
	ep := *endpoint
	if ep == "" {
		// As query does: a server holding the data dir runs the detector.
		if ep = serverHolding(*dataDir); ep != "" {
			fmt.Fprintf(stderr, "cairn: the cairn server at %s holds %s; running the detector in it (AWS credential variables apply)\n", ep, *dataDir)
		}
	}
	if ep != "" {
		return insightsRemote(ctx, ep, *region, *cfgPath, opts, *noProgress, stderr, finish)
	}
	if _, err := os.Stat(*dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	cfg, err := loadConfig(*cfgPath, *dataDir, log, stderr)
	if err != nil {
		return err
	}
	opts.Params = insightParams(cfg.Insights)
	if err := opts.Params.Validate(); err != nil {
		return fmt.Errorf("insights parameters: %w", err)
	}
	store, err := openStore(ctx, cfg, *dataDir, log, false)
	if err != nil {
		return err
	}
	defer store.Close()
	return finish(insights.Retro(ctx, store, store, store, opts))
}

// insightsRemote runs the detector inside the server at ep over the
// history of the caller's account in the signed region
// (StartInsightsRun, polled), or, with a server that does not offer it,
// here over the history read through LookupEvents.
func insightsRemote(ctx context.Context, ep, region, cfgPath string, opts insights.RetroOptions, noProgress bool, stderr io.Writer,
	finish func(insights.RetroResult, error) error) error {
	c, err := client.New(ctx, client.Config{Endpoint: ep, Region: region})
	if err != nil {
		return err
	}
	run := client.InsightsRun{Start: opts.Start, End: opts.End, DryRun: opts.DryRun}
	if !noProgress {
		run.Poll = func(d time.Duration) {
			fmt.Fprintf(stderr, "\rcairn: the server is running the detector (%.0fs)", d.Seconds())
		}
	}
	res, err := c.RunInsights(ctx, run)
	var ie *client.ImportError
	if !errors.As(err, &ie) || ie.Code != "UnknownOperationException" && ie.Code != "UnsupportedOperationException" {
		return finish(res, err)
	}
	// An older server: read its history through LookupEvents.
	if cfgPath != "" {
		cfg, err := config.Load(cfgPath)
		if err != nil {
			return err
		}
		opts.Params = insightParams(cfg.Insights)
	} else {
		opts.Params = insights.DefaultParams()
	}
	// The feed reads the 7 days before --start too: the baseline.
	var from time.Time
	if !opts.Start.IsZero() {
		from = opts.Start.Add(-7 * 24 * time.Hour)
	}
	h := c.History(from, opts.End)
	opts.Region = c.Region
	return finish(insights.Retro(ctx, h, h, c.Importer(), opts))
}

// parseWhen reads an RFC 3339 time or a date (midnight UTC).
func parseWhen(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usageError{fmt.Sprintf("%s %q: want an RFC 3339 time (2024-05-01T12:00:00Z) or a date (2024-05-01)", flag, s)}
}

// insightRow is one Insight as `cairn insights` prints it: its Start and, if
// it ended within the history, its End.
type insightRow struct {
	InsightType     string
	EventSource     string
	EventName       string
	ErrorCode       string `json:",omitempty"`
	Direction       string
	Account         string
	Region          string
	StartTime       string
	EndTime         string `json:",omitempty"`
	BaselineAverage float64
	InsightAverage  float64
	SharedEventID   string
}

func printInsights(w io.Writer, format string, res insights.RetroResult, took time.Duration) {
	var rows []insightRow
	index := map[string]int{}
	for _, in := range res.Insights {
		ev := insights.Event(in, nil)
		if i, ok := index[ev.SharedEventID]; ok && in.State == "End" {
			rows[i].EndTime = audit.FormatTime(in.End)
			rows[i].InsightAverage = round2(in.InsightAverage)
			continue
		}
		dir := "increase"
		if in.Decrease {
			dir = "decrease"
		}
		index[ev.SharedEventID] = len(rows)
		rows = append(rows, insightRow{InsightType: in.InsightType, EventSource: in.EventSource, EventName: in.EventName,
			ErrorCode: in.ErrorCode, Direction: dir, Account: in.Account, Region: in.Region, StartTime: audit.FormatTime(in.Start),
			BaselineAverage: round2(in.BaselineAverage), InsightAverage: round2(in.InsightAverage), SharedEventID: ev.SharedEventID})
	}
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if rows == nil {
			rows = []insightRow{}
		}
		enc.Encode(map[string]any{"Insights": rows, "RecordsRead": res.Records, "RecordsAnalysed": res.Analysed,
			"LateRecords": res.Late, "Stored": res.Stored, "AlreadyStored": res.Already, "Seconds": took.Seconds()})
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "StartTime\tEndTime\tInsightType\tEventSource\tEventName\tErrorCode\tDirection\tBaseline/min\tInsight/min\tAccount\tRegion")
	for _, r := range rows {
		end := r.EndTime
		if end == "" {
			end = "(open)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%s\t%s\n", r.StartTime, end, r.InsightType, r.EventSource, r.EventName,
			dash(r.ErrorCode), r.Direction, r.BaselineAverage, r.InsightAverage, r.Account, r.Region)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d Insights in %d records analysed (%d read, %d late); %d records stored, %d already stored; %.1fs\n",
		len(rows), res.Analysed, res.Records, res.Late, res.Stored, res.Already, took.Seconds())
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
