package duckdb

import (
	"context"
	"fmt"
)

// MemoryUse returns what DuckDB holds in memory by tag (duckdb_memory():
// IN_MEMORY_TABLE is open transactions' local storage, BASE_TABLE the
// committed table's blocks held, ...), in bytes, the bytes of its
// temporary files (spilled buffers) and its memory_limit as DuckDB shows
// it (e.g. 488.2 MiB). It is a diagnostic (cairn import --memlog): issue
// 15's bound on a load's RSS.
func (d *DB) MemoryUse(ctx context.Context) (tags map[string]int64, temp int64, limit string, err error) {
	if err := d.db.QueryRowContext(ctx, `SELECT current_setting('memory_limit')`).Scan(&limit); err != nil {
		return nil, 0, "", fmt.Errorf("lake/duckdb: memory: %w", err)
	}
	rows, err := d.db.QueryContext(ctx, `SELECT tag, memory_usage_bytes FROM duckdb_memory()`)
	if err != nil {
		return nil, 0, "", fmt.Errorf("lake/duckdb: memory: %w", err)
	}
	defer rows.Close()
	tags = map[string]int64{}
	for rows.Next() {
		var tag string
		var n int64
		if err := rows.Scan(&tag, &n); err != nil {
			return nil, 0, "", fmt.Errorf("lake/duckdb: memory: %w", err)
		}
		if n > 0 {
			tags[tag] = n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, "", fmt.Errorf("lake/duckdb: memory: %w", err)
	}
	if err := d.db.QueryRowContext(ctx, `SELECT coalesce(sum(size), 0)::BIGINT FROM duckdb_temporary_files()`).Scan(&temp); err != nil {
		return nil, 0, "", fmt.Errorf("lake/duckdb: memory: temporary files: %w", err)
	}
	return tags, temp, limit, nil
}

// AllocatorStats is what DuckDB's allocator (jemalloc) holds, in bytes,
// for the whole process: Allocated is live in allocations, Active in the
// pages those use, Resident in pages jemalloc keeps resident (its dirty,
// freed-and-kept pages included), Mapped its mapped extents, Retained
// address space it keeps for reuse, Metadata its own bookkeeping. DuckDB's
// block pool (block_allocator_memory) is outside it.
type AllocatorStats struct {
	Allocated, Active, Resident, Mapped, Retained, Metadata int64
	// Dirty and Muzzy are the bytes of pages it freed and keeps: dirty
	// still resident, muzzy handed back lazily (MADV_FREE: resident, as
	// LazyFree, until the kernel needs them).
	Dirty, Muzzy int64
}

// Allocator returns DuckDB's allocator's counters (ok false where they
// cannot be read): a diagnostic (issue 15: what DuckDB allocates beyond
// its own count during a load).
func Allocator() (AllocatorStats, bool) { return allocatorStats() }
