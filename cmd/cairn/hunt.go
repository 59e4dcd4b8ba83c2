package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/sigma"
	"github.com/cairn-audit/cairn/internal/sigma/builtin"
	"github.com/cairn-audit/cairn/internal/sigma/who"
)

// huntLookback is how much history before --start-time the stateful
// hunts read as their baseline at least (the new-principal hunt's 7 days;
// the config's hunts.new_principal_baseline when longer).
const huntLookback = 7 * 24 * time.Hour

// historyFlags are the flags of the commands that read all of Event
// History (hunt, who).
type historyFlags struct {
	dataDir, config, endpoint, region string
	start, end                        string
	maxRecords                        int
	noProgress                        bool
}

func (h *historyFlags) register(fs *flag.FlagSet, configHelp string) {
	fs.StringVar(&h.dataDir, "data-dir", defaultDataDir, "data dir whose Event History is read, every account and region (when a server holds it, cairn goes through that server)")
	fs.StringVar(&h.config, "config", "", configHelp)
	fs.StringVar(&h.endpoint, "endpoint-url", "", "read Event History through the cairn server at this URL with LookupEvents: what the caller's key may read, in --region (AWS credential variables apply)")
	fs.StringVar(&h.region, "region", "", "region for signing with --endpoint-url (default: from the AWS environment, else us-east-1)")
	fs.StringVar(&h.start, "start-time", "", "only events at or after this time (RFC 3339 or YYYY-MM-DD)")
	fs.StringVar(&h.end, "end-time", "", "only events before this time (RFC 3339 or YYYY-MM-DD)")
	fs.IntVar(&h.maxRecords, "max-records", 1_000_000, "with --endpoint-url: records read into memory at most (LookupEvents returns newest first; they are put in time order); narrow the time range past it")
	fs.BoolVar(&h.noProgress, "no-progress", false, "do not show progress on stderr")
}

// window parses --start-time and --end-time.
func (h *historyFlags) window() (start, end time.Time, err error) {
	if start, err = parseWhen("--start-time", h.start); err != nil {
		return
	}
	if end, err = parseWhen("--end-time", h.end); err != nil {
		return
	}
	if !start.IsZero() && !end.IsZero() && !end.After(start) {
		err = usageError{"--end-time must be after --start-time"}
	}
	if h.maxRecords < 1 {
		err = usageError{fmt.Sprintf("--max-records %d: want 1 or more", h.maxRecords)}
	}
	return
}

