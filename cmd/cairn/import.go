package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// offlineImportBatch is the records per batch of an offline import: twelve
// of them make the store's transaction of DuckDB's row group (122,880
// rows, duckdb.Store.StageGrouped), which DuckDB writes straight to the
// file.
const offlineImportBatch = 10240

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "data dir to import into (no server may hold it)")
	cfgPath := fs.String("config", "", "config file (YAML), checked as serve checks it")
	endpoint := fs.String("endpoint-url", "", "send the records through the cairn server at this URL (AWS credential variables apply)")
	region := fs.String("region", "", "region for signing with --endpoint-url (default: from the AWS environment, else us-east-1)")
	output := fs.String("output", "table", "report format: table, json or text")
	noProgress := fs.Bool("no-progress", false, "do not show progress (shown on stderr: redrawn on a terminal, else a line every 5s)")
	maxErrors := fs.Int("max-errors", 3, "errors shown per file; the rest of a file's are counted")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	into := fs.String("into", "", "import into this CloudTrail Lake event data store (ID or ARN) instead of Event History")
	account := fs.String("account", "", "with --into and no server: the account owning the event data store (default: the config's first)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the import to this file (go tool pprof)")
	traceFile := fs.String("trace", "", "write a runtime trace of the import to this file (go tool trace; -pprof=sync shows which stage waits on which)")
	memLog := fs.String("memlog", "", "write the process's memory by part to this file every 15s, and Go heap profiles beside it (with --into and no server: every 5s, the load's parts; issue 15)")
	noCompact := fs.Bool("no-compact", false, "do not compact the store after an offline import that made at least half of it (see cairn compact)")
	noSeal := fs.Bool("no-seal", false, "offline: keep every record in Event History's table instead of sealing the complete days' records into blocks as they are imported (see cairn compact)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn import [flags] PATH...\n\nImports CloudTrail log files (.json, .json.gz, one record per line, lookup-events output)\nand folders of them, recursively, into Event History (or a Lake event data store with\n--into), then prints per account and region what was imported, already there or refused,\nand why. Importing twice adds nothing. With --into, a PATH may also be\ns3://BUCKET/PREFIX, BUCKET one of the config's buckets. When a server holds the data dir,\nthe records go through it (as with --endpoint-url).\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), importExitStatus)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"import needs at least one PATH"}
	}
	if *output != "table" && *output != "json" && *output != "text" {
		return usageError{fmt.Sprintf("--output %q: want table, json or text", *output)}
	}
	log, err := newLogger(stderr, *logFormat, "warn")
	if err != nil {
		return err
	}
	if *maxErrors < 1 {
		return usageError{fmt.Sprintf("--max-errors %d: want 1 or more", *maxErrors)}
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	if *traceFile != "" {
		stop, err := startTrace(*traceFile)
		if err != nil {
			return err
		}
		defer stop()
	}
	opts := importer.Options{Logger: log, MaxErrorsPerFile: *maxErrors, MaxErrors: max(100, *maxErrors)}
	if !*noProgress {
		opts.Progress = stderr
	}
	if *into != "" {
		r := remoteFlags{dataDir: *dataDir, config: *cfgPath, endpoint: *endpoint, region: *region, account: *account, memLog: *memLog}
		return importInto(ctx, r, *into, fs.Args(), opts, *output, stdout, stderr)
	}
	for _, p := range fs.Args() {
		if strings.HasPrefix(p, "s3://") {
			return usageError{fmt.Sprintf("%s: s3:// sources are imported into CloudTrail Lake (--into STORE)", p)}
		}
	}
	var compactPath string    // set when the import may end with a compaction
	var ins *importInsights   // the Insights detector over the records stored
	compactLimit := func() {} // puts back Go's memory limit before a compaction
	ep := *endpoint
	if ep == "" {
		// As query does: a server holding the data dir is gone through.
		if ep = serverHolding(*dataDir); ep != "" {
			fmt.Fprintf(stderr, "cairn: the cairn server at %s holds %s; importing through it (AWS credential variables apply)\n", ep, *dataDir)
		}
	}
	if ep != "" {
		c, err := client.New(ctx, client.Config{Endpoint: ep, Region: *region})
		if err != nil {
			return err
		}
		// A server pushes back (ThrottlingException) while the store
		// is behind; the import waits for it, up to 10 minutes a call,
		// instead of stopping after 8 tries (about 6 s of backoff: 8
		// files in flight stopped a 1M import; docs/benchmarks.md,
		// session 15).
		opts.Sink = c.BulkImporter(10 * time.Minute)
		// Four batches in flight: each call waits for the server's
		// journal group before it is answered, so one at a time left the
		// server's cores half idle (1M records: 32.7 s with one, 26.9 s
		// with four, quiet machine; docs/benchmarks.md, session 13).
		opts.Appenders = 4
		// Gzip files go whole, each in its own call, from the readers
		// (client.Importer.ImportFile). A server answers a file once its
		// records are stored (no journal write of them), a stage's time
		// rather than an fsync's, so more files are in flight than the
		// four calls of records above: up to 24, as long as they hold
		// at most 128 MiB decompressed (what the server holds for them;
		// 4 files of 64 MiB held up to 256 MiB before; issue 15,
		// session 35, docs/store.md).
		opts.Workers = importFilesInFlight
		opts.FileBytesInFlight = importFileBytesInFlight
	} else {
		noteDataDirInGit(*dataDir, stderr)
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		// The config is checked as serve would; every record is kept,
		// whatever its eventTime: Event History's retention counts from
		// the import (docs/design.md, Retention).
		cfg, err := loadConfig(*cfgPath, *dataDir, log, stderr)
		if err != nil {
			return err
		}
		// Without DuckDB's write-ahead log: checkpointed before the
		// report (docs/store.md, "Imports", session 26).
		store, err := openImportStore(ctx, cfg, *dataDir, log, !*noSeal)
		if err != nil {
			return err
		}
		defer store.Close()
		if st, ok := store.(*duckdb.Store); ok {
			// DuckDB's buffer pool would keep what the import wrote, up
			// to 80% of the machine's memory (issue 15: RSS at most 1 GB).
			// A setting, not work: an import stopped before it began
			// still reports (context.WithoutCancel).
			if err := st.SetMemoryLimit(context.WithoutCancel(ctx), importDuckDBMemory); err != nil {
				return err
			}
			// Files in order, each batch's rows in the store's final
			// order: an import of a trail's logs into an empty store
			// needs no compaction after it (docs/store.md, "Imports").
			st.BeginImport()
			// Go's share of the bound: the heap no more than 384 MiB
			// while what is live leaves it room (limitGoMemory).
			stopLimit := limitGoMemory()
			defer closeUnderLimit(st, stopLimit)
			compactLimit = stopLimit
			if *memLog != "" {
				stop, err := startMemLog(*memLog, st)
				if err != nil {
					return err
				}
				defer stop()
			}
			opts.InOrder = true
			if !*noCompact {
				compactPath = filepath.Join(*dataDir, storeFile)
			}
			ins = startImportInsights(ctx, cfg, *dataDir, st, log)
		}
		opts.Sink = store
		// A batch of 10,240 records costs the store about what one of
		// 5,000 does (its duplicate check and bucket index are per
		// batch): docs/store.md, "Imports".
		opts.BatchSize = offlineImportBatch
		// The store compresses one batch while it commits the other.
		opts.Appenders = 2
	}
	rep, err := importer.Run(ctx, fs.Args(), opts)
	if st, ok := opts.Sink.(*duckdb.Store); ok {
		// The store has no write-ahead log: what the report counts is
		// durable once this returns, and before the detector saves a
		// state naming it.
		if cerr := st.Checkpoint(context.WithoutCancel(ctx)); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}
	if ins != nil {
		ins.finish(context.WithoutCancel(ctx))
	}
	// The report first: the compaction that may follow rewrites the whole
	// store, and whatever becomes of it, the import is done.
	out := importOutcome(stdout, stderr, *output, rep, err)
	if err == nil && compactPath != "" {
		compactAfterImport(ctx, opts.Sink.(*duckdb.Store), compactPath, rep.Imported, !*noSeal, log, stderr, compactLimit)
	}
	return out
}

