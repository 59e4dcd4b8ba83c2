package lake

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// heldLoad is a DuckDB engine whose load transactions (Inserts of more
// than 4,096 rows without a position) wait for release before they run,
// and which counts the feed's inserts and the checkpoints made meanwhile.
type heldLoad struct {
	engine.Engine
	release     chan struct{}
	held        atomic.Bool
	fedBeside   atomic.Int64 // feed inserts while a load is held
	ckptsBeside atomic.Int64 // checkpoints while a load is held
}

func (e *heldLoad) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	if pos == 0 && len(rows) > 4096 {
		e.held.Store(true)
		<-e.release
		e.held.Store(false)
	} else if pos > 0 && e.held.Load() {
		e.fedBeside.Add(1)
	}
	return e.Engine.Insert(ctx, rows, pos)
}

func (e *heldLoad) Checkpoint(ctx context.Context) error {
	if e.held.Load() {
		e.ckptsBeside.Add(1)
	}
	return e.Engine.Checkpoint(ctx)
}

// TestFeedBesideALoad: while a load's transaction is in progress, Run's
// tick inserts the feed's records (the engine's writes run side by side)
// but does not checkpoint (a checkpoint runs alone: it would wait for the
// load's transaction and hold off the load's next one, and the load's two
// appenders would take turns). Session 21's feed yielded to a load for up
// to 30 s instead, because its insert took the engine's write lock alone.
func TestFeedBesideALoad(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	he := &heldLoad{Engine: eng, release: make(chan struct{})}
	st := audittest.NewMemStore()
	l, err := Open(dir, Options{Engine: he, Feed: st})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(NewTestAPI(l, st, keys))
	defer srv.Close()
	a := (&env{lake: l, store: st, url: srv.URL}).client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	out, err := a.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("yields")})
	if err != nil {
		t.Fatal(err)
	}
	id := storeID(out.EventDataStoreArn)
	record := func(name string) audit.Record {
		r, err := audit.Extract(fmt.Appendf(nil, `{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"%s","awsRegion":"us-east-1","eventID":"%s","recipientAccountId":"111111111111"}`, name, audit.NewID()))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
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
	if rows := runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName = 'Fed'`); rows[0]["n"] != "1" {
		t.Errorf("Fed events stored during the load: %s; want 1", rows[0]["n"])
	}
	close(he.release)
	if err := <-loaded; err != nil {
		t.Fatal(err)
	}
	if n := he.fedBeside.Load(); n == 0 {
		t.Error("no feed insert while a load's transaction was in progress; want the tick's")
	}
	if n := he.ckptsBeside.Load(); n > 0 {
		t.Errorf("%d checkpoints while a load's transaction was in progress; want none", n)
	}
	for name, want := range map[string]string{"Fed": "1", "Loaded": "5000"} {
		if rows := runQuery(t, a, `SELECT COUNT(*) AS n FROM `+id+` WHERE eventName = '`+name+`'`); rows[0]["n"] != want {
			t.Errorf("%s events stored: %s; want %s", name, rows[0]["n"], want)
		}
	}
}

// TestALoadDoesNotDelayOtherAccounts: hostile tenant. Account A's load
// that never ends (one held transaction; back-to-back imports look the
// same to the feed) does not keep account B's recorded calls out of B's
// store: the first tick after B's call stores it, with A's load still in
// progress, and B can query its event at once. (Session 21 bounded the
// delay at 30 s, feedMaxYield, the feed yielding to the load.)
func TestALoadDoesNotDelayOtherAccounts(t *testing.T) {
	dir := t.TempDir()
	eng, err := duckdb.Open(filepath.Join(dir, DBFile), duckdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	he := &heldLoad{Engine: eng, release: make(chan struct{})}
	st := audittest.NewMemStore()
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	l, err := Open(dir, Options{Engine: he, Feed: st, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(NewTestAPI(l, st, keys))
	defer srv.Close()
	e := &env{lake: l, store: st, url: srv.URL}
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
	record := func(account, name string) audit.Record {
		r, err := audit.Extract(fmt.Appendf(nil, `{"eventVersion":"1.09","eventTime":"2026-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"%s","awsRegion":"us-east-1","eventID":"%s","recipientAccountId":"%s"}`, name, audit.NewID(), account))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
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
	if _, err := st.Append(ctx, []audit.Record{record("222222222222", "Neighbour")}); err != nil {
		t.Fatal(err)
	}
	count := func() string {
		return runQuery(t, b, `SELECT COUNT(*) AS n FROM `+idB+` WHERE eventName = 'Neighbour'`)[0]["n"]
	}
	now.Add(int64(time.Second))
	l.feedTick(ctx)
	if n := count(); n != "1" {
		t.Errorf("B's event stored %s times at the first tick after it, A's load still in progress; want 1", n)
	}
}