// readHistory calls batch with the raw records of Event History whose
// eventTime is in [from, to) (zero: unbounded), in batches: offline every
// account and region of the data dir in the order they were stored;
// through a server (--endpoint-url or the one holding the data dir) what
// LookupEvents gives the caller, oldest first. It calls progress with the
// records read so far.
func (h *historyFlags) readHistory(ctx context.Context, stderr io.Writer, from, to time.Time,
	progress func(read int64), batch func(recs []sigma.Input) error) error {
	ep := h.endpoint
	if ep == "" {
		if ep = serverHolding(h.dataDir); ep != "" {
			fmt.Fprintf(stderr, "cairn: the cairn server at %s holds %s; reading through it (AWS credential variables apply)\n", ep, h.dataDir)
		}
	}
	inRange := func(t time.Time) bool {
		return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to))
	}
	if ep != "" {
		c, err := client.New(ctx, client.Config{Endpoint: ep, Region: h.region})
		if err != nil {
			return err
		}
		hist := c.History(from, to)
		var recs []audit.Record
		for {
			page, err := hist.ReadAppended(ctx, 0, 1000)
			if err != nil {
				return err
			}
			if len(page) == 0 {
				break
			}
			for _, a := range page {
				recs = append(recs, a.Record)
			}
			if len(recs) > h.maxRecords {
				return usageError{fmt.Sprintf("more than %d records between --start-time and --end-time: narrow the range or raise --max-records", h.maxRecords)}
			}
			if progress != nil {
				progress(int64(len(recs)))
			}
		}
		if n := hist.Unreadable(); n > 0 {
			fmt.Fprintf(stderr, "cairn: %d records returned by LookupEvents were not CloudTrail records; skipped\n", n)
		}
		// newest first: put them in time order
		slices.SortStableFunc(recs, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
		for i := 0; i < len(recs); i += 1000 {
			raws := make([]sigma.Input, 0, 1000)
			for _, r := range recs[i:min(i+1000, len(recs))] {
				raws = append(raws, sigma.Input{Raw: r.Raw, EventName: r.EventName})
			}
			if err := batch(raws); err != nil {
				return err
			}
		}
		return nil
	}
	if _, err := os.Stat(h.dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	// Reading creates nothing: without --config no account or key is
	// generated in the data dir (as serve and import would).
	cfg := &config.Config{}
	if h.config != "" {
		var err error
		if cfg, err = config.Load(h.config); err != nil {
			return err
		}
	}
	log, _ := newLogger(stderr, "text", "warn")
	store, err := openStore(ctx, cfg, h.dataDir, log, false)
	if err != nil {
		return err
	}
	defer store.Close()
	// A whole-history read needs no large buffer pool (the DuckDB store
	// otherwise caches every block it reads: RSS as large as the file).
	if lm, ok := store.(interface {
		LimitFeedMemory(context.Context, int64) error
	}); ok {
		if err := lm.LimitFeedMemory(ctx, feedMemory); err != nil {
			return err
		}
	}
	// One goroutine reads the store (queries, decompression, rows) while
	// batch runs on the page before: the two overlap on separate cores.
	type page struct {
		recs []sigma.Input
		read int64
		last bool
		err  error
	}
	pages := make(chan page, 2)
	rctx, cancel := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	defer func() {
		cancel()
		<-readerDone // before the store closes
	}()
	go func() {
		defer close(readerDone)
		defer close(pages)
		var pos, read int64
		// The lean read when the store has it (DuckDB): the JSON and
		// eventName, not the whole Record.
		readPage := func() ([]audit.RawAppended, error) {
			if rf, ok := store.(audit.RawFeed); ok {
				return rf.ReadRaw(rctx, pos, historyPage)
			}
			got, err := store.ReadAppended(rctx, pos, historyPage)
			out := make([]audit.RawAppended, len(got))
			for i, a := range got {
				out[i] = audit.RawAppended{Seq: a.Seq, Time: a.Record.Time, EventName: a.Record.EventName, Raw: a.Record.Raw}
			}
			return out, err
		}
		for {
			got, err := readPage()
			if err != nil {
				pages <- page{err: fmt.Errorf("reading the store: %w", err)}
				return
			}
			raws := make([]sigma.Input, 0, len(got))
			for _, a := range got {
				pos = a.Seq
				read++
				if inRange(a.Time) {
					raws = append(raws, sigma.Input{Raw: a.Raw, EventName: a.EventName})
				}
			}
			last := len(got) < historyPage
			select {
			case pages <- page{recs: raws, read: read, last: last}:
			case <-rctx.Done():
				return
			}
			if last {
				return
			}
		}
	}()
	for p := range pages {
		if p.err != nil {
			return p.err
		}
		if len(p.recs) > 0 {
			if err := batch(p.recs); err != nil {
				return err
			}
		}
		if progress != nil {
			progress(p.read)
		}
		if p.last {
			return nil
		}
	}
	return ctx.Err()
}

// historyPage is how many records readHistory asks the store for at a
// time. Each page costs the store a query or two, whatever its size: at
// 2,000 the queries were 11% of a hunt's CPU at 1M, at 8,192 6.5%.
// DuckDB also reads a page's record blocks faster in one larger range
// (at 10M the blocks' fetch took 11.4 CPU s in pages of 8,192, 8.8 in
// pages of 32,768). A page holds about 25 MB of JSON; with two waiting
// and the ones matched and emitted, the 10M hunt's RSS was 0.81 GB
// (1.04–1.06 GB at 32,768, 0.74 GB at 8,192). docs/benchmarks.md.
const historyPage = 16384

// feedMemory is the DuckDB buffer pool of a whole-history read.
const feedMemory = 256 << 20

// progressFunc shows progress on stderr (a redrawn line), or nothing.
func progressFunc(stderr io.Writer, off bool, began time.Time, what func() string) (show func(int64), done func()) {
	if off {
		return nil, func() {}
	}
	shown := false
	last := time.Time{}
	show = func(n int64) {
		if time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		shown = true
		fmt.Fprintf(stderr, "\rcairn: read %d records%s (%.0fs)", n, what(), time.Since(began).Seconds())
	}
	return show, func() {
		if shown {
			fmt.Fprintln(stderr)
		}
	}
}

// stringsFlag is a flag that may be repeated.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

const huntExitStatus = `
Exit status: 0 the hunt ran (whatever it found), 1 an error, 2 a mistake in the
command line or no rule to run, 3 the hunt ran but some rule files were refused
(each named on stderr with its line and reason).
`

func huntCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn hunt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var h historyFlags
	h.register(fs, "config file (YAML), checked as serve checks it when given; its detections.hunts section sets the built-in stateful hunts' parameters")
	var rulePaths stringsFlag
	fs.Var(&rulePaths, "rules", "Sigma rule file or folder (walked recursively); may be repeated")
	useBuiltin := fs.Bool("builtin", false, "run cairn's built-in hunts (docs/hunting.md)")
	output := fs.String("output", "table", "output format: table, json (one finding per line) or csv")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the hunt to this file (go tool pprof)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn hunt [--rules FOLDER_OR_FILE]... [--builtin] [flags]\n\nRuns Sigma rules (and with --builtin cairn's built-in hunts) over Event History and\nprints the findings (docs/hunting.md).\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), huntExitStatus)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("hunt takes no arguments, got %q (rules are given with --rules)", fs.Arg(0))}
	}
	if len(rulePaths) == 0 && !*useBuiltin {
		return usageError{"nothing to hunt with: give --rules FOLDER_OR_FILE or --builtin"}
	}
	if *output != "table" && *output != "json" && *output != "csv" {
		return usageError{fmt.Sprintf("--output %q: want table, json or csv", *output)}
	}
	start, end, err := h.window()
	if err != nil {
		return err
	}
	hunt := sigma.Hunt{}
	refused := 0
	lookback := huntLookback
	for _, p := range rulePaths {
		if _, err := os.Stat(p); err != nil {
			return usageError{fmt.Sprintf("--rules %s: %v", p, errors.Unwrap(err))}
		}
		rules, errs := sigma.Load(sigma.Config{}, p)
		for _, e := range errs {
			fmt.Fprintln(stderr, "cairn: rule refused:", e)
		}
		refused += len(errs)
		hunt.Rules = append(hunt.Rules, rules...)
	}
	if *useBuiltin {
		rules, err := builtin.Rules()
		if err != nil {
			return err
		}
		hunt.Rules = append(hunt.Rules, rules...)
		params := config.DefaultHunts()
		if h.config != "" {
			cfg, err := config.Load(h.config)
			if err != nil {
				return err
			}
			if cfg.Detections != nil {
				params = cfg.Detections.Hunts
			}
		}
		hunt.Stateful = builtin.Stateful(huntParams(params))
		if params.NewPrincipalBaseline > lookback {
			lookback = params.NewPrincipalBaseline
		}
	}
	if len(hunt.Rules) == 0 && len(hunt.Stateful) == 0 {
		return usageError{fmt.Sprintf("no rule loaded (%d refused)", refused)}
	}
	// The stateful hunts read the week before --start-time as their
	// baseline; findings are reported in [start, end) only.
	from := start
	if !start.IsZero() && len(hunt.Stateful) > 0 {
		from = start.Add(-lookback)
	}
	if !start.IsZero() {
		hunt.Report = func(r sigma.Record) bool {
			t, err := time.Parse(time.RFC3339, r.Str("eventTime"))
			return err != nil || !t.Before(start)
		}
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	began := time.Now()
	var found atomic.Int64
	bad := 0
	var read int64
	show0, done := progressFunc(stderr, h.noProgress, began, func() string { return fmt.Sprintf(", %d findings", found.Load()) })
	show := func(n int64) {
		read = n
		if show0 != nil {
			show0(n)
		}
	}
	out := newFindingWriter(stdout, *output)
	workers := runtime.GOMAXPROCS(0)
	// Three stages on their own goroutines, so that both cores stay busy:
	// readHistory's reader (queries, decompression), the decoding and the
	// rules (MatchBatch, on every core), and here the stateful hunts and
	// the findings' output (Emit, serial: a record's place in the order
	// matters to the stateful hunts), one batch behind the rules.
	matched := make(chan *sigma.Matched, 1)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		for m := range matched {
			bad += m.Emit(func(f sigma.Finding) {
				found.Add(1)
				out.write(f)
			})
			out.sync() // a batch's findings at once, not a write each
		}
	}()
	err = h.readHistory(ctx, stderr, from, end, show, func(raws []sigma.Input) error {
		matched <- hunt.MatchBatch(raws, workers)
		return ctx.Err()
	})
	close(matched)
	<-emitted
	done()
	if err != nil {
		out.sync()
		return err
	}
	out.flush(int(found.Load()))
	if bad > 0 {
		fmt.Fprintf(stderr, "cairn: %d stored records were not JSON objects; skipped\n", bad)
	}
	if !h.noProgress {
		fmt.Fprintf(stderr, "cairn: %d findings in %d records read, from %d rules and %d stateful hunts, in %.1fs\n", found.Load(), read, len(hunt.Rules), len(hunt.Stateful), time.Since(began).Seconds())
	}
	if refused > 0 {
		return exitError{code: 3, err: fmt.Errorf("%d rule files refused (see above); the others ran", refused)}
	}
	return nil
}

