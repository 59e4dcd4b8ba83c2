package insights_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestRunnerFencedOff: a runner whose Insights lease passed to another
// node (its fence stale) saves nothing more to the shared state in
// PostgreSQL: its save is refused (lease.ErrFenced) and Run returns that
// error (the lease holder counts a lost lease) instead of retrying every
// SaveEvery; the holder's save is kept as it was.
func TestRunnerFencedOff(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	state, leases := st.State(), st.Leases()
	hist := burstHistory(t)
	slices.SortStableFunc(hist, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
	half := len(hist) / 2
	s := audittest.NewMemStore()
	appendAll(t, s, hist[:half])

	var clock atomic.Int64
	clock.Store(hist[half-1].Time.Unix())
	tok, ok, err := leases.Acquire(ctx, "insights", "a", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	fa := lease.Fence{Lease: "insights", Holder: "a", Token: tok}
	r := insights.NewRunner(insights.RunnerConfig{Feed: s, Sink: s, History: s, All: true, Params: smallParams(),
		Poll: time.Millisecond, Now: func() time.Time { return time.Unix(clock.Load(), 0) },
		State: state, SaveEvery: time.Minute})
	rctx, cancel := context.WithCancel(lease.WithFence(ctx, fa))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()

	// The holder saves once its clock passed SaveEvery.
	version := func() int64 {
		t.Helper()
		v, err := state.Version(ctx, "insights.state")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var v1 int64
	for deadline := testwait.End(t); v1 == 0; v1 = version() {
		if time.Now().After(deadline) {
			t.Fatal("the holder saved no state")
		}
		clock.Add(61)
		time.Sleep(5 * time.Millisecond)
	}

	// The lease passes to b; a reads on and, at its next save, is fenced.
	if err := leases.Release(ctx, fa); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := leases.Acquire(ctx, "insights", "b", time.Minute); !ok || err != nil {
		t.Fatalf("b could not take the released lease: %v, %v", ok, err)
	}
	v1 = version() // the last save a made before the lease passed
	appendAll(t, s, hist[half:])
	clock.Store(hist[len(hist)-1].Time.Unix())
	deadline := testwait.Context(t).Done()
	for stopped := false; !stopped; {
		select {
		case err := <-done:
			if !errors.Is(err, lease.ErrFenced) {
				t.Fatalf("Run of a fenced-off runner = %v; want ErrFenced", err)
			}
			stopped = true
		case <-deadline:
			t.Fatal("Run of a fenced-off runner did not return")
		case <-time.After(5 * time.Millisecond):
			clock.Add(61)
		}
	}
	if v := version(); v != v1 {
		t.Errorf("a fenced-off runner saved its state (version %d, was %d)", v, v1)
	}
}
