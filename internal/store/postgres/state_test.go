package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
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
