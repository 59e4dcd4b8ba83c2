// Package importer reads CloudTrail log files into cairn: trail log files
// (.json or .json.gz holding {"Records":[...]}), one record per line, JSON
// arrays of records, and the output of `aws cloudtrail lookup-events`, in
// folders of any depth (the S3 layout included). Gzip is recognised by its
// magic bytes. Digest files are skipped.
//
// Records are never altered: each reaches the Sink with the exact bytes it
// had in the file (for lookup-events output, the decoded CloudTrailEvent
// string). Files are read and parsed concurrently; one goroutine appends
// batches to the Sink, which decides what is new (stores deduplicate on
// account and eventID, so importing twice adds nothing).
package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Sink receives batches of records: a Store, a Lake event data store, or a
// running server (client.Importer, which the caller wires in).
type Sink interface {
	// Append stores records and counts what was new. An error means the
	// batch may not be stored; it stops the import.
	Append(ctx context.Context, records []audit.Record) (audit.AppendResult, error)
}

// ReportingSink is a Sink that can refuse single records (a server refuses
// records of other accounts). Run uses AppendReport when a Sink has it.
type ReportingSink interface {
	// AppendReport is Append that also returns the records refused; they
	// are counted neither as Inserted nor as Duplicates.
	AppendReport(ctx context.Context, records []audit.Record) (audit.AppendResult, []Failure, error)
}

// EachSink is a Sink that tells per record whether it was new (the DuckDB
// store). Run gives it whole batches, whatever their accounts and regions,
// and counts each record in its group from the answer: one transaction a
// batch instead of one per account and region in it.
type EachSink interface {
	// AppendEach is Append returning inserted[i] for records[i] (false: a
	// duplicate).
	AppendEach(ctx context.Context, records []audit.Record) (inserted []bool, err error)
}

// EachReportingSink is a ReportingSink that takes whole batches, whatever
// their accounts and regions, and answers for each record (a Lake event
// data store: one transaction a batch instead of one per account and region
// in it, so that a load's transactions fill DuckDB's row groups). Run
// counts each record in its group from the answer.
type EachReportingSink interface {
	ReportingSink
	// AppendEachReport is AppendReport answering inserted[i] for
	// records[i] (false: a duplicate, or refused) and the records refused
	// by their index in records. An error means nothing of the batch was
	// stored.
	AppendEachReport(ctx context.Context, records []audit.Record) (inserted []bool, refused []Failure, err error)
}

// RefusingSink is an EachReportingSink that tells, record by record, which
// records it refuses (whatever the records before them): Run then leaves
// them out of the batches, reporting each as it reports the Sink's
// refusals, so that a batch is BatchSize records the Sink takes (a Lake
// load's transaction then fills a DuckDB row group however many records
// of other accounts the files hold).
type RefusingSink interface {
	EachReportingSink
	// Refuses reports whether the Sink refuses rec, and why (Index is
	// not used). Safe for concurrent use.
	Refuses(rec audit.Record) (Failure, bool)
}

// PreparingSink is an EachSink that splits AppendEach in two: PrepareEach
// does the work that needs no lock (compression) and returns the rest,
// which appends the batch as AppendEach would. With Appenders > 1, Run
// prepares the next batches while one commits, and commits them in their
// order when InOrder is set.
type PreparingSink interface {
	EachSink
	PrepareEach(records []audit.Record) func(ctx context.Context) (inserted []bool, err error)
}

// StagingSink is a PreparingSink whose prepared batches are appended in
// two more steps: StageEach prepares (as PrepareEach), the function it
// returns reserves the batch's place after those reserved before, and the
// one that returns appends and commits it after them, with AppendEach's
// answer. With Appenders > 1 and InOrder, Run reserves the batches one at
// a time in their order and commits them concurrently, so that the Sink
// appends a batch while the one before commits. Both functions are called
// once, the second whenever the first succeeded.
type StagingSink interface {
	PreparingSink
	StageEach(records []audit.Record) func(ctx context.Context) (commit func(context.Context) (inserted []bool, err error), err error)
}

// GroupingSink is a StagingSink that can hold several batches in one
// transaction (DuckDB writes a transaction of a row group or more straight
// to its file): StageGrouped's last function appends the batch and
// returns before it is committed, with its answer and committed, which
// waits until the batch's transaction committed and returns its error.
// With Appenders > 1 and InOrder, Run uses it instead of StageEach: it
// keeps of a batch only its counts until committed returns nil, and
// counts it then (a failed transaction's batches are not counted), and
// calls EndGroup after the last batch (even when interrupted), so that
// the last transaction commits.
type GroupingSink interface {
	StagingSink
	StageGrouped(records []audit.Record) func(ctx context.Context) (commit func(context.Context) (inserted []bool, committed func() error, err error), err error)
	EndGroup()
}

// Failure is a record a ReportingSink refused.
type Failure struct {
	// Index is the record's position in the batch given to the sink.
	Index int
	// Code names the reason (InvalidRecord, AccountMismatch, ...).
	Code string
	// Message explains it.
	Message string
}

