package duckdb

import (
	"context"
	"errors"
	"fmt"
	"regexp"
)

// memoryLimitRE is what SetMemoryLimit takes: a number and a unit.
var memoryLimitRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,3})?\s?(KB|MB|GB|KiB|MiB|GiB)$`)

// SetMemoryLimit sets DuckDB's memory_limit for the store (its buffer
// pool: the blocks of the file it keeps and the memory of its operators),
// which is otherwise 80% of the machine's memory. An offline import sets
// it, so that the blocks a long import wrote do not stay in memory (issue
// 15: RSS at most 1 GB during a 10M-record import); a server sets
// event_history.memory_limit (issue 19: RSS at most 1 GB at 10M events;
// docs/store.md, "Memory of a server").
func (s *Store) SetMemoryLimit(ctx context.Context, limit string) error {
	if !memoryLimitRE.MatchString(limit) {
		return fmt.Errorf("duckdb: memory limit %q: want a size such as 512MB", limit)
	}
	if _, err := s.db.ExecContext(ctx, "SET memory_limit = '"+limit+"'"); err != nil {
		return fmt.Errorf("duckdb: memory limit: %w", err)
	}
	return nil
}

// MemoryUse is what a store holds in memory, by part, in bytes: what
// bounds an import's RSS (issue 15). DuckDB is duckdb_memory()'s
// memory_usage_bytes by tag (its buffer pool: the file's blocks, the
// write-ahead log's, operators' memory); the others are the store's own
// Go structures.
type MemoryUse struct {
	DuckDB      map[string]int64
	DuckDBTotal int64
	KeyFilter   int64 // the key filter's bits
	BucketIndex int64 // the bucket filters' bits
	Buckets     int64 // buckets (hours of a partition) the index holds
	BlockCache  int64 // decoded record blocks kept for reads
	Tail        int64 // the newest records' JSON kept for ReadAppended
	Partitions  int64 // partitions remembered by an import (BeginImport)
}

// MemoryUse reports what the store holds in memory. It takes each part's
// lock in turn, so it may be called while appends run; after Close it
// returns the Go parts and an error.
func (s *Store) MemoryUse(ctx context.Context) (MemoryUse, error) {
	u := MemoryUse{DuckDB: map[string]int64{}}
	s.keysMu.Lock()
	if s.keys != nil {
		u.KeyFilter = int64(len(s.keys.bits)) * 8
	}
	u.Partitions = int64(len(s.last))
	s.keysMu.Unlock()
	s.index.mu.RLock()
	for _, days := range s.index.parts {
		for _, b := range days {
			u.BucketIndex += int64(len(b.bloom.bits)) * 8
			u.Buckets++
		}
	}
	s.index.mu.RUnlock()
	if s.blocks != nil {
		s.blocks.mu.Lock()
		u.BlockCache = int64(s.blocks.cur)
		s.blocks.mu.Unlock()
	}
	s.tail.mu.Lock()
	u.Tail = s.tail.bytes
	s.tail.mu.Unlock()
	// Under rw, as reads are: Close takes it alone to close the database.
	s.rw.RLock()
	defer s.rw.RUnlock()
	if s.db == nil {
		return u, errors.New("duckdb: memory: the store is closed")
	}
	rows, err := s.db.QueryContext(ctx, "SELECT tag, memory_usage_bytes FROM duckdb_memory()")
	if err != nil {
		return u, fmt.Errorf("duckdb: memory: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tag string
		var n int64
		if err := rows.Scan(&tag, &n); err != nil {
			return u, fmt.Errorf("duckdb: memory: %w", err)
		}
		if n != 0 {
			u.DuckDB[tag] = n
		}
		u.DuckDBTotal += n
	}
	if err := rows.Err(); err != nil {
		return u, fmt.Errorf("duckdb: memory: %w", err)
	}
	return u, nil
}
