package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// compactCmd rewrites the embedded store's file in lookup order
// (duckdb.Compact). The server must be stopped.
func compactCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "data dir whose Event History to compact (no server may hold it)")
	cfgPath := fs.String("config", "", "config file (YAML), checked as serve checks it")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn compact [flags]\n\nRewrites the embedded Event History store (DATA_DIR/%s) ordered by account,\nregion, category and time, without the free space earlier writes left, and puts it\nin place of the old file once complete. Lookups of a store filled through a server\nread fewer row groups afterwards. The server must be stopped; a crash leaves the\nold store or the new one.\n\nFlags:\n", storeFile)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("compact takes no arguments, got %q", fs.Arg(0))}
	}
	log, err := newLogger(stderr, "text", "warn")
	if err != nil {
		return err
	}
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		if cfg.Store.Postgres != "" {
			return usageError{*cfgPath + " has store.postgres: compact applies to the embedded store only"}
		}
	}
	if held := serverHolding(*dataDir); held != "" {
		return fmt.Errorf("the data dir %s is in use by the cairn server at %s; stop it first", *dataDir, held)
	}
	path := filepath.Join(*dataDir, storeFile)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no store to compact: %w", err)
	}
	res, err := compactStore(ctx, path, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "compacted %d records: %.1f MB -> %.1f MB, %d -> %d row groups, in %s\n", res.Records,
		float64(res.BytesBefore)/1e6, float64(res.BytesAfter)/1e6, res.RowGroupsFrom, res.RowGroupsTo, res.Took.Round(1e6))
	return nil
}

func compactStore(ctx context.Context, path string, log *slog.Logger) (duckdb.CompactResult, error) {
	res, err := duckdb.Compact(ctx, path, duckdb.Options{Logger: log, Cold: true})
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	return res, nil
}