// importDuckDBMemory is the DuckDB memory_limit of an offline import into
// the embedded store (docs/store.md, "Memory (session 12)"): DuckDB sat at
// its limit through an import (the rows a checkpoint has not written yet,
// then the file's blocks it read), so the limit is what DuckDB adds to the
// Go heap's 200–370 MB; at 512MB RSS reached 0.95–1.06 GB on 3M records.
const importDuckDBMemory = "256MB"

// importFilesInFlight and importFileBytesInFlight bound the files
// `cairn import --endpoint-url` has in flight: by count, and by their
// bytes decompressed (importer.Options.FileBytesInFlight).
const (
	importFilesInFlight     = 24
	importFileBytesInFlight = 128 << 20
)

// compactAfterImport compacts the store (duckdb.Compact) when the import
// stored at least half of its records: a first import of a responder's
// logs, whose blocks and filters were made batch by batch; not when the
// import wrote them in the compacted order already (duckdb.Store.InOrder). A compaction
// rewrites the whole store, so an import that added a little to a large
// store skips it (cairn compact does it on demand). It closes st when it
// compacts, then calls release (Go's memory limit of the import put back:
// Compact sets its own). A failed compaction leaves the store as the
// import left it: a warning, not a failed import.
func compactAfterImport(ctx context.Context, st *duckdb.Store, path string, imported int64, sealed bool, log *slog.Logger, stderr io.Writer, release func()) {
	last, err := st.LastSeq(ctx)
	if err != nil || imported == 0 || 2*imported < last {
		return
	}
	if st.InOrder() {
		// Its rows are in Compact's order and its blocks full already;
		// the complete days' records sealed as they came, unless
		// --no-seal.
		if sealed {
			fmt.Fprintf(stderr, "cairn: the import sealed the complete days' records and wrote the rest in its compacted order; not compacted\n")
		} else {
			fmt.Fprintf(stderr, "cairn: the import wrote the store in its compacted order; not compacted "+
				"(cairn compact seals its complete days into about 1.0x the .json.gz: docs/store.md, \"The sealed tier\")\n")
		}
		return
	}
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "cairn: the store was not compacted: %v\n", err)
		return
	}
	release() // Compact sets its own
	res, err := compactStore(ctx, path, log)
	if err != nil {
		fmt.Fprintf(stderr, "cairn: the store was not compacted (it is as the import left it): %v\n", err)
		return
	}
	fmt.Fprintf(stderr, "cairn: compacted the store: %.1f MB -> %.1f MB in %s (--no-compact skips this)\n",
		float64(res.BytesBefore)/1e6, float64(res.BytesAfter)/1e6, res.Took.Round(time.Millisecond))
}

