package lake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/lease"
)

// Import states (the model's ImportStatus).
const (
	ImportInitializing = "INITIALIZING"
	ImportInProgress   = "IN_PROGRESS"
	ImportFailed       = "FAILED"
	ImportStopped      = "STOPPED"
	ImportCompleted    = "COMPLETED"
)

// lakeImport is an import; its exported fields are what lake.json keeps, so
// GetImport, ListImports and ListImportFailures answer the same after a
// restart.
type lakeImport struct {
	ID           string     `json:"id"`
	Account      string     `json:"account"`
	Destinations []string   `json:"destinations"`
	Source       string     `json:"source"`
	Start        *time.Time `json:"start,omitempty"`
	End          *time.Time `json:"end,omitempty"`
	Status       string     `json:"status"`
	Created      time.Time  `json:"created"`
	Updated      time.Time  `json:"updated"`
	// Stats and Failures are filled in when the import ends.
	Stats    ImportStats     `json:"stats"`
	Failures []ImportFailure `json:"failures,omitempty"`
	// AnyAccount is a responder's import (Sink.AnyAccount), kept so that
	// the node resuming it imports the same records.
	AnyAccount bool `json:"anyAccount,omitempty"`

	path       string // a local source
	bucket     Bucket // an s3:// source: its bucket and key prefix
	bucketName string
	prefix     string
	cancel     context.CancelFunc
	done       chan struct{} // closed when the import's goroutine returns
}

// sharedLoadBatch is the records per transaction of an import in the
// shared mode (PostgreSQL). LoadBatch is DuckDB's row group; on PostgreSQL
// a transaction of 131,072 records took over 10 s on a loaded machine,
// work that a lost lease throws away whole, so a batch is smaller there.
const sharedLoadBatch = 10000

// maxHeldImports is the number of ended imports an account keeps (its
// oldest are forgotten beyond): each is part of lake.json.
const maxHeldImports = 100

// importPath resolves a StartImport source (file:// URI or plain path)
// inside one of the configured roots; the API never reads elsewhere. It
// returns the root, opened as an os.Root, and the source's name in it:
// the import reads through the root, so no symlink (of a file or a
// folder, at any depth, even one swapped in after this check) leads out of
// it. The caller closes the root.
func (l *Lake) importPath(uri string) (*os.Root, string, error) {
	p := uri
	if strings.HasPrefix(uri, "file://") {
		u, err := url.Parse(uri)
		if err != nil || u.Host != "" && u.Host != "localhost" {
			return nil, "", audit.Errorf(audit.CodeInvalidImportSource, "The import source %s is not a valid file:// URI.", audit.Clip(uri, 128))
		}
		p = u.Path
	} else if strings.Contains(uri, "://") {
		return nil, "", audit.Errorf(audit.CodeInvalidImportSource, "cairn imports from s3:// URIs of its configured buckets and local paths (file:// or a plain path) under lake.import_roots; %s is neither.", audit.Clip(uri, 128))
	}
	if !filepath.IsAbs(p) {
		return nil, "", audit.Errorf(audit.CodeInvalidImportSource, "The import path must be absolute.")
	}
	p = filepath.Clean(p)
	for _, root := range l.opts.ImportRoots {
		root = strings.TrimPrefix(root, "file://")
		forms := []string{filepath.Clean(root)}
		if r, err := filepath.EvalSymlinks(root); err == nil {
			forms = append(forms, r)
		}
		for _, r := range forms {
			rel, err := filepath.Rel(r, p)
			if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || !filepath.IsLocal(rel) && rel != "." {
				continue
			}
			rt, err := os.OpenRoot(r)
			if err != nil {
				continue
			}
			name := filepath.ToSlash(rel)
			if _, err := fs.Stat(rt.FS(), name); err != nil {
				rt.Close()
				return nil, "", audit.Errorf(audit.CodeInvalidImportSource, "The import path %s cannot be read, or leads out of lake.import_roots.", audit.Clip(p, 128))
			}
			return rt, name, nil
		}
	}
	return nil, "", audit.Errorf(audit.CodeInvalidImportSource, "The import path %s is not under a directory of lake.import_roots in cairn's config.", audit.Clip(p, 128))
}

