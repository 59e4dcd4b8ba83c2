package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeTrace: `cairn serve --trace FILE` leaves a runtime trace of the
// server's run in FILE once it stops (go tool trace reads it); a trace
// file that cannot be created stops the server before it starts.
func TestServeTrace(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "serve.trace")
	// Stopped before it serves: it starts, opens its stores and shuts
	// down in order, the trace written whole.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	run(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--log-level", "warn", "--trace", trace}, &stdout, &stderr)
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	// A runtime trace begins "go 1.N trace".
	if !bytes.HasPrefix(b, []byte("go 1.")) || !bytes.Contains(b[:min(len(b), 16)], []byte(" trace")) {
		t.Errorf("the trace file begins %q; want a runtime trace", b[:min(len(b), 16)])
	}
	stderr.Reset()
	code := run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data2"),
		"--trace", filepath.Join(dir, "no", "such", "dir", "x.trace")}, &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "trace:") {
		t.Errorf("an unwritable trace file: exit %d, stderr %q; want a failure naming the trace", code, stderr.String())
	}
}
