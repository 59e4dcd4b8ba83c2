package lake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/statefile"
)

// Files in the data dir: DBFile is the DuckDB engine's database (cmd/cairn
// opens it with internal/lake/duckdb).
const (
	DBFile       = "lake.duckdb"
	registryFile = "lake.json"
)

// Options configures a Lake. Engine is required; the zero value of every
// other field works.
type Options struct {
	// Engine holds the events and runs the statements
	// (internal/lake/duckdb). Open takes it over: Close (or a failing
	// Open) closes it.
	Engine engine.Engine
	// QueryTimeout ends a query as TIMED_OUT (default 1 hour, as AWS).
	QueryTimeout time.Duration
	// MaxResultBytes fails a query whose results exceed it (default 256 MiB).
	MaxResultBytes int
	// MaxConcurrentQueries caps an account's queued and running queries
	// (default 10, as AWS; MaxConcurrentQueriesException beyond).
	MaxConcurrentQueries int
	// MaxRunningQueries caps the queries running at once in the server
	// (default 2), MaxRunningQueriesPerAccount those of one account
	// (default 1); the others wait QUEUED.
	MaxRunningQueries, MaxRunningQueriesPerAccount int
	// MaxHeldResults and MaxHeldResultBytes cap the ended queries and the
	// result files an account holds (defaults 100 and 1 GiB): beyond them
	// its oldest are forgotten (QueryIdNotFound, as an expired query).
	MaxHeldResults     int
	MaxHeldResultBytes int64
	// ImportRoots are the directories StartImport may read (file:// or
	// plain paths); without any, the API imports nothing.
	ImportRoots []string
	// Buckets finds the bucket of an s3:// import source by name (the
	// config's buckets); nil, or a name it does not know, refuses it.
	Buckets func(name string) (Bucket, bool)
	// Organization is the config's organization (nil: none): imports into
	// an organization event data store of its management account take the
	// records of its member accounts too.
	Organization *audit.Organization
	// MaxStores caps an account's event data stores per region (default 10).
	MaxStores int
	// CheckpointCommits checkpoints the engine after this many write
	// transactions (default 100; see checkpoint.go).
	CheckpointCommits int
	// CheckpointWALBytes checkpoints the engine when its write-ahead log
	// reaches this size (default 32 MiB).
	CheckpointWALBytes int64
	// Feed is the event store's append feed Run takes new events from
	// (nil: stores get events from imports and channels only).
	Feed Feed
	// IngestInterval is how often Run reads Feed (default 1s).
	IngestInterval time.Duration
	// State keeps the registry of stores, channels and imports under the
	// key "lake.json" (nil: the data dir's lake.json through
	// internal/statefile, or nothing for a Lake without a data dir).
	// Every change is written with compare-and-swap on its version and
	// applied again to what another node saved meanwhile.
	State audit.StateStore
	// Shared says that several nodes share State and Engine (PostgreSQL
	// mode): Run then neither reads Feed nor sweeps (RunFeed does, under
	// a lease), StartImport records the import and RunImports, under a
	// lease, runs it (resuming those a dead node left), and each read
	// of the registry first checks its stored version.
	Shared bool
	// LoadAppenders is the batches of a load (StartImport) appended at
	// once into DuckDB's engine (0: LoadAppenders); its batches are
	// LoadBatchOf it.
	LoadAppenders int
	// Queries keeps queries' states and results where every node reads
	// them (internal/lake/postgres); nil keeps them on this node only.
	Queries SharedQueries
	// Node names this node in the queries it runs (Queries).
	Node string
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// Registerer receives Lake's metrics (metrics.go); nil keeps none.
	Registerer prometheus.Registerer
	// LoadBegins, when set, is called as an import's load begins; what it
	// returns is called once the load ended (its last transaction
	// committed or failed). cairn serve lowers Go's GOGC with it while
	// loads run (issue 15: a load's RSS; cmd/cairn's loadGC). Loads
	// may overlap (imports of different accounts).
	LoadBegins func() (ended func())
}