// Options configures Run. Only Sink is required.
type Options struct {
	// Sink receives the records. Required.
	Sink Sink
	// BatchSize is the most records per Append (default 5000). Batches
	// mix files, and every batch but the last holds exactly BatchSize
	// records (a file's records may end one batch and begin the next),
	// unless FlushInterval cuts it short.
	BatchSize int
	// FlushInterval bounds how long read records wait for a full batch
	// (default 1s).
	FlushInterval time.Duration
	// MinTime: records whose eventTime is before it are counted Expired
	// and not sent. Zero keeps every record.
	MinTime time.Time
	// Progress receives a redrawn progress bar when it is a terminal, else
	// a line every few seconds; nil shows nothing.
	Progress io.Writer
	// Logger logs what the Report cannot say (a sink that miscounted);
	// never record contents, never one line per record. Nil logs nothing.
	Logger *slog.Logger
	// Workers is the number of files read at once (default GOMAXPROCS).
	Workers int
	// FileBytesInFlight, when positive, bounds the files offered to a
	// FileSink at once (up to Workers of them) by their bytes,
	// decompressed by their gzip trailers: a file waits while those in
	// flight and it would hold more, unless none is in flight. A server
	// that answers a file once its records are stored takes more files
	// at once than one answering from its journal, but each holds its
	// records in memory meanwhile.
	FileBytesInFlight int64
	// Appenders is the number of batches given to the Sink at once
	// (default 1). A Sink that serializes its writes but compresses or
	// checks a batch before taking its lock (the DuckDB store) gets
	// through more with 2: one batch is prepared while another commits.
	Appenders int
	// InOrder gives the Sink the records in the order of the files as
	// they are found (a folder's by name, which is time order in the S3
	// layout), each file's in its order, and appends the batches in that
	// order whatever Appenders says: files are still read Workers at a
	// time, and a file read ahead waits (a few chunks in memory) for the
	// ones before it. The DuckDB store writes an offline import in its
	// final order when it comes in order (duckdb.Store.BeginImport).
	InOrder bool
	// MaxErrors bounds the errors kept in Report.Errors (default 100).
	MaxErrors int
	// MaxErrorsPerFile, when positive, bounds the errors kept per file;
	// the rest of a file's are counted in Report.OmittedByFile. Zero
	// bounds them by MaxErrors only.
	MaxErrorsPerFile int
	// FS, when set, is where Run reads: paths are names in it (io/fs
	// rules: slash-separated, unrooted). With an os.Root's FS, no symlink
	// (of a file or folder, at any depth) leads out of the root, checked at
	// each open, so a link swapped in after a check does not either.
	FS fs.FS
	// Accounts, when set, is asked about the account folder of each object
	// key in the AWSLogs/[o-ORG/]ACCOUNT/ layout (RunObjects): a key in the
	// folder of an account it refuses is skipped unread and unnamed (an
	// import never reads, nor reports the keys of, another account's
	// delivered logs). Records are still checked one by one by the Sink.
	Accounts func(account string) bool
}

// Report counts what an import did. When the Sink did not fail,
// Records = Imported + Duplicates + Rejected + Expired.
type Report struct {
	// Files read as log files; Skipped files were not read (digests,
	// other extensions, hidden files).
	Files, Skipped int64
	// FileErrors counts files that could not be read to their end
	// (missing, unreadable, malformed); their errors are in Errors.
	FileErrors int64
	// Records read; of them Imported were new to the Sink, Duplicates
	// were already there, Rejected are invalid or were refused, Expired
	// are older than Options.MinTime.
	Records, Imported, Duplicates, Rejected, Expired int64
	// Bytes read from the files (compressed bytes for gzip files).
	Bytes   int64
	Elapsed time.Duration
	// Errors are the first problems, at most MaxErrorsPerFile of each
	// file and MaxErrors in all, in no particular order; ErrorsOmitted
	// counts the rest, and OmittedByFile the rest of each file.
	Errors        []RecordError
	ErrorsOmitted int64
	OmittedByFile map[string]int64
	// Groups count the records per account and region, sorted by
	// account then region. Records that could not be read as records
	// are in the group of account and region ""; a record with an
	// invalid region in the group of the region it claims (clipped to 64
	// bytes). Past 1,000 groups, the records of other accounts and
	// regions are counted in the group of account and region "*".
	Groups []Group
}

// Group counts the records of one account and region.
// Records = Imported + Duplicates + Refused.
type Group struct {
	Account, Region               string
	Records, Imported, Duplicates int64
	// Refused counts the records not stored: invalid, refused by the
	// sink, or expired (Options.MinTime); Reasons counts them by code.
	Refused int64
	Reasons map[string]int64
}

// Reason codes of records the importer itself refuses (a ReportingSink
// names its own: AccountMismatch, ...).
const (
	// ReasonInvalidRecord: not a CloudTrail record, or one whose
	// account, region or time is not valid.
	ReasonInvalidRecord = "InvalidRecord"
	// ReasonExpired: older than Options.MinTime (the retention).
	ReasonExpired = "RecordExpired"
)

