package importer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/importer/importertest"
)

// realByID reads the real records independently of the importer
// (encoding/json over the decompressed files), by eventID.
func realByID(t testing.TB) (map[string][]byte, []audittest.RealRecord) {
	t.Helper()
	recs := audittest.RealRecords(t)
	byID := map[string][]byte{}
	for _, r := range recs {
		var v struct {
			EventID string `json:"eventID"`
		}
		if err := json.Unmarshal(r.Raw, &v); err != nil || v.EventID == "" {
			t.Fatalf("%s[%d]: no eventID (%v)", r.File, r.Index, err)
		}
		if _, dup := byID[v.EventID]; dup {
			t.Fatalf("eventID %s repeats in the real data", v.EventID)
		}
		byID[v.EventID] = r.Raw
	}
	return byID, recs
}

// checkExact fails unless the sink holds exactly the records of want, each
// with its exact bytes.
func checkExact(t *testing.T, sink *importertest.Sink, want map[string][]byte) {
	t.Helper()
	got := sink.Records()
	if len(got) != len(want) {
		t.Errorf("sink holds %d records; want %d", len(got), len(want))
	}
	for _, r := range got {
		w, ok := want[r.EventID]
		switch {
		case !ok:
			t.Errorf("record %s was not in the input", r.EventID)
		case !bytes.Equal(r.Raw, w):
			t.Errorf("record %s arrived altered:\n got %q\nwant %q", r.EventID, clip(r.Raw), clip(w))
		}
	}
}

