package main

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/lake"
)

// remoteFlags are the flags of commands that can work through a server.
type remoteFlags struct {
	dataDir, config, endpoint, region, account string
	// memLog is import's --memlog: with --into and no server, where the
	// load's memory by part goes (startLakeMemLog).
	memLog string
	// lakeMemory, when set, bounds lake.memory_limit (an offline load:
	// loadMemoryLimit).
	lakeMemory string
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.dataDir, "data-dir", defaultDataDir, "data dir (when a server holds it, cairn goes through that server)")
	fs.StringVar(&r.config, "config", "", "config file (YAML)")
	fs.StringVar(&r.endpoint, "endpoint-url", "", "go through the cairn server at this URL (AWS credential variables apply)")
	fs.StringVar(&r.region, "region", "", "region for signing with --endpoint-url (default: from the AWS environment, else us-east-1)")
	fs.StringVar(&r.account, "account", "", "account whose event data stores are used without a server (default: the config's first)")
}

// client returns a client of the server at endpoint.
func (r *remoteFlags) client(ctx context.Context, endpoint string) (*client.Client, error) {
	return client.New(ctx, client.Config{Endpoint: endpoint, Region: r.region})
}

// local opens the data dir's Lake and names the account to act as; bks
// are the config's buckets (s3:// import sources).
func (r *remoteFlags) local(stderr io.Writer) (lk *lake.Lake, acct string, bks buckets, err error) {
	log, _ := newLogger(stderr, "text", "warn")
	cfg, err := loadConfig(r.config, r.dataDir, log, stderr)
	if err != nil {
		return nil, "", nil, err
	}
	if r.lakeMemory != "" {
		cfg.Lake.MemoryLimit = config.LowerSize(cfg.Lake.MemoryLimit, r.lakeMemory)
	}
	acct = r.account
	if acct == "" && len(cfg.Accounts) > 0 {
		acct = cfg.Accounts[0].ID
	}
	if bks, err = openBuckets(cfg, r.dataDir); err != nil {
		return nil, "", nil, err
	}
	lk, err = openLake(context.Background(), r.dataDir, cfg, log, bks, nil, nil, lakeCluster{})
	return lk, acct, bks, err
}

// endpointFor returns --endpoint-url, else the endpoint of a server holding
// the data dir, else "".
func (r *remoteFlags) endpointFor() string {
	if r.endpoint != "" {
		return r.endpoint
	}
	return serverHolding(r.dataDir)
}

func queryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn query", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var r remoteFlags
	r.register(fs)
	output := fs.String("output", "table", "output format: table, json or csv")
	timeout := fs.Duration("timeout", time.Hour, "give up waiting for the query after this long")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn query [flags] \"SELECT ... FROM <event data store ID> ...\"\n\nRuns a CloudTrail Lake SQL query (docs/lake.md).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"query needs exactly one SQL statement (quote it)"}
	}
	if *output != "table" && *output != "json" && *output != "csv" {
		return usageError{fmt.Sprintf("--output %q: want table, json or csv", *output)}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	stmt := fs.Arg(0)
	var res *lake.Result
	if ep := r.endpointFor(); ep != "" {
		c, err := r.client(ctx, ep)
		if err != nil {
			return err
		}
		qr, err := c.Query(ctx, stmt)
		if err != nil {
			return err
		}
		res = &lake.Result{Columns: qr.Columns, Rows: qr.Rows}
	} else {
		if _, err := os.Stat(r.dataDir); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		lk, acct, _, err := r.local(stderr)
		if err != nil {
			return err
		}
		defer lk.Close()
		if res, err = lk.Query(ctx, acct, stmt); err != nil {
			var ae *audit.Error
			if errors.As(err, &ae) {
				return fmt.Errorf("%sException: %s", ae.Code, ae.Message)
			}
			return err
		}
	}
	return printResult(stdout, *output, res)
}

func printResult(w io.Writer, format string, res *lake.Result) error {
	cell := func(v *string) string {
		if v == nil {
			return ""
		}
		return *v
	}
	switch format {
	case "json":
		out := make([]map[string]any, 0, len(res.Rows))
		for _, r := range res.Rows {
			m := map[string]any{}
			for i, v := range r {
				if v == nil {
					m[res.Columns[i]] = nil
				} else {
					m[res.Columns[i]] = *v
				}
			}
			out = append(out, m)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"Columns": res.Columns, "Rows": out})
	case "csv":
		cw := csv.NewWriter(w)
		cw.Write(res.Columns)
		for _, r := range res.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v)
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(res.Columns, "\t"))
	for _, r := range res.Rows {
		rec := make([]string, len(r))
		for i, v := range r {
			rec[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cell(v))
		}
		fmt.Fprintln(tw, strings.Join(rec, "\t"))
	}
	return tw.Flush()
}

