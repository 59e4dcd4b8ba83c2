package lake

import "context"

// LoadMemory is what a load holds in memory, by part, in bytes (cairn
// import --memlog): issue 15 bounds a load's RSS.
type LoadMemory struct {
	// Engine is the engine's memory by its own tags (DuckDB's
	// duckdb_memory()), nil on an engine that does not report it;
	// EngineTemp its temporary files (spilled buffers).
	Engine     map[string]int64
	EngineTemp int64
	// EngineLimit is the engine's memory limit as it shows it ("" when
	// not reported).
	EngineLimit string
	// Seen is the Sink's seen set: a key of every event of its stores and
	// of the records it took.
	Seen int64
	// SeenKeys is the number of keys in it.
	SeenKeys int
}

// memoryReporter is an engine that reports its memory (lake/duckdb).
type memoryReporter interface {
	MemoryUse(ctx context.Context) (map[string]int64, int64, string, error)
}

// MemoryUse reports what the sink's load holds in memory. The engine's part
// is left nil when it cannot be read.
func (k *Sink) MemoryUse(ctx context.Context) LoadMemory {
	var m LoadMemory
	k.mu.Lock()
	for _, s := range k.seen {
		m.Seen += int64(s.bytes())
		m.SeenKeys += s.len()
	}
	k.mu.Unlock()
	if r, ok := k.l.eng.(memoryReporter); ok {
		if tags, temp, limit, err := r.MemoryUse(ctx); err == nil {
			m.Engine, m.EngineTemp, m.EngineLimit = tags, temp, limit
		}
	}
	return m
}

// EngineMemory reports what the engine holds in memory (a running
// server's, cairn serve --memlog): the Engine parts of LoadMemory, nil on
// an engine that does not report them. The seen sets of running imports
// are not in it.
func (l *Lake) EngineMemory(ctx context.Context) LoadMemory {
	var m LoadMemory
	if r, ok := l.eng.(memoryReporter); ok {
		if tags, temp, limit, err := r.MemoryUse(ctx); err == nil {
			m.Engine, m.EngineTemp, m.EngineLimit = tags, temp, limit
		}
	}
	return m
}