func clip(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

func TestRealData(t *testing.T) {
	root := audittest.RealDataDir(t)
	want, recs := realByID(t)
	// Records in a fictional region (a publisher anonymised them) arrive
	// unchanged as the others: a responder imports all of them.
	fictional := int64(0)
	for _, r := range recs {
		if !r.InRealRegion() {
			fictional++
		}
	}
	if fictional == 0 {
		t.Fatal("the real data has no record in a fictional region any more: their import is not tested")
	}
	sink := &importertest.Sink{}
	rep, err := importer.Run(context.Background(), []string{root}, importer.Options{Sink: sink, BatchSize: 700, MaxErrors: 10000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Errors {
		t.Errorf("error: %v", e)
	}
	n := int64(len(recs))
	if rep.Records != n || rep.Imported != n || rep.Rejected != 0 || rep.Duplicates != 0 || rep.Expired != 0 || rep.FileErrors != 0 {
		t.Errorf("report %+v; want all %d records imported, %d of them in fictional regions", rep, n, fictional)
	}
	if rep.Files != 392 {
		t.Errorf("Files = %d; want the 392 data files", rep.Files)
	}
	if rep.Skipped == 0 {
		t.Errorf("Skipped = 0; want the licence and provenance files skipped")
	}
	checkExact(t, sink, want)
	for _, size := range sink.BatchSizes() {
		if size > 700 {
			t.Errorf("a batch of %d records; want at most 700", size)
		}
	}

	// A second import adds nothing: the sink says every record is known.
	rep, err = importer.Run(context.Background(), []string{root}, importer.Options{Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 0 || rep.Duplicates != n {
		t.Errorf("second import: Imported %d, Duplicates %d; want 0, %d", rep.Imported, rep.Duplicates, n)
	}
}

// realSample returns n real records (exact bytes), for building inputs.
func realSample(t *testing.T, n int) [][]byte {
	t.Helper()
	recs := audittest.RealRecordsInRealRegions(t)
	if len(recs) < n {
		t.Fatalf("only %d real records", len(recs))
	}
	out := make([][]byte, n)
	for i := range out {
		out[i] = recs[i*len(recs)/n].Raw // spread over the sources
	}
	return out
}

func records(raws [][]byte) []byte {
	return append(append([]byte(`{"Records":[`), bytes.Join(raws, []byte(","))...), "]}"...)
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func byID(t *testing.T, raws ...[]byte) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, r := range raws {
		rec, err := audit.Extract(r)
		if err != nil {
			t.Fatal(err)
		}
		m[rec.EventID] = r
	}
	return m
}

func write(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, opts importer.Options, paths ...string) (importer.Report, *importertest.Sink) {
	t.Helper()
	sink, _ := opts.Sink.(*importertest.Sink)
	if sink == nil {
		sink = &importertest.Sink{}
		opts.Sink = sink
	}
	rep, err := importer.Run(context.Background(), paths, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if sum := rep.Imported + rep.Duplicates + rep.Rejected + rep.Expired; sum != rep.Records {
		t.Errorf("Imported+Duplicates+Rejected+Expired = %d; want Records = %d (%+v)", sum, rep.Records, rep)
	}
	return rep, sink
}

// errorsOf renders the report's errors relative to dir, sorted.
func errorsOf(rep importer.Report, dir string) []string {
	var out []string
	for _, e := range rep.Errors {
		rel, _ := filepath.Rel(dir, e.File)
		out = append(out, fmt.Sprintf("%s#%d", rel, e.Record))
	}
	slices.Sort(out)
	return out
}

func TestMalformed(t *testing.T) {
	raws := realSample(t, 6)
	good := records(raws)
	noID := []byte(`{"eventVersion":"1.08","eventTime":"2024-01-01T00:00:00Z","awsRegion":"us-east-1","recipientAccountId":"123456789012"}`)
	huge := append(append([]byte(`{"eventID":"x","pad":"`), bytes.Repeat([]byte("a"), audit.MaxRecordSize)...), `"}`...)
	deep := strings.Repeat("[", 200000) + strings.Repeat("]", 200000)
	zgood := gz(t, good)
	tests := []struct {
		name       string
		content    []byte
		imported   []int // indexes into raws
		rejected   int64
		fileErrors int64
		errs       []string // file#record
	}{
		{"truncated.json.gz", zgood[:len(zgood)*2/3], readable(t, zgood[:len(zgood)*2/3]), 0, 1, nil},
		{"bad-crc.json.gz", append(append([]byte{}, zgood[:len(zgood)-8]...), 0, 0, 0, 0, zgood[len(zgood)-4], zgood[len(zgood)-3], zgood[len(zgood)-2], zgood[len(zgood)-1]), []int{0, 1, 2, 3, 4, 5}, 0, 1, []string{"bad-crc.json.gz#7"}},
		{"not-json.json", []byte("this is a README, not a log file\n"), nil, 0, 1, []string{"not-json.json#0"}},
		{"binary.gz", gz(t, []byte{0, 1, 2, 3, 0xff}), nil, 0, 1, []string{"binary.gz#0"}},
		{"bad-record-in-middle.json", records([][]byte{raws[0], raws[1], noID, raws[2]}), []int{0, 1, 2}, 1, 0, []string{"bad-record-in-middle.json#3"}},
		{"syntax-error-in-middle.json", records([][]byte{raws[0], raws[1], []byte(`{"eventID": nope}`), raws[2]}), []int{0, 1, 2}, 1, 0, []string{"syntax-error-in-middle.json#3"}},
		{"broken-structure.json", []byte(`{"Records":[` + string(raws[0]) + `,` + string(raws[1]) + ` ` + string(raws[2]) + `]}`), []int{0, 1}, 0, 1, []string{"broken-structure.json#3"}},
		{"wrong-container.json", []byte(`{"Items":[` + string(raws[0]) + `]}`), nil, 1, 0, []string{"wrong-container.json#1"}},
		{"records-not-array.json", []byte(`{"Records":{"a":1}}`), nil, 0, 1, []string{"records-not-array.json#0"}},
		{"trailing-junk.json", append(records(raws[:2]), " junk"...), []int{0, 1}, 0, 1, []string{"trailing-junk.json#0"}},
		{"empty.json", nil, nil, 0, 1, []string{"empty.json#0"}},
		{"blank.json", []byte(" \n\t\n"), nil, 0, 1, []string{"blank.json#0"}},
		{"empty.json.gz", gz(t, nil), nil, 0, 1, []string{"empty.json.gz#0"}},
		{"no-records.json", []byte(`{"Records":[]}`), nil, 0, 0, nil},
		{"bom.json", append([]byte("\xef\xbb\xbf"), records(raws[:2])...), []int{0, 1}, 0, 0, nil},
		{"huge-record.json", records([][]byte{raws[0], huge, raws[1]}), []int{0, 1}, 1, 0, []string{"huge-record.json#2"}},
		{"huge-line.jsonl", []byte(string(raws[0]) + "\n" + strings.Repeat("x", 5<<20) + "\n" + string(raws[1]) + "\n"), []int{0, 1}, 1, 0, []string{"huge-line.jsonl#2"}},
		{"nested-junk.json", []byte(`{"Records":[` + string(raws[0]) + `,[[[{"a":[]}]]],` + deep + `,"str",12,null,{},` + string(raws[1]) + `]}`), []int{0, 1}, 6, 0, []string{"nested-junk.json#2", "nested-junk.json#3", "nested-junk.json#4", "nested-junk.json#5", "nested-junk.json#6", "nested-junk.json#7"}},
		{"unterminated-string.json", []byte(`{"Records":[` + string(raws[0]) + `,{"eventID":"abc`), []int{0}, 0, 1, []string{"unterminated-string.json#2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, tt.name, tt.content)
			// A good file beside the bad one imports in full.
			write(t, dir, "z-good.json.gz", gz(t, records(raws[3:])))
			rep, sink := run(t, importer.Options{}, dir)
			want := map[string][]byte{}
			for _, i := range tt.imported {
				want = merge(want, byID(t, raws[i]))
			}
			want = merge(want, byID(t, raws[3:]...))
			checkExact(t, sink, want)
			if rep.Rejected != tt.rejected || rep.FileErrors != tt.fileErrors {
				t.Errorf("Rejected %d, FileErrors %d; want %d, %d (errors %v)", rep.Rejected, rep.FileErrors, tt.rejected, tt.fileErrors, rep.Errors)
			}
			if int64(len(rep.Errors)) != tt.rejected+tt.fileErrors {
				t.Errorf("%d errors; want %d: %v", len(rep.Errors), tt.rejected+tt.fileErrors, rep.Errors)
			}
			if tt.errs != nil {
				if diff := cmp.Diff(tt.errs, errorsOf(rep, dir)); diff != "" {
					t.Errorf("errors (-want +got):\n%s\n%v", diff, rep.Errors)
				}
			}
			for _, e := range rep.Errors {
				if !strings.Contains(e.Error(), tt.name) {
					t.Errorf("error %q does not name the file", e.Error())
				}
			}
		})
	}
}

// readable returns the indexes of the records a truncated gzip file of
// records(raws) still holds whole, read with compress/gzip and encoding/json.
func readable(t *testing.T, b []byte) []int {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(zr)
	dec := json.NewDecoder(bytes.NewReader(data))
	for range 3 { // { "Records" [
		dec.Token()
	}
	var out []int
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if dec.Decode(&raw) != nil {
			break
		}
		out = append(out, i)
	}
	if len(out) == 0 || len(out) == 6 {
		t.Fatalf("the truncated file holds %d whole records; the test needs some, not all", len(out))
	}
	return out
}

func merge(a, b map[string][]byte) map[string][]byte {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestNDJSON(t *testing.T) {
	raws := realSample(t, 8)
	// Records are often pretty-printed in the real files; a line holds one.
	var compact [][]byte
	for _, r := range raws {
		var b bytes.Buffer
		if err := json.Compact(&b, r); err != nil {
			t.Fatal(err)
		}
		compact = append(compact, b.Bytes())
	}
	lines := "\n" + string(compact[0]) + "\r\n\n  " + string(compact[1]) + "  \n" + string(bytes.Join(compact[2:], []byte("\n")))
	var pretty bytes.Buffer
	for _, r := range raws[:3] {
		json.Indent(&pretty, r, "", "  ")
		pretty.WriteString("\n")
	}
	dir := t.TempDir()
	write(t, dir, "a.jsonl", []byte(lines))
	write(t, dir, "b/c.ndjson.gz", gz(t, []byte(lines+"\n")))
	write(t, dir, "pretty.json", pretty.Bytes())
	rep, sink := run(t, importer.Options{}, dir)
	if rep.Records != 8+8+3 || rep.Imported != 8 || rep.Duplicates != 11 || rep.Rejected != 0 {
		t.Errorf("report %+v; want 19 records, 8 imported, 11 duplicates", rep)
	}
	checkExact(t, sink, byID(t, compact...))

	// Pretty-printed records arrive as they were printed.
	rep, sink = run(t, importer.Options{}, filepath.Join(dir, "pretty.json"))
	if rep.Imported != 3 || rep.Rejected != 0 {
		t.Errorf("pretty: report %+v; want 3 imported", rep)
	}
	got := sink.Records()
	for i, r := range got {
		var want bytes.Buffer
		json.Indent(&want, raws[i], "", "  ")
		if !bytes.Equal(r.Raw, want.Bytes()) {
			t.Errorf("pretty record %d altered:\n got %q\nwant %q", i, clip(r.Raw), clip(want.Bytes()))
		}
	}

	// A bad line costs that line only.
	bad := string(compact[0]) + "\n{\"eventID\": \n" + string(compact[1]) + "\nnot json\n" + string(compact[2]) + "\n"
	dir = t.TempDir()
	rep, sink = run(t, importer.Options{}, write(t, dir, "bad.jsonl", []byte(bad)))
	checkExact(t, sink, byID(t, compact[:3]...))
	if diff := cmp.Diff([]string{"bad.jsonl#2", "bad.jsonl#4"}, errorsOf(rep, dir)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

// lookupEvents renders records as `aws cloudtrail lookup-events` prints them.
func lookupEvents(t *testing.T, raws [][]byte, indent bool) []byte {
	t.Helper()
	type event struct {
		EventId, EventName, CloudTrailEvent string
		Resources                           []any
	}
	var out struct {
		Events    []event
		NextToken string
	}
	for _, r := range raws {
		rec, err := audit.Extract(r)
		if err != nil {
			t.Fatal(err)
		}
		out.Events = append(out.Events, event{EventId: rec.EventID, EventName: rec.EventName, CloudTrailEvent: string(r), Resources: []any{}})
	}
	out.NextToken = "eyJ0b2tlbiI6IDF9"
	if indent {
		b, _ := json.MarshalIndent(out, "", "    ")
		return b
	}
	b, _ := json.Marshal(out)
	return b
}

func TestLookupEvents(t *testing.T) {
	raws := realSample(t, 10)
	dir := t.TempDir()
	write(t, dir, "page1.json", lookupEvents(t, raws[:5], true))
	write(t, dir, "page2.json.gz", gz(t, lookupEvents(t, raws[5:], false)))
	// NextToken first, and two pages one after the other.
	write(t, dir, "token-first.json", []byte(`{"NextToken": "abc", "Events": []}`+"\n"+string(lookupEvents(t, raws[:2], false))))
	// One event per line, as `jq -c '.Events[]'` writes them (plaso's jsonl).
	var jsonl bytes.Buffer
	for _, r := range raws[:4] {
		b, _ := json.Marshal(map[string]string{"EventId": "x", "CloudTrailEvent": string(r)})
		jsonl.Write(b)
		jsonl.WriteByte('\n')
	}
	write(t, dir, "events.jsonl", jsonl.Bytes())
	write(t, dir, "bad-entry.json", []byte(`{"Events":[{"EventId":"1"},{"CloudTrailEvent":12},`+string(must(json.Marshal(map[string]string{"CloudTrailEvent": string(raws[9])})))+`]}`))
	rep, sink := run(t, importer.Options{}, dir)
	checkExact(t, sink, byID(t, raws...))
	if rep.Records != 5+5+2+4+3 || rep.Imported != 10 || rep.Rejected != 2 {
		t.Errorf("report %+v; want 19 records, 10 imported, 2 rejected", rep)
	}
	if diff := cmp.Diff([]string{"bad-entry.json#1", "bad-entry.json#2"}, errorsOf(rep, dir)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestDigestsSkipped(t *testing.T) {
	raws := realSample(t, 3)
	digest := []byte(`{"awsAccountId":"123456789012","digestStartTime":"2024-01-01T00:00:00Z","digestEndTime":"2024-01-01T01:00:00Z","digestS3Bucket":"b","digestS3Object":"AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/01/01/x.json.gz","logFiles":[]}`)
	dir := t.TempDir()
	base := "AWSLogs/123456789012/"
	write(t, dir, base+"CloudTrail/us-east-1/2024/01/01/123456789012_CloudTrail_us-east-1_20240101T0000Z_abc.json.gz", gz(t, records(raws)))
	write(t, dir, base+"CloudTrail-Digest/us-east-1/2024/01/01/123456789012_CloudTrail-Digest_us-east-1_t_us-east-1_20240101T010000Z.json.gz", gz(t, digest))
	write(t, dir, base+"CloudTrail-Digest/us-east-1/2024/01/01/second.json.gz", gz(t, digest))
	renamed := write(t, dir, "elsewhere/renamed.json.gz", gz(t, digest)) // found by its content
	named := write(t, dir, "elsewhere/123456789012_CloudTrail-Digest_us-east-1_t_us-east-1_20240101T020000Z.json.gz", gz(t, digest))
	write(t, dir, "notes.txt", []byte("hello"))
	write(t, dir, ".hidden.json", []byte("junk"))
	rep, sink := run(t, importer.Options{}, dir)
	checkExact(t, sink, byID(t, raws...))
	if rep.Skipped != 6 || rep.Files != 1 || len(rep.Errors) != 0 {
		t.Errorf("Skipped %d, Files %d, errors %v; want 6 skipped, 1 file, no errors", rep.Skipped, rep.Files, rep.Errors)
	}
	rep, _ = run(t, importer.Options{}, renamed, named)
	if rep.Skipped != 2 || rep.Files != 0 || len(rep.Errors) != 0 {
		t.Errorf("named digests: Skipped %d, Files %d, errors %v; want 2 skipped", rep.Skipped, rep.Files, rep.Errors)
	}
}

func TestMinTime(t *testing.T) {
	raws := realSample(t, 20)
	var cut time.Time
	var times []time.Time
	for _, r := range raws {
		rec, _ := audit.Extract(r)
		times = append(times, rec.Time)
	}
	slices.SortFunc(times, time.Time.Compare)
	cut = times[10]
	var newer [][]byte
	for _, r := range raws {
		if rec, _ := audit.Extract(r); !rec.Time.Before(cut) {
			newer = append(newer, r)
		}
	}
	dir := t.TempDir()
	rep, sink := run(t, importer.Options{MinTime: cut}, write(t, dir, "f.json", records(raws)))
	checkExact(t, sink, byID(t, newer...))
	if rep.Expired != int64(len(raws)-len(newer)) || rep.Expired == 0 {
		t.Errorf("Expired = %d; want %d", rep.Expired, len(raws)-len(newer))
	}
}

func TestRefusedAndCapped(t *testing.T) {
	raws := realSample(t, 40)
	dir := t.TempDir()
	p := write(t, dir, "f.json", records(raws))
	sink := &importertest.Sink{Refuse: func(r audit.Record) string {
		if r.Region != "us-east-1" {
			return "not here"
		}
		return ""
	}}
	var keep [][]byte
	refused := 0
	for _, r := range raws {
		if rec, _ := audit.Extract(r); rec.Region == "us-east-1" {
			keep = append(keep, r)
		} else {
			refused++
		}
	}
	if refused < 4 {
		t.Fatalf("only %d records outside us-east-1; the test needs more", refused)
	}
	rep, _ := run(t, importer.Options{Sink: sink, MaxErrors: 3, BatchSize: 7}, p)
	checkExact(t, sink, byID(t, keep...))
	if rep.Rejected != int64(refused) || len(rep.Errors) != 3 || rep.ErrorsOmitted != int64(refused-3) {
		t.Errorf("Rejected %d, %d errors, %d omitted; want %d, 3, %d", rep.Rejected, len(rep.Errors), rep.ErrorsOmitted, refused, refused-3)
	}
	for _, e := range rep.Errors {
		rec, _ := audit.Extract(raws[e.Record-1])
		if e.File != p || rec.Region == "us-east-1" || !strings.Contains(e.Error(), "not here") {
			t.Errorf("error %v names record %d of %s, in %s", e, e.Record, e.File, rec.Region)
		}
	}
}

func TestMissingPath(t *testing.T) {
	raws := realSample(t, 2)
	dir := t.TempDir()
	rep, sink := run(t, importer.Options{}, filepath.Join(dir, "nope"), write(t, dir, "f.json", records(raws)))
	checkExact(t, sink, byID(t, raws...))
	if rep.FileErrors != 1 || len(rep.Errors) != 1 || !errors.Is(rep.Errors[0], os.ErrNotExist) {
		t.Errorf("FileErrors %d, errors %v; want the missing path reported", rep.FileErrors, rep.Errors)
	}
}

func TestSinkError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { // fails if a goroutine is left behind
		dir := t.TempDir()
		raws := realSample(t, 50)
		for i := range 20 {
			write(t, dir, fmt.Sprintf("f%02d.json", i), records(raws))
		}
		boom := errors.New("disk full")
		sink := &importertest.Sink{FailAfter: 1, Err: boom}
		rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: sink, BatchSize: 10})
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v; want %v", err, boom)
		}
		if rep.Imported != 10 {
			t.Errorf("Imported %d; want the 10 of the first batch", rep.Imported)
		}
	})
}

func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		write(t, dir, "f.json", records(realSample(t, 50)))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := importer.Run(ctx, []string{dir}, importer.Options{Sink: &importertest.Sink{}})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v; want context.Canceled", err)
		}
	})
}

// slowSink takes a minute of (fake) time per batch.
type slowSink struct{ sink importertest.Sink }

func (s *slowSink) Append(ctx context.Context, rs []audit.Record) (audit.AppendResult, error) {
	time.Sleep(time.Minute)
	return s.sink.Append(ctx, rs)
}

func TestProgressAndFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		raws := realSample(t, 30)
		write(t, dir, "f.json", records(raws))
		var out bytes.Buffer
		sink := &slowSink{}
		rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: sink, Progress: &out, BatchSize: 20})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Imported != 30 {
			t.Errorf("Imported %d; want 30", rep.Imported)
		}
		// Batches of 20 then 10, each split by account and region.
		sum := 0
		for _, n := range sink.sink.BatchSizes() {
			if n > 20 {
				t.Errorf("batch of %d records; want at most 20", n)
			}
			sum += n
		}
		if sum != 30 {
			t.Errorf("batch sizes %v; want 30 records in all", sink.sink.BatchSizes())
		}
		if !strings.Contains(out.String(), "import: files 1/1  records 30") {
			t.Errorf("progress output %q; want lines with files and records", out.String())
		}
	})
}

