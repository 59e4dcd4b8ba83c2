// Command cairn is a self-hosted audit trail compatible with AWS CloudTrail.
//
//	cairn serve   [--listen ADDR] [--data-dir DIR] [--config FILE]
//	cairn import  [--data-dir DIR --config FILE | --endpoint-url URL] [--into EDS] [--output table|json|text] PATH...
//	cairn query   [--data-dir DIR --config FILE | --endpoint-url URL] [--output table|json|csv] "SQL"
//	cairn insights [--data-dir DIR --config FILE | --endpoint-url URL] [--account ID] [--region R] [--start T] [--end T]
//	cairn hunt    [--rules FOLDER_OR_FILE]... [--builtin] [--start-time T] [--end-time T] [--output table|json|csv] [--data-dir DIR --config FILE | --endpoint-url URL]
//	cairn who     [--start-time T] [--end-time T] [--output table|json] [--data-dir DIR --config FILE | --endpoint-url URL] PRINCIPAL
//	cairn validate-logs --trail-arn ARN --start-time TIME [...]
//	cairn migrate --config FILE
//	cairn version
//
// This is the only place where the concrete parts meet: configuration,
// storage, the ingest pipeline, the API server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `cairn — a self-hosted audit trail compatible with AWS CloudTrail

Usage:
  cairn serve   [--listen ADDR] [--data-dir DIR] [--config FILE]
  cairn import  [--data-dir DIR] [--config FILE] [--endpoint-url URL] [--into EDS]
                [--output table|json|text] PATH...
  cairn query   [--data-dir DIR] [--config FILE] [--endpoint-url URL] [--output table|json|csv] "SQL"
  cairn insights [--data-dir DIR] [--config FILE] [--endpoint-url URL] [--account ID] [--region R]
                 [--start T] [--end T] [--dry-run]
  cairn hunt    [--rules FOLDER_OR_FILE]... [--builtin] [--start-time T] [--end-time T]
                [--output table|json|csv] [--data-dir DIR] [--config FILE] [--endpoint-url URL]
  cairn who     [--start-time T] [--end-time T] [--output table|json] [--data-dir DIR]
                [--config FILE] [--endpoint-url URL] PRINCIPAL
  cairn validate-logs --trail-arn ARN --start-time TIME [--end-time TIME] [--verbose]
                      [--endpoint-url URL | --data-dir DIR] [--s3-endpoint-url URL | --local-dir DIR]
                      [--report-unlisted]
  cairn migrate --config FILE   (the PostgreSQL store's schema; serve also migrates at start)
  cairn compact [--data-dir DIR]  (rewrite the embedded store in lookup order; server stopped)
  cairn version

Run 'cairn COMMAND --help' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serveCmd(ctx, args[1:], stdout, stderr)
	case "import":
		err = importCmd(ctx, args[1:], stdout, stderr)
	case "validate-logs":
		return validateLogsCmd(ctx, args[1:], stdout, stderr)
	case "insights":
		err = insightsCmd(ctx, args[1:], stdout, stderr)
	case "query":
		err = queryCmd(ctx, args[1:], stdout, stderr)
	case "migrate":
		err = migrateCmd(ctx, args[1:], stdout, stderr)
	case "compact":
		err = compactCmd(ctx, args[1:], stdout, stderr)
	case "hunt":
		err = huntCmd(ctx, args[1:], stdout, stderr)
	case "who":
		err = whoCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		if len(args) > 1 && args[1] != "--help" && args[1] != "-h" {
			err = usageError{"version takes no arguments"}
			break
		}
		fmt.Fprintln(stdout, "cairn", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "cairn: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var xe exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, new(flagError)):
		return 2
	case errors.As(err, &xe):
		fmt.Fprintln(stderr, "cairn:", err)
		return xe.code
	case errors.As(err, new(usageError)):
		fmt.Fprintln(stderr, "cairn:", err)
		return 2
	default:
		fmt.Fprintln(stderr, "cairn:", err)
		return 1
	}
}

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ msg string }

// flagError is a flag the flag package refused; it has printed the error
// and the usage already (exit status 2).
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }

// parseFlags parses args; a refused flag is a flagError.
func parseFlags(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return flagError{err}
}

func (e usageError) Error() string { return e.msg }

// newLogger returns the process logger: text on a terminal, JSON otherwise
// unless format says which.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", format)}
}
