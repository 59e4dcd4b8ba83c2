package importer

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/json"
	"io"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// bigFile is the real records repeated into one {"Records":[...]} of about
// 8 MB, as CloudTrail writes them (compact).
func bigFile(b *testing.B) (data []byte, n int) {
	b.Helper()
	var buf bytes.Buffer
	buf.WriteString(`{"Records":[`)
	real := audittest.RealRecords(b)
	for buf.Len() < 8<<20 {
		for _, r := range real {
			if n > 0 {
				buf.WriteByte(',')
			}
			json.Compact(&buf, r.Raw)
			n++
		}
	}
	buf.WriteString(`]}`)
	return buf.Bytes(), n
}

// BenchmarkParse compares the steps of reading a file: gunzip (stdlib and
// klauspost), finding the records (cairn's scanner and encoding/json's
// Decoder), and audit.Extract.
func BenchmarkParse(b *testing.B) {
	data, n := bigFile(b)
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(data)
	zw.Close()
	perRecord := func(b *testing.B) {
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("gunzip-stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			zr, _ := stdgzip.NewReader(bytes.NewReader(z.Bytes()))
			io.Copy(io.Discard, zr)
		}
		perRecord(b)
	})
	b.Run("gunzip-klauspost", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			zr, _ := gzip.NewReader(bytes.NewReader(z.Bytes()))
			io.Copy(io.Discard, zr)
		}
		perRecord(b)
	})
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := parse(bytes.NewReader(data), func(int, []byte, error) bool { return true }); err != nil {
				b.Fatal(err)
			}
		}
		perRecord(b)
	})
	b.Run("decoder", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.Token()
			dec.Token()
			dec.Token()
			for dec.More() {
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					b.Fatal(err)
				}
			}
		}
		perRecord(b)
	})
	b.Run("extract", func(b *testing.B) {
		var raws [][]byte
		parse(bytes.NewReader(data), func(_ int, raw []byte, _ error) bool { raws = append(raws, bytes.Clone(raw)); return true })
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			for _, r := range raws {
				if _, err := audit.Extract(r); err != nil {
					b.Fatal(err)
				}
			}
		}
		perRecord(b)
	})
}