// BenchmarkImport imports the real data (392 files, 4,373 records) into a
// sink that discards them: the importer's own cost. 327 records name
// regions their publisher made up; they are refused as invalid.
func BenchmarkImport(b *testing.B) {
	root := audittest.RealDataDir(b)
	var rep importer.Report
	for b.Loop() {
		var err error
		rep, err = importer.Run(context.Background(), []string{root}, importer.Options{Sink: importertest.Discard{}})
		if err != nil || rep.Records != 4373 || rep.Imported+rep.Rejected != 4373 {
			b.Fatalf("Run = %+v, %v", rep, err)
		}
	}
	b.SetBytes(rep.Bytes)
	b.ReportMetric(float64(rep.Records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// TestAppenders: with several batches given to the Sink at once, the
// report is the same as with one: every record stored once, duplicates
// and refusals counted and reported against their file and record; and
// a Sink error still stops the import with no goroutine left behind.
func TestAppenders(t *testing.T) {
	raws := realSample(t, 40)
	for _, n := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("appenders=%d", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				for i := range 12 {
					// Every file holds the same records (so all but the
					// first copy are duplicates) and one malformed record.
					recs := append(slices.Clone(raws), []byte(`{"eventID": nope}`))
					write(t, dir, fmt.Sprintf("f%02d.json", i), records(recs))
				}
				refuse := func(r audit.Record) string {
					if r.EventID == "" || r.EventID[0] < '8' {
						return ""
					}
					return "refused for the test"
				}
				sink := &importertest.Sink{Refuse: refuse}
				rep, err := importer.Run(context.Background(), []string{dir},
					importer.Options{Sink: sink, BatchSize: 7, Appenders: n, MaxErrors: 10000})
				if err != nil {
					t.Fatal(err)
				}
				refused := 0
				for _, r := range sink.Records() {
					if refuse(r) != "" {
						t.Errorf("refused record %s stored", r.EventID)
					}
				}
				var ok []audit.Record
				for _, raw := range raws {
					r, err := audit.Extract(raw)
					if err != nil || audit.CheckRegion(r.Region) != nil {
						continue
					}
					if refuse(r) != "" {
						refused++
						continue
					}
					ok = append(ok, r)
				}
				if got := len(sink.Records()); got != len(ok) || rep.Imported != int64(len(ok)) {
					t.Errorf("stored %d, Imported %d; want %d", got, rep.Imported, len(ok))
				}
				if rep.Records != rep.Imported+rep.Duplicates+rep.Rejected+rep.Expired {
					t.Errorf("counts do not add up: %+v", rep)
				}
				if rep.Duplicates != int64(11*len(ok)) {
					t.Errorf("Duplicates %d; want %d", rep.Duplicates, 11*len(ok))
				}
				byFile := map[string]int{}
				for _, e := range rep.Errors {
					if e.Record < 1 || e.Record > len(raws)+1 {
						t.Errorf("error %v names no record of its file", e)
					}
					byFile[filepath.Base(e.File)]++
				}
				// Each file: the malformed record, its invalid ones, and
				// (in some file) the refused ones.
				if len(byFile) != 12 {
					t.Errorf("errors in %d files; want 12: %v", len(byFile), byFile)
				}
				if want := int64(12*(len(raws)-len(ok)-refused+1) + 12*refused); rep.Rejected != want {
					t.Errorf("Rejected %d; want %d", rep.Rejected, want)
				}
			})
		})
		t.Run(fmt.Sprintf("sink error, appenders=%d", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				for i := range 20 {
					write(t, dir, fmt.Sprintf("f%02d.json", i), records(realSample(t, 50)))
				}
				boom := errors.New("disk full")
				sink := &importertest.Sink{FailAfter: 2, Err: boom}
				rep, err := importer.Run(context.Background(), []string{dir},
					importer.Options{Sink: sink, BatchSize: 10, Appenders: n})
				if !errors.Is(err, boom) {
					t.Errorf("Run = %v; want %v", err, boom)
				}
				if rep.Imported > 20 {
					t.Errorf("Imported %d; want at most the 20 of the first two calls", rep.Imported)
				}
			})
		})
	}
}

