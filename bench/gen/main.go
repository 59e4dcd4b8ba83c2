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
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

func main() {
	n := flag.Int("n", 1000000, "records to write")
	out := flag.String("out", "", "output folder")
	src := flag.String("src", "../shared/testdata/real", "real records to repeat")
	perFile := flag.Int("per-file", 2000, "records per file")
	days := flag.Int("days", 0, "spread the records' eventTime evenly over this many days before 2025-06-01, oldest first (0: keep the real records' own times, which the copies then share)")
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
		// A fresh eventID per copy (and with -days a time of its own);
		// everything else stays as AWS wrote it.
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i/len(recs), i)
		if *days > 0 && r.timeAt >= 0 {
			span := int64(*days) * 86400
			t := spreadEnd.Unix() - span + span*int64(i)/int64(*n)
			ts := time.Unix(t, 0).UTC().Format("2006-01-02T15:04:05Z")
			r.write(&buf, id, ts)
		} else {
			r.write(&buf, id, "")
		}
	}
	flush()
	fmt.Printf("wrote %d records in %d files under %s\n", *n, file, *out)
}

// spreadEnd is the end of -days' range.
var spreadEnd = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// tmpl is a compacted record with the places of its eventID and eventTime
// values (timeAt -1 when it has none).
type tmpl struct {
	b               []byte
	idAt, idLen     int
	timeAt, timeLen int
}

// write writes the record with the eventID id and, when ts is not empty,
// the eventTime ts.
func (t tmpl) write(buf *bytes.Buffer, id, ts string) {
	type cut struct {
		at, n int
		v     string
	}
	cuts := []cut{{t.idAt, t.idLen, id}}
	if ts != "" {
		cuts = append(cuts, cut{t.timeAt, t.timeLen, ts})
		if cuts[1].at < cuts[0].at {
			cuts[0], cuts[1] = cuts[1], cuts[0]
		}
	}
	prev := 0
	for _, c := range cuts {
		buf.Write(t.b[prev:c.at])
		buf.WriteString(c.v)
		prev = c.at + c.n
	}
	buf.Write(t.b[prev:])
}

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
				EventTime string `json:"eventTime"`
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
			t := tmpl{b: append([]byte(nil), b...), idAt: i + len(`"eventID":"`), idLen: len(m.EventID), timeAt: -1}
			if j := bytes.Index(b, []byte(`"eventTime":"`+m.EventTime+`"`)); j >= 0 && m.EventTime != "" {
				t.timeAt, t.timeLen = j+len(`"eventTime":"`), len(m.EventTime)
			}
			out = append(out, t)
		}
		return nil
	})
	return out
}
