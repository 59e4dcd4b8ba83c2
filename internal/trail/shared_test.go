package trail

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/statetest/adapters"
)

// Two registries on one StateStore are two nodes: each sees the other's
// trails and positions, and concurrent changes from both lose none.
func TestSharedRegistryTwoNodes(t *testing.T) {
	for name, open := range adapters.All() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			a, err := OpenSharedRegistry(ctx, SharedConfig{State: st})
			if err != nil {
				t.Fatal(err)
			}
			b, err := OpenSharedRegistry(ctx, SharedConfig{State: st})
			if err != nil {
				t.Fatal(err)
			}
			if err := a.update(addTrail("first")); err != nil {
				t.Fatal(err)
			}
			if got := b.Trails(); len(got) != 1 || got[0].Name != "first" {
				t.Fatalf("node B's trails = %v; want first", got)
			}
			arn := b.Trails()[0].ARN()
			if err := b.update(func(trails map[string]*Trail) error {
				trails[arn].Logging, trails[arn].Position = true, 42
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if got, ok := a.get(arn); !ok || !got.Logging || got.Position != 42 {
				t.Fatalf("node A's trail = %+v; want logging at position 42 (node B's change)", got)
			}
			// A refused change (fn's error) changes nothing on either node.
			if err := b.update(addTrail("first")); audit.ErrorCode(err) != audit.CodeTrailAlreadyExists {
				t.Fatalf("second create = %v; want TrailAlreadyExists", err)
			}
			var wg sync.WaitGroup
			for i := range 10 {
				for n, r := range []*Registry{a, b} {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := r.update(addTrail(fmt.Sprintf("n%d-%d", n, i))); err != nil {
							t.Error(err)
						}
					}()
				}
			}
			wg.Wait()
			for n, r := range []*Registry{a, b} {
				if got := len(r.Trails()); got != 21 {
					t.Errorf("node %d holds %d trails; want 21 (a change was lost)", n, got)
				}
			}
			if got, _ := b.get(arn); got.Position != 42 {
				t.Errorf("position after the concurrent changes = %d; want 42", got.Position)
			}
		})
	}
}

// A damaged stored registry is refused at open with an error, never a
// panic, whichever node wrote it.
func TestSharedRegistryDamaged(t *testing.T) {
	for name, open := range adapters.All() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			for i, val := range []string{`{`, `{"name":1}`, `[{"name": 5}]`, "\x00\xff"} {
				v, _ := st.Version(context.Background(), registryFile)
				if _, err := st.Put(context.Background(), registryFile, []byte(val), v); err != nil {
					t.Fatal(err)
				}
				if _, err := OpenSharedRegistry(context.Background(), SharedConfig{State: st}); err == nil {
					t.Errorf("%d: OpenSharedRegistry over %q = nil error", i, val)
				}
			}
		})
	}
}

// Digests taken over by another node continue the chain: node A writes
// the first digest, node B (its own keyring and writer on the same
// StateStore) learns of a file and writes the next, chained to A's and
// signed with the same key, and the chain validates across the takeover.
func TestSharedDigestsTakeOver(t *testing.T) {
	for name, open := range adapters.All() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			f := newFixture(t, "ct") // the bucket, trails and clock; its file-kept writer is not used
			node := func() (*Keyring, *DigestWriter) {
				kr, err := OpenSharedKeyring(ctx, st, 0)
				if err != nil {
					t.Fatal(err)
				}
				w, err := NewDigestWriter(DigestConfig{State: st, Trails: f.trails, Bucket: f.w.cfg.Bucket, Keys: kr, Interval: time.Hour, Now: f.clk.now})
				if err != nil {
					t.Fatal(err)
				}
				return kr, w
			}
			ka, wa := node()
			kb, wb := node()
			f.keys = kb // the validator lists B's public keys

			f.w = wa
			f.clk.t = f.t0.Add(10 * time.Minute)
			f.deliver(t, "us-east-1", `{"Records":[{"eventVersion":"1.11","n":1}]}`)
			f.clk.t = f.t0.Add(time.Hour)
			wa.WriteDue(ctx)

			f.w = wb
			f.clk.t = f.t0.Add(70 * time.Minute)
			f.deliver(t, "us-east-1", `{"Records":[{"eventVersion":"1.11","n":2}]}`)
			f.clk.t = f.t0.Add(2 * time.Hour)
			wb.WriteDue(ctx)

			d := f.digests(t)
			if len(d) != 2 {
				t.Fatalf("digests: %v; want one from each node", d)
			}
			second, _, _ := readDigest(t, f.bkt, d[1])
			if second["previousDigestS3Object"] != d[0] || len(second["logFiles"].([]any)) != 1 {
				t.Errorf("node B's digest = %v; want chained to A's with B's file", second)
			}
			if ok, out, errs := f.validate(t, f.t0, f.t0.Add(2*time.Hour)); !ok || !strings.Contains(out, "2/2 digest files valid") || !strings.Contains(out, "2/2 log files valid") {
				t.Fatalf("validation across the takeover: ok=%v\n%s\n%s", ok, out, errs)
			}
			a, b := ka.Public("us-east-1", f.t0, f.t0.Add(3*time.Hour)), kb.Public("us-east-1", f.t0, f.t0.Add(3*time.Hour))
			if len(a) != 1 || len(b) != 1 || a[0].Fingerprint != b[0].Fingerprint {
				t.Errorf("public keys: A %v, B %v; want the one shared key", a, b)
			}
		})
	}
}

// Nodes creating a region's first key at once end up signing with one
// key: the loser of the compare-and-swap uses the winner's.
func TestSharedKeyringRace(t *testing.T) {
	for name, open := range adapters.All() {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
			var wg sync.WaitGroup
			fps := make([]string, 4)
			for i := range fps {
				kr, err := OpenSharedKeyring(context.Background(), st, 0)
				if err != nil {
					t.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					k, err := kr.Current("eu-west-1", now)
					if err != nil {
						t.Error(err)
						return
					}
					fps[i] = k.Fingerprint
				}()
			}
			wg.Wait()
			for i := range fps {
				if fps[i] != fps[0] {
					t.Fatalf("nodes sign with %v; want one key", fps)
				}
			}
		})
	}
}
