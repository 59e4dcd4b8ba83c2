package importer

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

// memSink collects what it is given.
type memSink struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memSink) Append(_ context.Context, rs []audit.Record) (audit.AppendResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, rs...)
	return audit.AppendResult{Inserted: len(rs)}, nil
}

func TestEveryRealRecordArrivesUnchanged(t *testing.T) {
	want := map[string]string{}
	wantRec := map[string]audit.Record{} // as Extract and CheckImported read them, field by field
	fictional := 0                       // records a publisher gave fictional regions: taken as the others
	for _, r := range audittest.RealRecords(t) {
		rec, err := audit.Extract(r.Raw)
		if err != nil {
			t.Fatal(err)
		}
		if !r.InRealRegion() {
			fictional++
		}
		want[rec.EventID] = string(r.Raw)
		if rec, err = extract(bytes.Clone(r.Raw)); err != nil {
			t.Fatal(err)
		}
		wantRec[rec.EventID] = rec
	}
	if fictional == 0 {
		t.Fatal("no record in a fictional region: their import is not tested")
	}
	sink := &memSink{}
	rep, err := Run(context.Background(), []string{audittest.RealDataDir(t)}, Options{Sink: sink, BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 0 || int(rep.Imported) != len(want) || int(rep.Records) != len(want) {
		t.Fatalf("report %+v; want all %d imported, %d of them in fictional regions", rep, len(want), fictional)
	}
	for _, r := range sink.recs {
		if string(r.Raw) != want[r.EventID] {
			t.Errorf("record %s arrived altered", r.EventID)
		}
		if !reflect.DeepEqual(r, wantRec[r.EventID]) {
			t.Errorf("record %s arrived as %+v; Extract reads %+v", r.EventID, r, wantRec[r.EventID])
		}
	}
}

func write(t *testing.T, dir, name, body string, gz bool) string {
	t.Helper()
	p := filepath.Join(dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	b := []byte(body)
	if gz {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		zw.Close()
		b = buf.Bytes()
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const rec1 = `{"eventID":"e1","eventTime":"2024-01-01T00:00:00Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","eventName":"A"}`
const rec2 = `{"eventID":"e2","eventTime":"2024-01-01T00:00:01Z","awsRegion":"us-east-1","recipientAccountId":"111111111111","eventName":"B"}`

func TestFormatsAndBadInput(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "AWSLogs/1/CloudTrail/us-east-1/2024/01/01/a.json.gz", `{"Records":[`+rec1+`,`+rec2+`]}`, true)
	write(t, dir, "lines.jsonl", rec1+"\n\n"+rec2+"\n{broken\n", false)
	write(t, dir, "lookup.json", `{"Events":[{"EventId":"e1","CloudTrailEvent":`+quote(rec1)+`}],"NextToken":null}`, false)
	write(t, dir, "array.json", `[`+rec1+`]`, false)
	write(t, dir, "mid.json", `{"Records":[`+rec1+`,{"eventID":"no-time"},`+rec2+`]}`, false)
	write(t, dir, "trunc.json.gz", `{"Records":[`+rec1, true)
	write(t, dir, "notjson.json", `hello`, false)
	write(t, dir, "empty.json", ``, false)
	write(t, dir, "AWSLogs/1/CloudTrail-Digest/us-east-1/d.json.gz", `{"digestStartTime":"x"}`, true)
	write(t, dir, "readme.txt", `not a log`, false)
	os.WriteFile(filepath.Join(dir, "badgz.json.gz"), []byte{0x1f, 0x8b, 0, 1, 2}, 0o644)
	sink := &memSink{}
	rep, err := Run(context.Background(), []string{dir}, Options{Sink: sink, MinTime: time.Date(2024, 1, 1, 0, 0, 1, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range rep.Errors {
		msgs = append(msgs, e.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"lines.jsonl: record 3", "mid.json: record 2", "trunc.json.gz", "notjson.json", "empty.json", "badgz.json.gz"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
	if rep.Skipped != 2 {
		t.Errorf("Skipped = %d; want the digest and the .txt", rep.Skipped)
	}
	// rec2 (at MinTime) is kept; rec1 (before it) is expired wherever it appears.
	for _, r := range sink.recs {
		if r.EventID != "e2" || string(r.Raw) != rec2 {
			t.Errorf("imported %s %s", r.EventID, r.Raw)
		}
	}
	if rep.Expired < 5 || len(sink.recs) != 3 {
		t.Errorf("Expired = %d, imported %d; want ≥5 expired and rec2 from 3 files", rep.Expired, len(sink.recs))
	}
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

func FuzzReadFile(f *testing.F) {
	f.Add([]byte(`{"Records":[` + rec1 + `,` + rec2 + `]}`))
	f.Add([]byte(rec1 + "\n" + rec2))
	f.Add([]byte(`{"Events":[{"CloudTrailEvent":"{}"}]}`))
	f.Add([]byte(`[` + rec1 + `,`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f.json")
		os.WriteFile(p, b, 0o644)
		sink := &memSink{}
		rep, err := Run(context.Background(), []string{p}, Options{Sink: sink, Workers: 1})
		if err != nil {
			t.Fatal(err)
		}
		if int(rep.Imported) != len(sink.recs) {
			t.Errorf("report %d imported, sink got %d", rep.Imported, len(sink.recs))
		}
		for _, r := range sink.recs {
			if !bytes.Contains(b, r.Raw) && !strings.Contains(string(b), `"CloudTrailEvent"`) {
				t.Errorf("imported bytes %q are not in the file", r.Raw)
			}
		}
	})
}