// importBucket resolves an s3://bucket/prefix source: the bucket must be
// one of the config's buckets and answer.
func (l *Lake) importBucket(ctx context.Context, uri string) (Bucket, string, string, error) {
	name, prefix, err := importer.ParseS3URI(uri)
	if err != nil {
		return nil, "", "", audit.Errorf(audit.CodeInvalidImportSource, "The import source %s is not a valid S3 URI.", audit.Clip(uri, 128))
	}
	var b Bucket
	ok := false
	if l.opts.Buckets != nil {
		b, ok = l.opts.Buckets(name)
	}
	if !ok {
		return nil, "", "", audit.Errorf(audit.CodeInvalidImportSource, "The S3 bucket %s is not one of the buckets in cairn's config.", name)
	}
	cctx, cancel := context.WithTimeout(ctx, bucketCheckTimeout)
	defer cancel()
	if err := b.Check(cctx); err != nil {
		l.log.Warn("lake: import source bucket cannot be read", "bucket", name, "err", err)
		return nil, "", "", audit.Errorf(audit.CodeInvalidImportSource, "The S3 bucket %s does not exist or cannot be read.", name)
	}
	return b, name, prefix, nil
}

// bucketCheckTimeout bounds StartImport's check of an S3 source bucket.
const bucketCheckTimeout = 15 * time.Second

// Import is an import as StartImport, GetImport and ListImports show it.
type Import struct {
	ID           string
	Destinations []string // the stores' ARNs
	Source       string
	Start, End   *time.Time
	Status       string
	Created      time.Time
	Updated      time.Time
	Stats        ImportStats
}

// ImportStats counts an import's progress.
type ImportStats struct {
	// Files and Events are the files read and the records imported
	// (duplicates included); Failures the entries of ListImportFailures
	// (files and records that failed, and one for the records older than
	// the store's retention) and the failures beyond those listed.
	Files    int64 `json:"files"`
	Events   int64 `json:"events"`
	Failures int64 `json:"failures"`
	// Expired counts the records older than the store's retention period,
	// not imported.
	Expired int64 `json:"expired,omitempty"`
}

func (im *lakeImport) view() Import {
	return Import{ID: im.ID, Destinations: im.Destinations, Source: im.Source, Start: im.Start, End: im.End,
		Status: im.Status, Created: im.Created, Updated: im.Updated, Stats: im.Stats}
}

// timeSink drops records outside [start, end].
type timeSink struct {
	sink       *Sink
	start, end *time.Time
}

func (t timeSink) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	res, _, err := t.AppendReport(ctx, recs)
	return res, err
}

// AppendReport passes the records within [start, end] on to the Sink, and
// its refusals back with their indexes in recs.
func (t timeSink) AppendReport(ctx context.Context, recs []audit.Record) (audit.AppendResult, []importer.Failure, error) {
	keep := recs[:0:0]
	var idx []int
	for i, r := range recs {
		if t.start != nil && r.Time.Before(*t.start) || t.end != nil && r.Time.After(*t.end) {
			continue
		}
		keep = append(keep, r)
		idx = append(idx, i)
	}
	res, fails, err := t.sink.AppendReport(ctx, keep)
	for j := range fails {
		fails[j].Index = idx[fails[j].Index]
	}
	return res, fails, err
}

// ImportRequest is what StartImport takes.
type ImportRequest struct {
	// Destinations names the one event data store (ARN or ID) to import
	// into.
	Destinations []string
	// Source is an s3:// URI of a configured bucket, or a file:// URI or
	// absolute path under Options.ImportRoots.
	Source string
	// Start and End, when set, bound the records' event times.
	Start, End *time.Time
}

