package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImportTrace: `cairn import --trace FILE` imports as without it and
// leaves a runtime trace of the import in FILE (go tool trace reads it);
// a trace file that cannot be created stops the import before it starts.
func TestImportTrace(t *testing.T) {
	dir := t.TempDir()
	var recs []string
	for i := range 20 {
		recs = append(recs, importRecord(fmt.Sprintf("t%d", i), "111111111111", "us-east-1"))
	}
	logs := filepath.Join(dir, "logs.json")
	writeFile(t, logs, `{"Records":[`+strings.Join(recs, ",")+`]}`)
	dataDir := t.TempDir()
	cfgPath := filepath.Join(dataDir, "cairn.yaml")
	writeFile(t, cfgPath, fmt.Sprintf(twoAccounts, 0))
	trace := filepath.Join(dir, "import.trace")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"import", "--no-progress", "--data-dir", dataDir, "--config", cfgPath,
		"--output", "json", "--trace", trace, logs}, &stdout, &stderr)
	if code != 0 || decodeImportReport(t, stdout.Bytes()).Imported != 20 {
		t.Fatalf("import: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	// A runtime trace begins "go 1.N trace".
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:min(len(b), 16)], []byte(" trace")) {
		t.Errorf("the trace file begins %q; want a runtime trace", b[:min(len(b), 16)])
	}
	stdout.Reset()
	stderr.Reset()
	code = run(context.Background(), []string{"import", "--no-progress", "--data-dir", t.TempDir(), "--config", cfgPath,
		"--trace", filepath.Join(dir, "no", "such", "dir", "x.trace"), logs}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "trace:") {
		t.Errorf("an unwritable trace file: exit %d, stderr %q; want a failure naming the trace", code, stderr.String())
	}
}
