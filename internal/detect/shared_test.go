package detect

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/statetest/adapters"
)

// Two detectors on one shared StateStore are two nodes: the findings node
// A stored are listed by node B; node B, taking detection over, resumes
// after A's saved position (it stores nothing again) and its new findings
// are listed by A; a stored batch that is damaged loses only its lines;
// expiry removes whole expired batches for every node.
func TestFindingsShared(t *testing.T) {
	states := adapters.All()
	for name, openState := range states {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			state, rules := openState(t), t.TempDir()
			writeRule(t, filepath.Join(rules, "stop.yml"), stopLoggingRule)
			feed := audittest.NewMemStore()
			appendAll(t, feed,
				event(t, 1, "111111111111", "us-east-1", "StopLogging", "IAMUser"),
				event(t, 2, "111111111111", "us-east-1", "CreateTrail", "IAMUser"),
				event(t, 1, "222222222222", "us-east-1", "DeleteTrail", "IAMUser"),
			)
			now := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return now }
			cfg := Config{State: state, Feed: feed, Folders: []string{rules}, Retention: 24 * time.Hour, Now: clock}
			a := open(t, cfg)
			if n, err := a.Sync(ctx); err != nil || n != 2 {
				t.Fatalf("node A's Sync = %d, %v; want 2 findings", n, err)
			}
			b := open(t, cfg)
			list := func(d *Detector, account string) []string {
				return ids(d.List(Query{Account: account, Region: "us-east-1"}).Findings)
			}
			if got := list(b, "111111111111"); strings.Join(got, " ") != "1111/ev-111111111111-1" {
				t.Fatalf("node B lists %v; want node A's finding", got)
			}
			if got := list(b, "333333333333"); len(got) != 0 {
				t.Errorf("node B lists %v for an account without findings", got)
			}
			// A matches a new record while B is idle: B, taking over,
			// continues from A's new position, not the one it opened at.
			appendAll(t, feed, event(t, 5, "111111111111", "eu-west-1", "StopLogging", "IAMUser"))
			if n, err := a.Sync(ctx); err != nil || n != 1 {
				t.Fatalf("node A's second Sync = %d, %v; want 1", n, err)
			}
			// B takes over: nothing is matched again; a new record is.
			if n, err := b.Sync(ctx); err != nil || n != 0 {
				t.Fatalf("node B's Sync over A's position = %d, %v; want 0", n, err)
			}
			now = now.Add(2 * time.Hour)
			appendAll(t, feed, event(t, 3, "111111111111", "us-east-1", "StopLogging", "IAMUser"))
			if n, err := b.Sync(ctx); err != nil || n != 1 {
				t.Fatalf("node B's Sync of a new record = %d, %v; want 1", n, err)
			}
			if got := list(a, "111111111111"); strings.Join(got, " ") != "1111/ev-111111111111-3 1111/ev-111111111111-1" {
				t.Fatalf("node A lists %v; want B's finding and its own, newest first", got)
			}
			// A damaged batch loses its own lines only.
			if _, err := state.Put(ctx, findingsPrefix+"00000000000000000000-bad", []byte("{\"findingId\":\n\x00\xff\n"), 0); err != nil {
				t.Fatal(err)
			}
			c := open(t, cfg)
			if got := list(c, "111111111111"); len(got) != 2 {
				t.Errorf("a third node over a damaged batch lists %v; want the 2 good findings", got)
			}
			// A day after node A's batches, expiry removes them for all.
			now = now.Add(23 * time.Hour)
			if n, err := b.Expire(); err != nil || n != 3 {
				t.Fatalf("Expire = %d, %v; want node A's 3 findings", n, err)
			}
			d := open(t, cfg)
			if got := list(d, "111111111111"); strings.Join(got, " ") != "1111/ev-111111111111-3" {
				t.Errorf("after expiry a new node lists %v; want only the finding of the second batch", got)
			}
		})
	}
}
