package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	// One database per directory the suite opens, so a reopened
	// directory finds its records.
	var mu sync.Mutex
	dbs := map[string]string{}
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		dsn := func() string {
			mu.Lock()
			defer mu.Unlock() // pgtest may end the test (Fatal)
			if dbs[dir] == "" {
				dbs[dir] = pgtest.Database(t)
			}
			return dbs[dir]
		}()
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
