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
		mu.Lock()
		dsn, ok := dbs[dir]
		if !ok {
			dsn = pgtest.Database(t)
			dbs[dir] = dsn
		}
		mu.Unlock()
		st, err := postgres.Open(context.Background(), dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}
