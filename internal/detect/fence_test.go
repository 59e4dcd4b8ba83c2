package detect

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestDetectionFencedOff: a detector whose detection lease passed to
// another node (its fence stale) writes nothing more to the shared state
// in PostgreSQL: Sync stops at its first refused write (lease.ErrFenced)
// with neither a findings batch nor the positions written, Run returns
// that error instead of retrying, and the new holder finds what the
// fenced-off node could not store.
func TestDetectionFencedOff(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	state, leases := st.State(), st.Leases()
	rules := t.TempDir()
	writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
	feed := audittest.NewMemStore()
	appendAll(t, feed,
		event(t, 1, "111111111111", "us-east-1", "StopLogging", "IAMUser"),
		event(t, 2, "111111111111", "us-east-1", "CreateTrail", "IAMUser"),
		event(t, 1, "222222222222", "us-east-1", "DeleteTrail", "IAMUser"),
	)
	now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	cfg := Config{State: state, Feed: feed, Folders: []string{rules}, Interval: 10 * time.Millisecond,
		Now: func() time.Time { return now }}
	take := func(holder string) lease.Fence {
		t.Helper()
		tok, ok, err := leases.Acquire(ctx, "detect", holder, time.Minute)
		if !ok || err != nil {
			t.Fatalf("Acquire(%s) = %v, %v", holder, ok, err)
		}
		return lease.Fence{Lease: "detect", Holder: holder, Token: tok}
	}
	stored := func() (int64, int) {
		t.Helper()
		v, err := state.Version(ctx, StateFile)
		if err != nil {
			t.Fatal(err)
		}
		batches, err := state.List(ctx, findingsPrefix)
		if err != nil {
			t.Fatal(err)
		}
		return v, len(batches)
	}

	fa := take("a")
	a := open(t, cfg)
	if n, err := a.Sync(lease.WithFence(ctx, fa)); err != nil || n != 2 {
		t.Fatalf("the holder's Sync = %d, %v; want 2 findings", n, err)
	}
	v0, n0 := stored()
	if v0 == 0 || n0 != 1 {
		t.Fatalf("after the holder's Sync: positions version %d, %d batches; want saved, 1", v0, n0)
	}

	// The lease passes to b; a, not knowing yet, matches a new record.
	if err := leases.Release(ctx, fa); err != nil {
		t.Fatal(err)
	}
	fb := take("b")
	appendAll(t, feed, event(t, 3, "111111111111", "us-east-1", "StopLogging", "IAMUser"))
	if _, err := a.Sync(lease.WithFence(ctx, fa)); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a fenced-off Sync = %v; want ErrFenced", err)
	}
	if v, n := stored(); v != v0 || n != n0 {
		t.Errorf("a fenced-off Sync wrote: positions version %d (was %d), %d batches (was %d)", v, v0, n, n0)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(lease.WithFence(ctx, fa)) }()
	select {
	case err := <-done:
		if !errors.Is(err, lease.ErrFenced) {
			t.Errorf("Run of a fenced-off detector = %v; want ErrFenced", err)
		}
	case <-testwait.Context(t).Done():
		t.Fatal("Run of a fenced-off detector did not return")
	}
	if v, n := stored(); v != v0 || n != n0 {
		t.Errorf("a fenced-off Run wrote: positions version %d (was %d), %d batches (was %d)", v, v0, n, n0)
	}

	// The holder finds the record the fenced-off node could not store,
	// and a lists it (reading the shared findings again).
	b := open(t, cfg)
	if n, err := b.Sync(lease.WithFence(ctx, fb)); err != nil || n != 1 {
		t.Fatalf("the new holder's Sync = %d, %v; want 1 finding", n, err)
	}
	if got := a.List(Query{Account: "111111111111", Region: "us-east-1"}).Findings; len(got) != 2 {
		t.Errorf("node a lists %d findings of 111111111111; want 2", len(got))
	}
}