// TestGroupsBounded (hostile-tenant suite): a file whose every record
// names another account and region, invalid (letters, 13 digits, unicode,
// terminal escapes, 10 KB) or valid, gives at most 1,000 groups and one
// "*" group for the rest, the counts still adding up: the Report the
// server holds for StartImport does not grow with such a file's records.
func TestGroupsBounded(t *testing.T) {
	const n = 3000
	var raws [][]byte
	for i := range n {
		account := fmt.Sprintf("%012d", i) // valid, each its own
		region := "us-east-1"
		switch i % 5 {
		case 1:
			account = fmt.Sprintf("%013d", i)
		case 2:
			account = fmt.Sprintf("acct-\u00e9\u202e-%d", i)
		case 3:
			region = fmt.Sprintf("us-east-1\x1b[2J%d", i)
		case 4:
			region = strings.Repeat("x", 10_000) + strconv.Itoa(i)
		}
		raws = append(raws, fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",`+
			`"eventName":"GetObject","awsRegion":%q,"eventID":"ev-%d","recipientAccountId":%q}`, region, i, account))
	}
	rep, _ := run(t, importer.Options{}, write(t, t.TempDir(), "f.json", records(raws)))
	var sum, other int64
	for _, g := range rep.Groups {
		if g.Records != g.Imported+g.Duplicates+g.Refused {
			t.Errorf("group %.20q/%.20q: %d records, %d+%d+%d", g.Account, g.Region, g.Records, g.Imported, g.Duplicates, g.Refused)
		}
		if len(g.Account) > 64+3 || len(g.Region) > 64+3 { // audit.Clip
			t.Errorf("group of %d+%d bytes", len(g.Account), len(g.Region))
		}
		if g.Account == "*" && g.Region == "*" {
			other = g.Records
		}
		sum += g.Records
	}
	if len(rep.Groups) > 1001 || other == 0 || sum != n || rep.Records != n {
		t.Errorf("%d groups, %d records in \"*\", %d in all (%d read); want at most 1001, some, %d", len(rep.Groups), other, sum, rep.Records, n)
	}
}

