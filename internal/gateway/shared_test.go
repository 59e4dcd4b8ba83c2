package gateway

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/statetest/adapters"
)

// Two gateway nodes on one shared StateStore: a session learnt through
// node A is known to node B (with its identity), until it expires; a
// key that cannot name state (hostile) is no session, and sessions expire
// out of the shared store.
func TestSessionsShared(t *testing.T) {
	states := adapters.All()
	for name, open := range states {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			log := slog.New(slog.DiscardHandler)
			a, err := newSessionCache(100, "ignored-with-state", st, clk.now, log)
			if err != nil {
				t.Fatal(err)
			}
			b, err := newSessionCache(100, "", st, clk.now, log)
			if err != nil {
				t.Fatal(err)
			}
			a.put("ASIAAAAAAAAAAAAAAAA1", &session{account: "111111111111", roleARN: "arn:aws:iam::111111111111:role/r",
				issuer: audit.Principal{ARN: "arn:aws:iam::111111111111:user/alice", AccountID: "111111111111"}, expires: clk.now().Add(time.Hour)})
			a.put("ASIAAAAAAAAAAAAAAAA2", &session{account: "111111111111", expires: clk.now().Add(time.Minute)})
			s, ok := b.get("ASIAAAAAAAAAAAAAAAA1")
			if !ok || s.account != "111111111111" || s.roleARN != "arn:aws:iam::111111111111:role/r" || s.issuer.ARN != "arn:aws:iam::111111111111:user/alice" {
				t.Fatalf("node B's session = %+v, %v; want node A's", s, ok)
			}
			for _, key := range []string{"", "../token.key", "ASIA/../../x", strings.Repeat("A", 300), "ASIA\x00", "ASIAUNKNOWN000000000"} {
				if _, ok := b.get(key); ok {
					t.Errorf("node B's get(%q) found a session", key)
				}
			}
			clk.add(2 * time.Minute)
			if _, ok := b.get("ASIAAAAAAAAAAAAAAAA2"); ok {
				t.Error("node B used a session after its Expiration")
			}
			if _, v, _ := st.Get(context.Background(), "token.key"); v != 0 {
				t.Error("a hostile key reached another state key")
			}
		})
	}
}