// Lake holds the event data stores, channels and queries of every account.
type Lake struct {
	opts Options
	dir  string
	eng  engine.Engine
	log  *slog.Logger

	// commits counts write transactions since the last checkpoint;
	// wroteSinceTick is set by each (checkpoint.go).
	commits        atomic.Int64
	wroteSinceTick atomic.Bool
	// inserts is the engine's Inserts() already counted in commits.
	inserts atomic.Int64
	// ckptMu orders checkpoints (each subtracts the commits it saw);
	// ckptBehind is set while a checkpoint started by wroteBehind runs.
	ckptMu     sync.Mutex
	ckptBehind atomic.Bool
	// skipped is the feed position Sync skipped to while no store
	// ingested, ahead of the engine's when not written since
	// (skipWrote, Unix nanoseconds: when it last was).
	skipped   atomic.Int64
	skipWrote atomic.Int64
	// loading counts a load's transactions in progress (Sink); fedAt is
	// when Run's loop last read the feed (Unix nanoseconds; feedYields).
	loading atomic.Int32
	fedAt   atomic.Int64
	// loadStores counts, by store ID, the loads (Sinks) in progress into
	// it (guarded by mu; feedWaitsForLoads).
	loadStores map[string]int

	// state keeps the registry (nil: nowhere, a Lake without data dir);
	// version is the stored registry's version this node read last.
	// writeMu orders this node's changes (update).
	state   audit.StateStore
	version int64
	writeMu sync.Mutex
	// wake tells RunImports that an import was started here.
	wake chan struct{}

	mu       sync.Mutex
	stores   map[string]*EventDataStore // by ID
	channels map[string]*Channel        // by ID
	queries  map[string]*query          // by ID
	imports  map[string]*lakeImport     // by ID
	// running counts non-terminal queries by account.
	running map[string]int
	// waiting queries wait for one of the active running slots; activeBy
	// counts an account's (schedule.go).
	waiting  []*query
	active   int
	activeBy map[string]int
	// ckptBlocked holds admissions while a checkpoint waits for running
	// queries (checkpoint.go).
	ckptBlocked bool
	// endSeq numbers the ended queries.
	endSeq uint64
	// forget are the queries forgotten here that SharedQueries still
	// holds (shareEnded removes them).
	forget []string
	// lastForget is when shareEnded last removed the expired queries of
	// every node from SharedQueries.
	lastForget time.Time
	// work counts what uses the engine: the queries' and imports'
	// goroutines, Run's loop, and each call that reads or writes it
	// (enter). stopWork (Run's end, Close) sets closed, cancels base
	// (every query's, import's and Run's context derives from it) and
	// waits for work; Close closes the engine after that, once
	// (engineClosed).
	work         sync.WaitGroup
	closed       bool
	engineClosed bool
	base         context.Context
	stop         context.CancelFunc
	// resultsDir holds the finished queries' result files (results.go).
	resultsDir string
	metrics    *metrics
}