// TestEachSinkBatches: a Sink that answers per record (the DuckDB store)
// gets each batch in one call, whatever accounts and regions it mixes, and
// the Report counts the same per account and region as with one call per
// group; repeats within and across batches are duplicates of their group.
func TestEachSinkBatches(t *testing.T) {
	dir := t.TempDir()
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"us-east-1", "eu-west-1"}
	var raws [][]byte
	for i := range 120 {
		raws = append(raws, fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",`+
			`"eventName":"GetObject","awsRegion":%q,"eventID":"ev-%d","recipientAccountId":%q}`, regions[i%2], i%100, accounts[i%3]))
	}
	raws = append(raws, []byte(`{"eventID": nope}`))
	write(t, dir, "a.json", records(raws))
	write(t, dir, "b.json", records(raws[:50]))
	for _, batch := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			plain := &importertest.Sink{}
			want, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: plain, BatchSize: batch, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			each := &importertest.EachSink{}
			got, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: each, BatchSize: batch, Workers: 1, Appenders: 2})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Groups, want.Groups) {
				t.Errorf("Groups = %+v; want %+v", got.Groups, want.Groups)
			}
			if got.Imported != want.Imported || got.Duplicates != want.Duplicates || got.Rejected != want.Rejected || got.Records != want.Records {
				t.Errorf("counts %+v; want %+v", got, want)
			}
			if got.Imported == 0 || got.Duplicates == 0 {
				t.Errorf("Imported %d, Duplicates %d: the test needs both", got.Imported, got.Duplicates)
			}
			// One call a batch: as many calls as records / batch size at
			// least, never one per group of a batch.
			valid := int(got.Imported + got.Duplicates)
			if calls := len(each.BatchSizes()); calls > (valid+batch-1)/batch+2 || calls >= len(plain.BatchSizes()) && batch > 1 {
				t.Errorf("%d calls for %d records in batches of %d (%d calls per group)", calls, valid, batch, len(plain.BatchSizes()))
			}
		})
	}
	t.Run("sink error", func(t *testing.T) {
		boom := errors.New("disk full")
		each := &importertest.EachSink{}
		each.Fail(1, boom)
		rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: each, BatchSize: 10, Workers: 1})
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v; want %v", err, boom)
		}
		if rep.Imported > 10 {
			t.Errorf("Imported %d; want at most the 10 of the first call", rep.Imported)
		}
	})
}

