package trail

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// takeoverBucket runs takeover before its first Put once armed: the
// node's lease passes to another node while the batch's files are being
// written.
type takeoverBucket struct {
	Bucket
	takeover *func()
}

func (b takeoverBucket) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	if f := *b.takeover; f != nil {
		*b.takeover = nil
		f()
	}
	return b.Bucket.Put(ctx, key, body, ct, meta)
}

// TestDeliveryFencedOff: a deliverer whose delivery lease passed to
// another node (its fence stale) writes nothing more to the shared
// registry in PostgreSQL: the round stops at the first refused write
// (lease.ErrFenced), sets no LatestDeliveryError and no backoff, and Run
// returns the error (the holder counts a lost lease) instead of retrying.
// Variants: the lease lost before a round (its intent is refused: no file
// written, position and status as they were) and during a round's writes
// (its files are written but the position is not saved: the intent
// stays, and the new holder delivers the batch again under the same keys,
// each event in exactly one file); the current holder's rounds deliver.
func TestDeliveryFencedOff(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Database(t)
	st, err := postgres.Open(ctx, dsn, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leases := st.Leases()
	dir := memDir(t)
	bkt, err := local.New("logs", filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	store := audittest.NewMemStore()
	var takeover func()
	bucket := func(n string) (Bucket, bool) { return takeoverBucket{bkt, &takeover}, n == "logs" }
	now := time.Date(2026, 11, 25, 8, 5, 0, 0, time.UTC)
	node := func() (*Registry, *Deliverer) {
		reg, err := OpenSharedRegistry(ctx, SharedConfig{State: st.State()})
		if err != nil {
			t.Fatal(err)
		}
		return reg, NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: bucket, Interval: 10 * time.Millisecond,
			Now: func() time.Time { return now }})
	}
	// acquire takes the delivery lease for holder once it is free (a
	// short holding expires on the database's clock).
	acquire := func(holder string, ttl time.Duration) context.Context {
		t.Helper()
		for deadline := testwait.End(t); ; {
			tok, ok, err := leases.Acquire(ctx, "delivery", holder, ttl)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return lease.WithFence(ctx, lease.Fence{Lease: "delivery", Holder: holder, Token: tok})
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s could not take the delivery lease", holder)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	regA, dA := node()
	tr := &Trail{Name: "fenced", Account: onceMgmt, HomeRegion: "us-east-1", S3BucketName: "logs", S3KeyPrefix: "p",
		IncludeGlobalServiceEvents: true, IsMultiRegionTrail: true, Logging: true, StartLoggingTime: now.Add(-time.Hour)}
	if err := regA.update(func(trails map[string]*Trail) error { trails[tr.ARN()] = tr; return nil }); err != nil {
		t.Fatal(err)
	}
	var all []audit.Record
	add := func(n int) {
		for i := range n {
			r := rec(t, onceMgmt, []string{"us-east-1", "eu-west-1"}[i%2], "ec2.amazonaws.com", fmt.Sprintf("Op%02d", i), false, "")
			all = append(all, r)
			store.Append(ctx, []audit.Record{r})
		}
	}
	files := func() map[string]int {
		got, _ := (&onceEnv{bkt: bkt}).deliveredIDs(t)
		return got["p"]
	}
	status := func(reg *Registry) Trail { return reg.Trails()[0] }

	// A holds the lease: its round delivers.
	ctxA := acquire("a", time.Second)
	add(4)
	if err := dA.round(ctxA, false); err != nil {
		t.Fatalf("the holder's round = %v", err)
	}
	if got := status(regA); got.Position != 4 || len(files()) != 4 {
		t.Fatalf("the holder delivered up to %d, %d events; want 4, 4", got.Position, len(files()))
	}

	// Before a round: A's holding expired and B took the lease.
	ctxB := acquire("b", time.Minute)
	add(4)
	err = dA.round(ctxA, false)
	if !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a fenced-off round = %v; want ErrFenced", err)
	}
	if got := status(regA); got.Position != 4 || got.Intent != nil || got.LatestDeliveryError != "" || len(files()) != 4 {
		t.Fatalf("after a fenced-off round: position %d, intent %+v, error %q, %d events delivered; want 4, none, none, 4",
			got.Position, got.Intent, got.LatestDeliveryError, len(files()))
	}
	if len(dA.backoff) != 0 {
		t.Errorf("a fenced-off round backed off: %v", dA.backoff)
	}
	// Run stops on it (the lease is lost), it does not retry.
	done := make(chan error, 1)
	go func() { done <- dA.Run(ctxA) }()
	select {
	case err := <-done:
		if !errors.Is(err, lease.ErrFenced) {
			t.Errorf("Run of a fenced-off deliverer = %v; want ErrFenced", err)
		}
	case <-testwait.Context(t).Done():
		t.Fatal("Run of a fenced-off deliverer did not return")
	}

	// During a round: B's files are being written when C takes the lease
	// (B's short holding expires first).
	fb, _ := lease.FenceFrom(ctxB)
	if err := leases.Release(ctx, fb); err != nil {
		t.Fatal(err)
	}
	ctxB = acquire("b", time.Second)
	regB, dB := node()
	var ctxC context.Context
	takeover = func() { ctxC = acquire("c", time.Minute) }
	err = dB.round(ctxB, false)
	if !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a round that lost its lease while writing = %v; want ErrFenced", err)
	}
	got := status(regB)
	if got.Position != 4 || got.Intent == nil || got.LatestDeliveryError != "" {
		t.Fatalf("after the lease was lost while writing: position %d, intent %+v, error %q; want 4, the batch's, none",
			got.Position, got.Intent, got.LatestDeliveryError)
	}
	// C, the new holder, finishes the begun batch under its keys.
	regC, dC := node()
	if err := dC.round(ctxC, false); err != nil {
		t.Fatalf("the new holder's round = %v", err)
	}
	if got := status(regC); got.Position != 8 || got.Intent != nil {
		t.Fatalf("the new holder delivered up to %d (intent %+v); want 8", got.Position, got.Intent)
	}
	delivered := files()
	for _, r := range all {
		if delivered[r.EventID] != 1 {
			t.Errorf("event %s in %d files; want 1", r.EventID, delivered[r.EventID])
		}
	}
}

