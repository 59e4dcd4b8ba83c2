package config

import (
	"strings"
	"testing"
)

// TestEventHistoryMemoryLimit: event_history.memory_limit takes a size
// the store's SetMemoryLimit accepts, of at least MinEventHistoryMemoryMB,
// and nothing that could reach DuckDB's SET as anything else.
func TestEventHistoryMemoryLimit(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	for _, c := range []struct{ yaml, want string }{
		{"", DefaultEventHistoryMemoryLimit},
		{"event_history:\n  memory_limit: 256MB\n", "256MB"},
		{"event_history:\n  memory_limit: 1.5GB\n", "1.5GB"},
		{"event_history:\n  memory_limit: 64 MiB\n", "64 MiB"},
	} {
		cfg, err := Parse("c.yaml", []byte(head+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if cfg.EventHistory.MemoryLimit != c.want {
			t.Errorf("%q: memory_limit %q, want %q", c.yaml, cfg.EventHistory.MemoryLimit, c.want)
		}
	}
	for _, c := range []struct{ yaml, want string }{
		{"event_history:\n  memory_limit: lots\n", "c.yaml:8: event_history.memory_limit: want a size of at least 64MB"},
		{"event_history:\n  memory_limit: 0MB\n", "event_history.memory_limit: want a size"},
		{"event_history:\n  memory_limit: 63MB\n", "event_history.memory_limit: want a size"},
		{"event_history:\n  memory_limit: 512KB\n", "event_history.memory_limit: want a size"},
		{"event_history:\n  memory_limit: 1GB'; SET x='1\n", "event_history.memory_limit: want a size"},
		{"event_history:\n  memory_limit: 512\n", "event_history.memory_limit: want a size"},
		{"event_history:\n  memory_limit: [1GB]\n", "event_history.memory_limit"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}

// TestEventHistoryThreads: event_history.threads takes 0 (one per core)
// to 1024, DefaultEventHistoryThreads when unset, and nothing else.
func TestEventHistoryThreads(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	for _, c := range []struct {
		yaml string
		want int
	}{
		{"", DefaultEventHistoryThreads},
		{"event_history:\n  threads: 0\n", 0},
		{"event_history:\n  threads: 4\n", 4},
	} {
		cfg, err := Parse("c.yaml", []byte(head+c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if cfg.EventHistory.Threads != c.want {
			t.Errorf("%q: threads %d, want %d", c.yaml, cfg.EventHistory.Threads, c.want)
		}
	}
	for _, yaml := range []string{"event_history:\n  threads: -1\n", "event_history:\n  threads: 1025\n", "event_history:\n  threads: two\n"} {
		if _, err := Parse("c.yaml", []byte(head+yaml)); err == nil || !strings.Contains(err.Error(), "event_history.threads") {
			t.Errorf("%q: err = %v; want one about event_history.threads", yaml, err)
		}
	}
}
