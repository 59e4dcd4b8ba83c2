package trail

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/statefile"
	"github.com/cairn-audit/cairn/internal/store/postgres"
)

// sharedStates returns the StateStore adapters a shared registry runs on:
// the data dir's files (one process) and PostgreSQL (every node).
func sharedStates(t *testing.T) map[string]func(t *testing.T) audit.StateStore {
	return map[string]func(t *testing.T) audit.StateStore{
		"files": func(t *testing.T) audit.StateStore { return statefile.Open(t.TempDir()) },
		"postgres": func(t *testing.T) audit.StateStore {
			st, err := postgres.Open(context.Background(), pgtest.Database(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st.State()
		},
	}
}

// Two registries on one StateStore are two nodes: each sees the other's
// trails and positions, and concurrent changes from both lose none.
func TestSharedRegistryTwoNodes(t *testing.T) {
	for name, open := range sharedStates(t) {
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
	for name, open := range sharedStates(t) {
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
