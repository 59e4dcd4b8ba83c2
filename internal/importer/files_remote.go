package importer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"

	"github.com/cairn-audit/cairn/internal/audit"
	"golang.org/x/sync/semaphore"
)

// FileSink is a Sink that takes whole log files and reads them itself: a
// running cairn server (client.Importer; docs/store.md, "Imports through
// a server, session 15"). Run offers it each gzip file (by its magic
// bytes) of at most MaxFileBytes, as read from disk, instead of parsing
// the file here and appending its records; the records of a file it
// declines, and of every other file, go through Append/AppendReport as
// before.
type FileSink interface {
	Sink
	// ImportFile imports the log file name whose bytes are content (gzip)
	// and returns the file's Report: its counts, groups and first errors
	// (record numbers in the file), Files or Skipped 1 (a digest), as Run
	// reports a file it reads. ok false: the sink did not take the file (a
	// server from before files, or one that refused its content: not
	// gzip, truncated, decompressing past its bound), nothing of it is
	// stored, and Run reads it itself. An error stops the import, as an
	// Append error does.
	ImportFile(ctx context.Context, name string, content []byte) (rep Report, ok bool, err error)
}

// MaxFileBytes is the largest file Run offers a FileSink: the body limit
// of a server's ImportRecords call (8 MiB). Larger files are read here.
const MaxFileBytes = 8 << 20

// MaxFileDecompressed is the most a file offered to a FileSink may
// decompress to, by its gzip trailer (a server refuses more: a gzip
// bomb). Larger files are read here.
const MaxFileDecompressed = 64 << 20

// offerFile reads the file f (path) and offers it to fs when it is gzip
// of at most MaxFileBytes and MaxFileDecompressed. done: fs took it and
// its report is counted, or fs failed (the error is handed to the sink
// goroutine on out, which stops the import). Otherwise src reads the file
// from its start.
func (r *run) offerFile(ctx context.Context, fs FileSink, path string, f io.Reader, out chan<- chunk) (src io.Reader, done bool) {
	buf, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	src = io.MultiReader(bytes.NewReader(buf), f)
	// The gzip trailer's ISIZE is the size decompressed mod 2^32 (of the
	// last member): a hint only; the server bounds what it decompresses.
	if err != nil || len(buf) > MaxFileBytes || len(buf) < 18 || buf[0] != 0x1f || buf[1] != 0x8b ||
		binary.LittleEndian.Uint32(buf[len(buf)-4:]) > MaxFileDecompressed {
		return src, false
	}
	// What the server holds for it: the records decompressed (the
	// trailer's hint) besides the body.
	weight := max(int64(len(buf)), int64(binary.LittleEndian.Uint32(buf[len(buf)-4:])))
	if err := r.window.acquire(ctx, weight); err != nil {
		return nil, true // ctx ended: the import stops, nothing of it counted
	}
	rep, ok, err := fs.ImportFile(ctx, path, buf)
	r.window.release(weight)
	if err != nil {
		r.fileSinkFailed.Store(true)
		select {
		case out <- chunk{file: path, err: err}:
		case <-ctx.Done():
		}
		return nil, true
	}
	if !ok {
		return src, false
	}
	r.bytes.Add(int64(len(buf)))
	r.merge(path, rep)
	return nil, true
}