// startCPUProfile starts writing a CPU profile to path; stop ends it and
// closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// startTrace starts writing a runtime trace (runtime/trace) to path; stop
// ends it and closes the file.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("trace: %w", err)
	}
	return func() { trace.Stop(); f.Close() }, nil
}

// importInsights runs the live Insights runner's detector over the records
// an offline import stores (insights.Importing): the first serve after the
// import resumes from the state it saves instead of reading every
// imported record back through the feed (docs/insights.md, "Imports").
type importInsights struct {
	st  *duckdb.Store
	im  *insights.Importing
	log *slog.Logger
}

// startImportInsights starts it when the server would run the runner
// (insights.live not off) and the runner's saved state stands at the
// store's end (or the store is empty); nil otherwise, and the first serve
// catches up through the feed as before.
func startImportInsights(ctx context.Context, cfg *config.Config, dataDir string, st *duckdb.Store, log *slog.Logger) *importInsights {
	if cfg.Insights.Live == "off" {
		return nil
	}
	last, err := st.LastSeq(ctx)
	if err != nil {
		log.Warn("import: Insights are not analysed during the import; the first serve will read the records", "err", err)
		return nil
	}
	im, err := insights.StartImporting(insightParams(cfg.Insights), filepath.Join(dataDir, insightsStateFile), last, nil)
	if err != nil {
		log.Info("import: Insights are not analysed during the import; the first serve will read the records", "err", err)
		return nil
	}
	st.OnCommitted(im.Observe)
	return &importInsights{st: st, im: im, log: log}
}

// finish saves the detector's state at the store's last sequence number,
// once the import's appends are over.
func (ii *importInsights) finish(ctx context.Context) {
	ii.st.OnCommitted(nil)
	last, err := ii.st.LastSeq(ctx)
	if err != nil {
		ii.im.Abandon()
		ii.log.Warn("import: the Insights state is not saved; the first serve will read the records", "err", err)
		return
	}
	saved, err := ii.im.Finish(last)
	switch {
	case err != nil:
		ii.log.Warn("import: the Insights state is not saved; the first serve will read the records", "err", err)
	case !saved:
		ii.log.Warn("import: the Insights state is not saved (appends out of sequence); the first serve will read the records")
	default:
		st := ii.im.Stats()
		ii.log.Info("import: Insights analysed", "position", last, "observed", st.Observed, "late", st.Late, "series", st.Series)
	}
}
