package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// openNodes opens n stores on one fresh database: n nodes sharing it.
func openNodes(t *testing.T, n int) []*postgres.Store {
	t.Helper()
	return openNodesOn(t, pgtest.Database(t), n)
}

// openNodesOn opens n stores on the database dsn.
func openNodesOn(t *testing.T, dsn string, n int) []*postgres.Store {
	t.Helper()
	var out []*postgres.Store
	for range n {
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, st)
	}
	return out
}

// TestLeasesOneHolder: the lease table in PostgreSQL gives a lease to one
// node at a time. Variants: nodes racing for a free lease (one wins),
// renewal by the holder and by others, a restarted holder (same node id,
// must wait), release (taken at once, larger token), expiry on the
// database's clock (taken, larger token; the old holder's renewal and
// release then change nothing).
func TestLeasesOneHolder(t *testing.T) {
	nodes := openNodes(t, 3)
	ctx := context.Background()
	a, b, c := nodes[0].Leases(), nodes[1].Leases(), nodes[2].Leases()
	const ttl = time.Minute

	t.Run("race", func(t *testing.T) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []int64
		for i := range 12 {
			tab := nodes[i%3].Leases()
			wg.Go(func() {
				tok, ok, err := tab.Acquire(ctx, "race", "node"+string(rune('a'+i)), ttl)
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					winners = append(winners, tok)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(winners) != 1 || winners[0] != 1 {
			t.Errorf("winners of a free lease = %v; want one, token 1", winners)
		}
	})

	tok, ok, err := a.Acquire(ctx, "delivery", "a", ttl)
	if err != nil || !ok || tok != 1 {
		t.Fatalf("a.Acquire = %d, %v, %v; want 1, true", tok, ok, err)
	}
	fa := lease.Fence{Lease: "delivery", Holder: "a", Token: tok}
	for _, try := range []struct {
		tab    lease.Table
		holder string
	}{{b, "b"}, {c, "c"}, {b, "a"}} { // "a" again: a restarted node, its old holding alive
		if _, ok, err := try.tab.Acquire(ctx, "delivery", try.holder, ttl); ok || err != nil {
			t.Errorf("Acquire by %s of a held lease = %v, %v; want false", try.holder, ok, err)
		}
	}
	if ok, err := a.Renew(ctx, fa, ttl); !ok || err != nil {
		t.Errorf("holder's Renew = %v, %v; want true", ok, err)
	}
	for _, f := range []lease.Fence{{Lease: "delivery", Holder: "b", Token: 1}, {Lease: "delivery", Holder: "a", Token: 2}, {Lease: "other", Holder: "a", Token: 1}} {
		if ok, err := b.Renew(ctx, f, ttl); ok || err != nil {
			t.Errorf("Renew(%+v) = %v, %v; want false", f, ok, err)
		}
	}
	if err := a.Release(ctx, fa); err != nil {
		t.Fatal(err)
	}
	tok2, ok, err := b.Acquire(ctx, "delivery", "b", 200*time.Millisecond)
	if err != nil || !ok || tok2 <= tok {
		t.Fatalf("b.Acquire after release = %d, %v, %v; want a token above %d", tok2, ok, err, tok)
	}
	fb := lease.Fence{Lease: "delivery", Holder: "b", Token: tok2}
	if ok, _ := a.Renew(ctx, fa, ttl); ok {
		t.Errorf("Renew of a released holding succeeded")
	}
	// b's holding expires (200 ms on the database's clock); c takes it.
	var tok3 int64
	for deadline := testwait.End(t); ; {
		if tok3, ok, err = c.Acquire(ctx, "delivery", "c", ttl); err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired lease was not taken before the test's deadline")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if tok3 <= tok2 {
		t.Errorf("token after expiry = %d; want above %d", tok3, tok2)
	}
	if ok, _ := b.Renew(ctx, fb, ttl); ok {
		t.Errorf("Renew of an expired, retaken holding succeeded")
	}
	if err := b.Release(ctx, fb); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Acquire(ctx, "delivery", "a", ttl); ok {
		t.Errorf("an old holder's Release ended the new holding")
	}
}

// TestFencedWrites: a write made under a lease (retention's delete, the
// writer of shared state here) is refused once the lease has another
// holding, and done while its own is current. Variants: a stale token
// after a takeover, an expired holding no one took yet, a fence naming a
// lease that never existed; and without a fence (one node) nothing is
// checked.
func TestFencedWrites(t *testing.T) {
	dsn := pgtest.Database(t)
	nodes := openNodesOn(t, dsn, 2)
	ctx := context.Background()
	a, b := nodes[0].Leases(), nodes[1].Leases()
	stored := func() int {
		t.Helper()
		got, err := nodes[1].ReadAppended(ctx, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(got)
	}
	tok, _, _ := a.Acquire(ctx, "retention", "a", 3*time.Second)
	fa := lease.Fence{Lease: "retention", Holder: "a", Token: tok}
	if _, err := nodes[0].DeleteReceivedBefore(lease.WithFence(ctx, fa), time.Now()); err != nil {
		t.Errorf("delete under the current holding = %v; want done", err)
	}
	rec := audit.Record{Account: "111111111111", Region: "us-east-1", Time: time.Now(), EventID: "e1", EventName: "X",
		EventSource: "s", Raw: []byte(`{"eventID":"e1"}`)}
	if _, err := nodes[0].Append(ctx, []audit.Record{rec}); err != nil {
		t.Fatal(err)
	}
	// a's holding expires, no one takes it yet: a's write is refused.
	waitExpired(t, dsn, "retention")
	if _, err := nodes[0].DeleteReceivedBefore(lease.WithFence(ctx, fa), time.Now()); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("delete under an expired holding = %v; want ErrFenced", err)
	}
	tokB, ok, err := b.Acquire(ctx, "retention", "b", time.Minute)
	if !ok || err != nil {
		t.Fatalf("b.Acquire = %v, %v", ok, err)
	}
	if _, err := nodes[0].DeleteReceivedBefore(lease.WithFence(ctx, fa), time.Now()); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("delete by the old holder after a takeover = %v; want ErrFenced", err)
	}
	if _, err := nodes[0].DeleteReceivedBefore(lease.WithFence(ctx, lease.Fence{Lease: "retention", Holder: "a", Token: tokB}), time.Now()); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("delete by another node with the holder's token = %v; want ErrFenced", err)
	}
	if n := stored(); n != 1 {
		t.Fatalf("records after the refused deletes = %d; want 1", n)
	}
	if _, err := nodes[1].DeleteReceivedBefore(lease.WithFence(ctx, lease.Fence{Lease: "retention", Holder: "b", Token: tokB}), time.Now()); err != nil {
		t.Errorf("delete by the new holder = %v; want done", err)
	}
	if n := stored(); n != 0 {
		t.Errorf("records after the new holder's delete = %d; want 0", n)
	}
	if _, err := nodes[0].DeleteReceivedBefore(lease.WithFence(ctx, lease.Fence{Lease: "never", Holder: "a", Token: 1}), time.Now()); !errors.Is(err, lease.ErrFenced) {
		t.Errorf("delete under a lease that does not exist = %v; want ErrFenced", err)
	}
	if _, err := nodes[0].DeleteReceivedBefore(ctx, time.Now()); err != nil {
		t.Errorf("delete without a fence = %v; want done", err)
	}
}

