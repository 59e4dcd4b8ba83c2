package main

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
)

// TestRecordCompressionConfig: `cairn import` stores new records as S2
// frames by default and as zstd frames with event_history.record_compression:
// zstd (their first byte tells them apart), and a store holding both kinds
// reads back every record.
func TestRecordCompressionConfig(t *testing.T) {
	src := t.TempDir()
	records := `{"Records":[` +
		`{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"e1","recipientAccountId":"111111111111"},` +
		`{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:06Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","awsRegion":"us-east-1","eventID":"e2","recipientAccountId":"111111111111"}]}`
	if err := os.WriteFile(filepath.Join(src, "a.json"), []byte(records), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	importWith := func(compression string, path string) {
		t.Helper()
		cfg := filepath.Join(t.TempDir(), "cairn.yaml")
		yml := "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: b\n        access_keys:\n          - id: AKIABENCH00000000001\n            secret: s\n" +
			"event_history:\n  retention_days: 0\n  record_compression: " + compression + "\n"
		if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		var out, errs strings.Builder
		if err := importCmd(context.Background(), []string{"--data-dir", dataDir, "--config", cfg, "--no-progress", "--output", "json", path}, &out, &errs); err != nil {
			t.Fatalf("import: %v\n%s%s", err, out.String(), errs.String())
		}
	}
	firstBytes := func() map[string]byte {
		t.Helper()
		db, err := sql.Open("duckdb", filepath.Join(dataDir, storeFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT event_id, record FROM events`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]byte{}
		for rows.Next() {
			var id string
			var rec []byte
			if err := rows.Scan(&id, &rec); err != nil {
				t.Fatal(err)
			}
			got[id] = rec[0]
		}
		return got
	}
	importWith("s2", src)
	if got := firstBytes(); got["e1"] != 0x01 || got["e2"] != 0x01 {
		t.Fatalf("default frames start %x; want S2 frames (0x01)", got)
	}
	src2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(src2, "b.json"), []byte(strings.ReplaceAll(strings.ReplaceAll(records, `"e1"`, `"z1"`), `"e2"`, `"z2"`)), 0o600); err != nil {
		t.Fatal(err)
	}
	importWith("zstd", src2)
	got := firstBytes()
	if got["z1"] != 0x28 || got["z2"] != 0x28 || got["e1"] != 0x01 {
		t.Fatalf("frames start %x; want zstd frames (0x28) for z1, z2 and S2 for e1", got)
	}
	// Both kinds read back: a lookup of each record through a store.
	st, err := openStore(dataDir, configEventHistory(), discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, id := range []string{"e1", "e2", "z1", "z2"} {
		page, err := st.Lookup(context.Background(), lookupByID(id))
		if err != nil || len(page.Records) != 1 || !strings.Contains(string(page.Records[0].Raw), `"eventID":"`+id+`"`) {
			t.Errorf("lookup of %s = %d records, %v", id, len(page.Records), err)
		}
	}
}

func configEventHistory() config.EventHistory { return config.EventHistory{} }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func lookupByID(id string) audit.Query {
	return audit.Query{Account: "111111111111", Region: "us-east-1", Category: audit.CategoryManagement, Limit: 10,
		Attributes: []audit.Attribute{{Key: audit.AttrEventID, Value: id}}}
}