// RecordError is a problem with a file. Record is the 1-based position of
// the record concerned, 0 when it is about the file as a whole. A malformed
// file names the record where reading stopped; the records before it were
// imported.
type RecordError struct {
	File   string
	Record int
	// Code is the reason code of a refused record ("" for a file error).
	Code string
	Err  error
}

// Error names the file and, when there is one, the record.
func (e RecordError) Error() string {
	if e.Record == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: record %d: %v", e.File, e.Record, e.Err)
}

// Unwrap returns the cause.
func (e RecordError) Unwrap() error { return e.Err }

// chunk is consecutive records of one file on their way to the sink.
type chunk struct {
	file string
	recs []audit.Record
	nums []int // positions in the file
	// err, from a FileSink, stops the import as a Sink error does.
	err error
}

// maxChunk is the most records a reader hands over at once.
const maxChunk = 1000

type run struct {
	opts  Options
	chunk int
	open  func(ctx context.Context, name string) (io.ReadCloser, error)

	found atomic.Int64 // files to read, known so far

	files, skipped, fileErrors  atomic.Int64
	records, rejected, expired  atomic.Int64
	imported, duplicates, bytes atomic.Int64
	done                        atomic.Int64 // files finished, for progress
	// window bounds the files offered to a FileSink at once
	// (Options.FileBytesInFlight).
	window window
	// fileSinkFailed: a FileSink's error is on its way to the sink
	// goroutine, which stops the import; no reader offers another file
	// meanwhile (the stop reaches the readers only once it is taken).
	fileSinkFailed atomic.Bool
	// refusing is opts.Sink when it tells its refusals record by record
	// (RefusingSink), else nil: asked once, not for every record read.
	refusing RefusingSink

	mu      sync.Mutex // guards errs, omitted, perFile, omittedBy and groups
	errs    []RecordError
	omitted int64
	perFile map[string]int
	// omittedBy counts the errors not kept, per file.
	omittedBy map[string]int64
	groups    map[groupKey]*Group
}

type groupKey struct{ account, region string }

// maxGroups bounds the groups of a Report: the accounts and regions are
// the records' (anyone's text, one pair per record at worst), and the
// Report is held in memory, by the server too (StartImport). The records
// of the others are counted in the group of otherGroups ("*" is no
// account and no region).
const (
	maxGroups   = 1000
	otherGroups = "*"
)

// group returns the counts of account and region (of otherGroups past
// maxGroups); r.mu must be held.
func (r *run) group(account, region string) *Group {
	k := groupKey{account, region}
	if r.groups[k] == nil && len(r.groups) >= maxGroups {
		k = groupKey{otherGroups, otherGroups}
	}
	g := r.groups[k]
	if g == nil {
		g = &Group{Account: k.account, Region: k.region, Reasons: map[string]int64{}}
		r.groups[k] = g
	}
	return g
}

// refuse counts a record of account and region refused for code.
func (r *run) refuse(account, region, code string) {
	r.refuseN(account, region, code, 1)
}

// Run imports every file named in paths, and every file in the folders
// named there (recursively), into opts.Sink. Problems with files or records
// are reported in the Report and do not stop the rest. A Sink error stops
// the import and is returned with the Report so far; so is ctx's error.
func Run(ctx context.Context, paths []string, opts Options) (Report, error) {
	start := time.Now()
	r, err := newRun(opts)
	if err != nil {
		return Report{}, err
	}
	files := r.collect(paths)
	r.found.Store(int64(len(files)))
	open := openFile
	if fsys := opts.FS; fsys != nil {
		open = func(_ context.Context, name string) (io.ReadCloser, error) { return fsys.Open(name) }
	}
	return r.run(ctx, start, open, func(ctx context.Context, work chan<- string) {
		for _, f := range files {
			select {
			case work <- f:
			case <-ctx.Done():
				return
			}
		}
	})
}

func openFile(_ context.Context, path string) (io.ReadCloser, error) { return os.Open(path) }

func newRun(opts Options) (*run, error) {
	if opts.Sink == nil {
		return nil, errors.New("importer: no sink")
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
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
	refusing, _ := opts.Sink.(RefusingSink)
	return &run{opts: opts, chunk: min(opts.BatchSize, maxChunk), perFile: map[string]int{}, window: newWindow(opts.FileBytesInFlight),
		omittedBy: map[string]int64{}, groups: map[groupKey]*Group{}, refusing: refusing}, nil
}

// run reads the files that feed sends on work (feed returns when it has
// sent them all or ctx is done), opening each with open, and appends their
// records to the Sink.
func (r *run) run(ctx context.Context, start time.Time, open func(context.Context, string) (io.ReadCloser, error),
	feed func(ctx context.Context, work chan<- string)) (Report, error) {
	r.open = open
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan string)
	// Room for a whole batch besides what the readers hold: the readers
	// parse the next batch while the Sink stores this one (a channel of
	// one chunk per reader left them idle for most of each Append).
	chunks := make(chan chunk, r.opts.Workers+r.opts.BatchSize/r.chunk)
	var readers sync.WaitGroup
	if r.opts.InOrder {
		r.readInOrder(ctx, &readers, work, chunks)
	} else {
		for range r.opts.Workers {
			readers.Go(func() {
				var fr fileReader
				for f := range work {
					r.readFile(ctx, &fr, f, chunks)
				}
			})
		}
	}
	readers.Go(func() {
		defer close(work)
		feed(ctx, work)
	})
	go func() { readers.Wait(); close(chunks) }()

	stopProgress := r.progress(start)
	sinkErr := r.sink(ctx, chunks)
	if sinkErr != nil {
		cancel()
	}
	for range chunks { // drain after an error, until every reader is done
	}
	stopProgress()

	rep := r.report()
	rep.Elapsed = time.Since(start)
	if sinkErr != nil {
		return rep, fmt.Errorf("importer: %w", sinkErr)
	}
	return rep, ctx.Err()
}