// StartImport starts importing in.Source into p's store and returns the
// import (INITIALIZING). The import runs until it ends, StopImport or
// Close. Errors: InvalidParameter, InvalidTimeRange, InvalidImportSource,
// the destination's (NewSink), AccountHasOngoingImport.
func (l *Lake) StartImport(ctx context.Context, p audit.Principal, in ImportRequest) (Import, error) {
	if err := l.enter(); err != nil {
		return Import{}, err
	}
	defer l.work.Done()
	if len(in.Destinations) < 1 || len(in.Destinations) > 1 {
		return Import{}, invalidParam("Destinations must name one event data store.")
	}
	start, end := in.Start, in.End
	if start != nil && end != nil && end.Before(*start) {
		return Import{}, audit.Errorf(audit.CodeInvalidTimeRange, "EndEventTime is before StartEventTime.")
	}
	uri := in.Source
	var (
		path, bucketName, prefix string
		bkt                      Bucket
		root                     *os.Root
		err                      error
	)
	if strings.HasPrefix(uri, "s3://") {
		bkt, bucketName, prefix, err = l.importBucket(ctx, uri)
	} else {
		root, path, err = l.importPath(uri)
	}
	if err != nil {
		return Import{}, err
	}
	closeRoot := func() {
		if root != nil {
			root.Close()
		}
	}
	l.fresh(ctx)
	sink, err := l.NewSink(ctx, p.AccountID, in.Destinations)
	if err != nil {
		closeRoot()
		return Import{}, err
	}
	now := l.opts.Now().UTC()
	im := &lakeImport{ID: audit.NewID(), Account: p.AccountID, Source: uri, Start: start, End: end,
		Status: ImportInitializing, Created: now, Updated: now, AnyAccount: p.Responder}
	l.mu.Lock()
	for _, id := range sink.stores {
		im.Destinations = append(im.Destinations, l.stores[id].ARN())
	}
	l.mu.Unlock()
	ictx, cancel := context.WithCancel(l.base)
	err = l.update(ctx, func() error {
		for _, o := range l.imports {
			// A stopped import whose reads and appends have not yet wound
			// down still counts: two imports into one store must not
			// interleave (each deduplicates against what the store held
			// when it began).
			if o.Account == im.Account && (o.Status == ImportInitializing || o.Status == ImportInProgress || !closed(o.done)) {
				return audit.Errorf(audit.CodeAccountHasOngoingImport, "The account has an import in progress (%s).", o.ID)
			}
		}
		c := *im
		if !l.opts.Shared {
			c.cancel, c.done = cancel, make(chan struct{}) // running from now on
		}
		l.imports[im.ID] = &c
		l.forgetImportsLocked(im.Account)
		return nil
	})
	if err != nil {
		cancel()
		closeRoot()
		return Import{}, err
	}
	out := im.view()
	if l.opts.Shared {
		// The node holding the imports' lease runs it (RunImports).
		cancel()
		closeRoot()
		select {
		case l.wake <- struct{}{}:
		default:
		}
		return out, nil
	}
	l.mu.Lock()
	cur := l.imports[im.ID]
	cur.path, cur.bucket, cur.bucketName, cur.prefix = path, bkt, bucketName, prefix
	l.work.Add(1) // not closed: this call entered, and Close waits for it
	l.mu.Unlock()
	go func() {
		defer l.work.Done()
		defer cancel()
		defer closeRoot()
		l.runImport(ictx, cur, sink, root)
	}()
	return out, nil
}

