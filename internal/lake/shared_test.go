package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lake/postgres"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/pgtest"
	storepg "github.com/cairn-audit/cairn/internal/store/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// sharedPair opens two Lakes in the shared mode on one fresh database, as
// two nodes would: each its own engine connection and data dir, one
// registry (shared_state) and one query store. It returns them with the
// database's lease table.
func sharedPair(t testing.TB, opts Options) (a, b *Lake, leases lease.Table) {
	t.Helper()
	dsn := pgtest.Database(t)
	ctx := context.Background()
	st, err := storepg.Open(ctx, dsn, storepg.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	open := func(node string) *Lake {
		eng, err := postgres.Open(ctx, dsn, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		o := opts
		o.Engine, o.State, o.Shared, o.Queries, o.Node = eng, st.State(), true, eng, node
		l, err := Open(t.TempDir(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	return open("a"), open("b"), st.Leases()
}

// TestSharedRegistry: what one node changes, the other reads; changes
// made on both at once are all kept (compare-and-swap, applied again on
// a conflict), and a change is judged against the registry as stored (a
// name taken on the other node is refused).
func TestSharedRegistry(t *testing.T) {
	a, b, _ := sharedPair(t, Options{})
	ctx := context.Background()
	p := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	s, err := a.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("one")})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.EventDataStore(ctx, p, s.ID); err != nil || got.Name != "one" {
		t.Fatalf("B's EventDataStore(%s) = %+v, %v; want A's store", s.ID, got, err)
	}
	if _, err := b.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("one")}); auditCode(err) != audit.CodeEventDataStoreAlreadyExists {
		t.Errorf("B's CreateEventDataStore(one) = %v; want EventDataStoreAlreadyExists", err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		l := a
		if i%2 == 1 {
			l = b
		}
		wg.Go(func() {
			if _, err := l.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr(fmt.Sprintf("race-%d", i))}); err != nil {
				t.Errorf("CreateEventDataStore(race-%d): %v", i, err)
			}
			if err := l.AddTags(ctx, p, s.ARN(), []audit.Tag{{Key: fmt.Sprintf("k%d", i), Value: "v"}}); err != nil {
				t.Errorf("AddTags(k%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	for _, l := range []*Lake{a, b} {
		if got := l.EventDataStores(ctx, p); len(got) != 9 {
			t.Errorf("EventDataStores = %d stores; want 9", len(got))
		}
		if tags, err := l.ResourceTags(ctx, p, s.ARN()); err != nil || len(tags) != 8 {
			t.Errorf("ResourceTags = %v, %v; want the 8 tags added on both nodes", tags, err)
		}
	}
	if err := b.DeleteEventDataStore(ctx, p, s.ID); auditCode(err) != audit.CodeEventDataStoreTerminationProtected {
		t.Errorf("B's DeleteEventDataStore = %v; want EventDataStoreTerminationProtected", err)
	}
	if _, err := a.UpdateEventDataStore(ctx, p, UpdateStoreRequest{Store: s.ID, CreateStoreRequest: CreateStoreRequest{TerminationProtectionEnabled: ptr(false)}}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteEventDataStore(ctx, p, s.ID); err != nil {
		t.Errorf("B's DeleteEventDataStore after A lifted the protection = %v", err)
	}
	if got, _ := a.EventDataStore(ctx, p, s.ID); got.Status != StatusPendingDeletion {
		t.Errorf("A's store after B deleted it = %s; want PENDING_DELETION", got.Status)
	}
}

// TestSharedImportResumesAndIsFenced: an import started on one node runs
// on the node whose RunImports holds the imports' lease; a node whose
// fence is no longer the lease's writes nothing of it (ErrFenced) and
// leaves it IN_PROGRESS, and the lease's next holder resumes it to its
// end, each record stored once.
func TestSharedImportResumesAndIsFenced(t *testing.T) {
	src := t.TempDir()
	const files, perFile = 4, 50
	for f := range files {
		var recs []string
		for i := range perFile {
			k := f*perFile + i
			recs = append(recs, fmt.Sprintf(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"111111111111"},"eventTime":%q,"eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances","awsRegion":"us-east-1","eventID":"00000000-0000-4000-8000-%012d","eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`,
				time.Now().UTC().Add(-time.Hour).Add(time.Duration(k)*time.Second).Format(time.RFC3339), k))
		}
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%d.json", f)), []byte(`{"Records":[`+strings.Join(recs, ",")+`]}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, b, leases := sharedPair(t, Options{ImportRoots: []string{src}})
	ctx := context.Background()
	p := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	s, err := a.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("imp"), StartIngestion: ptr(false)})
	if err != nil {
		t.Fatal(err)
	}
	im, err := a.StartImport(ctx, p, ImportRequest{Destinations: []string{s.ID}, Source: src})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if got, _ := b.Import(ctx, p, im.ID); got.Status != ImportInitializing {
		t.Fatalf("the import with no node holding the lease is %s; want INITIALIZING (nothing runs it)", got.Status)
	}

	// Node A held the lease once; B holds it now: A's writes are fenced.
	tok, ok, err := leases.Acquire(ctx, "lake-imports", "a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	stale := lease.Fence{Lease: "lake-imports", Holder: "a", Token: tok}
	if err := leases.Release(ctx, stale); err != nil {
		t.Fatal(err)
	}
	tok, ok, err = leases.Acquire(ctx, "lake-imports", "b", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	current := lease.Fence{Lease: "lake-imports", Holder: "b", Token: tok}

	actx, cancel := context.WithCancel(lease.WithFence(ctx, stale))
	done := make(chan error, 1)
	go func() { done <- a.RunImports(actx) }()
	ran := false
	deadline := testwait.End(t)
	for {
		a.mu.Lock()
		cur := a.imports[im.ID]
		ran = cur != nil && cur.done != nil && closed(cur.done) && cur.bucket == nil && cur.path != ""
		a.mu.Unlock()
		if ran || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ran {
		t.Fatal("A's RunImports did not run the import before the test's deadline")
	}
	if err := <-done; !errors.Is(err, lease.ErrFenced) {
		t.Fatalf("A's RunImports with a fence no longer the lease's = %v; want ErrFenced", err)
	}
	cancel()
	if got, _ := b.Import(ctx, p, im.ID); got.Status != ImportInitializing && got.Status != ImportInProgress {
		t.Fatalf("the import after a fenced-off node ran it is %s; want it left for the lease's holder", got.Status)
	}
	res, err := b.Query(ctx, p.AccountID, `SELECT count(*) FROM `+s.ID)
	if err != nil || *res.Rows[0][0] != "0" {
		t.Fatalf("the store after a fenced-off import holds %v, %v; want nothing", res, err)
	}

	bctx, cancel := context.WithCancel(lease.WithFence(ctx, current))
	defer cancel()
	go func() { done <- b.RunImports(bctx) }()
	for deadline := testwait.End(t); ; time.Sleep(50 * time.Millisecond) {
		got, err := a.Import(ctx, p, im.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == ImportCompleted {
			if got.Stats.Events != files*perFile {
				t.Errorf("the resumed import's events = %d; want %d", got.Stats.Events, files*perFile)
			}
			break
		}
		if got.Status != ImportInitializing && got.Status != ImportInProgress || time.Now().After(deadline) {
			t.Fatalf("the import on the lease's holder is %s: %+v", got.Status, got)
		}
	}
	cancel()
	<-done
	res, err = a.Query(ctx, p.AccountID, `SELECT count(*), count(DISTINCT eventID) FROM `+s.ID)
	want := fmt.Sprint(files * perFile)
	if err != nil || *res.Rows[0][0] != want || *res.Rows[0][1] != want {
		t.Errorf("the store holds %v, %v; want each of the %s records once", res, err, want)
	}
}

// TestSharedQueries: a query started on one node is described, read,
// listed on the other, and cancelled there while it waits (its node stops
// it); another account reads none of it.
func TestSharedQueries(t *testing.T) {
	a, b, _ := sharedPair(t, Options{MaxRunningQueriesPerAccount: 1})
	ctx := context.Background()
	p := audit.Principal{AccountID: "111111111111", Region: "us-east-1"}
	s, err := a.CreateEventDataStore(ctx, p, CreateStoreRequest{Name: ptr("queries")})
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.StartQuery(ctx, p, `SELECT 1 AS one, NULL AS nothing FROM `+s.ID+` UNION ALL SELECT 2, 'x'`)
	if err != nil {
		t.Fatal(err)
	}
	var rs ResultSet
	for deadline := testwait.End(t); ; time.Sleep(20 * time.Millisecond) {
		rs, err = b.QueryResults(ctx, p, QueryRef{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		if rs.State == QueryFinished || time.Now().After(deadline) {
			break
		}
	}
	if rs.State != QueryFinished || rs.Rows != 1 || fmt.Sprint(rs.Columns) != "[one nothing]" {
		t.Fatalf("B's QueryResults of A's query = %+v", rs)
	}
	rows, err := rs.Page(0, 10)
	if err != nil || len(rows) != 1 || *rows[0][0] != "2" || *rows[0][1] != "x" {
		t.Fatalf("B's page = %v, %v", rows, err)
	}
	if info, err := b.DescribeQuery(ctx, p, QueryRef{ID: id, Store: s.ID}); err != nil || info.State != QueryFinished || info.Matched != 1 {
		t.Errorf("B's DescribeQuery = %+v, %v", info, err)
	}
	if list, err := b.Queries(ctx, p, QueriesRequest{Store: s.ID}); err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("B's Queries = %+v, %v; want A's query", list, err)
	}
	other := audit.Principal{AccountID: "222222222222", Region: "us-east-1"}
	if _, err := b.QueryResults(ctx, other, QueryRef{ID: id}); auditCode(err) != audit.CodeQueryIdNotFound {
		t.Errorf("another account's QueryResults on B = %v; want QueryIdNotFound", err)
	}
	// The same hostile calls of another account through B, which reads
	// the query from the shared store: nothing of A's account shows.
	if _, err := b.DescribeQuery(ctx, other, QueryRef{ID: id}); auditCode(err) != audit.CodeQueryIdNotFound {
		t.Errorf("another account's DescribeQuery on B = %v; want QueryIdNotFound", err)
	}
	if _, err := b.QueryResults(ctx, other, QueryRef{ID: id, Store: s.ID}); auditCode(err) != audit.CodeQueryIdNotFound &&
		auditCode(err) != audit.CodeEventDataStoreNotFound {
		t.Errorf("another account's QueryResults naming A's store on B = %v; want QueryIdNotFound or EventDataStoreNotFound", err)
	}
	if list, err := b.Queries(ctx, other, QueriesRequest{Store: s.ID}); auditCode(err) != audit.CodeEventDataStoreNotFound {
		t.Errorf("another account's ListQueries of A's store on B = %+v, %v; want EventDataStoreNotFound", list, err)
	}
	if _, err := b.CancelQuery(ctx, p, QueryRef{ID: id}); auditCode(err) != audit.CodeInactiveQuery {
		t.Errorf("B's CancelQuery of a finished query = %v; want InactiveQuery", err)
	}

	// A query waiting on A (its account's one running slot is taken by
	// a long one) is cancelled on B.
	var rows4 []engine.Row
	for i := range 300 {
		rows4 = append(rows4, engine.Row{Store: s.ID, Raw: []byte(fmt.Sprintf(`{"eventID":"e%d","eventName":"X","recipientAccountId":"111111111111","eventTime":"2026-01-01T00:00:00Z"}`, i))})
	}
	if err := a.eng.Insert(ctx, rows4, 0); err != nil {
		t.Fatal(err)
	}
	long, err := a.StartQuery(ctx, p, `SELECT count(*) FROM `+s.ID+` CROSS JOIN `+s.ID+` b CROSS JOIN `+s.ID+` c CROSS JOIN `+s.ID+` d`)
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := a.StartQuery(ctx, p, `SELECT 1 FROM `+s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CancelQuery(ctx, other, QueryRef{ID: waiting}); auditCode(err) != audit.CodeQueryIdNotFound {
		t.Errorf("another account's CancelQuery of A's waiting query on B = %v; want QueryIdNotFound", err)
	}
	if info, err := a.DescribeQuery(ctx, p, QueryRef{ID: waiting}); err != nil || info.State != QueryQueued && info.State != QueryRunning {
		t.Fatalf("A's waiting query after another account's CancelQuery = %+v, %v; want it still waiting", info, err)
	}
	if info, err := b.CancelQuery(ctx, p, QueryRef{ID: waiting}); err != nil || info.State != QueryCancelled {
		t.Fatalf("B's CancelQuery of A's waiting query = %+v, %v", info, err)
	}
	for deadline := testwait.End(t); ; time.Sleep(50 * time.Millisecond) {
		info, err := a.DescribeQuery(ctx, p, QueryRef{ID: waiting})
		if err == nil && info.State == QueryCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's query after B cancelled it = %+v, %v; want CANCELLED", info, err)
		}
	}
	if _, err := a.CancelQuery(ctx, p, QueryRef{ID: long}); err != nil {
		t.Fatal(err)
	}
}

// auditCode is err's code (an *audit.Error's), or "".
func auditCode(err error) audit.Code {
	var ae *audit.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// TestSharedCancelKeepsToItsAccount: the shared store's CancelQuery
// cancels only the named account's query; another account's call, which
// Lake refuses before it gets there, changes and shows nothing.
func TestSharedCancelKeepsToItsAccount(t *testing.T) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, pgtest.Database(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := SharedQuery{ID: "q-1", Account: "111111111111", Statement: "SELECT 1", State: QueryRunning, Node: "a",
		Stores: []string{"s"}, Created: time.Now().UTC()}
	if err := db.SaveQuery(ctx, q); err != nil {
		t.Fatal(err)
	}
	if r, ok, err := db.CancelQuery(ctx, "222222222222", q.ID); err != nil || ok || r.ID != "" {
		t.Errorf("another account's CancelQuery = %+v, %v, %v; want nothing", r, ok, err)
	}
	if r, _, err := db.LoadQuery(ctx, q.ID); err != nil || r.State != QueryRunning {
		t.Errorf("after another account's CancelQuery the query is %+v, %v; want RUNNING", r, err)
	}
	if r, ok, err := db.CancelQuery(ctx, q.Account, q.ID); err != nil || !ok || r.State != QueryCancelled {
		t.Errorf("the account's CancelQuery = %+v, %v, %v; want CANCELLED", r, ok, err)
	}
}
