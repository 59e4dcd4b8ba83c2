// Package adapters gives tests every audit.StateStore adapter by name: the
// data dir's files (internal/statefile: one process) and PostgreSQL (the
// store's State: every node), so a feature's shared-state test runs on both.
package adapters

import (
	"context"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/statefile"
	"github.com/cairn-audit/cairn/internal/store/postgres"
)

// All returns a function per adapter that opens a fresh, empty state for
// t (PostgreSQL: a database of its own, through pgtest), closed with t.
func All() map[string]func(t *testing.T) audit.StateStore {
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