// Open opens the Lake of data dir dir (dir "" keeps everything in memory).
func Open(dir string, opts Options) (*Lake, error) {
	if opts.Engine == nil {
		return nil, errors.New("lake: no engine")
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = time.Hour
	}
	if opts.MaxResultBytes <= 0 {
		opts.MaxResultBytes = 256 << 20
	}
	if opts.MaxConcurrentQueries <= 0 {
		opts.MaxConcurrentQueries = 10
	}
	if opts.MaxRunningQueries <= 0 {
		opts.MaxRunningQueries = 2
	}
	if opts.MaxRunningQueriesPerAccount <= 0 {
		opts.MaxRunningQueriesPerAccount = 1
	}
	if opts.MaxHeldResults <= 0 {
		opts.MaxHeldResults = 100
	}
	if opts.MaxHeldResultBytes <= 0 {
		opts.MaxHeldResultBytes = 1 << 30
	}
	if opts.MaxStores <= 0 {
		opts.MaxStores = 10
	}
	if opts.CheckpointCommits <= 0 {
		opts.CheckpointCommits = 100
	}
	if opts.CheckpointWALBytes <= 0 {
		opts.CheckpointWALBytes = 32 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// Results do not outlive the server (queries are not kept across
	// restarts): a previous run's files are removed.
	var rdir string
	if dir != "" {
		rdir = filepath.Join(dir, resultsDir)
		if err := os.RemoveAll(rdir); err != nil {
			opts.Engine.Close()
			return nil, fmt.Errorf("lake: %w", err)
		}
		if err := os.Mkdir(rdir, 0o700); err != nil {
			opts.Engine.Close()
			return nil, fmt.Errorf("lake: %w", err)
		}
	} else {
		d, err := os.MkdirTemp("", "cairn-lake-results-")
		if err != nil {
			opts.Engine.Close()
			return nil, fmt.Errorf("lake: %w", err)
		}
		rdir = d
	}
	l := &Lake{opts: opts, dir: dir, eng: opts.Engine, log: opts.Logger, resultsDir: rdir,
		stores: map[string]*EventDataStore{}, channels: map[string]*Channel{},
		queries: map[string]*query{}, imports: map[string]*lakeImport{}, running: map[string]int{},
		activeBy: map[string]int{}, state: opts.State, wake: make(chan struct{}, 1)}
	if l.state == nil && dir != "" {
		l.state = statefile.Open(dir)
	}
	l.base, l.stop = context.WithCancel(context.Background())
	l.metrics = newMetrics(l, opts.Registerer)
	if err := l.load(); err != nil {
		l.eng.Close()
		os.RemoveAll(rdir)
		return nil, err
	}
	// Opening replayed the write-ahead log a crash left, and DuckDB keeps
	// it: without a checkpoint now, each crash would add to what the next
	// restart replays.
	if dir != "" {
		if err := l.Checkpoint(context.Background()); err != nil {
			l.log.Warn("lake: checkpoint at open", "err", err)
		}
	}
	return l, nil
}

// Close does what the end of Run does when Run has not (refuses new work
// with ServiceUnavailable, cancels the running queries, imports and Run,
// waits for them and for the calls using the engine to return), then
// checkpoints and closes the engine: nothing runs on a closed engine.
// Calling Close again returns nil.
func (l *Lake) Close() error {
	l.stopWork()
	l.mu.Lock()
	if l.engineClosed {
		l.mu.Unlock()
		return nil
	}
	l.engineClosed = true
	l.mu.Unlock()
	defer os.RemoveAll(l.resultsDir)
	if l.dir != "" {
		if err := l.checkpoint(context.Background()); err != nil {
			l.log.Warn("lake: checkpoint at close", "err", err)
		}
	}
	return l.eng.Close()
}

// stopWork refuses new work, cancels what runs and waits for it to return.
func (l *Lake) stopWork() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.stop()
	l.work.Wait()
}

// errClosed answers what reaches a closed (or closing) Lake.
func errClosed() error {
	return audit.Errorf(audit.CodeServiceUnavailable, "cairn's Lake is shutting down; try again later.")
}

// enter counts a use of the database as work Close waits for; it fails
// once Close has begun. The caller calls l.work.Done when it is done.
func (l *Lake) enter() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed()
	}
	l.work.Add(1)
	return nil
}

// registry is what lake.json holds.
type registry struct {
	Stores   []*EventDataStore `json:"stores"`
	Channels []*Channel        `json:"channels"`
	Imports  []*lakeImport     `json:"imports,omitempty"`
}

// registryKey is the registry's key in the StateStore: with files, the
// data dir's lake.json, which earlier versions wrote directly (the same
// file and format, so nothing is migrated).
const registryKey = registryFile

// maxUpdateTries is how often a change is applied again to the registry
// another node changed meanwhile before it is refused as unavailable.
const maxUpdateTries = 16

// stateTimeout bounds each call to the StateStore.
const stateTimeout = 10 * time.Second