// TestEachReportingSinkBatches: a Sink that refuses records and answers
// per record (a Lake event data store) gets each batch in one call, and the
// Report counts and lists the same as with one AppendReport call per
// account and region (the refusals with their files and record numbers).
func TestEachReportingSinkBatches(t *testing.T) {
	dir := t.TempDir()
	accounts := []string{"111111111111", "222222222222", "333333333333"}
	regions := []string{"us-east-1", "eu-west-1"}
	var raws [][]byte
	for i := range 120 {
		raws = append(raws, fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com",`+
			`"eventName":"GetObject","awsRegion":%q,"eventID":"ev-%d","recipientAccountId":%q}`, regions[i%2], i%100, accounts[i%3]))
	}
	raws = append(raws, []byte(`{"eventID": nope}`))
	write(t, dir, "a.json", records(raws))
	write(t, dir, "b.json", records(raws[:50]))
	refuse := func(r audit.Record) string {
		if r.Account == "222222222222" && r.Region == "eu-west-1" {
			return "not this one"
		}
		return ""
	}
	errs := func(rep importer.Report) []string {
		var out []string
		for _, e := range rep.Errors {
			out = append(out, fmt.Sprintf("%s:%d %s %v", filepath.Base(e.File), e.Record, e.Code, e.Err))
		}
		slices.Sort(out)
		return out
	}
	for _, batch := range []int{1, 7, 1000} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			plain := &importertest.Sink{Refuse: refuse}
			want, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: plain, BatchSize: batch, Workers: 1, MaxErrors: 1000})
			if err != nil {
				t.Fatal(err)
			}
			each := &importertest.EachReportingSink{Sink: importertest.Sink{Refuse: refuse}}
			got, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: each, BatchSize: batch, Workers: 1, Appenders: 2, MaxErrors: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Groups, want.Groups) {
				t.Errorf("Groups = %+v; want %+v", got.Groups, want.Groups)
			}
			if got.Imported != want.Imported || got.Duplicates != want.Duplicates || got.Rejected != want.Rejected || got.Records != want.Records {
				t.Errorf("counts %+v; want %+v", got, want)
			}
			if got.Imported == 0 || got.Duplicates == 0 || got.Rejected < 2 {
				t.Errorf("Imported %d, Duplicates %d, Rejected %d: the test needs each", got.Imported, got.Duplicates, got.Rejected)
			}
			if g, w := errs(got), errs(want); !slices.Equal(g, w) {
				t.Errorf("Errors = %q; want %q", g, w)
			}
			if g, w := len(each.Records()), len(plain.Records()); g != w {
				t.Errorf("%d records stored; want %d", g, w)
			}
			// A Sink that tells its refusals record by record gets batches
			// of only the records it takes, reported the same.
			// (FlushInterval an hour: a slow run, -race on a loaded machine,
			// must not see the 1 s flush cut a batch short.)
			rs := &importertest.RefusingSink{EachReportingSink: importertest.EachReportingSink{Sink: importertest.Sink{Refuse: refuse}}}
			gotR, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: rs, BatchSize: batch, Workers: 1, Appenders: 2, MaxErrors: 1000, FlushInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(gotR.Groups, want.Groups) {
				t.Errorf("refusing sink: Groups = %+v; want %+v", gotR.Groups, want.Groups)
			}
			if gotR.Imported != want.Imported || gotR.Duplicates != want.Duplicates || gotR.Rejected != want.Rejected || gotR.Records != want.Records {
				t.Errorf("refusing sink: counts %+v; want %+v", gotR, want)
			}
			if g, w := errs(gotR), errs(want); !slices.Equal(g, w) {
				t.Errorf("refusing sink: Errors = %q; want %q", g, w)
			}
			if g, w := len(rs.Records()), len(plain.Records()); g != w {
				t.Errorf("refusing sink: %d records stored; want %d", g, w)
			}
			// Two appenders: the last (partial) batch may be given before
			// the full one ahead of it, so count, not positions.
			sizes, gave, short := rs.BatchSizes(), int64(0), 0
			for _, n := range sizes {
				gave += int64(n)
				if n != batch {
					short++
				}
			}
			if short > 1 {
				t.Errorf("refusing sink: batch sizes %v; want every one but the last %d", sizes, batch)
			}
			if gave != want.Imported+want.Duplicates {
				t.Errorf("refusing sink: %d records given; want only the %d taken", gave, want.Imported+want.Duplicates)
			}
			// One call a batch, never one per group of a batch.
			given := 0
			for _, n := range each.BatchSizes() {
				given += n
			}
			if calls := len(each.BatchSizes()); calls > (given+batch-1)/batch+2 || calls >= len(plain.BatchSizes()) && batch > 1 {
				t.Errorf("%d calls for %d records in batches of %d (%d calls per group)", calls, given, batch, len(plain.BatchSizes()))
			}
		})
	}
	t.Run("sink error", func(t *testing.T) {
		boom := errors.New("disk full")
		each := &importertest.EachReportingSink{Sink: importertest.Sink{FailAfter: 1, Err: boom}}
		rep, err := importer.Run(context.Background(), []string{dir}, importer.Options{Sink: each, BatchSize: 10, Workers: 1})
		if !errors.Is(err, boom) {
			t.Errorf("Run = %v; want %v", err, boom)
		}
		if rep.Imported > 10 {
			t.Errorf("Imported %d; want at most the 10 of the first call", rep.Imported)
		}
	})
}

