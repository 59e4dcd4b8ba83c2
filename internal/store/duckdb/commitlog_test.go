package duckdb

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestCommitsLoggedAtDebug: each append's COMMIT, which holds the lookups,
// is logged at level debug with how long it waited for the lookups in
// flight and how long it took, by Append and by a server's staged appends
// (how the first commits of a restarted server were measured, issue 19).
func TestCommitsLoggedAtDebug(t *testing.T) {
	ctx := context.Background()
	line := regexp.MustCompile(`msg="duckdb: commit" records=(\d+) waited=\S+ took=\S+`)
	for _, staged := range []bool{false, true} {
		var buf syncBuffer
		log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		st, err := Open(filepath.Join(t.TempDir(), "events.duckdb"), Options{Logger: log, StagedAppends: staged})
		if err != nil {
			t.Fatal(err)
		}
		batches := blockRecords(t)
		for _, b := range batches {
			if staged {
				commit, err := st.StageEach(b)(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := commit(ctx); err != nil {
					t.Fatal(err)
				}
			} else if _, err := st.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		got := line.FindAllStringSubmatch(buf.String(), -1)
		if len(got) != len(batches) {
			t.Errorf("staged=%v: %d commits logged for %d appends:\n%s", staged, len(got), len(batches), buf.String())
		}
	}
}
