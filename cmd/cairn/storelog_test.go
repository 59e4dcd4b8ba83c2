package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
)

// TestOnlyTheOfflineImportDropsTheLog: the store a server opens writes
// DuckDB's write-ahead log for every commit (what a killed server replays),
// and the offline import's store does not (it checkpoints before it
// reports, docs/store.md "Imports"). The test fails if the serving store
// were opened unlogged, or if the import's flag stopped reaching the store.
func TestOnlyTheOfflineImportDropsTheLog(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name   string
		open   func(dir string) (eventStore, error)
		logged bool
	}{
		{"serve", func(dir string) (eventStore, error) { return openStore(ctx, &config.Config{}, dir, log, true) }, true},
		{"hunt", func(dir string) (eventStore, error) { return openStore(ctx, &config.Config{}, dir, log, false) }, true},
		{"import", func(dir string) (eventStore, error) { return openImportStore(ctx, &config.Config{}, dir, log, true) }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			st, err := c.open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var recs []audit.Record
			for i := 0; i < 20; i++ {
				raw := fmt.Sprintf(`{"eventVersion":"1.08","eventTime":%q,"eventSource":"s3.amazonaws.com","eventName":"PutObject",`+
					`"awsRegion":"us-east-1","eventID":"wal-%d","eventType":"AwsApiCall","recipientAccountId":"111111111111"}`,
					time.Now().UTC().Format(audit.TimeFormat), i)
				r, err := audit.Extract([]byte(raw))
				if err != nil {
					t.Fatal(err)
				}
				recs = append(recs, r)
			}
			if _, err := st.Append(ctx, recs); err != nil {
				t.Fatal(err)
			}
			var size int64
			if fi, err := os.Stat(filepath.Join(dir, storeFile+".wal")); err == nil {
				size = fi.Size()
			} else if !os.IsNotExist(err) {
				t.Fatal(err)
			}
			if c.logged && size == 0 {
				t.Fatalf("%s: an acknowledged append left no write-ahead log", c.name)
			}
			if !c.logged && size != 0 {
				t.Fatalf("%s: the offline import's store wrote %d bytes of write-ahead log", c.name, size)
			}
		})
	}
}
