package duckdb_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
	"github.com/cairn-audit/cairn/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		st, err := duckdb.Open(filepath.Join(dir, "events.duckdb"), duckdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	})
}

// sealingStore is a store that, after every other Append, closes, compacts
// with Seal and opens again: the conformance suite then runs over records
// in both tiers, the same days in each (storetest's records are of 2020
// to 2024: every day sealed is complete).
type sealingStore struct {
	mu      sync.RWMutex
	path    string
	st      *duckdb.Store
	appends int
	t       *testing.T
}

func (s *sealingStore) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res, err := s.st.Append(ctx, recs)
	if err != nil {
		return res, err
	}
	if s.appends++; s.appends%2 == 1 {
		if err := s.st.Close(); err != nil {
			return res, err
		}
		if _, err := duckdb.Compact(ctx, s.path, duckdb.Options{Seal: true}); err != nil {
			s.t.Errorf("Compact with Seal: %v", err)
		}
		if s.st, err = duckdb.Open(s.path, duckdb.Options{}); err != nil {
			return res, err
		}
		sealedSeen.Add(int64(s.st.SealedRecords()))
	}
	return res, nil
}

// sealedSeen adds up the sealed records after each seal, so that the test
// knows it sealed some.
var sealedSeen atomic.Int64

func (s *sealingStore) Lookup(ctx context.Context, q audit.Query) (audit.Page, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Lookup(ctx, q)
}

func (s *sealingStore) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.ReadAppended(ctx, after, limit)
}

func (s *sealingStore) DeleteReceivedBefore(ctx context.Context, t time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.DeleteReceivedBefore(ctx, t)
}

func (s *sealingStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Close()
}

// TestConformanceSealed runs the conformance suite over a store whose
// records are sealed after every other Append (docs/store.md, "The sealed
// tier"): lookups, paging, the feed, duplicates and retention over both
// tiers.
func TestConformanceSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, dir string) audit.Store {
		path := filepath.Join(dir, "events.duckdb")
		st, err := duckdb.Open(path, duckdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return &sealingStore{path: path, st: st, t: t}
	})
	if sealedSeen.Load() == 0 {
		t.Error("no record was sealed")
	}
	t.Logf("%d sealed records seen after seals", sealedSeen.Load())
}