func (r *run) report() Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	groups := make([]Group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, *g)
	}
	slices.SortFunc(groups, func(a, b Group) int {
		return cmp.Or(cmp.Compare(a.Account, b.Account), cmp.Compare(a.Region, b.Region))
	})
	return Report{
		Files: r.files.Load(), Skipped: r.skipped.Load(), FileErrors: r.fileErrors.Load(),
		Records: r.records.Load(), Imported: r.imported.Load(), Duplicates: r.duplicates.Load(),
		Rejected: r.rejected.Load(), Expired: r.expired.Load(), Bytes: r.bytes.Load(),
		Errors: r.errs, ErrorsOmitted: r.omitted, OmittedByFile: maps.Clone(r.omittedBy), Groups: groups,
	}
}

// fail keeps the error of a record of account and region (both "" when
// unknown), which counts as Rejected for code.
func (r *run) fail(file string, rec int, account, region, code string, err error) {
	r.rejected.Add(1)
	r.refuse(account, region, code)
	r.keep(RecordError{File: file, Record: rec, Code: code, Err: err})
}

// failFile keeps the error that stopped the reading of a file. rec is the
// record being read then, or 0.
func (r *run) failFile(file string, rec int, err error) {
	r.fileErrors.Add(1)
	r.keep(RecordError{File: file, Record: rec, Err: err})
}

// keep adds e to the Report's errors, or counts it beyond the caps (the
// first few of each file are kept: one file of refused records does not
// hide the others').
func (r *run) keep(e RecordError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.perFile[e.File]
	r.perFile[e.File] = n + 1
	if (r.opts.MaxErrorsPerFile <= 0 || n < r.opts.MaxErrorsPerFile) && len(r.errs) < r.opts.MaxErrors {
		r.errs = append(r.errs, e)
		return
	}
	r.omitted++
	r.omittedBy[e.File]++
}

// readInOrder starts Workers readers of the files sent on work, and a
// goroutine that hands their chunks to chunks file by file, in the order
// the files came: each file gets a channel of its own, which the readers
// fill and the goroutine drains in turn (Options.InOrder). The readers
// and that goroutine count in readers.
func (r *run) readInOrder(ctx context.Context, readers *sync.WaitGroup, work <-chan string, chunks chan<- chunk) {
	type job struct {
		path string
		out  chan chunk
	}
	// A file read ahead holds up to a batch of chunks; the readers take
	// the files in order, so the file drained is always being read.
	perFile := max(2, r.opts.BatchSize/r.chunk)
	jobs := make(chan job)
	order := make(chan chan chunk, r.opts.Workers)
	readers.Go(func() {
		defer close(jobs)
		defer close(order)
		for f := range work {
			j := job{f, make(chan chunk, perFile)}
			select {
			case order <- j.out:
			case <-ctx.Done():
				continue // drain work until the feed stops
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				close(j.out)
			}
		}
	})
	for range r.opts.Workers {
		readers.Go(func() {
			var fr fileReader
			for j := range jobs {
				r.readFile(ctx, &fr, j.path, j.out)
				close(j.out)
			}
		})
	}
	readers.Go(func() {
		for out := range order {
			for c := range out {
				select {
				case chunks <- c:
				case <-ctx.Done():
				}
			}
		}
	})
}

