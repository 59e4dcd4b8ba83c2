package config

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Lake configures CloudTrail Lake (docs/lake.md).
//
//	lake:
//	  memory_limit: 448MB      # DuckDB memory_limit of lake.duckdb (queries and loads; it spills beyond)
//	  threads: 1               # DuckDB threads (0: one per core); 1 runs each query on one low-priority thread
//	  query_timeout: 1h        # a longer query ends TIMED_OUT (queue time included)
//	  max_result_mb: 256       # a larger result fails the query
//	  max_concurrent_queries: 10           # an account's queued and running queries (MaxConcurrentQueriesException beyond)
//	  max_running_queries: 2               # queries running at once in the server; the others wait QUEUED
//	  max_running_queries_per_account: 1   # of those, one account's
//	  max_held_results: 100                # ended queries an account keeps (oldest forgotten beyond)
//	  max_held_results_mb: 1024            # result files an account keeps on disk (oldest forgotten beyond)
//	  checkpoint_commits: 100              # checkpoint lake.duckdb after this many write transactions
//	  checkpoint_wal_mb: 32                # or when its write-ahead log reaches this size
//	  max_event_data_stores: 10  # per account and region
//	  ingest_interval: 1s      # how often stores take new events from the event store
//	  import_roots: [/srv/cloudtrail-logs]  # folders StartImport may read (none: no API imports)
type Lake struct {
	MemoryLimit        string        `yaml:"memory_limit"`
	Threads            int           `yaml:"threads"`
	QueryTimeout       time.Duration `yaml:"query_timeout"`
	MaxResultMB        int           `yaml:"max_result_mb"`
	MaxEventDataStores int           `yaml:"max_event_data_stores"`
	// Query admission and held results (docs/security.md).
	MaxConcurrentQueries        int `yaml:"max_concurrent_queries"`
	MaxRunningQueries           int `yaml:"max_running_queries"`
	MaxRunningQueriesPerAccount int `yaml:"max_running_queries_per_account"`
	MaxHeldResults              int `yaml:"max_held_results"`
	MaxHeldResultsMB            int `yaml:"max_held_results_mb"`
	// Checkpoints of lake.duckdb (restart time after a crash).
	CheckpointCommits int           `yaml:"checkpoint_commits"`
	CheckpointWALMB   int           `yaml:"checkpoint_wal_mb"`
	IngestInterval    time.Duration `yaml:"ingest_interval"`
	ImportRoots       []string      `yaml:"import_roots"`
}

// DefaultLakeMemoryLimit is lake.memory_limit when the file sets none: a
// server's StartImport loads under it, and it is the offline `import
// --into`'s limit too (cmd/cairn's loadMemoryLimit), since DuckDB's limit
// is one for the whole database and is locked once it is open
// (lock_configuration): a load cannot have a lower one than the queries.
// With 1GB a 10M StartImport's server peaked at 1,684 MiB RSS, with 512MB
// at 1,234 (session 27), 968-982 after session 34's allocator arenas;
// 448MB since session 35 (issue 15: at most 954 MiB), where it peaked at
// 921-934 against 966-992 in four pairs, with Lake's queries at 10M as
// fast as at 512MB, the ones that spill included (docs/lake.md, "A
// server's memory_limit of 448MB").
const DefaultLakeMemoryLimit = "448MB"

// DefaultLake is the lake section's defaults.
func DefaultLake() Lake {
	return Lake{MemoryLimit: DefaultLakeMemoryLimit, Threads: 1, QueryTimeout: time.Hour, MaxResultMB: 256, MaxEventDataStores: 10, IngestInterval: time.Second,
		MaxConcurrentQueries: 10, MaxRunningQueries: 2, MaxRunningQueriesPerAccount: 1, MaxHeldResults: 100, MaxHeldResultsMB: 1024,
		CheckpointCommits: 100, CheckpointWALMB: 32}
}

// memoryLimitRE is a DuckDB size as lake.memory_limit takes it (512MB,
// 1.5GiB).
var memoryLimitRE = regexp.MustCompile(`^([0-9]{1,6}(?:\.[0-9]{1,3})?)\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// sizeUnits are the bytes of memoryLimitRE's units.
var sizeUnits = map[string]float64{"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}

// SizeBytes is the bytes of a size as lake.memory_limit takes it, false if
// s is not one.
func SizeBytes(s string) (float64, bool) {
	m := memoryLimitRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	return f * sizeUnits[m[2]], true
}

// LowerSize returns the smaller of two sizes as lake.memory_limit takes
// them; a that cannot be read (or is empty: the engine's default) gives b.
func LowerSize(a, b string) string {
	x, ok := SizeBytes(a)
	if !ok {
		return b
	}
	if y, ok := SizeBytes(b); ok && y < x {
		return b
	}
	return a
}

func (d *decoder) lake(n *yaml.Node, path string, l *Lake) {
	d.mapping(n, path,
		field{"memory_limit", false, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if !memoryLimitRE.MatchString(s) {
					d.failf(v, path, "want a size like 512MB or 2GB, got %s", quote(s))
					return
				}
				l.MemoryLimit = s
			}
		}},
		field{"threads", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 0, 1024, "threads", "0: one per core"); ok {
				l.Threads = i
			}
		}},
		field{"query_timeout", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				l.QueryTimeout = t
			}
		}},
		field{"max_result_mb", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 65536, "MiB", "a larger result fails the query"); ok {
				l.MaxResultMB = i
			}
		}},
		field{"max_event_data_stores", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 1000, "stores", "per account and region"); ok {
				l.MaxEventDataStores = i
			}
		}},
		field{"import_roots", false, func(v *yaml.Node, path string) {
			l.ImportRoots = list(d, v, path, func(n *yaml.Node, path string) string {
				s, ok := d.str(n, path)
				if ok && !filepath.IsAbs(s) {
					d.failf(n, path, "want an absolute folder path, got %s", quote(s))
				}
				return s
			})
		}},
		field{"ingest_interval", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 10*time.Millisecond, time.Hour); ok {
				l.IngestInterval = t
			}
		}},
		d.intField("max_concurrent_queries", &l.MaxConcurrentQueries, 1, 1000, "queries", "an account's queued and running queries"),
		d.intField("max_running_queries", &l.MaxRunningQueries, 1, 256, "queries", "running at once in the server"),
		d.intField("max_running_queries_per_account", &l.MaxRunningQueriesPerAccount, 1, 256, "queries", "running at once for one account"),
		d.intField("max_held_results", &l.MaxHeldResults, 1, 100000, "queries", "ended queries an account keeps"),
		d.intField("max_held_results_mb", &l.MaxHeldResultsMB, 1, 1<<20, "MiB", "result files an account keeps"),
		d.intField("checkpoint_commits", &l.CheckpointCommits, 1, 100000, "transactions", "between checkpoints"),
		d.intField("checkpoint_wal_mb", &l.CheckpointWALMB, 1, 4096, "MiB", "write-ahead log that triggers a checkpoint"),
	)
	if l.MaxHeldResultsMB < l.MaxResultMB {
		d.failf(n, path+".max_held_results_mb", "want at least max_result_mb (%d), got %d: an account could not hold its largest result", l.MaxResultMB, l.MaxHeldResultsMB)
	}
}

// intField is a field decoded by integer into *p.
func (d *decoder) intField(name string, p *int, lo, hi int, unit, note string) field {
	return field{name, false, func(v *yaml.Node, path string) {
		if i, ok := d.integer(v, path, lo, hi, unit, note); ok {
			*p = i
		}
	}}
}