// TestInOrder: with InOrder, the Sink gets every file's records in the
// order of the files' names and each file's own order, although four
// readers read the files at once and three appenders prepare batches that
// finish out of order; without it, the same run reorders them (so the
// test can fail). Counts are as without the option.
func TestInOrder(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for f := range 30 {
		var raws [][]byte
		for i := range 5 + f%7*3 {
			id := fmt.Sprintf("f%02d-%03d", f, i)
			want = append(want, id)
			raws = append(raws, fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z",`+
				`"eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1",`+
				`"eventID":%q,"recipientAccountId":"111111111111"}`, id))
		}
		write(t, dir, fmt.Sprintf("f%02d.json", f), records(raws))
	}
	for _, inOrder := range []bool{true, false} {
		t.Run(fmt.Sprintf("InOrder=%v", inOrder), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				calls := 0
				var mu sync.Mutex
				sink := &importertest.PreparingSink{Delay: func([]audit.Record) time.Duration {
					mu.Lock()
					defer mu.Unlock()
					calls++
					return time.Duration(calls%3) * 10 * time.Millisecond // later batches often ready first
				}}
				rep, err := importer.Run(context.Background(), []string{dir},
					importer.Options{Sink: sink, BatchSize: 7, Appenders: 3, Workers: 4, InOrder: inOrder})
				if err != nil {
					t.Fatal(err)
				}
				if rep.Imported != int64(len(want)) {
					t.Errorf("Imported %d; want %d", rep.Imported, len(want))
				}
				var got []string
				for _, r := range sink.Records() {
					got = append(got, r.EventID)
				}
				if inOrder != slices.Equal(got, want) {
					t.Errorf("records in the order of the files: %v; want %v\n%v", !inOrder, inOrder, got)
				}
			})
		})
	}
}

