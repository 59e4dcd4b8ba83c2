package lake

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// insertsAt is an engine whose Inserts count the test sets.
type insertsAt struct {
	engine.Engine
	n atomic.Int64
}

func (e *insertsAt) Inserts() int64 { return e.n.Load() }

// TestCheckpointsCountSharedTransactions: Lake's checkpoint policy counts
// the engine's transactions, not the writes that report them: members of
// one shared (group-committed) transaction count it once, and a write
// whose transaction ran several (a failed group retried member by member)
// counts each.
func TestCheckpointsCountSharedTransactions(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fe := &insertsAt{Engine: eng}
	l, err := Open(dir, Options{Engine: fe, CheckpointCommits: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	base := l.commits.Load()
	for _, step := range []struct {
		name    string
		inserts int64 // the engine's count before the writes
		writes  int   // writes reporting it
		want    int64 // commits counted since the last checkpoint
	}{
		{"five members of one transaction", 1, 5, 1},
		{"one more, alone", 2, 1, 2},
		{"a group retried as three", 5, 2, 0}, // 5 >= 4: checkpointed
		{"after the checkpoint", 6, 3, 1},
	} {
		fe.n.Store(step.inserts)
		for range step.writes {
			l.wrote(ctx)
		}
		if got := l.commits.Load() - base; got != step.want {
			t.Errorf("%s: %d transactions counted; want %d", step.name, got, step.want)
		}
	}
}
