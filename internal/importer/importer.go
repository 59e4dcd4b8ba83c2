// Package importer reads CloudTrail log files into cairn: trail log files
// (.json or .json.gz holding {"Records":[...]}), one record per line, bare
// JSON arrays, and the output of `aws cloudtrail lookup-events`, in folders
// of any depth (the S3 layout included). Records are never altered: each
// keeps the exact bytes it had in the file.
package importer

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Sink receives batches of records (a Store, or a running server).
type Sink interface {
	Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error)
}

// Failure is a record a sink refused.
type Failure struct {
	Index   int // in the batch given to the sink
	Message string
}

// ReportingSink is a Sink that can also refuse single records (a server
// refuses records of other accounts).
type ReportingSink interface {
	AppendReport(ctx context.Context, records []audit.Record) (audit.AppendResult, []Failure, error)
}

// Options configures Run. Sink is required.
type Options struct {
	Sink Sink
	// BatchSize is the number of records per Append (default 5000).
	BatchSize int
	// MinTime: records older are counted Expired and not sent.
	MinTime time.Time
	// Progress receives a progress bar (a terminal) or a line every few
	// seconds (anything else); nil shows nothing.
	Progress io.Writer
	Logger   *slog.Logger
	// Workers reading files at once (default GOMAXPROCS).
	Workers int
	// MaxErrors bounds the errors kept in the Report (default 100).
	MaxErrors int
}

// Report counts what an import did.
type Report struct {
	Files, Skipped                                   int64
	Records, Imported, Duplicates, Rejected, Expired int64
	// Bytes read from the files (compressed size for .gz).
	Bytes   int64
	Elapsed time.Duration
	// Errors are the first MaxErrors problems; ErrorsOmitted counts the rest.
	Errors        []RecordError
	ErrorsOmitted int64
}

// RecordError is a problem with one record (Record ≥ 1) or a whole file
// (Record 0).
type RecordError struct {
	File   string
	Record int
	Err    error
}

func (e RecordError) Error() string {
	if e.Record == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: record %d: %v", e.File, e.Record, e.Err)
}

// batch is records of one file on their way to the sink.
type batch struct {
	file string
	recs []audit.Record
	nums []int // record numbers in the file
}

type run struct {
	opts     Options
	rep      Report
	records  atomic.Int64
	bytes    atomic.Int64
	imported atomic.Int64
	files    atomic.Int64
	mu       sync.Mutex // guards rep.Errors, rep.ErrorsOmitted, rep.Rejected, rep.Expired
}