// findingWriter prints findings as they come (json, csv) or at the end
// (table, aligned).
type findingWriter struct {
	w      *bufio.Writer
	format string
	enc    *json.Encoder
	csv    *csv.Writer
	rows   []sigma.Finding
	buf    []byte // appendFindingJSON's
}

// appendFindingJSON appends what json.Encoder writes for f (its JSON and a
// newline) to dst without reflection: a retro hunt writes millions of
// findings (3.3M at 10M events, where Encode was 7% of the CPU). A
// string with a byte JSON escapes (quote, backslash, control, <, >, &,
// beyond ASCII) is written by json.Marshal, so the bytes are Encode's;
// false for what it would not write as Encode does (a time whose year
// has not four digits), for Encode to write it.
// TestFindingJSONLikeEncode holds it to Encode.
func appendFindingJSON(dst []byte, f *sigma.Finding) ([]byte, bool) {
	if y := f.EventTime.Year(); y < 0 || y > 9999 {
		return dst, false
	}
	dst = append(dst, `{"ruleId":`...)
	dst = appendJSONString(dst, f.RuleID)
	dst = append(dst, `,"title":`...)
	dst = appendJSONString(dst, f.Title)
	dst = append(dst, `,"level":`...)
	dst = appendJSONString(dst, f.Level)
	dst = append(dst, `,"tags":`...)
	if f.Tags == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, t := range f.Tags {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, t)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"eventID":`...)
	dst = appendJSONString(dst, f.EventID)
	dst = append(dst, `,"eventTime":"`...)
	dst = f.EventTime.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","eventSource":`...)
	dst = appendJSONString(dst, f.EventSource)
	dst = append(dst, `,"eventName":`...)
	dst = appendJSONString(dst, f.EventName)
	dst = append(dst, `,"recipientAccountId":`...)
	dst = appendJSONString(dst, f.Account)
	dst = append(dst, `,"awsRegion":`...)
	dst = appendJSONString(dst, f.Region)
	dst = append(dst, `,"principal":`...)
	dst = appendJSONString(dst, f.Principal)
	if f.Detail != "" {
		dst = append(dst, `,"detail":`...)
		dst = appendJSONString(dst, f.Detail)
	}
	return append(dst, "}\n"...), true
}

