package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

// TestImportSavesTheInsightsState: an offline import runs the Insights
// runner's detector over the records it stores and saves its state at the
// store's last sequence number, so that the first serve resumes there
// (docs/insights.md, "Imports"); a second import continues from it. With
// a state that is not at the store's end (here: none, over records stored
// before) it saves nothing and the first serve reads the feed as before;
// with insights.live off, nothing either.
func TestImportSavesTheInsightsState(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	var recs []string
	for i := range 40 {
		recs = append(recs, importRecord(fmt.Sprintf("a%d", i), "111111111111", "us-east-1"))
	}
	writeFile(t, filepath.Join(logs, "first.json"), `{"Records":[`+strings.Join(recs, ",")+`]}`)
	more := filepath.Join(dir, "more.json")
	writeFile(t, more, `{"Records":[`+importRecord("b0", "111111111111", "us-east-1")+`,`+importRecord("b1", "222222222222", "us-east-1")+`]}`)
	cli := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout.String(), stderr.String())
		}
	}
	setup := func(extra string) (dataDir, cfgPath string, p insights.Params) {
		dataDir = t.TempDir()
		cfgPath = filepath.Join(dataDir, "cairn.yaml")
		writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0)+extra)
		cfg, err := config.Load(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		return dataDir, cfgPath, insightParams(cfg.Insights)
	}
	lastSeq := func(dataDir string) int64 {
		t.Helper()
		st, err := duckdb.Open(filepath.Join(dataDir, storeFile), duckdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		n, err := st.LastSeq(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// resumable: the saved state stands at the store's end (what the
	// runner would resume from without reading the feed back).
	resumable := func(dataDir string, p insights.Params) error {
		im, err := insights.StartImporting(p, filepath.Join(dataDir, insightsStateFile), lastSeq(dataDir), nil)
		if err == nil {
			im.Abandon()
		}
		return err
	}

	dataDir, cfgPath, p := setup("")
	cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, logs)
	if err := resumable(dataDir, p); err != nil {
		t.Fatalf("after an import into an empty store: %v", err)
	}
	cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, more)
	if n := lastSeq(dataDir); n != 42 {
		t.Fatalf("%d records after the second import, want 42", n)
	}
	if err := resumable(dataDir, p); err != nil {
		t.Fatalf("after a second import: %v", err)
	}

	// records stored before, and no state: the runner must read them
	if err := os.Remove(filepath.Join(dataDir, insightsStateFile)); err != nil {
		t.Fatal(err)
	}
	cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, logs) // duplicates
	cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, filepath.Join(dir, "logs"))
	if _, err := os.Stat(filepath.Join(dataDir, insightsStateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a state was saved over records no detector saw: %v", err)
	}

	dataDir, cfgPath, _ = setup("insights:\n  live: \"off\"\n")
	cli("import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath, logs)
	if _, err := os.Stat(filepath.Join(dataDir, insightsStateFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("insights.live off: a state was saved: %v", err)
	}
}