// Run imports every file under paths into opts.Sink. Problems with single
// files or records are reported and do not stop the rest; a Sink error
// stops the import and is returned.
func Run(ctx context.Context, paths []string, opts Options) (Report, error) {
	if opts.Sink == nil {
		return Report{}, errors.New("importer: no sink")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.MaxErrors <= 0 {
		opts.MaxErrors = 100
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	start := time.Now()
	r := &run{opts: opts}
	files, err := r.collect(paths)
	if err != nil {
		return r.rep, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	batches := make(chan batch, opts.Workers)
	work := make(chan string)
	var readers sync.WaitGroup
	for range opts.Workers {
		readers.Go(func() {
			for f := range work {
				r.readFile(ctx, f, batches)
				r.files.Add(1)
			}
		})
	}
	go func() {
		defer close(work)
		for _, f := range files {
			select {
			case work <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { readers.Wait(); close(batches) }()

	stopProgress := r.progress(len(files), start)
	var sinkErr error
	for b := range batches {
		if sinkErr != nil {
			continue // drain
		}
		if err := r.send(ctx, b); err != nil {
			sinkErr = err
			cancel()
		}
	}
	stopProgress()
	r.rep.Files = int64(len(files))
	r.rep.Records = r.records.Load()
	r.rep.Imported = r.imported.Load()
	r.rep.Bytes = r.bytes.Load()
	r.rep.Elapsed = time.Since(start)
	if sinkErr != nil {
		return r.rep, fmt.Errorf("importer: %w", sinkErr)
	}
	return r.rep, ctx.Err()
}

// collect lists the files to read, sorted, skipping digest files.
func (r *run) collect(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("importer: %w", err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				r.fail(path, 0, err)
				return nil
			}
			if d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			name := d.Name()
			switch {
			case strings.Contains(path, "CloudTrail-Digest"), strings.HasPrefix(name, "."):
				r.rep.Skipped++
			case strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".json.gz"), strings.HasSuffix(name, ".gz"),
				strings.HasSuffix(name, ".jsonl"), strings.HasSuffix(name, ".ndjson"):
				files = append(files, path)
			default:
				r.rep.Skipped++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	return files, nil
}

func (r *run) fail(file string, rec int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec > 0 {
		r.rep.Rejected++
	}
	if len(r.rep.Errors) < r.opts.MaxErrors {
		r.rep.Errors = append(r.rep.Errors, RecordError{File: file, Record: rec, Err: err})
	} else {
		r.rep.ErrorsOmitted++
	}
}

// send appends one batch.
func (r *run) send(ctx context.Context, b batch) error {
	var (
		res   audit.AppendResult
		fails []Failure
		err   error
	)
	if rs, ok := r.opts.Sink.(ReportingSink); ok {
		res, fails, err = rs.AppendReport(ctx, b.recs)
	} else {
		res, err = r.opts.Sink.Append(ctx, b.recs)
	}
	if err != nil {
		return err
	}
	r.imported.Add(int64(res.Inserted))
	r.mu.Lock()
	r.rep.Duplicates += int64(res.Duplicates)
	r.mu.Unlock()
	for _, f := range fails {
		num := 0
		if f.Index >= 0 && f.Index < len(b.nums) {
			num = b.nums[f.Index]
		}
		r.fail(b.file, num, errors.New(f.Message))
	}
	return nil
}

var containerRE = regexp.MustCompile(`^\s*\{\s*"(Records|Events)"\s*:\s*\[`)

// readFile parses one file and sends its records in batches.
func (r *run) readFile(ctx context.Context, path string, out chan<- batch) {
	f, err := os.Open(path)
	if err != nil {
		r.fail(path, 0, err)
		return
	}
	defer f.Close()
	counted := &countingReader{r: f, n: &r.bytes}
	br := bufio.NewReaderSize(counted, 256<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			r.fail(path, 0, fmt.Errorf("not a valid gzip file: %w", err))
			return
		}
		defer zr.Close()
		src = bufio.NewReaderSize(zr, 256<<10)
	}
	in := src.(*bufio.Reader)
	head, _ := in.Peek(4096)
	b := batch{file: path}
	num := 0
	emit := func(raw []byte) bool {
		num++
		r.records.Add(1)
		rec, err := audit.Extract(raw)
		if err != nil {
			r.fail(path, num, err)
			return true
		}
		if !r.opts.MinTime.IsZero() && rec.Time.Before(r.opts.MinTime) {
			r.mu.Lock()
			r.rep.Expired++
			r.mu.Unlock()
			return true
		}
		b.recs = append(b.recs, rec)
		b.nums = append(b.nums, num)
		if len(b.recs) >= r.opts.BatchSize {
			select {
			case out <- b:
			case <-ctx.Done():
				return false
			}
			b = batch{file: path}
		}
		return true
	}
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	switch {
	case len(trimmed) == 0:
		r.fail(path, 0, errors.New("the file is empty"))
	case containerRE.Match(head):
		err = readContainer(in, emit)
	case trimmed[0] == '[':
		err = readArray(json.NewDecoder(in), emit, false)
	case trimmed[0] == '{':
		err = readLines(in, emit)
	default:
		err = errors.New("not CloudTrail JSON: want {\"Records\":[...]}, one record per line, or lookup-events output")
	}
	if err != nil {
		if errors.Is(err, errStop) {
			return
		}
		r.fail(path, recordOf(err, num), err)
	}
	if len(b.recs) > 0 {
		select {
		case out <- b:
		case <-ctx.Done():
		}
	}
}

var errStop = errors.New("stopped")

// brokenAt marks a syntax error that ends a file at the record after num.
type brokenAt struct {
	next int
	err  error
}

func (e *brokenAt) Error() string {
	return fmt.Sprintf("malformed JSON, the rest of the file is skipped: %v", e.err)
}

func recordOf(err error, num int) int {
	var b *brokenAt
	if errors.As(err, &b) {
		return num + 1
	}
	return 0
}

// readContainer reads {"Records":[...]} or {"Events":[{"CloudTrailEvent":"..."}]}.
func readContainer(in io.Reader, emit func([]byte) bool) error {
	dec := json.NewDecoder(in)
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return &brokenAt{err: err}
		}
		key, _ := kt.(string)
		if key != "Records" && key != "Events" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return &brokenAt{err: err}
			}
			continue
		}
		if err := readArray(dec, emit, key == "Events"); err != nil {
			return err
		}
	}
	return nil
}

// readArray reads a JSON array of records (or of lookup-events Events).
func readArray(dec *json.Decoder, emit func([]byte) bool, events bool) error {
	t, err := dec.Token()
	if err != nil {
		return &brokenAt{err: err}
	}
	if d, ok := t.(json.Delim); !ok || d != '[' {
		return errors.New("expected a JSON array of records")
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return &brokenAt{err: err}
		}
		rec := []byte(raw)
		if events {
			var e struct{ CloudTrailEvent *string }
			if err := json.Unmarshal(raw, &e); err != nil || e.CloudTrailEvent == nil {
				rec = []byte("lookup-events entry without CloudTrailEvent")
			} else {
				rec = []byte(*e.CloudTrailEvent)
			}
		}
		if !emit(rec) {
			return errStop
		}
	}
	if _, err := dec.Token(); err != nil { // ]
		return &brokenAt{err: err}
	}
	return nil
}

