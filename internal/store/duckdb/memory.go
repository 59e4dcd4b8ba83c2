package duckdb

import (
	"context"
	"fmt"
	"regexp"
)

// memoryLimitRE is what SetMemoryLimit takes: a number and a unit.
var memoryLimitRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,3})?\s?(KB|MB|GB|KiB|MiB|GiB)$`)

// SetMemoryLimit sets DuckDB's memory_limit for the store (its buffer
// pool: the blocks of the file it keeps and the memory of its operators),
// which is otherwise 80% of the machine's memory. An offline import sets
// it, so that the blocks a long import wrote do not stay in memory (issue
// 15: RSS at most 1 GB during a 10M-record import); a server keeps
// DuckDB's default, which lets the blocks lookups read stay cached.
func (s *Store) SetMemoryLimit(ctx context.Context, limit string) error {
	if !memoryLimitRE.MatchString(limit) {
		return fmt.Errorf("duckdb: memory limit %q: want a size such as 512MB", limit)
	}
	if _, err := s.db.ExecContext(ctx, "SET memory_limit = '"+limit+"'"); err != nil {
		return fmt.Errorf("duckdb: memory limit: %w", err)
	}
	return nil
}