// TestFenceHoldsOffTakeover: a write that passed its fence check keeps
// the lease from changing hands until it commits, even if the holding
// expires meanwhile: the next holder's Acquire waits for the row lock and
// takes the lease after the write, so it reads what the write left. (A
// check that did not lock would let the new holder act before the old
// holder's write lands.)
func TestFenceHoldsOffTakeover(t *testing.T) {
	dsn := pgtest.Database(t)
	nodes := openNodesOn(t, dsn, 2)
	ctx := context.Background()
	a, b := nodes[0].Leases(), nodes[1].Leases()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	tok, ok, err := a.Acquire(ctx, "delivery", "a", 5*time.Second)
	if !ok || err != nil {
		t.Fatalf("a.Acquire = %v, %v", ok, err)
	}
	if err := postgres.CheckFence(lease.WithFence(ctx, lease.Fence{Lease: "delivery", Holder: "a", Token: tok}), tx); err != nil {
		t.Fatalf("CheckFence of the current holding = %v", err)
	}
	// The holding expires while the write is open; b tries to take it.
	waitExpired(t, dsn, "delivery")
	type result struct {
		tok int64
		ok  bool
		err error
	}
	got := make(chan result, 1)
	go func() {
		tok, ok, err := b.Acquire(ctx, "delivery", "b", time.Minute)
		got <- result{tok, ok, err}
	}()
	// b's Acquire is waiting for the lease row's lock (seen in
	// pg_locks), not done.
	for deadline := testwait.End(t); ; {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO leases%')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		select {
		case r := <-got:
			t.Fatalf("b.Acquire returned (%+v) while a's fenced write was open; want it to wait", r)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("b.Acquire neither waited on the lease row nor returned")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := tx.Exec(ctx, `SELECT 1`); err != nil { // the write
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.err != nil || !r.ok || r.tok <= tok {
		t.Errorf("b.Acquire after the write committed = %+v; want the lease with a token above %d", r, tok)
	}
}

// waitExpired waits until the lease name's holding has expired on the
// database's clock.
func waitExpired(t *testing.T, dsn, name string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for deadline := testwait.End(t); ; {
		var expired bool
		if err := conn.QueryRow(ctx, `SELECT expires <= clock_timestamp() FROM leases WHERE name = $1`, name).Scan(&expired); err != nil {
			t.Fatal(err)
		}
		if expired {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s did not expire", name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
