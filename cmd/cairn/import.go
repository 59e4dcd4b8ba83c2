package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/importer"
)

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "data dir to import into (no server may hold it)")
	cfgPath := fs.String("config", "", "config file (YAML), checked as serve checks it")
	endpoint := fs.String("endpoint-url", "", "send the records through the cairn server at this URL (AWS credential variables apply)")
	region := fs.String("region", "", "region for signing with --endpoint-url (default: from the AWS environment, else us-east-1)")
	output := fs.String("output", "table", "report format: table or json")
	noProgress := fs.Bool("no-progress", false, "do not show progress")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	into := fs.String("into", "", "import into this CloudTrail Lake event data store (ID or ARN) instead of Event History")
	account := fs.String("account", "", "with --into and no server: the account owning the event data store (default: the config's first)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn import [flags] PATH...\n\nImports CloudTrail log files (.json, .json.gz, one record per line, lookup-events output)\nand folders of them, recursively. Importing twice adds nothing. With --into, a PATH may\nalso be s3://BUCKET/PREFIX, BUCKET one of the config's buckets.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{"import needs at least one PATH"}
	}
	if *output != "table" && *output != "json" {
		return usageError{fmt.Sprintf("--output %q: want table or json", *output)}
	}
	log, err := newLogger(stderr, *logFormat, "warn")
	if err != nil {
		return err
	}
	opts := importer.Options{Logger: log}
	if !*noProgress {
		opts.Progress = stderr
	}
	if *into != "" {
		r := remoteFlags{dataDir: *dataDir, config: *cfgPath, endpoint: *endpoint, region: *region, account: *account}
		return importInto(ctx, r, *into, fs.Args(), opts, *output, stdout, stderr)
	}
	for _, p := range fs.Args() {
		if strings.HasPrefix(p, "s3://") {
			return usageError{fmt.Sprintf("%s: s3:// sources are imported into CloudTrail Lake (--into STORE)", p)}
		}
	}
	if *endpoint != "" {
		c, err := client.New(ctx, client.Config{Endpoint: *endpoint, Region: *region})
		if err != nil {
			return err
		}
		opts.Sink = c.Importer()
	} else {
		if held := serverHolding(*dataDir); held != "" {
			return fmt.Errorf("the data dir %s is in use by the cairn server at %s; import through it with:\n    cairn import --endpoint-url %s PATH...", *dataDir, held, held)
		}
		if err := os.MkdirAll(*dataDir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		// The config is checked as serve would; every record is kept,
		// whatever its eventTime: Event History's retention counts from
		// the import (docs/design.md, Retention).
		if _, err := loadConfig(*cfgPath, *dataDir, log, stderr); err != nil {
			return err
		}
		store, err := openStore(*dataDir, log)
		if err != nil {
			return err
		}
		defer store.Close()
		opts.Sink = store
	}
	rep, err := importer.Run(ctx, fs.Args(), opts)
	if err != nil {
		return err
	}
	printReport(stdout, *output, rep)
	if rep.Expired > 0 {
		fmt.Fprintf(stderr, "cairn: %d records are older than the Event History retention and were not imported; set event_history.retention_days: 0 in the config to keep them.\n", rep.Expired)
	}
	if rep.Rejected > 0 || len(rep.Errors) > 0 {
		for _, e := range rep.Errors {
			fmt.Fprintln(stderr, "cairn:", e.Error())
		}
		if rep.ErrorsOmitted > 0 {
			fmt.Fprintf(stderr, "cairn: ... and %d more errors not shown\n", rep.ErrorsOmitted)
		}
		return fmt.Errorf("%d records rejected, %d files could not be read to their end", rep.Rejected, rep.FileErrors)
	}
	return nil
}

func printReport(w io.Writer, format string, rep importer.Report) {
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		errs := make([]map[string]any, 0, len(rep.Errors))
		for _, e := range rep.Errors {
			errs = append(errs, map[string]any{"File": e.File, "Record": e.Record, "Message": e.Err.Error()})
		}
		enc.Encode(map[string]any{
			"Files": rep.Files, "Skipped": rep.Skipped, "FileErrors": rep.FileErrors, "Records": rep.Records,
			"Imported": rep.Imported, "Duplicates": rep.Duplicates, "Rejected": rep.Rejected, "Expired": rep.Expired,
			"Bytes": rep.Bytes, "Seconds": rep.Elapsed.Seconds(), "Errors": errs, "ErrorsOmitted": rep.ErrorsOmitted,
		})
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Files\tSkipped\tFileErrors\tRecords\tImported\tDuplicates\tRejected\tExpired\tSeconds\t")
	fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", rep.Files, rep.Skipped, rep.FileErrors, rep.Records, rep.Imported,
		rep.Duplicates, rep.Rejected, rep.Expired, rep.Elapsed.Seconds())
	tw.Flush()
}