// runImport runs im, whose goroutine fields are set, into sink, reading
// its local source through root (nil for an s3:// source), and records
// how it ended. In the shared mode, an import whose ctx ends because its
// node stops or lost the imports' lease is left as it is stored
// (IN_PROGRESS), for the next holder to resume.
func (l *Lake) runImport(ictx context.Context, im *lakeImport, sink *Sink, root *os.Root) (fenced bool) {
	sink.AnyAccount = im.AnyAccount // a responder's import takes every account's records
	l.mu.Lock()
	if im.Status == ImportInitializing {
		im.Status = ImportInProgress
	}
	start, end, uri := im.Start, im.End, im.Source
	bkt, bucketName, prefix, path := im.bucket, im.bucketName, im.prefix, im.path
	retention := 0
	if s := l.stores[sink.stores[0]]; s != nil {
		retention = s.RetentionPeriod
	}
	l.mu.Unlock()
	if l.opts.Shared {
		if err := l.update(ictx, func() error {
			if cur := l.imports[im.ID]; cur != nil && cur.Status == ImportInitializing {
				cur.Status = ImportInProgress
			}
			return nil
		}); err != nil {
			l.log.Warn("lake: import started; its state is not saved", "import", im.ID, "err", err)
		}
	}
	if l.opts.LoadBegins != nil {
		ended := l.opts.LoadBegins()
		defer ended()
	}
	appenders := cmp.Or(l.opts.LoadAppenders, LoadAppenders)
	batch := LoadBatchOf(appenders)
	if l.opts.Shared {
		batch, appenders = sharedLoadBatch, 1
	}
	opts := importer.Options{Sink: sink, Logger: l.log, Accounts: sink.Accounts, MinTime: sink.MinTime(), BatchSize: batch, Appenders: appenders, FlushInterval: LoadFlushInterval}
	if start != nil || end != nil {
		// Whole batches go to the Sink in one call (an EachReportingSink:
		// one transaction a batch); with a time range, a batch goes in one
		// call per account and region, as before.
		opts.Sink = timeSink{sink, start, end}
	}
	var (
		rep importer.Report
		err error
	)
	if bkt != nil {
		rep, err = importer.RunObjects(ictx, bkt, bucketName, prefix, opts)
	} else {
		opts.FS = root.FS()
		rep, err = importer.Run(ictx, []string{path}, opts)
	}
	// The load's last transactions (Sink.Finish): committed whether the
	// import ran to its end, was stopped, or failed (what it appended is
	// stored; a re-import skips it). Their failure fails the import.
	if ferr := sink.Finish(ictx); ferr != nil && err == nil {
		err = ferr
	}
	if l.opts.Shared && ictx.Err() != nil && !errors.Is(err, lease.ErrFenced) {
		l.mu.Lock()
		stopped := im.Status == ImportStopped
		l.mu.Unlock()
		if !stopped {
			// The node stops or lost the lease: the next holder resumes
			// it (an import skips the events the store holds).
			l.log.Info("lake: import interrupted; the node holding the imports' lease resumes it", "import", im.ID, "cause", context.Cause(ictx))
			l.mu.Lock()
			close(im.done)
			l.mu.Unlock()
			return false
		}
	}
	if errors.Is(err, lease.ErrFenced) {
		l.log.Warn("lake: import fenced off: another node holds the imports' lease and resumes it", "import", im.ID)
		l.mu.Lock()
		close(im.done)
		l.mu.Unlock()
		return true
	}
	ended := func(cur *lakeImport) {
		cur.Updated = l.opts.Now().UTC()
		r := rep
		switch {
		case cur.Status == ImportStopped:
		case err != nil:
			cur.Status = ImportFailed
			var ae *audit.Error
			ferr := err
			if ictx.Err() != nil {
				ferr = errors.New("the import was stopped: cairn's Lake is shutting down")
			} else if !errors.As(err, &ae) {
				// The sink's (the database's) failure: its text is not
				// the caller's business (ListImportFailures shows this).
				ferr = fmt.Errorf("the import stopped because of an error in cairn; the server's log has the cause (import %s)", cur.ID)
			}
			// A copy: ended may run twice (after a failed registry save).
			r.Errors = append(slices.Clip(rep.Errors), importer.RecordError{File: uri, Err: ferr})
		default:
			cur.Status = ImportCompleted
		}
		cur.Failures = cur.failures(r, retention)
		cur.Stats = ImportStats{Files: rep.Files, Events: rep.Imported + rep.Duplicates,
			Failures: int64(len(cur.Failures)) + rep.ErrorsOmitted, Expired: rep.Expired}
	}
	if err != nil && ictx.Err() == nil {
		var ae *audit.Error
		if !errors.As(err, &ae) {
			l.log.Error("lake: import failed", "import", im.ID, "account", im.Account, "err", err)
		}
	}
	// Ended: the final status and done change together (under l.mu), so a
	// caller who sees the status can start the next import.
	uerr := l.update(ictx, func() error {
		if cur := l.imports[im.ID]; cur != nil {
			ended(cur)
			if cur.done != nil && !closed(cur.done) {
				close(cur.done)
			}
		}
		return nil
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if uerr != nil {
		l.log.Warn("lake: import ended; its state is not saved", "import", im.ID, "err", uerr)
		if cur := l.imports[im.ID]; cur == im {
			ended(im)
		}
	}
	if !closed(im.done) {
		close(im.done)
	}
	return errors.Is(uerr, lease.ErrFenced)
}

// RunImports runs, while ctx lasts, the imports of the registry that are
// INITIALIZING or IN_PROGRESS and run on no node: those started on any
// node, and those a node left when it died or lost the lease (resumed
// from the start: an import skips the events its store holds). It is the
// job of the imports' lease in the shared mode (Options.Shared); ctx
// carries its fence, which every write of the imports checks. It returns
// when ctx ends (nil), or when a write of an import was fenced off (an
// error wrapping lease.ErrFenced: another node holds the lease), once the
// imports it started returned.
func (l *Lake) RunImports(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.work.Done()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(l.base, func() { cancel(context.Canceled) })()
	var wg sync.WaitGroup
	defer wg.Wait()
	fenced := make(chan struct{}, 1)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := l.refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("lake: imports: the registry could not be read", "err", err)
		}
		l.mu.Lock()
		var todo []*lakeImport
		for _, im := range l.imports {
			if (im.Status == ImportInitializing || im.Status == ImportInProgress) && (im.done == nil || closed(im.done)) {
				todo = append(todo, im)
			}
		}
		l.mu.Unlock()
		sort.Slice(todo, func(i, j int) bool { return todo[i].Created.Before(todo[j].Created) })
		for _, im := range todo {
			if ctx.Err() != nil {
				break
			}
			l.resumeImport(ctx, im, &wg, fenced)
		}
		select {
		case <-fenced:
			cancel(lease.ErrLost)
			return fmt.Errorf("lake: import: %w", lease.ErrFenced)
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.wake:
		}
	}
}