// TestDigestChainsFencedOff: the digest writer's saves of the shared
// chains carry the delivery lease's fence: a log file reported under a
// stale fence changes nothing stored (and is not kept in memory), one
// reported under the current fence is saved.
func TestDigestChainsFencedOff(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := OpenSharedRegistry(ctx, SharedConfig{State: st.State()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewDigestWriter(DigestConfig{Dir: t.TempDir(), Trails: reg, State: st.State(), Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leases := st.Leases()
	tok, ok, err := leases.Acquire(ctx, "delivery", "a", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	fa := lease.Fence{Lease: "delivery", Holder: "a", Token: tok}
	tr := Trail{Name: "chained", Account: onceMgmt, HomeRegion: "us-east-1", S3BucketName: "logs", LogFileValidationEnabled: true, Logging: true}
	now := time.Now()
	w.LogDelivered(lease.WithFence(ctx, fa), tr, onceMgmt, "us-east-1", "k1", chain.HashLog([]byte(`{}`)), now, now)
	v1, _ := st.State().Version(ctx, stateFile)
	if v1 == 0 {
		t.Fatal("the holder's log file was not saved in the chains")
	}
	if err := leases.Release(ctx, fa); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := leases.Acquire(ctx, "delivery", "b", time.Minute); !ok {
		t.Fatal("b could not take the released lease")
	}
	w.LogDelivered(lease.WithFence(ctx, fa), tr, onceMgmt, "us-east-1", "k2", chain.HashLog([]byte(`{}`)), now, now)
	if v, _ := st.State().Version(ctx, stateFile); v != v1 {
		t.Errorf("a stale fence's log file changed the stored chains (version %d, was %d)", v, v1)
	}
	w.mu.Lock()
	err = w.refreshLocked()
	var keys []string
	for _, c := range w.chains {
		for _, p := range c.Pending {
			keys = append(keys, p.S3Object)
		}
	}
	w.mu.Unlock()
	if err != nil || len(keys) != 1 || keys[0] != "k1" {
		t.Errorf("chains after the fenced-off report = %v, %v; want k1 pending only", keys, err)
	}
}

// TestDigestStatusFencedOff: the digest writer's status write
// (LatestDigestDeliveryError, LatestDigestDeliveryTime) carries the
// delivery lease's fence: under the current fence a failed digest records
// its error code; under a stale one nothing is written to the shared
// registry and writeDue stops with lease.ErrFenced.
func TestDigestStatusFencedOff(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := OpenSharedRegistry(ctx, SharedConfig{State: st.State()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 8, 5, 0, 0, time.UTC)
	clock := now
	// No bucket is configured: every digest fails with NoSuchBucket, so
	// the only shared writes of a round are the status's.
	w, err := NewDigestWriter(DigestConfig{Dir: t.TempDir(), Trails: reg, State: st.State(), Interval: time.Hour,
		Bucket: func(string) (Bucket, bool) { return nil, false }, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Trail{Name: "digested", Account: onceMgmt, HomeRegion: "us-east-1", S3BucketName: "logs",
		LogFileValidationEnabled: true, Logging: true, StartLoggingTime: now.Add(-2 * time.Hour)}
	if err := reg.update(func(trails map[string]*Trail) error { trails[tr.ARN()] = tr; return nil }); err != nil {
		t.Fatal(err)
	}
	leases := st.Leases()
	tok, ok, err := leases.Acquire(ctx, "delivery", "a", time.Minute)
	if !ok || err != nil {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	fa := lease.Fence{Lease: "delivery", Holder: "a", Token: tok}
	if err := w.writeDue(lease.WithFence(ctx, fa)); err != nil {
		t.Fatalf("the holder's writeDue = %v", err)
	}
	if got := reg.Trails()[0].LatestDigestDeliveryError; got != "NoSuchBucket" {
		t.Fatalf("the holder's failed digest recorded %q; want NoSuchBucket", got)
	}
	v1, _ := st.State().Version(ctx, registryFile)

	if err := leases.Release(ctx, fa); err != nil {
		t.Fatal(err)
	}
	tb, ok, err := leases.Acquire(ctx, "delivery", "b", time.Minute)
	if !ok || err != nil {
		t.Fatalf("b could not take the released lease: %v, %v", ok, err)
	}
	// B clears the status (as a delivered digest does); A, fenced off,
	// must not write its error over it.
	fb := lease.Fence{Lease: "delivery", Holder: "b", Token: tb}
	if err := reg.setDigestStatus(lease.WithFence(ctx, fb), tr.ARN(), now, ""); err != nil {
		t.Fatalf("the new holder's status write = %v", err)
	}
	v2, _ := st.State().Version(ctx, registryFile)
	if v2 == v1 {
		t.Fatal("the new holder's status write changed nothing")
	}
	clock = now.Add(2 * time.Second)
	if err := w.writeDue(lease.WithFence(ctx, fa)); !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("a fenced-off writeDue = %v; want ErrFenced", err)
	}
	if v, _ := st.State().Version(ctx, registryFile); v != v2 {
		t.Errorf("a stale fence's status write changed the registry (version %d, was %d)", v, v2)
	}
	if got := reg.Trails()[0]; got.LatestDigestDeliveryError != "" || !got.LatestDigestDeliveryTime.Equal(now) {
		t.Errorf("status after the fenced-off round = %q at %v; want none at %v", got.LatestDigestDeliveryError, got.LatestDigestDeliveryTime, now)
	}
}
