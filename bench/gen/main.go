// Command gen writes a large, realistic CloudTrail data set for benchmarks:
// the real records of shared/testdata/real repeated with fresh eventIDs,
// gzipped in files of 2,000 records in the S3 layout, as trails write them.
//
//	go run ./bench/gen -n 1000000 -out /tmp/ct
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

func main() {
	n := flag.Int("n", 1000000, "records to write")
	out := flag.String("out", "", "output folder")
	src := flag.String("src", "../shared/testdata/real", "real records to repeat")
	perFile := flag.Int("per-file", 2000, "records per file")
	flag.Parse()
	if *out == "" {
		log.Fatal("-out is required")
	}
	recs := readAll(*src)
	if len(recs) == 0 {
		log.Fatalf("no records under %s", *src)
	}
	dir := filepath.Join(*out, "AWSLogs", "123456789012", "CloudTrail", "us-east-1", "2024", "01", "01")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	file := 0
	flush := func() {
		if buf.Len() == 0 {
			return
		}
		buf.WriteString("]}")
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("123456789012_CloudTrail_us-east-1_20240101T%04dZ_%016d.json.gz", file%2400, file)))
		if err != nil {
			log.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(f, gzip.DefaultCompression)
		zw.Write(buf.Bytes())
		zw.Close()
		f.Close()
		buf.Reset()
		file++
	}
	for i := 0; i < *n; i++ {
		if i%*perFile == 0 {
			flush()
			buf.WriteString(`{"Records":[`)
		} else {
			buf.WriteByte(',')
		}
		r := recs[i%len(recs)]
		// A fresh eventID per copy; everything else stays as AWS wrote it.
		buf.Write(r.before)
		fmt.Fprintf(&buf, "%08x-0000-4000-8000-%012x", i/len(recs), i)
		buf.Write(r.after)
	}
	flush()
	fmt.Printf("wrote %d records in %d files under %s\n", *n, file, *out)
}

type tmpl struct{ before, after []byte }

func readAll(root string) []tmpl {
	var out []tmpl
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".json") || strings.HasSuffix(p, ".json.gz")) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		var r io.Reader = f
		if strings.HasSuffix(p, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				return nil
			}
			r = zr
		}
		var c struct{ Records []json.RawMessage }
		if json.NewDecoder(r).Decode(&c) != nil {
			return nil
		}
		for _, raw := range c.Records {
			var m struct {
				EventID   string `json:"eventID"`
				AWSRegion string `json:"awsRegion"`
			}
			json.Unmarshal(raw, &m)
			if !audit.ValidRegion(m.AWSRegion) {
				continue // a publisher's made-up region: imports refuse it
			}
			compact := new(bytes.Buffer)
			json.Compact(compact, raw)
			b := compact.Bytes()
			i := bytes.Index(b, []byte(`"eventID":"`+m.EventID+`"`))
			if i < 0 || m.EventID == "" {
				continue
			}
			start := i + len(`"eventID":"`)
			out = append(out, tmpl{before: append([]byte(nil), b[:start]...), after: append([]byte(nil), b[start+len(m.EventID):]...)})
		}
		return nil
	})
	return out
}