// sink appends chunks to the Sink in batches of at most BatchSize records,
// flushing a partial batch after FlushInterval. It returns the Sink's error.
func (r *run) sink(ctx context.Context, chunks <-chan chunk) error {
	var (
		b     []audit.Record
		from  []origin
		timer = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	pool := r.appenders(ctx)
	defer pool.wait()
	flush := func() error {
		if len(b) == 0 {
			return nil
		}
		timer.Stop()
		var err error
		if pool != nil {
			err = pool.give(ctx, b, from)
			from = make([]origin, 0, r.opts.BatchSize)
		} else {
			err = r.append(ctx, b, from)
			from = from[:0]
		}
		b = make([]audit.Record, 0, r.opts.BatchSize)
		return err
	}
	for {
		select {
		case c, ok := <-chunks:
			if !ok {
				if err := flush(); err != nil {
					return err
				}
				return pool.wait()
			}
			if c.err != nil {
				return c.err
			}
			// A batch is exactly BatchSize records until the last: a
			// chunk that does not fit is split between two batches (a
			// Lake load's transaction is then exactly a DuckDB row group).
			for recs, nums := c.recs, c.nums; len(recs) > 0; {
				if len(b) == 0 {
					timer.Reset(r.opts.FlushInterval)
				}
				n := min(len(recs), r.opts.BatchSize-len(b))
				b = append(b, recs[:n]...)
				for _, k := range nums[:n] {
					from = append(from, origin{c.file, k})
				}
				recs, nums = recs[n:], nums[n:]
				if len(b) >= r.opts.BatchSize {
					if err := flush(); err != nil {
						return err
					}
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil // Run returns ctx.Err()
		}
	}
}

// appendPool gives batches to the Sink from Options.Appenders goroutines.
type appendPool struct {
	jobs   chan appendJob
	wg     sync.WaitGroup
	failed chan struct{} // closed at the first error
	once   sync.Once
	err    error
	closed bool
	// inOrder: batches are appended in the order given (Options.InOrder);
	// last is closed once the last batch given has been.
	inOrder bool
	last    chan struct{}
	// grouping: the Sink's batches share transactions (GroupingSink);
	// committing waits for their commits and counts them.
	grouping   GroupingSink
	committing sync.WaitGroup
}

type appendJob struct {
	b    []audit.Record
	from []origin
	// prev is closed when the batch before has been appended (nil: no
	// order to keep); done is closed when this one has.
	prev, done chan struct{}
}

// appenders starts the pool, nil when Options.Appenders is 1 or less (the
// sink goroutine appends itself).
func (r *run) appenders(ctx context.Context) *appendPool {
	if r.opts.Appenders <= 1 {
		return nil
	}
	p := &appendPool{jobs: make(chan appendJob), failed: make(chan struct{}), inOrder: r.opts.InOrder}
	ps, preparing := r.opts.Sink.(PreparingSink)
	if _, reports := r.opts.Sink.(ReportingSink); reports {
		preparing = false
	}
	if gs, ok := ps.(GroupingSink); ok && preparing && p.inOrder {
		p.grouping = gs
	}
	for range r.opts.Appenders {
		p.wg.Go(func() {
			for j := range p.jobs {
				p.run(ctx, r, j, ps, preparing)
			}
		})
	}
	return p
}

// run appends one job: prepared first (when the Sink can), then appended
// after the job before it when the pool keeps the order.
func (p *appendPool) run(ctx context.Context, r *run, j appendJob, ps PreparingSink, preparing bool) {
	// done is closed once the next job may go on: this one appended, or
	// (a StagingSink) its place reserved.
	signal := func() {
		if j.done != nil {
			close(j.done)
			j.done = nil
		}
	}
	defer signal()
	select {
	case <-p.failed:
		return // after an error, nothing more is appended
	default:
	}
	if p.grouping != nil {
		reserve := p.grouping.StageGrouped(j.b)
		if !p.after(j) {
			return
		}
		commit, err := reserve(ctx)
		signal()
		var (
			inserted  []bool
			committed func() error
		)
		if err == nil {
			inserted, committed, err = commit(ctx)
		}
		if err == nil && len(inserted) != len(j.b) {
			err = fmt.Errorf("import: sink answered for %d records of %d", len(inserted), len(j.b))
		}
		if err != nil {
			p.fail(err)
			return
		}
		// Counted once committed; the batch's records are not kept.
		t := r.tally(j.b, inserted, nil)
		p.committing.Go(func() {
			if err := committed(); err != nil {
				p.fail(err)
				return
			}
			r.add(t)
		})
		return
	}
	if ss, ok := ps.(StagingSink); ok && preparing && p.inOrder {
		reserve := ss.StageEach(j.b)
		if !p.after(j) {
			return
		}
		commit, err := reserve(ctx)
		signal()
		if err == nil {
			err = r.countEach(j.b, func() ([]bool, error) { return commit(ctx) })
		}
		if err != nil {
			p.fail(err)
		}
		return
	}
	var commit func(context.Context) ([]bool, error)
	if preparing {
		commit = ps.PrepareEach(j.b)
	}
	if !p.after(j) {
		return
	}
	var err error
	if preparing {
		err = r.countEach(j.b, func() ([]bool, error) { return commit(ctx) })
	} else {
		err = r.append(ctx, j.b, j.from)
	}
	if err != nil {
		p.fail(err)
	}
}

// after waits until the batch before j (j.prev, nil: none) is appended,
// and reports false when an append failed meanwhile.
func (p *appendPool) after(j appendJob) bool {
	if j.prev == nil {
		return true
	}
	select {
	case <-j.prev:
		return true
	case <-p.failed:
		return false
	}
}

// fail records err as the pool's error, unless one was recorded first.
func (p *appendPool) fail(err error) {
	p.once.Do(func() { p.err = err; close(p.failed) })
}

// give hands a batch to a free appender; it returns an earlier append's
// error instead.
func (p *appendPool) give(ctx context.Context, b []audit.Record, from []origin) error {
	j := appendJob{b: b, from: from}
	if p.inOrder {
		j.prev, j.done = p.last, make(chan struct{})
	}
	select {
	case p.jobs <- j:
		if p.inOrder {
			p.last = j.done
		}
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		return nil // Run returns ctx.Err()
	}
}

// wait waits for the batches given and returns the first error. Safe on
// a nil pool and more than once.
func (p *appendPool) wait() error {
	if p == nil {
		return nil
	}
	if !p.closed {
		p.closed = true
		close(p.jobs)
		p.wg.Wait()
		if p.grouping != nil {
			// The last transaction commits what was appended, also when
			// the import is interrupted: the report counts it.
			p.grouping.EndGroup()
		}
	}
	p.wg.Wait()
	p.committing.Wait()
	return p.err
}

// origin is where a record of a batch came from.
type origin struct {
	file string
	num  int
}

// append gives one batch to the Sink, one call per account and region
// (so that what was new is counted per account and region) unless it is an
// EachSink, and counts the outcome.
func (r *run) append(ctx context.Context, b []audit.Record, from []origin) error {
	if es, ok := r.opts.Sink.(EachReportingSink); ok {
		return r.appendEachReport(ctx, es, b, from)
	}
	if es, ok := r.opts.Sink.(EachSink); ok {
		if _, reports := r.opts.Sink.(ReportingSink); !reports {
			return r.appendEach(ctx, es, b)
		}
	}
	idx := make([]int, len(b))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(i, j int) int {
		return cmp.Or(cmp.Compare(b[i].Account, b[j].Account), cmp.Compare(b[i].Region, b[j].Region))
	})
	part := make([]audit.Record, 0, len(b))
	partFrom := make([]origin, 0, len(b))
	for lo := 0; lo < len(idx); {
		hi := lo + 1
		first := b[idx[lo]]
		for hi < len(idx) && b[idx[hi]].Account == first.Account && b[idx[hi]].Region == first.Region {
			hi++
		}
		part, partFrom = part[:0], partFrom[:0]
		for _, i := range idx[lo:hi] {
			part = append(part, b[i])
			partFrom = append(partFrom, from[i])
		}
		if err := r.appendGroup(ctx, part, partFrom); err != nil {
			return err
		}
		lo = hi
	}
	return nil
}

// appendEach gives a batch to an EachSink in one call and counts each
// record in its account and region.
func (r *run) appendEach(ctx context.Context, es EachSink, b []audit.Record) error {
	return r.countEach(b, func() ([]bool, error) { return es.AppendEach(ctx, b) })
}

// appendEachReport gives a batch to an EachReportingSink in one call and
// counts each record in its account and region: refused, inserted or a
// duplicate.
func (r *run) appendEachReport(ctx context.Context, es EachReportingSink, b []audit.Record, from []origin) error {
	inserted, fails, err := es.AppendEachReport(ctx, b)
	if err != nil {
		// Nothing of a failed batch is stored (one transaction).
		return err
	}
	if len(inserted) != len(b) {
		return fmt.Errorf("import: sink answered for %d records of %d", len(inserted), len(b))
	}
	refused := make([]bool, len(b))
	for _, f := range fails {
		if f.Index < 0 || f.Index >= len(b) {
			return fmt.Errorf("import: sink refused record %d of %d", f.Index, len(b))
		}
		if refused[f.Index] {
			continue
		}
		refused[f.Index] = true
		rec, o := b[f.Index], from[f.Index]
		code := cmp.Or(f.Code, ReasonInvalidRecord)
		r.fail(o.file, o.num, rec.Account, rec.Region, code, fmt.Errorf("refused: %s: %s", code, f.Message))
	}
	r.count(b, inserted, refused)
	return nil
}

// countEach appends a batch to an EachSink through appendB and counts
// each record in its account and region.
func (r *run) countEach(b []audit.Record, appendB func() ([]bool, error)) error {
	inserted, err := appendB()
	if err != nil {
		// Nothing of a failed AppendEach is stored (one transaction).
		return err
	}
	if len(inserted) != len(b) {
		return fmt.Errorf("import: sink answered for %d records of %d", len(inserted), len(b))
	}
	r.count(b, inserted, nil)
	return nil
}

// count counts each record of a batch in its account and region as
// inserted (inserted[i]) or a duplicate, except those refused (refused[i],
// when refused is not nil: counted when they were refused).
func (r *run) count(b []audit.Record, inserted, refused []bool) {
	r.add(r.tally(b, inserted, refused))
}

// tally is what count adds to the report for a batch.
type tally struct {
	per                  map[groupKey]*counts
	imported, duplicates int64
}

type counts struct{ imported, duplicates int64 }

// tally counts a batch's records as count does, for add.
func (r *run) tally(b []audit.Record, inserted, refused []bool) tally {
	per := map[groupKey]*counts{}
	var imported, duplicates int64
	// A batch comes in runs of one account and region: the map is asked
	// when they change.
	var (
		lastK groupKey
		c     *counts
	)
	for i := range b {
		if refused != nil && refused[i] {
			continue
		}
		if k := (groupKey{b[i].Account, b[i].Region}); c == nil || k != lastK {
			if c = per[k]; c == nil {
				c = &counts{}
				per[k] = c
			}
			lastK = k
		}
		if inserted[i] {
			c.imported++
			imported++
		} else {
			c.duplicates++
			duplicates++
		}
	}
	return tally{per: per, imported: imported, duplicates: duplicates}
}

// add adds a batch's tally to the report.
func (r *run) add(t tally) {
	r.imported.Add(t.imported)
	r.duplicates.Add(t.duplicates)
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, c := range t.per {
		g := r.group(k.account, k.region)
		g.Records += c.imported + c.duplicates
		g.Imported += c.imported
		g.Duplicates += c.duplicates
	}
}

// appendGroup gives records of one account and region to the Sink.
func (r *run) appendGroup(ctx context.Context, b []audit.Record, from []origin) error {
	var (
		res   audit.AppendResult
		fails []Failure
		err   error
	)
	if rs, ok := r.opts.Sink.(ReportingSink); ok {
		res, fails, err = rs.AppendReport(ctx, b)
	} else {
		res, err = r.opts.Sink.Append(ctx, b)
	}
	// What the sink stored is counted, also when it then failed (a
	// server's calls before the failing one): it is stored.
	account, region := b[0].Account, b[0].Region
	r.imported.Add(int64(res.Inserted))
	r.duplicates.Add(int64(res.Duplicates))
	r.mu.Lock()
	g := r.group(account, region)
	g.Records += int64(res.Inserted + res.Duplicates)
	g.Imported += int64(res.Inserted)
	g.Duplicates += int64(res.Duplicates)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	for _, f := range fails {
		o := origin{}
		if f.Index >= 0 && f.Index < len(from) {
			o = from[f.Index]
		}
		code := cmp.Or(f.Code, ReasonInvalidRecord)
		r.fail(o.file, o.num, account, region, code, fmt.Errorf("refused: %s: %s", code, f.Message))
	}
	if missing := len(b) - res.Inserted - res.Duplicates - len(fails); missing > 0 {
		// The sink broke its contract; keep the counts adding up.
		r.rejected.Add(int64(missing))
		r.refuseN(account, region, "Unaccounted", int64(missing))
		r.opts.Logger.Warn("import: sink did not account for every record", "records", len(b), "missing", missing)
	}
	return nil
}

// refuseN counts n records of account and region refused for code.
func (r *run) refuseN(account, region, code string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.group(account, region)
	g.Records += n
	g.Refused += n
	g.Reasons[code] += n
}

// fileReader is what a worker reuses from one file to the next.
type fileReader struct {
	rd *reader
	br *bufio.Reader // gives gzip a ByteReader, so it reads no further than it needs
	zr *gzip.Reader
	// account and region are those of the last record read: the records
	// after it with the same ones share these strings (same).
	account, region string
	// ids holds the event IDs of the records read, one after another
	// (same).
	ids []byte
}

// same returns the account and region of rec as the strings of the
// record before it when they are equal: the store compares the
// partitions of every row (sorting a batch, runs of a bucket) on its one
// writer's goroutine, and strings that share their bytes compare equal
// by pointer, without reading them (memeqbody was 3% of an import's CPU).
//
// It also moves the record's eventID out of its bytes into ids, beside the
// IDs of the records before it: the pipeline and the store read every
// record's key several times after its bytes have left the caches (a
// server's in-flight set, the key filters, the duplicate checks, the
// release once stored), each time a cache miss when the IDs lie in the
// records, ~1.3 KB apart, and a sixtieth of one when they follow each
// other. The bytes of ids are never written again once a string holds
// them.
func (fr *fileReader) same(rec *audit.Record) {
	if rec.Account == fr.account {
		rec.Account = fr.account
	} else {
		fr.account = rec.Account
	}
	if rec.Region == fr.region {
		rec.Region = fr.region
	} else {
		fr.region = rec.Region
	}
	if id := rec.EventID; id != "" {
		if len(id) > cap(fr.ids)-len(fr.ids) {
			fr.ids = make([]byte, 0, max(idsSlab, len(id)))
		}
		fr.ids = append(fr.ids, id...)
		rec.EventID = unsafe.String(&fr.ids[len(fr.ids)-len(id)], len(id))
	}
}

// idsSlab is the size of fileReader's slabs of event IDs: 16 KiB, about
// 450 IDs of 36 bytes.
const idsSlab = 16 << 10

// open returns a parse reader for a file's content, gunzipped when it
// starts with the gzip magic bytes.
func (fr *fileReader) open(f io.Reader) (*reader, error) {
	var magic [2]byte
	n, err := io.ReadFull(f, magic[:])
	var src io.Reader
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		src = bytes.NewReader(magic[:n])
	case err != nil:
		return nil, err
	case magic != [2]byte{0x1f, 0x8b}:
		src = io.MultiReader(bytes.NewReader(magic[:]), f)
	default:
		head := io.MultiReader(bytes.NewReader(magic[:]), f)
		if fr.br == nil {
			fr.br = bufio.NewReaderSize(head, readChunk)
		} else {
			fr.br.Reset(head)
		}
		if fr.zr == nil {
			fr.zr, err = gzip.NewReader(fr.br)
		} else {
			err = fr.zr.Reset(fr.br)
		}
		if err != nil {
			return nil, fmt.Errorf("not a valid gzip file: %w", err)
		}
		src = fr.zr
	}
	if fr.rd == nil {
		fr.rd = newReader(src, maxBuffer)
	} else {
		fr.rd.reset(src)
	}
	return fr.rd, nil
}

// readFile reads one file and hands its records to the sink goroutine.
func (r *run) readFile(ctx context.Context, fr *fileReader, path string, out chan<- chunk) {
	defer r.done.Add(1)
	if r.fileSinkFailed.Load() {
		return
	}
	f, err := r.open(ctx, path)
	if err != nil {
		r.failFile(path, 0, err)
		return
	}
	defer f.Close()
	var src io.Reader = f
	if fs, ok := r.opts.Sink.(FileSink); ok {
		var done bool
		if src, done = r.offerFile(ctx, fs, path, f, out); done {
			return
		}
	}
	rd, err := fr.open(&countingReader{r: src, n: &r.bytes})
	if err != nil {
		r.files.Add(1)
		r.failFile(path, 0, err)
		return
	}
	c := chunk{file: path}
	var slab []byte
	slabSize := 16 << 10
	// keep copies a record out of the reader's buffer, into a slab shared
	// by the records around it (fewer allocations than one each).
	keep := func(raw []byte) []byte {
		if len(raw) > cap(slab)-len(slab) {
			slab = make([]byte, 0, max(slabSize, len(raw)))
			slabSize = min(2*slabSize, 256<<10)
		}
		slab = append(slab, raw...)
		return slab[len(slab)-len(raw) : len(slab) : len(slab)]
	}
	// take passes on record num, extracted (err: why it is refused).
	take := func(num int, rec audit.Record, err error) bool {
		if err != nil {
			// A record with a bad region still names its account and
			// the region it claims (clipped: it is anyone's text).
			r.fail(path, num, audit.Clip(rec.Account, 64), audit.Clip(rec.Region, 64), ReasonInvalidRecord, err)
			return true
		}
		fr.same(&rec)
		if rec.Time.Before(r.opts.MinTime) {
			r.expired.Add(1)
			r.refuse(rec.Account, rec.Region, ReasonExpired)
			return true
		}
		if r.refusing != nil {
			if f, refused := r.refusing.Refuses(rec); refused {
				code := cmp.Or(f.Code, ReasonInvalidRecord)
				r.fail(path, num, rec.Account, rec.Region, code, fmt.Errorf("refused: %s: %s", code, f.Message))
				return true
			}
		}
		c.recs = append(c.recs, rec)
		c.nums = append(c.nums, num)
		if len(c.recs) < r.chunk {
			return true
		}
		select {
		case out <- c:
		case <-ctx.Done():
			return false
		}
		c = chunk{file: path, recs: make([]audit.Record, 0, r.chunk), nums: make([]int, 0, r.chunk)}
		return true
	}
	yield := func(num int, raw []byte, err error) bool {
		r.records.Add(1)
		if err != nil {
			r.fail(path, num, "", "", ReasonInvalidRecord, err)
			return true
		}
		rec, err := extract(keep(raw))
		return take(num, rec, err)
	}
	// A record of a Records array is extracted in the pass that finds its
	// end (audit.ExtractLeading), not scanned for its end and then again
	// by Extract; what it leaves goes to yield as before.
	lead := func(num int, b []byte) (int, bool) {
		rec, n, ok := audit.ExtractLeading(b, keep)
		if !ok {
			return 0, true
		}
		r.records.Add(1)
		return n, take(num, rec, audit.CheckImported(&rec))
	}
	err = parseLeading(rd, yield, lead)
	if errors.Is(err, errDigest) {
		r.skipped.Add(1)
		return
	}
	r.files.Add(1)
	switch {
	case errors.Is(err, errStop):
		return
	case err != nil:
		var pe *parseError
		if errors.As(err, &pe) {
			r.failFile(path, pe.Record, pe.Err)
		} else {
			r.failFile(path, 0, err)
		}
	}
	if len(c.recs) > 0 {
		select {
		case out <- c:
		case <-ctx.Done():
		}
	}
}

// extract indexes a record. A line of lookup-events output saved one event
// per line ({"CloudTrailEvent":"..."} and more) gives its CloudTrailEvent.
// A record whose account or awsRegion cairn cannot keep is refused
// (audit.CheckImported).
func extract(raw []byte) (audit.Record, error) {
	rec, err := audit.Extract(raw)
	if err != nil && bytes.Contains(raw, []byte(`"CloudTrailEvent"`)) {
		if inner, uerr := unwrapEvent(raw); uerr == nil {
			rec, err = audit.Extract(inner)
		}
	}
	if err == nil {
		err = audit.CheckImported(&rec)
	}
	return rec, err
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
