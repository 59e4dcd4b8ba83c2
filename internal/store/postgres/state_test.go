package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/statetest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
)

func TestStateConformance(t *testing.T) {
	st, err := postgres.Open(context.Background(), pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	statetest.Run(t, st.State())
}

// Two stores on one database are two nodes: a change through one is seen
// by the other, and a write from a node that read an older version loses.
func TestStateSharedBetweenNodes(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	a, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	va, err := a.State().Put(ctx, "trails.json", []byte(`[1]`), 0)
	if err != nil {
		t.Fatal(err)
	}
	got, vb, err := b.State().Get(ctx, "trails.json")
	if err != nil || vb != va || string(got) != `[1]` {
		t.Fatalf("node B Get = %q, %d, %v; want [1], %d", got, vb, err, va)
	}
	if _, err := b.State().Put(ctx, "trails.json", []byte(`[2]`), vb); err != nil {
		t.Fatal(err)
	}
	if _, err := a.State().Put(ctx, "trails.json", []byte(`[3]`), va); !errors.Is(err, audit.ErrStateConflict) {
		t.Fatalf("node A's Put over B's change = %v; want ErrStateConflict", err)
	}
	if v, _ := a.State().Version(ctx, "trails.json"); v == va {
		t.Fatalf("node A sees version %d after B's change; want a new one", v)
	}
}

// TestStateFencedWrites: the shared state's writes made under a lease
// (the delivery's positions, digest chains, Insights and detection state)
// are refused, with an error wrapping lease.ErrFenced and nothing
// changed, once the fence is not the lease's current holding, and done
// while it is. Variants: each write (Put of a new key, Put of a version,
// Delete), a holding expired that no one took yet, a takeover by another
// node, another node's holder name with the current token, a lease that
// never existed; the new holder's writes and writes without a fence (one
// node, API calls) go through.
func TestStateFencedWrites(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	nodes := openNodesOn(t, dsn, 2)
	a, b := nodes[0], nodes[1]
	tok, ok, err := a.Leases().Acquire(ctx, "delivery", "a", 3*time.Second)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	fa := lease.WithFence(ctx, lease.Fence{Lease: "delivery", Holder: "a", Token: tok})
	v, err := a.State().Put(fa, "trails.json", []byte(`["a"]`), 0)
	if err != nil {
		t.Fatalf("Put of a new key under the current holding = %v", err)
	}
	if v, err = a.State().Put(fa, "trails.json", []byte(`["a2"]`), v); err != nil {
		t.Fatalf("Put of a version under the current holding = %v", err)
	}
	gone, err := a.State().Put(fa, "digest/x", []byte(`1`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.State().Delete(fa, "digest/x", gone); err != nil {
		t.Fatalf("Delete under the current holding = %v", err)
	}
	keep, err := a.State().Put(fa, "digest/y", []byte(`1`), 0)
	if err != nil {
		t.Fatal(err)
	}
	// refused checks that every write of ctx is refused as fenced and
	// changed nothing.
	refused := func(why string, ctx context.Context) {
		t.Helper()
		if _, err := a.State().Put(ctx, "trails.json", []byte(`["stale"]`), v); !errors.Is(err, lease.ErrFenced) {
			t.Errorf("%s: Put of a version = %v; want ErrFenced", why, err)
		}
		if _, err := a.State().Put(ctx, "digest/new", []byte(`1`), 0); !errors.Is(err, lease.ErrFenced) {
			t.Errorf("%s: Put of a new key = %v; want ErrFenced", why, err)
		}
		if err := a.State().Delete(ctx, "digest/y", keep); !errors.Is(err, lease.ErrFenced) {
			t.Errorf("%s: Delete = %v; want ErrFenced", why, err)
		}
		if got, gv, _ := b.State().Get(context.Background(), "trails.json"); string(got) != `["a2"]` || gv != v {
			t.Errorf("%s: trails.json = %s (version %d); want the holder's write kept", why, got, gv)
		}
		if gv, _ := b.State().Version(context.Background(), "digest/new"); gv != 0 {
			t.Errorf("%s: a refused Put created its key", why)
		}
		if gv, _ := b.State().Version(context.Background(), "digest/y"); gv != keep {
			t.Errorf("%s: a refused Delete removed its key", why)
		}
	}
	refused("a lease that never existed", lease.WithFence(ctx, lease.Fence{Lease: "never", Holder: "a", Token: 1}))
	waitExpired(t, dsn, "delivery")
	refused("expired holding", fa)
	tokB, ok, err := b.Leases().Acquire(ctx, "delivery", "b", time.Minute)
	if !ok || err != nil {
		t.Fatalf("b.Acquire = %v, %v", ok, err)
	}
	refused("after a takeover", fa)
	refused("another holder with the current token", lease.WithFence(ctx, lease.Fence{Lease: "delivery", Holder: "a", Token: tokB}))
	fb := lease.WithFence(ctx, lease.Fence{Lease: "delivery", Holder: "b", Token: tokB})
	if v, err = b.State().Put(fb, "trails.json", []byte(`["b"]`), v); err != nil {
		t.Errorf("the new holder's Put = %v", err)
	}
	if err := b.State().Delete(fb, "digest/y", keep); err != nil {
		t.Errorf("the new holder's Delete = %v", err)
	}
	if _, err := a.State().Put(ctx, "trails.json", []byte(`["api"]`), v); err != nil {
		t.Errorf("a Put without a fence = %v", err)
	}
	// A fenced write that loses the compare-and-swap is a conflict.
	if _, err := b.State().Put(fb, "trails.json", []byte(`["b2"]`), v); !errors.Is(err, audit.ErrStateConflict) {
		t.Errorf("a fenced Put of an old version = %v; want ErrStateConflict", err)
	}
}
