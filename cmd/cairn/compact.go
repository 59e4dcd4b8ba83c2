package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// compactCmd rewrites the embedded store's file in lookup order and seals
// the complete days (duckdb.Compact). The server must be stopped.
func compactCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn compact", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", defaultDataDir, "data dir whose Event History to compact (no server may hold it)")
	cfgPath := fs.String("config", "", "config file (YAML), checked as serve checks it")
	output := fs.String("output", "text", "report format: text, json or table")
	noProgress := fs.Bool("no-progress", false, "do not show progress on stderr (a line every 5s while sealed blocks are compressed again)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cairn compact [flags]\n\nRewrites the embedded Event History store (DATA_DIR/%s) ordered by account,\nregion, category and time, without the free space earlier writes left, and puts it\nin place of the old file once complete. Lookups of a store filled through a server\nread fewer row groups afterwards. The records of every UTC day that ended at least\na day ago are sealed: kept as compressed blocks of a day's records in\nDATA_DIR/%s.sealed, about 1.0x the .json.gz they came from (docs/store.md,\n\"The sealed tier\"); the blocks an offline import sealed in its faster encoding (S2) are compressed\nagain first, on every core. The server must be stopped; a crash leaves the old store or\nthe new one.\n\nFlags:\n", storeFile, storeFile)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("compact takes no arguments, got %q", fs.Arg(0))}
	}
	if *output != "text" && *output != "json" && *output != "table" {
		return usageError{fmt.Sprintf("--output %q: want text, json or table", *output)}
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
	var progress io.Writer
	if !*noProgress {
		progress = stderr
	}
	before := duckdb.StoreBytes(path)
	recompressed, err := recompressPending(ctx, path, log, progress)
	if err != nil {
		return err
	}
	res, err := compactStore(ctx, path, log)
	if err != nil {
		return err
	}
	res.BytesBefore = before // before the blocks were compressed again
	return writeCompactResult(stdout, *output, res, recompressed)
}

// recompressPending encodes again, on every core, the sealed blocks an
// offline import wrote in its faster encoding (duckdb.Store.RecompressAllSealed;
// docs/store.md, "Sealing at import speed, compressed later"), before the
// copy, so that the copy leaves no free blocks behind the blocks' rows'
// updates. It returns how many it encoded again; progress, when not nil,
// gets a line every 5s.
func recompressPending(ctx context.Context, path string, log *slog.Logger, progress io.Writer) (int, error) {
	st, err := duckdb.Open(path, duckdb.Options{Logger: log, Cold: true, Seal: true})
	if err != nil {
		return 0, fmt.Errorf("compact %s: %w", path, err)
	}
	total := st.PendingSealed()
	t0 := time.Now()
	last := t0
	n, err := st.RecompressAllSealed(ctx, func(done, left int) {
		if progress != nil && time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "compact: compressed %d of %d sealed blocks again\n", done, total)
		}
	})
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("compact %s: %w", path, err)
	}
	if progress != nil && n > 0 {
		fmt.Fprintf(progress, "compact: compressed %d sealed blocks again (sealed by the import in S2) in %s\n", n, time.Since(t0).Round(time.Millisecond))
	}
	return n, nil
}

// compactReport is `cairn compact --output json`'s object.
type compactReport struct {
	Records         int64   `json:"records"`
	Sealed          int64   `json:"sealed"`
	BytesBefore     int64   `json:"bytesBefore"`
	BytesAfter      int64   `json:"bytesAfter"`
	RowGroupsBefore int64   `json:"rowGroupsBefore"`
	RowGroupsAfter  int64   `json:"rowGroupsAfter"`
	Seconds         float64 `json:"seconds"`
	// Recompressed: the sealed blocks an offline import wrote in its
	// faster encoding, compressed again at the tier's before the copy.
	Recompressed int `json:"recompressed"`
}

// writeCompactResult prints a compaction's result as one line of text, a
// JSON object or a table of two columns, as --output says.
func writeCompactResult(w io.Writer, output string, res duckdb.CompactResult, recompressed int) error {
	r := compactReport{Records: res.Records, Sealed: res.Sealed, BytesBefore: res.BytesBefore, BytesAfter: res.BytesAfter,
		RowGroupsBefore: res.RowGroupsFrom, RowGroupsAfter: res.RowGroupsTo, Seconds: res.Took.Seconds(), Recompressed: recompressed}
	switch output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "table":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "records\t%d\n", r.Records)
		fmt.Fprintf(tw, "sealed\t%d\n", r.Sealed)
		fmt.Fprintf(tw, "bytes before\t%d\n", r.BytesBefore)
		fmt.Fprintf(tw, "bytes after\t%d\n", r.BytesAfter)
		fmt.Fprintf(tw, "row groups before\t%d\n", r.RowGroupsBefore)
		fmt.Fprintf(tw, "row groups after\t%d\n", r.RowGroupsAfter)
		fmt.Fprintf(tw, "seconds\t%.3f\n", r.Seconds)
		fmt.Fprintf(tw, "recompressed blocks\t%d\n", r.Recompressed)
		return tw.Flush()
	}
	again := ""
	if recompressed > 0 {
		again = fmt.Sprintf("; %d sealed blocks compressed again first", recompressed)
	}
	_, err := fmt.Fprintf(w, "compacted %d records (%d sealed): %.1f MB -> %.1f MB, %d -> %d row groups, in %s%s\n", res.Records, res.Sealed,
		float64(res.BytesBefore)/1e6, float64(res.BytesAfter)/1e6, res.RowGroupsFrom, res.RowGroupsTo, res.Took.Round(1e6), again)
	return err
}

func compactStore(ctx context.Context, path string, log *slog.Logger) (duckdb.CompactResult, error) {
	res, err := duckdb.Compact(ctx, path, duckdb.Options{Logger: log, Cold: true, Seal: true})
	if err != nil {
		return res, fmt.Errorf("compact %s: %w", path, err)
	}
	return res, nil
}
