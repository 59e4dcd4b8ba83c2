package trail

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// TestLogFile checks that a log file's gzip holds exactly the JSON of its
// records, that its hash is that JSON's, and that a file is cut at the
// limit (at least one record), whatever the records' sizes against the
// buffer the JSON goes through.
func TestLogFile(t *testing.T) {
	var recs []*audit.Record
	for i, size := range []int{10, fileChunk - 20, 3, fileChunk + 7, 2 * fileChunk, 50, 1} {
		raw := fmt.Appendf(nil, `{"eventID":"%d","pad":"%s"}`, i, bytes.Repeat([]byte{'a' + byte(i)}, size))
		recs = append(recs, &audit.Record{Raw: raw})
	}
	join := func(recs []*audit.Record) []byte {
		out := []byte(`{"Records":[`)
		for i, r := range recs {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, r.Raw...)
		}
		return append(out, `]}`...)
	}
	for _, limit := range []int{1, 100, fileChunk, 3 * fileChunk, 1 << 30} {
		n, hash, gz, err := logFile(recs, limit)
		if err != nil {
			t.Fatalf("logFile(limit %d): %v", limit, err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		want := join(recs[:n])
		if !bytes.Equal(got, want) {
			t.Fatalf("logFile(limit %d) gzips %d bytes; want the %d bytes of its %d records", limit, len(got), len(want), n)
		}
		if !json.Valid(got) {
			t.Fatalf("logFile(limit %d) is not JSON", limit)
		}
		if h := chain.HashLog(want); hash != h {
			t.Fatalf("logFile(limit %d) hash = %s; want %s", limit, hash, h)
		}
		// A record after the first is taken while the JSON before its
		// comma and itself fits in limit: a file of n records is then at
		// most limit+3 bytes (its last comma and the closing "]}").
		if n < 1 || (n < len(recs) && len(join(recs[:n+1])) <= limit+3) || (n > 1 && len(want) > limit+3) {
			t.Fatalf("logFile(limit %d) holds %d records (%d bytes)", limit, n, len(want))
		}
	}
}