// resumeImport starts im (from the registry, running nowhere) on this
// node: its source and destination are resolved again here; when they
// cannot be, it fails, saying why.
func (l *Lake) resumeImport(ctx context.Context, im *lakeImport, wg *sync.WaitGroup, fenced chan<- struct{}) {
	var (
		path, bucketName, prefix string
		bkt                      Bucket
		root                     *os.Root
		err                      error
	)
	if strings.HasPrefix(im.Source, "s3://") {
		bkt, bucketName, prefix, err = l.importBucket(ctx, im.Source)
	} else {
		root, path, err = l.importPath(im.Source)
	}
	var sink *Sink
	if err == nil {
		sink, err = l.NewSink(ctx, im.Account, im.Destinations)
		if err != nil && root != nil {
			root.Close()
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		msg := "cairn cannot resume the import on this node: " + err.Error()
		var ae *audit.Error
		if errors.As(err, &ae) {
			msg = "cairn cannot resume the import on this node: " + ae.Message
		} else {
			l.log.Error("lake: import cannot resume", "import", im.ID, "err", err)
			msg = "cairn cannot resume the import on this node; the server's log has the cause (import " + im.ID + ")."
		}
		if uerr := l.update(ctx, func() error {
			if cur := l.imports[im.ID]; cur != nil && (cur.Status == ImportInitializing || cur.Status == ImportInProgress) {
				now := l.opts.Now().UTC()
				cur.Status, cur.Updated = ImportFailed, now
				cur.Failures = append(cur.Failures, ImportFailure{cur.Source, audit.Clip(msg, 128), now})
				cur.Stats.Failures++
			}
			return nil
		}); uerr != nil {
			l.log.Warn("lake: import failed; its state is not saved", "import", im.ID, "err", uerr)
		}
		return
	}
	l.mu.Lock()
	if l.closed || l.imports[im.ID] != im {
		l.mu.Unlock()
		if root != nil {
			root.Close()
		}
		return
	}
	ictx, cancel := context.WithCancel(ctx)
	im.path, im.bucket, im.bucketName, im.prefix, im.cancel, im.done = path, bkt, bucketName, prefix, cancel, make(chan struct{})
	l.work.Add(1)
	wg.Add(1)
	l.mu.Unlock()
	l.log.Info("lake: import runs on this node", "import", im.ID, "account", im.Account, "status", im.Status)
	go func() {
		defer wg.Done()
		defer l.work.Done()
		defer cancel()
		if root != nil {
			defer root.Close()
		}
		if l.runImport(ictx, im, sink, root) {
			select {
			case fenced <- struct{}{}:
			default:
			}
		}
	}()
}

func (l *Lake) findImportLocked(account string, id string) (*lakeImport, error) {
	if id == "" {
		return nil, invalidParam("ImportId is required.")
	}
	im := l.imports[id]
	if im == nil || im.Account != account {
		return nil, audit.Errorf(audit.CodeImportNotFound, "The import %s was not found.", audit.Clip(id, 128))
	}
	return im, nil
}

// Import returns p's import id. Errors: InvalidParameter, ImportNotFound.
func (l *Lake) Import(ctx context.Context, p audit.Principal, id string) (Import, error) {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	im, err := l.findImportLocked(p.AccountID, id)
	if err != nil {
		return Import{}, err
	}
	return im.view(), nil
}

// StopImport stops p's import id if it runs, and returns it. Errors:
// those of Import.
func (l *Lake) StopImport(ctx context.Context, p audit.Principal, id string) (Import, error) {
	var out Import
	err := l.update(ctx, func() error {
		im, err := l.findImportLocked(p.AccountID, id)
		if err != nil {
			return err
		}
		if im.Status == ImportInitializing || im.Status == ImportInProgress {
			im.Status, im.Updated = ImportStopped, l.opts.Now().UTC()
		}
		out = im.view()
		return nil
	})
	if err != nil {
		return Import{}, err
	}
	l.mu.Lock()
	if im := l.imports[id]; im != nil && im.Status == ImportStopped && im.cancel != nil {
		im.cancel() // running here; on another node, its next refresh stops it
	}
	l.mu.Unlock()
	return out, nil
}

// ImportsRequest filters ListImports: nil takes every destination or
// status.
type ImportsRequest struct {
	Destination, Status *string
}

// Imports returns p's imports, newest first. Errors: the destination's
// (EventDataStoreNotFound...).
func (l *Lake) Imports(ctx context.Context, p audit.Principal, in ImportsRequest) ([]Import, error) {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	var list []*lakeImport
	for _, im := range l.imports {
		if im.Account != p.AccountID || in.Status != nil && im.Status != *in.Status {
			continue
		}
		if in.Destination != nil {
			s, err := l.findStoreLocked(p.AccountID, *in.Destination)
			if err != nil {
				return nil, err
			}
			if !contains(im.Destinations, s.ARN()) {
				continue
			}
		}
		list = append(list, im)
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].Created.After(list[j].Created) || list[i].Created.Equal(list[j].Created) && list[i].ID < list[j].ID
	})
	out := make([]Import, 0, len(list))
	for _, im := range list {
		out = append(out, im.view())
	}
	return out, nil
}