// appendJSONString appends s as json.Marshal writes it (HTML escaped).
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

var findingColumns = []string{"eventTime", "level", "title", "eventName", "recipientAccountId", "awsRegion", "principal", "eventID", "ruleId", "detail"}

func newFindingWriter(w io.Writer, format string) *findingWriter {
	fw := &findingWriter{w: bufio.NewWriterSize(w, 64<<10), format: format}
	switch format {
	case "json":
		fw.enc = json.NewEncoder(fw.w)
	case "csv":
		fw.csv = csv.NewWriter(fw.w)
		fw.csv.Write(findingColumns)
	}
	return fw
}

func findingCells(f sigma.Finding) []string {
	return []string{audit.FormatTime(f.EventTime), f.Level, f.Title, f.EventName, f.Account, f.Region, f.Principal, f.EventID, f.RuleID, f.Detail}
}

func (fw *findingWriter) write(f sigma.Finding) {
	switch fw.format {
	case "json":
		if b, ok := appendFindingJSON(fw.buf[:0], &f); ok {
			fw.buf = b
			fw.w.Write(b)
			return
		}
		fw.enc.Encode(f)
	case "csv":
		cells := findingCells(f)
		for i, c := range cells {
			cells[i] = csvSafe(c)
		}
		fw.csv.Write(cells)
	default:
		fw.rows = append(fw.rows, f)
	}
}

