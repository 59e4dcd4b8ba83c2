package trail

import (
	"fmt"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// BenchmarkLogFile builds and compresses one log file of the real
// records (testdata/real), repeated to 20,000 records (a feed batch), at
// the level log files use and at others: MB/s of JSON, and the gzip's size
// against the JSON's (gz/json).
func BenchmarkLogFile(b *testing.B) {
	real := audittest.RealRecords(b)
	recs := make([]*audit.Record, 0, feedBatch)
	raw := 0
	for len(recs) < feedBatch {
		r := &audit.Record{Raw: real[len(recs)%len(real)].Raw}
		recs = append(recs, r)
		raw += len(r.Raw) + 1
	}
	saved := gzipWriters
	defer func() { gzipWriters = saved }()
	levels := []int{logGzipLevel, gzip.DefaultCompression, gzip.BestSpeed, 3}
	for i, lvl := range levels {
		name := fmt.Sprintf("level=%d", lvl)
		if i == 0 {
			name = "used"
		}
		b.Run(name, func(b *testing.B) {
			gzipWriters = &sync.Pool{New: func() any { return newGzipWriter(lvl) }}
			b.SetBytes(int64(raw))
			var gz []byte
			for b.Loop() {
				n, _, out, err := logFile(recs, maxFileBytes)
				if err != nil || n != len(recs) {
					b.Fatalf("logFile = %d records, %v; want %d", n, err, len(recs))
				}
				gz = out
			}
			b.ReportMetric(float64(len(gz))/float64(raw), "gz/json")
		})
	}
}