// ImportFailure is a file or record an import could not take.
type ImportFailure struct {
	// Location is the file's URI (under the import's source), or the
	// source's for a failure of the whole import.
	Location string `json:"location"`
	Message  string `json:"message"`
	// Time is when the import ended.
	Time time.Time `json:"time"`
}

// failures are the failures ListImportFailures shows for an import that
// ended with rep: each file or record error, located under the source, and
// one entry counting the records older than the store's retention period
// (retention days), which were not imported.
func (im *lakeImport) failures(rep importer.Report, retention int) []ImportFailure {
	var items []ImportFailure
	for _, e := range rep.Errors {
		loc := e.File
		if im.bucket != nil {
			// RunObjects names each object by its s3:// location.
		} else if rel, err := filepath.Rel(im.path, e.File); err == nil && !strings.HasPrefix(rel, "..") {
			loc = strings.TrimSuffix(im.Source, "/") + "/" + filepath.ToSlash(rel)
			if rel == "." {
				loc = im.Source
			}
		}
		msg := e.Err.Error()
		if e.Record > 0 {
			msg = "record " + itoa(e.Record) + ": " + msg
		}
		items = append(items, ImportFailure{loc, audit.Clip(msg, 128), im.Updated})
	}
	if rep.Expired > 0 {
		items = append(items, ImportFailure{im.Source, fmt.Sprintf("%d records are older than the event data store's retention period (%d days) and were not imported.",
			rep.Expired, retention), im.Updated})
	}
	return items
}

// ImportFailures returns the failures of p's import id. Errors: those of
// Import.
func (l *Lake) ImportFailures(ctx context.Context, p audit.Principal, id string) ([]ImportFailure, error) {
	l.fresh(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	im, err := l.findImportLocked(p.AccountID, id)
	if err != nil {
		return nil, err
	}
	return append([]ImportFailure(nil), im.Failures...), nil
}

// forgetImportsLocked forgets account's oldest ended imports beyond
// maxHeldImports; l.mu is held.
func (l *Lake) forgetImportsLocked(account string) {
	var ended []*lakeImport
	for _, im := range l.imports {
		if im.Account == account && closed(im.done) {
			ended = append(ended, im)
		}
	}
	if len(ended) <= maxHeldImports {
		return
	}
	sort.Slice(ended, func(i, j int) bool {
		return ended[i].Created.Before(ended[j].Created) || ended[i].Created.Equal(ended[j].Created) && ended[i].ID < ended[j].ID
	})
	for _, im := range ended[:len(ended)-maxHeldImports] {
		delete(l.imports, im.ID)
	}
}

// restoredImport prepares an import read from lake.json: it runs no more.
// One that was running when cairn stopped without ending it (a crash)
// is FAILED, saying so.
func restoredImport(im *lakeImport, now time.Time) {
	im.cancel = func() {}
	im.done = make(chan struct{})
	close(im.done)
	if im.Status == ImportInitializing || im.Status == ImportInProgress {
		im.Status, im.Updated = ImportFailed, now
		im.Failures = append(im.Failures, ImportFailure{im.Source, "cairn stopped during the import; start it again (an import skips the events the store holds).", now})
		im.Stats.Failures++
	}
}

// closed reports whether ch is closed.
func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