// csvSafe keeps a cell from being read as a formula by a spreadsheet
// (values come from records: hostile).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// tableSafe keeps a cell on one line and free of terminal escapes.
func tableSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return '?'
		}
		return r
	}, s)
}

// sync writes out the findings written so far (json, csv).
func (fw *findingWriter) sync() {
	if fw.csv != nil {
		fw.csv.Flush()
	}
	fw.w.Flush()
}

func (fw *findingWriter) flush(found int) {
	defer fw.w.Flush()
	switch fw.format {
	case "csv":
		fw.csv.Flush()
	case "table":
		slices.SortStableFunc(fw.rows, func(a, b sigma.Finding) int { return a.EventTime.Compare(b.EventTime) })
		tw := tabwriter.NewWriter(fw.w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "EventTime\tLevel\tTitle\tEventName\tAccount\tRegion\tPrincipal\tEventID")
		for _, f := range fw.rows {
			c := findingCells(f)
			for i := range c {
				c[i] = tableSafe(dash(c[i]))
			}
			fmt.Fprintln(tw, strings.Join(c[:8], "\t"))
		}
		tw.Flush()
		fmt.Fprintf(fw.w, "%d findings\n", found)
	}
}

func whoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn who", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var h historyFlags
	h.register(fs, "config file (YAML), checked as serve checks it when given")
	output := fs.String("output", "table", "output format: table or json")
	limit := fs.Int("limit", 200, "calls of the timeline printed as a table, the latest (0: all); json prints every call kept")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn who [flags] PRINCIPAL\n\nPRINCIPAL is an access key ID (AKIA..., ASIA...), a user, role or assumed-role ARN,\nor a user name. Prints its calls across accounts and regions as a timeline, with a\nsummary: services, regions, write calls, errors, source addresses, user agents, the\nkeys and sessions it used and the roles it assumed (docs/hunting.md). Calls made\nwith session credentials it obtained (AssumeRole, GetSessionToken,\nGetFederationToken) count as its own.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// The principal may come before, between or after the flags.
	var arg []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		arg, args = append(arg, fs.Arg(0)), fs.Args()[1:]
	}
	if len(arg) != 1 {
		return usageError{"who needs exactly one PRINCIPAL (an access key ID, a user or role ARN, or a user name)"}
	}
	if *output != "table" && *output != "json" {
		return usageError{fmt.Sprintf("--output %q: want table or json", *output)}
	}
	if *limit < 0 {
		return usageError{fmt.Sprintf("--limit %d: want 0 or more", *limit)}
	}
	p, err := who.Parse(arg[0])
	if err != nil {
		return usageError{err.Error()}
	}
	start, end, err := h.window()
	if err != nil {
		return err
	}
	prof := who.New(p, who.Config{})
	began := time.Now()
	show, done := progressFunc(stderr, h.noProgress, began, func() string { return "" })
	pass := func(observe func(sigma.Record)) error {
		return h.readHistory(ctx, stderr, start, end, show, func(raws []sigma.Input) error {
			for _, raw := range raws {
				if r, err := sigma.DecodeRecord(raw.Raw); err == nil {
					observe(r)
				}
			}
			return ctx.Err()
		})
	}
	err = pass(prof.Observe)
	if err == nil && prof.HasSessions() {
		// the calls of its sessions read before the session was
		err = pass(prof.ObserveSessions)
	}
	done()
	if err != nil {
		return err
	}
	rep := prof.Report()
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	printWho(stdout, rep, *limit)
	return nil
}

