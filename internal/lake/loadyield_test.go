package lake

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// heldLoad is a DuckDB engine whose load transactions (Inserts of more
// than 4,096 rows without a position) wait for release before they run,
// and which counts the other writes made meanwhile.
type heldLoad struct {
	engine.Engine
	release chan struct{}
	held    atomic.Bool
	beside  atomic.Int64 // feed inserts and checkpoints while a load is held
}

func (e *heldLoad) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	if pos == 0 && len(rows) > 4096 {
		e.held.Store(true)
		<-e.release
		e.held.Store(false)
	} else if pos > 0 && e.held.Load() {
		e.beside.Add(1)
	}
	return e.Engine.Insert(ctx, rows, pos)
}

func (e *heldLoad) Checkpoint(ctx context.Context) error {
	if e.held.Load() {
		e.beside.Add(1)
	}
	return e.Engine.Checkpoint(ctx)
}

// heldLake opens a Lake in a temporary folder on a DuckDB engine whose
// loads wait for release (heldLoad), with opts (its Engine set here, and
// with feed its Feed: the env's store), and serves its API on loopback.
func heldLake(t *testing.T, feed bool, opts Options) (*heldLoad, *env) {
	t.Helper()
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	he := &heldLoad{Engine: eng, release: make(chan struct{})}
	st := audittest.NewMemStore()
	opts.Engine = he
	if feed {
		opts.Feed = st
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(NewTestAPI(l, st, keys))
	t.Cleanup(srv.Close)
	return he, &env{lake: l, store: st, url: srv.URL}
}

// heldRecord is a management event of account named name, with a fresh
// eventID.
func heldRecord(t *testing.T, account, name string) audit.Record {
	t.Helper()
	r, err := audit.Extract(fmt.Appendf(nil, `{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"%s","awsRegion":"us-east-1","eventID":"%s","recipientAccountId":"%s"}`, name, audit.NewID(), account))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestFeedYieldsToALoad: while a load's transaction is in progress, Run's
// tick neither inserts the feed's records (a small transaction committed
// beside a load's costs the load; feedYields) nor checkpoints (it would
// wait for the load's transaction with the engine's write lock requested,
// and hold off the load's next transaction); the feed's records are
// stored at the first tick after.
func TestFeedYieldsToALoad(t *testing.T) {
	he, e := heldLake(t, true, Options{})
	l, st := e.lake, e.store
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("yields")})
	if err != nil {
		t.Fatal(err)
	}
	id := storeID(out.EventDataStoreArn)
	record := func(name string) audit.Record { return heldRecord(t, "111111111111", name) }
	l.feedTick(ctx)

	sink, err := l.NewSink(ctx, "111111111111", []string{id})
	if err != nil {
		t.Fatal(err)
	}
	load := make([]audit.Record, 5000)
	for i := range load {
		load[i] = record("Loaded")
	}
	loaded := make(chan error, 1)
	go func() {
		_, _, err := sink.AppendEachReport(ctx, load)
		loaded <- err
	}()
	for !he.held.Load() {
		time.Sleep(time.Millisecond)
	}
	if _, err := st.Append(ctx, []audit.Record{record("Fed")}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // ticks during the load
		l.feedTick(ctx)
		l.idleCheckpoint(ctx)
	}
	close(he.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if n := he.beside.Load(); n > 0 {
		t.Errorf("%d feed inserts and checkpoints while a load's transaction was in progress; want none", n)
	}
	l.feedTick(ctx) // the first after the load
	for name, want := range map[string]string{"Fed": "1", "Loaded": "5000"} {
		if rows := runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName = '`+name+`'`); rows[0]["n"] != want {
			t.Errorf("%s events stored: %s; want %s", name, rows[0]["n"], want)
		}
	}
}

// TestALoadDelaysOtherAccountsAtMostFeedMaxYield: hostile tenant. Account
// A's load that never ends (one held transaction; back-to-back imports
// look the same to the feed) keeps account B's recorded calls out of B's
// store for at most feedMaxYield: past it, the tick reads the feed while
// A's load is still in progress, and B can query its event at once; A's
// own recorded call before it in the feed is stored with it, once (the
// feed waits for A's load only while all that waits is A's).
func TestALoadDelaysOtherAccountsAtMostFeedMaxYield(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	he, e := heldLake(t, true, Options{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	l, st := e.lake, e.store
	a, b := e.client("AKIAAAAAAAAAAAAAAAAA"), e.client("AKIABBBBBBBBBBBBBBBB")
	ctx := context.Background()
	storeOf := func(c *cloudtrail.Client, name string) string {
		out, err := c.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		return storeID(out.EventDataStoreArn)
	}
	idA, idB := storeOf(a, "loader"), storeOf(b, "neighbour")
	record := func(account, name string) audit.Record { return heldRecord(t, account, name) }
	l.feedTick(ctx)

	sink, err := l.NewSink(ctx, "111111111111", []string{idA})
	if err != nil {
		t.Fatal(err)
	}
	load := make([]audit.Record, 5000)
	for i := range load {
		load[i] = record("111111111111", "Loaded")
	}
	loaded := make(chan error, 1)
	go func() {
		_, _, err := sink.AppendEachReport(ctx, load)
		loaded <- err
	}()
	defer func() {
		close(he.release)
		if err := <-loaded; err != nil {
			t.Error(err)
		}
	}()
	for !he.held.Load() {
		time.Sleep(time.Millisecond)
	}
	// A's own recorded call first, then B's: B's waits at most
	// feedMaxYield, and takes A's with it (the feed is read in order).
	if _, err := st.Append(ctx, []audit.Record{record("111111111111", "Own")}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, []audit.Record{record("222222222222", "Neighbour")}); err != nil {
		t.Fatal(err)
	}
	count := func() string {
		return runQuery(t, b, `SELECT COUNT(*) AS n FROM `+idB+` WHERE eventName = 'Neighbour'`)[0]["n"]
	}
	own := func() string {
		return runQuery(t, a, `SELECT COUNT(*) AS n FROM `+idA+` WHERE eventName = 'Own'`)[0]["n"]
	}
	now.Add(int64(feedMaxYield - time.Second))
	l.feedTick(ctx)
	if n := count(); n != "0" {
		t.Fatalf("B's event stored %s times within feedMaxYield of the last read, during A's load; the feed should have yielded", n)
	}
	now.Add(int64(2 * time.Second))
	l.feedTick(ctx)
	if n := count(); n != "1" {
		t.Errorf("B's event stored %s times past feedMaxYield with A's load still in progress; want 1", n)
	}
	if n := own(); n != "1" {
		t.Errorf("A's own event, before B's in the feed, stored %s times with B's; want 1", n)
	}
	now.Add(int64(2 * feedMaxYield))
	l.feedTick(ctx)
	if n, m := count(), own(); n != "1" || m != "1" {
		t.Errorf("after another read: B's event stored %s times, A's %s; want each once", n, m)
	}
}

// TestPolicyCheckpointWaitsForALoad: while a load's transaction is in
// progress, a commit that reaches the checkpoint policy's bound does not
// checkpoint (the checkpoint runs alone: it would wait for the load's
// transaction and hold off the load's next one), up to twice the bound,
// past which it does.
func TestPolicyCheckpointWaitsForALoad(t *testing.T) {
	he, e := heldLake(t, false, Options{CheckpointCommits: 1})
	l := e.lake
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("policy")})
	if err != nil {
		t.Fatal(err)
	}
	sink, err := l.NewSink(ctx, "111111111111", []string{storeID(out.EventDataStoreArn)})
	if err != nil {
		t.Fatal(err)
	}
	load := make([]audit.Record, 5000)
	for i := range load {
		load[i] = heldRecord(t, "111111111111", "Loaded")
	}
	loaded := make(chan error, 1)
	go func() {
		_, _, err := sink.AppendEachReport(ctx, load)
		loaded <- err
	}()
	for !he.held.Load() {
		time.Sleep(time.Millisecond)
	}
	l.commits.Store(1) // the policy's bound
	l.wrote(ctx)
	if n := he.beside.Load(); n != 0 {
		t.Errorf("%d checkpoints at the policy's bound during a load's transaction; want none", n)
	}
	l.commits.Store(l.maxBlockedCommits())
	l.wrote(ctx)
	if n := he.beside.Load(); n != 1 {
		t.Errorf("%d checkpoints at twice the policy's bound during a load's transaction; want 1", n)
	}
	close(he.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
}

// heldLoader is a DuckDB engine (a Loader) whose loads' first Append waits
// for release, and which counts the positioned inserts (the feed's) made
// while a load is held or in progress.
type heldLoader struct {
	engine.Engine
	release chan struct{}
	held    atomic.Bool
	loads   atomic.Int32 // in progress: from BeginLoad to Finish
	beside  atomic.Int64
}

func (e *heldLoader) BeginLoad() engine.Load {
	e.loads.Add(1)
	return &heldLoaderLoad{Load: e.Engine.(engine.Loader).BeginLoad(), e: e}
}

func (e *heldLoader) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	if pos > 0 && len(rows) > 0 && e.loads.Load() > 0 {
		e.beside.Add(1)
	}
	return e.Engine.Insert(ctx, rows, pos)
}

type heldLoaderLoad struct {
	engine.Load
	e     *heldLoader
	first sync.Once
}

func (d *heldLoaderLoad) Append(ctx context.Context, rows []engine.Row) error {
	d.first.Do(func() {
		d.e.held.Store(true)
		<-d.e.release
	})
	return d.Load.Append(ctx, rows)
}

func (d *heldLoaderLoad) Finish(ctx context.Context) error {
	defer d.e.loads.Add(-1)
	return d.Load.Finish(ctx)
}

// TestFeedWaitsForAStartImport: the calls an account's store records while
// a StartImport loads into it (on the DuckDB engine, whose load streams
// into whole row groups) are not stored beside the load, however long it
// runs (each would be a row group of its own, docs/lake.md, "The feed waits
// for a load"); queries are answered meanwhile; after the load the first
// tick stores every one of them, once, and the import's records are all
// there.
func TestFeedWaitsForAStartImport(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	root := t.TempDir()
	const loaded = 300
	if err := os.WriteFile(filepath.Join(root, "load.json"), logFile("Loaded", loaded, "111111111111"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	he := &heldLoader{Engine: eng, release: make(chan struct{})}
	st := audittest.NewMemStore()
	l, err := Open(dir, Options{Engine: he, Feed: st, ImportRoots: []string{root}, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	srv := httptest.NewServer(NewTestAPI(l, st, keys))
	t.Cleanup(srv.Close)
	e := &env{lake: l, store: st, url: srv.URL}
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("imported"), RetentionPeriod: aws.Int32(3653)})
	if err != nil {
		t.Fatal(err)
	}
	id := storeID(out.EventDataStoreArn)
	l.feedTick(ctx)

	im, err := a.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{id},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("file://" + root), S3BucketRegion: aws.String("us-east-1"),
			S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	if err != nil {
		t.Fatal(err)
	}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(he.release) }) }
	t.Cleanup(release) // before Close, which waits for the import
	for !he.held.Load() {
		time.Sleep(time.Millisecond)
	}
	const fed = 5
	for range fed {
		if _, err := st.Append(ctx, []audit.Record{heldRecord(t, "111111111111", "Fed")}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(name string) string {
		return runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName LIKE '`+name+`%'`)[0]["n"]
	}
	for range 5 { // ticks over minutes of the load
		now.Add(int64(2 * feedMaxYield))
		l.feedTick(ctx)
		if n := count("Fed"); n != "0" { // a query answered during the load
			t.Fatalf("the store's own recorded calls stored %s times during its load; want them to wait for it", n)
		}
	}
	release()
	if g := waitImport(t, a, im.ImportId); g.ImportStatus != types.ImportStatusCompleted {
		t.Fatalf("import: %s", g.ImportStatus)
	}
	for deadline := time.Now().Add(10 * time.Second); he.loads.Load() > 0 || l.loading.Load() > 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the load did not end")
		}
	}
	if n := he.beside.Load(); n > 0 {
		t.Errorf("%d feed inserts of records while the load was in progress; want none", n)
	}
	for range 2 {
		l.feedTick(ctx)
		now.Add(int64(time.Second))
	}
	if n := count("Fed"); n != fmt.Sprint(fed) {
		t.Errorf("after the load: the recorded calls stored %s times; want %d, each once", n, fed)
	}
	if n := count("Loaded"); n != fmt.Sprint(loaded) {
		t.Errorf("after the load: %s imported events; want %d", n, loaded)
	}
}