func (l *Lake) load() error {
	if l.dir != "" && !l.opts.Shared {
		// A crash during a save can leave a temporary file (the previous
		// lake.json is whole); nothing writes the registry yet.
		// lake.json.tmp is the one earlier versions used.
		if err := atomicfile.CleanTemp(filepath.Join(l.dir, registryFile)); err != nil {
			l.log.Warn("lake: removing temporary files of the registry", "err", err)
		}
		if err := os.Remove(filepath.Join(l.dir, registryFile+".tmp")); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("lake: removing temporary files of the registry", "err", err)
		}
	}
	if l.state == nil {
		return nil
	}
	if err := l.refresh(context.Background()); err != nil {
		return err
	}
	if l.opts.Shared {
		return nil // imports left running are RunImports' to resume
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.stores {
		// A store saved before selectors were validated as AWS does may
		// hold selectors CreateEventDataStore now refuses (an unknown
		// field). It is kept, with its data: an unknown field matches no
		// record, so the selector holding it takes nothing new until
		// UpdateEventDataStore replaces it.
		if err := audit.ValidateSelectors(s.Selectors, audit.ForEventDataStore); err != nil {
			l.log.Warn("lake: event data store has selectors CreateEventDataStore refuses; a field selector on an unknown field matches no event",
				"store", s.ID, "account", s.Account, "region", s.Region, "name", s.Name, "err", err)
		}
	}
	for _, im := range l.imports {
		restoredImport(im, l.opts.Now().UTC())
	}
	return nil
}