func printWho(w io.Writer, rep who.Report, limit int) {
	s := rep.Summary
	fmt.Fprintf(w, "Principal: %s\n", tableSafe(rep.Principal))
	if s.Calls == 0 {
		fmt.Fprintln(w, "No calls found.")
		return
	}
	fmt.Fprintf(w, "Calls: %d (%d write, %d failed) from %s to %s\n", s.Calls, s.WriteCalls, s.ErrorCalls,
		audit.FormatTime(s.First), audit.FormatTime(s.Last))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(name string, cs []who.Count) {
		if len(cs) == 0 {
			fmt.Fprintf(tw, "%s\t-\n", name)
			return
		}
		var parts []string
		for i, c := range cs {
			if i == 10 {
				parts = append(parts, fmt.Sprintf("… %d more", len(cs)-10))
				break
			}
			parts = append(parts, fmt.Sprintf("%s (%d)", tableSafe(c.Value), c.Calls))
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, strings.Join(parts, ", "))
	}
	line("Identities", s.Identities)
	line("Accounts", s.Accounts)
	line("Regions", s.Regions)
	line("Services", s.Services)
	line("Errors", s.Errors)
	line("Source IPs", s.SourceIPs)
	line("User agents", s.UserAgents)
	line("Access keys", s.AccessKeys)
	line("Sessions obtained", s.Sessions)
	line("Roles assumed", s.RolesAssumed)
	tw.Flush()
	fmt.Fprintln(w)
	tl := rep.Timeline
	if limit > 0 && len(tl) > limit {
		fmt.Fprintf(w, "Timeline: the latest %d of %d calls (--limit 0 for all)\n", limit, len(tl)+rep.NotListed)
		tl = tl[len(tl)-limit:]
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "EventTime\tAccount\tRegion\tEventSource\tEventName\tWrite\tError\tSourceIP\tAccessKey\tEventID")
	for _, e := range tl {
		write := "-"
		if e.ReadOnly != nil {
			write = map[bool]string{true: "no", false: "yes"}[*e.ReadOnly]
		}
		cells := []string{audit.FormatTime(e.EventTime), e.Account, e.Region, e.EventSource, e.EventName, write, dash(e.ErrorCode),
			dash(e.SourceIP), dash(e.AccessKeyID), e.EventID}
		for i := range cells {
			cells[i] = tableSafe(cells[i])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}
