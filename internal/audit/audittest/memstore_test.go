package audittest_test

import (
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

// The reference store passes the suite too, except durability across
// reopening, which an in-memory store cannot have: each dir keeps its store.
func TestMemStoreConformance(t *testing.T) {
	stores := map[string]*audittest.MemStore{}
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		if stores[dir] == nil {
			stores[dir] = audittest.NewMemStore()
		}
		return stores[dir]
	})
}
