package lake

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
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

// heldEngine holds its next Insert until released, and counts
// Checkpoint calls.
type heldEngine struct {
	engine.Engine
	hold        chan struct{} // an Insert waits on it when not nil
	inInsert    chan struct{} // closed once the held Insert waits
	checkpoints atomic.Int64
}

func (e *heldEngine) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	if e.hold != nil && pos == 0 {
		close(e.inInsert)
		<-e.hold
	}
	return e.Engine.Insert(ctx, rows, pos)
}

func (e *heldEngine) Checkpoint(ctx context.Context) error {
	e.checkpoints.Add(1)
	return e.Engine.Checkpoint(ctx)
}

// TestIdleCheckpointWaitsForALoad: Run's idle checkpoint (no commit since
// the previous tick) does not run while a load's Insert is in progress
// (a load's transaction of a row group takes seconds: a tick without a
// commit is no pause then, and the checkpoint would hold up the load's
// next transactions), and runs once the load's commit has been followed
// by a tick without one.
func TestIdleCheckpointWaitsForALoad(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	he := &heldEngine{Engine: eng}
	l, err := Open(dir, Options{Engine: he})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	p := audit.Principal{AccountID: acctA, Region: "us-east-1"}
	st, err := l.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("held")})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := l.NewSink(ctx, acctA, []string{st.ID})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(id string) audit.Record {
		raw := `{"eventVersion":"1.08","eventID":"` + id + `","eventTime":"` + time.Now().UTC().Format(time.RFC3339) + `","eventName":"Op","eventSource":"s3.amazonaws.com","awsRegion":"us-east-1","recipientAccountId":"` + acctA + `"}`
		r, err := audit.Extract([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A load's batch is a transaction of its own (more than the engine
	// journals).
	batch := func(name string) []audit.Record {
		recs := make([]audit.Record, 5000)
		for i := range recs {
			recs[i] = rec(name + strconv.Itoa(i))
		}
		return recs
	}
	// A committed load, so that an idle tick has something to checkpoint.
	if _, _, err := sink.AppendEachReport(ctx, batch("first")); err != nil {
		t.Fatal(err)
	}
	if l.commits.Load() == 0 {
		t.Fatal("the first load's transaction was not counted")
	}
	base := he.checkpoints.Load() // others' (Open's, the store's)
	he.hold, he.inInsert = make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, _, err := sink.AppendEachReport(ctx, batch("second"))
		done <- err
	}()
	<-he.inInsert
	for range 3 { // the first tick sees the earlier commit, the next ones none
		l.idleCheckpoint(ctx)
	}
	if n := he.checkpoints.Load() - base; n != 0 {
		t.Errorf("%d idle checkpoints while a load's insert was in progress; want 0", n)
	}
	he.hold <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	he.hold = nil
	for range 2 { // the load's commit, then a tick without one
		l.idleCheckpoint(ctx)
	}
	if n := he.checkpoints.Load() - base; n != 1 {
		t.Errorf("%d idle checkpoints after the load; want 1", n)
	}
	res, err := l.Query(ctx, acctA, `SELECT count(*) AS n FROM `+st.ID)
	if err != nil || *res.Rows[0][0] != "10000" {
		t.Errorf("the store holds %v (%v); want 10000 events", res, err)
	}
}
