package config

import (
	"path/filepath"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"
)

// Lake configures CloudTrail Lake (docs/lake.md).
//
//	lake:
//	  memory_limit: 1GB        # DuckDB memory_limit of lake.duckdb
//	  threads: 0               # DuckDB threads (0: one per core)
//	  query_timeout: 1h        # a longer query ends TIMED_OUT
//	  max_result_mb: 256       # a larger result fails the query
//	  max_event_data_stores: 10  # per account and region
//	  ingest_interval: 1s      # how often stores take new events from the event store
//	  import_roots: [/srv/cloudtrail-logs]  # folders StartImport may read (none: no API imports)
type Lake struct {
	MemoryLimit        string        `yaml:"memory_limit"`
	Threads            int           `yaml:"threads"`
	QueryTimeout       time.Duration `yaml:"query_timeout"`
	MaxResultMB        int           `yaml:"max_result_mb"`
	MaxEventDataStores int           `yaml:"max_event_data_stores"`
	IngestInterval     time.Duration `yaml:"ingest_interval"`
	ImportRoots        []string      `yaml:"import_roots"`
}

// DefaultLake is the lake section's defaults.
func DefaultLake() Lake {
	return Lake{MemoryLimit: "1GB", QueryTimeout: time.Hour, MaxResultMB: 256, MaxEventDataStores: 10, IngestInterval: time.Second}
}

var memoryLimitRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,3})?\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

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
	)
}