// importInto imports PATHs into an event data store: through a server
// (StartImport of each path, which must be under its lake.import_roots),
// or straight into the data dir's Lake.
func importInto(ctx context.Context, r remoteFlags, into string, paths []string, opts importer.Options, output string, stdout, stderr io.Writer) error {
	if ep := r.endpointFor(); ep != "" {
		if r.memLog != "" {
			// The load runs in the server, whose memory this process
			// cannot see: say so rather than write nothing silently.
			fmt.Fprintf(stderr, "cairn: --memlog: the load runs in the server at %s; %s is not written (run the import with --data-dir and no server to log its memory)\n", ep, r.memLog)
		}
		c, err := r.client(ctx, ep)
		if err != nil {
			return err
		}
		failed := 0
		for _, p := range paths {
			uri := p
			if !strings.HasPrefix(p, "s3://") {
				abs, err := filepath.Abs(p)
				if err != nil {
					return err
				}
				uri = "file://" + abs
			}
			res, err := c.Import(ctx, into, uri)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\tfiles %d\tevents %d\tfailed %d\n", res.ID, res.Status, p, res.Files, res.Events, res.Failed)
			if !res.OK() {
				failed++
				for _, x := range res.Failures {
					fmt.Fprintf(stderr, "cairn: %s: %s\n", x.Location, x.Message)
				}
			}
		}
		if failed > 0 {
			return fmt.Errorf("%d of %d imports had failures", failed, len(paths))
		}
		return nil
	}
	if _, err := os.Stat(r.dataDir); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	r.lakeMemory = loadMemoryLimit
	lk, acct, bks, err := r.local(stderr)
	if err != nil {
		return err
	}
	defer lk.Close()
	sink, err := lk.NewSink(ctx, acct, []string{into})
	if err != nil {
		var ae *audit.Error
		if errors.As(err, &ae) {
			return fmt.Errorf("%sException: %s", ae.Code, ae.Message)
		}
		return err
	}
	opts.Sink, opts.Accounts, opts.MinTime = sink, sink.Accounts, sink.MinTime()
	if r.memLog != "" {
		stop, err := startLakeMemLog(r.memLog, sink)
		if err != nil {
			return err
		}
		defer stop()
	}
	// Go's share of issue 15's 1 GB, as an offline import into Event
	// History's: the heap no more than 384 MiB while what is live (the
	// seen set, 21 bytes an event of the store and the load; the records
	// in flight) leaves it room (limitGoMemory).
	defer limitGoMemory()()
	// and collected at GOGC loadGoGC: the load's live heap is small.
	defer new(loadGC).lower()()
	// Each source's load ends with its last transactions committed
	// (lake.Sink.Finish); their failure is the source's.
	finished := func(rep importer.Report, err error) (importer.Report, error) {
		if ferr := sink.Finish(ctx); ferr != nil && err == nil {
			err = ferr
		}
		return rep, err
	}
	opts.Appenders, opts.FlushInterval = cmp.Or(loadAppendersFromEnv(), lake.LoadAppenders), lake.LoadFlushInterval
	opts.BatchSize = lake.LoadBatchOf(opts.Appenders)
	var local []string
	var outcome error
	// each source is reported on its own; the worst outcome decides
	// the exit status
	report := func(rep importer.Report, err error) bool {
		if e := importOutcome(stdout, stderr, output, rep, err); e != nil {
			var prev, cur exitError
			if outcome == nil || errors.As(e, &cur) && errors.As(outcome, &prev) && cur.code > prev.code {
				outcome = e
			}
		}
		return err == nil
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "s3://") {
			local = append(local, p)
			continue
		}
		name, prefix, err := importer.ParseS3URI(p)
		if err != nil {
			return err
		}
		b, ok := bks[name]
		if !ok {
			return fmt.Errorf("%s: the bucket %s is not one of the buckets in the config", p, name)
		}
		if err := b.Check(ctx); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if !report(finished(importer.RunObjects(ctx, b, name, prefix, opts))) {
			return outcome
		}
	}
	if len(local) > 0 {
		report(finished(importer.Run(ctx, local, opts)))
	}
	return outcome
}
