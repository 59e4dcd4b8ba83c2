package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLake(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	d, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Lake, DefaultLake()) {
		t.Errorf("defaults %+v", d.Lake)
	}
	// 448MB since session 35 (issue 15: a 10M StartImport's server within
	// 954 MiB); the file's 512MB below wins over it.
	if d.Lake.MemoryLimit != "448MB" {
		t.Errorf("lake.memory_limit by default = %q; want 448MB", d.Lake.MemoryLimit)
	}
	c, err := Parse("c.yaml", []byte(head+"lake:\n  memory_limit: 512MB\n  threads: 2\n  query_timeout: 5m\n  max_result_mb: 64\n  max_event_data_stores: 20\n  ingest_interval: 200ms\n  import_roots: [/srv/logs]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultLake()
	want.MemoryLimit, want.Threads, want.QueryTimeout, want.MaxResultMB, want.MaxEventDataStores, want.IngestInterval, want.ImportRoots =
		"512MB", 2, 5*time.Minute, 64, 20, 200*time.Millisecond, []string{"/srv/logs"}
	if !reflect.DeepEqual(c.Lake, want) {
		t.Errorf("decoded %+v", c.Lake)
	}
	c, err = Parse("c.yaml", []byte(head+"lake:\n  max_concurrent_queries: 3\n  max_running_queries: 4\n  max_running_queries_per_account: 2\n"+
		"  max_held_results: 7\n  max_held_results_mb: 300\n  checkpoint_commits: 50\n  checkpoint_wal_mb: 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	want = DefaultLake()
	want.MaxConcurrentQueries, want.MaxRunningQueries, want.MaxRunningQueriesPerAccount, want.MaxHeldResults, want.MaxHeldResultsMB, want.CheckpointCommits, want.CheckpointWALMB =
		3, 4, 2, 7, 300, 50, 8
	if !reflect.DeepEqual(c.Lake, want) {
		t.Errorf("decoded %+v", c.Lake)
	}
	for _, c := range []struct{ yaml, want string }{
		{"lake:\n  memory_limit: lots\n", "c.yaml:8: lake.memory_limit: want a size like 512MB or 2GB, got \"lots\""},
		{"lake:\n  memory_limit: 1GB'; SET x='1\n", "lake.memory_limit: want a size"},
		{"lake:\n  query_timeout: 0s\n", "c.yaml:8: lake.query_timeout"},
		{"lake:\n  max_result_mb: 0\n", "c.yaml:8: lake.max_result_mb"},
		{"lake:\n  max_event_data_stores: \"5\"\n", "lake.max_event_data_stores"},
		{"lake:\n  import_roots: [logs]\n", "c.yaml:8: lake.import_roots[0]: want an absolute folder path"},
		{"lake:\n  treads: 3\n", "c.yaml:8: lake.treads"},
		{"lake:\n  max_concurrent_queries: 0\n", "c.yaml:8: lake.max_concurrent_queries: want a whole number of queries from 1"},
		{"lake:\n  max_running_queries: -1\n", "c.yaml:8: lake.max_running_queries"},
		{"lake:\n  max_running_queries_per_account: 0\n", "lake.max_running_queries_per_account"},
		{"lake:\n  max_held_results: 0\n", "lake.max_held_results"},
		{"lake:\n  max_held_results_mb: 100\n", "c.yaml:8: lake.max_held_results_mb: want at least max_result_mb (256), got 100"},
		{"lake:\n  checkpoint_commits: 0\n", "lake.checkpoint_commits"},
		{"lake:\n  checkpoint_wal_mb: 9000\n", "lake.checkpoint_wal_mb"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}

func TestLowerSize(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{"1GB", "512MB", "512MB"},
		{"384MB", "512MB", "384MB"},
		{"0.5GiB", "512MB", "512MB"}, // 536.9 MB
		{"500MiB", "512MB", "512MB"}, // 524.3 MB
		{"500MB", "512MB", "500MB"},
		{"", "512MB", "512MB"},
		{"2 GB", "512MB", "512MB"},
	} {
		if got := LowerSize(c.a, c.b); got != c.want {
			t.Errorf("LowerSize(%q, %q) = %q; want %q", c.a, c.b, got, c.want)
		}
	}
}