// merge counts the Report of one file that a FileSink read.
func (r *run) merge(path string, rep Report) {
	r.files.Add(rep.Files)
	r.skipped.Add(rep.Skipped)
	r.fileErrors.Add(rep.FileErrors)
	r.records.Add(rep.Records)
	r.imported.Add(rep.Imported)
	r.duplicates.Add(rep.Duplicates)
	r.rejected.Add(rep.Rejected)
	r.expired.Add(rep.Expired)
	for _, e := range rep.Errors {
		e.File = path
		r.keep(e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, g := range rep.Groups {
		m := r.group(g.Account, g.Region)
		m.Records += g.Records
		m.Imported += g.Imported
		m.Duplicates += g.Duplicates
		m.Refused += g.Refused
		for code, n := range g.Reasons {
			m.Reasons[code] += n
		}
	}
	if n := rep.ErrorsOmitted; n > 0 {
		r.omitted += n
		r.omittedBy[path] += n
	}
}

// File is one log file read whole by ReadFile, whose records the caller
// stores itself (a server importing a file a client sent, ImportRecords
// with its bytes): the records as Run would give them to a Sink, and the
// file's Report, which counts what the reading refused; Refuse and Stored
// add what storing them decided.
type File struct {
	r    *run
	name string
	// Records are the file's valid records in its order, each with the
	// bytes it had in the file.
	Records []audit.Record
	// Nums are their 1-based positions in the file.
	Nums []int
}

// ReadFile reads one log file (name for its errors) from content, gunzipped
// when it starts with gzip's magic bytes, exactly as Run reads each file:
// the same parser, record checks (audit.Extract, audit.CheckImported),
// MinTime, and errors (MaxErrorsPerFile and MaxErrors bound those kept). A
// file that cannot be read to its end keeps the records before the
// problem, which is its Report's file error. opts.Sink is not used.
func ReadFile(ctx context.Context, name string, content io.Reader, opts Options) *File {
	opts.Sink = discard{}
	r, _ := newRun(opts) // no error with a Sink
	r.open = func(context.Context, string) (io.ReadCloser, error) { return io.NopCloser(content), nil }
	f := &File{r: r, name: name}
	out := make(chan chunk, 4)
	go func() {
		defer close(out)
		var fr fileReader
		r.readFile(ctx, &fr, name, out)
	}()
	for c := range out {
		if f.Records == nil { // the first chunk (a file's only one, mostly): taken as it is
			f.Records, f.Nums = c.recs, c.nums
			continue
		}
		f.Records = append(f.Records, c.recs...)
		f.Nums = append(f.Nums, c.nums...)
	}
	return f
}

// Refuse counts Records[i] as refused for code (its account and region's
// group, Rejected, and an error of the file's at its record number).
func (f *File) Refuse(i int, code string, err error) {
	rec := &f.Records[i]
	f.r.fail(f.name, f.Nums[i], rec.Account, rec.Region, code, err)
}

// Stored counts records, all of one account and region, as res says
// (Inserted new, Duplicates already there).
func (f *File) Stored(records []audit.Record, res audit.AppendResult) {
	if len(records) == 0 {
		return
	}
	f.r.imported.Add(int64(res.Inserted))
	f.r.duplicates.Add(int64(res.Duplicates))
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	g := f.r.group(records[0].Account, records[0].Region)
	g.Records += int64(res.Inserted + res.Duplicates)
	g.Imported += int64(res.Inserted)
	g.Duplicates += int64(res.Duplicates)
}

// Report is the file's Report: what reading it refused, and what Refuse
// and Stored counted.
func (f *File) Report() Report {
	return f.r.report()
}

// discard is the Sink ReadFile gives newRun; nothing is appended to it.
type discard struct{}

func (discard) Append(context.Context, []audit.Record) (audit.AppendResult, error) {
	return audit.AppendResult{}, errors.New("importer: ReadFile appends nothing")
}

// window bounds the bytes of the files offered to a FileSink at once
// (Options.FileBytesInFlight): a file waits while the files in flight
// hold max bytes or more with it; a file larger than max takes the whole
// window, so it goes alone once none is in flight. The zero window (max
// 0) bounds nothing.
type window struct {
	max int64
	sem *semaphore.Weighted // nil when max <= 0
}

func newWindow(max int64) window {
	if max <= 0 {
		return window{}
	}
	return window{max: max, sem: semaphore.NewWeighted(max)}
}

// acquire waits until n bytes fit in the window, or ctx ends.
func (w window) acquire(ctx context.Context, n int64) error {
	if w.sem == nil {
		return nil
	}
	return w.sem.Acquire(ctx, min(n, w.max))
}

// release gives back n bytes acquired.
func (w window) release(n int64) {
	if w.sem != nil {
		w.sem.Release(min(n, w.max))
	}
}
