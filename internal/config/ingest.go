package config

import "gopkg.in/yaml.v3"

// Ingest bounds the ingest pipeline: how much of it one account may hold,
// and the free space below which writes are refused.
//
//	ingest:
//	  queue_size: 1024
//	  account_max_calls: 64
//	  account_queue_records: 20000
//	  min_free_mb: 64
type Ingest struct {
	// QueueSize is the number of calls in flight (all accounts) beyond
	// which the accounts holding an equal share of them or more are
	// throttled; it also bounds one account's queue.
	QueueSize int `yaml:"queue_size"`
	// AccountMaxCalls is the number of one account's calls in flight
	// beyond which its calls get ThrottlingException.
	AccountMaxCalls int `yaml:"account_max_calls"`
	// AccountQueueRecords is the number of one account's queued records
	// beyond which its calls get ThrottlingException.
	AccountQueueRecords int `yaml:"account_queue_records"`
	// MinFreeMB is the free space (MiB) of the data dir's file system
	// below which writes get ServiceUnavailableException (0: only a write
	// failing for a full disk stops writes).
	MinFreeMB int `yaml:"min_free_mb"`
}

// Defaults of the ingest section.
const (
	DefaultIngestQueueSize      = 1024
	DefaultAccountMaxCalls      = 64
	DefaultAccountQueueRecords  = 20000
	DefaultIngestMinFreeMB      = 64
	maxIngestQueueSize          = 1 << 20
	maxIngestAccountQueueRecord = 10_000_000
)

// DefaultIngest returns the ingest section's defaults.
func DefaultIngest() Ingest {
	return Ingest{QueueSize: DefaultIngestQueueSize, AccountMaxCalls: DefaultAccountMaxCalls,
		AccountQueueRecords: DefaultAccountQueueRecords, MinFreeMB: DefaultIngestMinFreeMB}
}

func (d *decoder) ingest(n *yaml.Node, path string, in *Ingest) {
	d.mapping(n, path,
		field{"queue_size", false, func(v *yaml.Node, path string) {
			if m, ok := d.integer(v, path, 1, maxIngestQueueSize, "calls", "default 1024"); ok {
				in.QueueSize = m
			}
		}},
		field{"account_max_calls", false, func(v *yaml.Node, path string) {
			if m, ok := d.integer(v, path, 1, maxIngestQueueSize, "calls", "default 64"); ok {
				in.AccountMaxCalls = m
			}
		}},
		field{"account_queue_records", false, func(v *yaml.Node, path string) {
			if m, ok := d.integer(v, path, 1000, maxIngestAccountQueueRecord, "records", "default 20000; a call imports up to 1000"); ok {
				in.AccountQueueRecords = m
			}
		}},
		field{"min_free_mb", false, func(v *yaml.Node, path string) {
			if m, ok := d.integer(v, path, 0, 1<<20, "MiB", "default 64; 0 stops writes only when one fails"); ok {
				in.MinFreeMB = m
			}
		}},
	)
	if in.AccountMaxCalls > in.QueueSize {
		d.failf(n, path, "account_max_calls (%d) is larger than queue_size (%d)", in.AccountMaxCalls, in.QueueSize)
	}
}
