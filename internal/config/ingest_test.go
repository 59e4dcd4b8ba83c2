package config

import (
	"strings"
	"testing"
)

func TestIngest(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	d, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if d.Ingest != DefaultIngest() {
		t.Errorf("defaults %+v; want %+v", d.Ingest, DefaultIngest())
	}
	c, err := Parse("c.yaml", []byte(head+"ingest:\n  queue_size: 4096\n  account_max_calls: 512\n  account_queue_records: 50000\n  min_free_mb: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Ingest{QueueSize: 4096, AccountMaxCalls: 512, AccountQueueRecords: 50000, MinFreeMB: 0}); c.Ingest != want {
		t.Errorf("decoded %+v; want %+v", c.Ingest, want)
	}
	for _, c := range []struct{ yaml, want string }{
		{"ingest:\n  queue_size: 0\n", "c.yaml:8: ingest.queue_size: want a whole number of calls from 1"},
		{"ingest:\n  queue_size: \"100\"\n", "ingest.queue_size: want a whole number of calls from 1 to 1048576 (default 1024), got the quoted string"},
		{"ingest:\n  account_max_calls: -1\n", "c.yaml:8: ingest.account_max_calls"},
		{"ingest:\n  account_max_calls: 2000\n", "account_max_calls (2000) is larger than queue_size (1024)"},
		{"ingest:\n  queue_size: 10\n", "account_max_calls (64) is larger than queue_size (10)"},
		{"ingest:\n  account_queue_records: 10\n", "c.yaml:8: ingest.account_queue_records: want a whole number of records from 1000"},
		{"ingest:\n  min_free_mb: -5\n", "c.yaml:8: ingest.min_free_mb"},
		{"ingest:\n  min_free: 5\n", "c.yaml:8: ingest.min_free"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}
