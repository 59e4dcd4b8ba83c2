package lake

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// heldCheckpoints is an engine whose Checkpoint, once armed, waits for
// release and counts its calls.
type heldCheckpoints struct {
	insertsAt
	armed   atomic.Bool
	calls   atomic.Int64
	started chan struct{}
	release chan struct{}
}

func (e *heldCheckpoints) Checkpoint(ctx context.Context) error {
	if !e.armed.Load() {
		return e.insertsAt.Checkpoint(ctx)
	}
	if e.calls.Add(1) == 1 {
		close(e.started)
	}
	<-e.release
	return e.insertsAt.Checkpoint(ctx)
}

// TestWroteBehindRunsOneCheckpoint: PutAuditEvents' writes past the
// policy's bound do not wait for the checkpoint (their events are durable
// in the journal already), and the writes while it runs start no other:
// each used to run its own after the first, and each took the same count
// of transactions off the total, which went below zero.
func TestWroteBehindRunsOneCheckpoint(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fe := &heldCheckpoints{insertsAt: insertsAt{Engine: eng}, started: make(chan struct{}), release: make(chan struct{})}
	l, err := Open(dir, Options{Engine: fe, CheckpointCommits: 4})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(fe.release) }) }
	defer l.Close()
	defer release()
	ctx := context.Background()
	fe.armed.Store(true)
	fe.n.Store(fe.n.Load() + 5) // past the bound
	returned := make(chan struct{})
	go func() {
		for range 4 { // four calls' writes, one after another
			l.wroteBehind(ctx)
		}
		close(returned)
	}()
	<-fe.started
	select {
	case <-returned:
	case <-time.After(30 * time.Second):
		t.Fatal("the writes waited for the checkpoint")
	}
	release()
	for l.ckptBehind.Load() {
		time.Sleep(time.Millisecond)
	}
	if n := fe.calls.Load(); n != 1 {
		t.Errorf("%d checkpoints for the writes of one bound; want 1", n)
	}
	if n := l.commits.Load(); n != 0 {
		t.Errorf("%d transactions counted after the checkpoint; want 0", n)
	}
}