// readLines reads one record per line; blank lines are skipped.
func readLines(in *bufio.Reader, emit func([]byte) bool) error {
	for {
		line, tooLong, err := readLine(in, audit.MaxRecordSize)
		if len(bytes.TrimSpace(line)) > 0 || tooLong {
			if tooLong {
				line = []byte("{") // reported as a record that is not valid JSON
			}
			if !emit(bytes.TrimRight(line, "\r\n")) {
				return errStop
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readLine returns the next line without its newline. A line longer than
// limit is consumed and reported tooLong.
func readLine(in *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := in.ReadSlice('\n')
		if len(line)+len(chunk) > limit {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			line = nil
		}
		return bytes.TrimSuffix(line, []byte("\n")), tooLong, err
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// progress shows progress until the returned func is called.
func (r *run) progress(total int, start time.Time) func() {
	w := r.opts.Progress
	if w == nil {
		return func() {}
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 5 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	line := func() string {
		el := time.Since(start).Seconds()
		n := r.records.Load()
		return fmt.Sprintf("files %d/%d  records %d  imported %d  %.0f records/s  %.1f MB",
			r.files.Load(), total, n, r.imported.Load(), float64(n)/max(el, 1e-9), float64(r.bytes.Load())/1e6)
	}
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprintf(w, "\r%s\n", bar(int(r.files.Load()), total)+" "+line())
				}
				return
			case <-t.C:
				if tty {
					fmt.Fprintf(w, "\r%s\x1b[K", bar(int(r.files.Load()), total)+" "+line())
				} else {
					fmt.Fprintln(w, "import:", line())
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

func bar(done, total int) string {
	const width = 24
	n := width
	if total > 0 {
		n = done * width / total
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}
