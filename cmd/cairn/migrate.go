package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/store/postgres"
)

// migrateCmd brings the PostgreSQL store the config names to this cairn's
// schema version (serve does the same at start; several nodes may run it
// at once: an advisory lock makes them take turns).
func migrateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cairn migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "config file whose store.postgres names the database (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("migrate takes no arguments, got %q", fs.Arg(0))}
	}
	if *cfgPath == "" {
		return usageError{"migrate needs --config FILE (the file whose store.postgres names the database)"}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	if cfg.Store.Postgres == "" {
		return usageError{*cfgPath + " has no store.postgres: the embedded store migrates itself when it opens"}
	}
	applied, err := postgres.Migrate(ctx, cfg.Store.Postgres)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "the schema is up to date")
		return nil
	}
	fmt.Fprintf(stdout, "applied migrations %v\n", applied)
	return nil
}