// refresh reads the registry again when its stored version is not the
// one this node read last. An import running here keeps its goroutine's
// fields; one another node stopped (STOPPED) is cancelled here.
func (l *Lake) refresh(ctx context.Context) error {
	if l.state == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	v, err := l.state.Version(ctx, registryKey)
	if err != nil {
		return fmt.Errorf("lake: read the registry's version: %w", err)
	}
	l.mu.Lock()
	have := l.version
	l.mu.Unlock()
	if v == have {
		return nil
	}
	b, v, err := l.state.Get(ctx, registryKey)
	if err != nil {
		return fmt.Errorf("lake: read the registry: %w", err)
	}
	var r registry
	if v != 0 {
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("lake: %s: %w", registryFile, err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v <= l.version && v != 0 { // a slower refresh never goes back
		return nil
	}
	l.applyLocked(r)
	l.version = v
	return nil
}

// applyLocked replaces the registry held with r; l.mu is held.
func (l *Lake) applyLocked(r registry) {
	l.stores = make(map[string]*EventDataStore, len(r.Stores))
	for _, s := range r.Stores {
		l.stores[s.ID] = s
	}
	l.channels = make(map[string]*Channel, len(r.Channels))
	for _, c := range r.Channels {
		l.channels[c.ID] = c
	}
	imports := make(map[string]*lakeImport, len(r.Imports))
	for _, im := range r.Imports {
		if cur := l.imports[im.ID]; cur != nil && cur.done != nil && !closed(cur.done) {
			// Running here: the stored fields, the goroutine's own.
			stopped := im.Status == ImportStopped && cur.Status != ImportStopped
			im.path, im.bucket, im.bucketName, im.prefix, im.cancel, im.done = cur.path, cur.bucket, cur.bucketName, cur.prefix, cur.cancel, cur.done
			*cur = *im
			if stopped && cur.cancel != nil {
				cur.cancel()
			}
			imports[im.ID] = cur
			continue
		}
		if im.done == nil {
			im.done = make(chan struct{})
			close(im.done)
			im.cancel = func() {}
		}
		imports[im.ID] = im
	}
	for id, cur := range l.imports {
		if _, ok := imports[id]; !ok && cur.done != nil && !closed(cur.done) {
			cur.cancel() // forgotten elsewhere while it ran here
		}
	}
	l.imports = imports
}

// encodeLocked is the registry's document; l.mu is held.
func (l *Lake) encodeLocked() ([]byte, error) {
	var r registry
	for _, s := range l.stores {
		r.Stores = append(r.Stores, s)
	}
	for _, c := range l.channels {
		r.Channels = append(r.Channels, c)
	}
	for _, im := range l.imports {
		r.Imports = append(r.Imports, im)
	}
	sort.Slice(r.Imports, func(i, j int) bool { return r.Imports[i].ID < r.Imports[j].ID })
	sort.Slice(r.Stores, func(i, j int) bool { return r.Stores[i].ID < r.Stores[j].ID })
	sort.Slice(r.Channels, func(i, j int) bool { return r.Channels[i].ID < r.Channels[j].ID })
	return json.MarshalIndent(r, "", " ")
}

// snapshot is the registry's values at one moment, to restore when a
// change fails.
type snapshot struct {
	stores   map[string]EventDataStore
	channels map[string]Channel
	imports  map[string]lakeImport
}

func (l *Lake) snapshotLocked() snapshot {
	s := snapshot{map[string]EventDataStore{}, map[string]Channel{}, map[string]lakeImport{}}
	for id, v := range l.stores {
		s.stores[id] = *v
	}
	for id, v := range l.channels {
		s.channels[id] = *v
	}
	for id, v := range l.imports {
		s.imports[id] = *v
	}
	return s
}

// restoreLocked puts back the values of s, in the same structs where they
// are still held.
func (l *Lake) restoreLocked(s snapshot) {
	stores := map[string]*EventDataStore{}
	for id, v := range s.stores {
		p := l.stores[id]
		if p == nil {
			p = new(EventDataStore)
		}
		*p = v
		stores[id] = p
	}
	channels := map[string]*Channel{}
	for id, v := range s.channels {
		p := l.channels[id]
		if p == nil {
			p = new(Channel)
		}
		*p = v
		channels[id] = p
	}
	imports := map[string]*lakeImport{}
	for id, v := range s.imports {
		p := l.imports[id]
		if p == nil {
			p = new(lakeImport)
		}
		*p = v
		imports[id] = p
	}
	l.stores, l.channels, l.imports = stores, channels, imports
}

// update runs fn under l.mu on the registry as stored and saves what it
// changed, with compare-and-swap on the registry's version: when another
// node (or goroutine) saved since, fn's changes are undone and fn runs
// again on theirs. An error of fn undoes its changes and is returned. The
// save carries ctx's lease.Fence (not its cancellation): a save fenced off
// returns an error wrapping lease.ErrFenced.
func (l *Lake) update(ctx context.Context, fn func() error) error {
	if l.state == nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		snap := l.snapshotLocked()
		if err := fn(); err != nil {
			l.restoreLocked(snap)
			return err
		}
		return nil
	}
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	base := context.WithoutCancel(ctx)
	for try := 0; try < maxUpdateTries; try++ {
		if err := l.refresh(base); err != nil {
			return &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
				Message: "cairn cannot read CloudTrail Lake's registry from its store. Retry later."}
		}
		l.mu.Lock()
		snap := l.snapshotLocked()
		if err := fn(); err != nil {
			l.restoreLocked(snap)
			l.mu.Unlock()
			return err
		}
		b, err := l.encodeLocked()
		if err != nil {
			l.restoreLocked(snap)
			l.mu.Unlock()
			return err
		}
		wctx, cancel := context.WithTimeout(base, stateTimeout)
		nv, err := l.state.Put(wctx, registryKey, b, l.version)
		cancel()
		if err != nil {
			l.restoreLocked(snap)
			l.mu.Unlock()
			switch {
			case errors.Is(err, audit.ErrStateConflict):
				continue // another node changed the registry: apply fn to theirs
			case errors.Is(err, lease.ErrFenced):
				return fmt.Errorf("lake: save the registry: %w", err)
			}
			return &audit.Error{Code: audit.CodeServiceUnavailable, Err: fmt.Errorf("lake: save the registry: %w", err),
				Message: "cairn cannot save the change to CloudTrail Lake's registry. Retry later."}
		}
		l.version = nv
		l.mu.Unlock()
		return nil
	}
	return &audit.Error{Code: audit.CodeServiceUnavailable, Err: errors.New("lake: save the registry: too many concurrent changes"),
		Message: "CloudTrail Lake's registry is being changed by other calls. Retry later."}
}

// fresh brings a shared registry up to date before a read; a failure is
// logged and the registry last read is used.
func (l *Lake) fresh(ctx context.Context) {
	if !l.opts.Shared {
		return
	}
	if err := l.refresh(ctx); err != nil {
		l.log.Warn("lake: the shared registry could not be read; using the one last read", "err", err)
	}
}

// Bucket is a bucket StartImport reads s3:// sources from
// (internal/bucket/s3 and internal/bucket/local).
type Bucket interface {
	importer.Objects
	// Check reports an error when the bucket does not exist or cannot be
	// reached.
	Check(ctx context.Context) error
}

// Feed is the store's append-order feed (audit.Store.ReadAppended).
type Feed interface {
	ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error)
}

func invalidParam(format string, args ...any) error {
	return audit.Errorf(audit.CodeInvalidParameter, format, args...)
}