// TestBatchesExact checks that every batch but the last holds exactly
// BatchSize records, files' chunks split between batches where they do not
// fit (a Lake load's transaction is then exactly a DuckDB row group;
// lake.LoadBatch).
func TestBatchesExact(t *testing.T) {
	root := audittest.RealDataDir(t)
	_, recs := realByID(t)
	for _, appenders := range []int{1, 2} {
		t.Run(fmt.Sprintf("appenders=%d", appenders), func(t *testing.T) {
			sink := &importertest.EachSink{}
			rep, err := importer.Run(context.Background(), []string{root}, importer.Options{Sink: sink, BatchSize: 700,
				FlushInterval: time.Hour, Appenders: appenders, MaxErrors: 10000})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Imported != int64(len(recs)) {
				t.Fatalf("Imported = %d; want %d", rep.Imported, len(recs))
			}
			sizes := sink.BatchSizes()
			short := 0
			for _, n := range sizes {
				if n != 700 {
					short++
					if n > 700 {
						t.Errorf("a batch of %d records; want at most 700", n)
					}
				}
			}
			if short > 1 {
				t.Errorf("batch sizes %v; want every one but the last 700", sizes)
			}
		})
	}
}

// TestGroupedCountsOnlyCommitted: with a GroupingSink (batches that share
// transactions, committed later) an import counts a batch only once its
// transaction committed: the last, part-full one at the end (EndGroup),
// and none of a transaction that failed, nor of those after it, so that
// Imported is what the Sink stored.
func TestGroupedCountsOnlyCommitted(t *testing.T) {
	dir := t.TempDir()
	n := 0
	for f := range 20 {
		var raws [][]byte
		for i := range 13 {
			raws = append(raws, fmt.Appendf(nil, `{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05Z",`+
				`"eventSource":"s3.amazonaws.com","eventName":"ListBuckets","awsRegion":"us-east-1",`+
				`"eventID":"f%02d-%03d","recipientAccountId":"111111111111"}`, f, i))
			n++
		}
		write(t, dir, fmt.Sprintf("f%02d.json", f), records(raws))
	}
	for _, fail := range []int{0, 1, 2, 4} {
		t.Run(fmt.Sprintf("FailGroup=%d", fail), func(t *testing.T) {
			sink := &importertest.GroupingSink{Group: 3, FailGroup: fail, Err: errors.New("commit failed")}
			rep, err := importer.Run(context.Background(), []string{dir},
				importer.Options{Sink: sink, BatchSize: 10, Appenders: 2, Workers: 2, InOrder: true})
			if (err != nil) != (fail > 0) {
				t.Fatalf("Run: %v", err)
			}
			stored := int64(len(sink.Records()))
			if rep.Imported != stored {
				t.Errorf("Imported %d; the sink stored %d", rep.Imported, stored)
			}
			if want := int64(n); fail == 0 && stored != want {
				t.Errorf("stored %d; want %d", stored, want)
			}
			if want := int64((fail - 1) * 30); fail > 0 && stored != want {
				t.Errorf("stored %d; want %d (the transactions before the failed one)", stored, want)
			}
		})
	}
}
