package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"

	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// TestTwoNodesShareLake runs two `cairn serve` on one PostgreSQL database
// (each with its own data dir) and drives CloudTrail Lake through
// aws-sdk-go-v2: an event data store created on node A is listed and
// guarded on B (and invisible to another account); calls made through A's
// API reach the store (the feed runs on whichever node holds its lease)
// and B's queries count them; a query started on A is described, listed
// and read page by page on B (and not by another account); an import
// started on B runs to its end and A counts what it imported; stores
// created on both nodes at once are all kept (compare-and-swap).
func TestTwoNodesShareLake(t *testing.T) {
	dsn := pgtest.Database(t)
	logs := aliceLogs(t, "plaso")
	cfg := fmt.Sprintf(twoAccounts, 0) + fmt.Sprintf("store:\n  postgres: %q\n", dsn) +
		"lake:\n  import_roots: [" + logs + "]\n  ingest_interval: 50ms\n"
	a := startServer(t, cfg, "")
	b := startServer(t, cfg, "")
	ctx := context.Background()
	ca, cb := alice(a), alice(b)
	bobB := b.client("AKIABOB0000000000001", "bob-secret-key", "us-east-1")

	st, err := ca.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("shared"), RetentionPeriod: aws.Int32(3653)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(st.EventDataStoreArn)
	id := arn[strings.LastIndex(arn, "/")+1:]

	t.Run("StoreCreatedOnAListedOnB", func(t *testing.T) {
		l, err := cb.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{})
		if err != nil || len(l.EventDataStores) != 1 || aws.ToString(l.EventDataStores[0].EventDataStoreArn) != arn {
			t.Fatalf("node B's ListEventDataStores = %+v, %v; want A's store", l, err)
		}
		if _, err := cb.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("shared")}); errCode(err) != "EventDataStoreAlreadyExistsException" {
			t.Errorf("node B's CreateEventDataStore of A's name = %v; want EventDataStoreAlreadyExistsException", err)
		}
		if l, err := bobB.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{}); err != nil || len(l.EventDataStores) != 0 {
			t.Errorf("bob's ListEventDataStores on B = %+v, %v; want none", l, err)
		}
		if _, err := bobB.GetEventDataStore(ctx, &cloudtrail.GetEventDataStoreInput{EventDataStore: aws.String(arn)}); errCode(err) != "EventDataStoreNotFoundException" {
			t.Errorf("bob's GetEventDataStore of alice's store on B = %v; want EventDataStoreNotFoundException", err)
		}
	})

	// query runs stmt on c and returns its rows once it finished.
	query := func(t *testing.T, c *cloudtrail.Client, stmt string) (string, [][]map[string]string) {
		t.Helper()
		q, err := c.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)})
		if err != nil {
			t.Fatal(err)
		}
		qid := aws.ToString(q.QueryId)
		return qid, results(t, c, qid)
	}

	t.Run("EventsThroughAQueriedOnB", func(t *testing.T) {
		const calls = 5
		for range calls {
			if _, err := ca.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{}); err != nil {
				t.Fatal(err)
			}
		}
		stmt := `SELECT count(*) FROM ` + id + ` WHERE eventName = 'ListEventDataStores' AND userIdentity.accountId = '111111111111'`
		deadline := testwait.End(t)
		for {
			_, rows := query(t, cb, stmt)
			n := -1
			if len(rows) == 1 && len(rows[0]) == 1 {
				for _, v := range rows[0][0] {
					n, _ = strconv.Atoi(v)
				}
			}
			if n >= calls+1 { // and B's ListEventDataStores of the subtest before
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node B counts %d ListEventDataStores calls in the store at the test's deadline; want %d", n, calls+1)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("QueryStartedOnAReadOnB", func(t *testing.T) {
		stmt := `SELECT eventName, count(*) AS n FROM ` + id + ` GROUP BY eventName ORDER BY eventName`
		qid, onA := query(t, ca, stmt)
		if len(onA) < 2 {
			t.Fatalf("node A's result = %v; want a row per event name", onA)
		}
		d, err := cb.DescribeQuery(ctx, &cloudtrail.DescribeQueryInput{QueryId: aws.String(qid), EventDataStore: aws.String(arn)})
		if err != nil || d.QueryStatus != types.QueryStatusFinished || aws.ToString(d.QueryString) != stmt ||
			d.QueryStatistics == nil || aws.ToInt64(d.QueryStatistics.EventsMatched) != int64(len(onA)) {
			t.Fatalf("node B's DescribeQuery of A's query = %+v, %v", d, err)
		}
		// page by page on B, one row a page
		var onB [][]map[string]string
		in := &cloudtrail.GetQueryResultsInput{QueryId: aws.String(qid), MaxQueryResults: aws.Int32(1)}
		for {
			out, err := cb.GetQueryResults(ctx, in)
			if err != nil {
				t.Fatalf("node B's GetQueryResults of A's query: %v", err)
			}
			onB = append(onB, out.QueryResultRows...)
			if out.NextToken == nil {
				break
			}
			in.NextToken = out.NextToken
		}
		if fmt.Sprint(onB) != fmt.Sprint(onA) {
			t.Errorf("node B's results of A's query:\n%v\nwant A's:\n%v", onB, onA)
		}
		l, err := cb.ListQueries(ctx, &cloudtrail.ListQueriesInput{EventDataStore: aws.String(arn)})
		found := false
		for _, q := range l.Queries {
			found = found || aws.ToString(q.QueryId) == qid
		}
		if err != nil || !found {
			t.Errorf("node B's ListQueries = %+v, %v; want A's query %s", l, err, qid)
		}
		if _, err := bobB.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: aws.String(qid)}); errCode(err) != "QueryIdNotFoundException" {
			t.Errorf("bob's GetQueryResults of alice's query on B = %v; want QueryIdNotFoundException", err)
		}
		if _, err := cb.CancelQuery(ctx, &cloudtrail.CancelQueryInput{QueryId: aws.String(qid)}); errCode(err) != "InactiveQueryException" {
			t.Errorf("node B's CancelQuery of A's finished query = %v; want InactiveQueryException", err)
		}
	})

	t.Run("ImportStartedOnBCountedOnA", func(t *testing.T) {
		s2, err := ca.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("imported"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
		if err != nil {
			t.Fatal(err)
		}
		arn2 := aws.ToString(s2.EventDataStoreArn)
		id2 := arn2[strings.LastIndex(arn2, "/")+1:]
		im, err := cb.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{arn2},
			ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("file://" + filepath.Join(logs, "plaso")),
				S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
		if err != nil {
			t.Fatal(err)
		}
		g := waitImport(t, ca, aws.ToString(im.ImportId))
		if g.ImportStatus != types.ImportStatusCompleted || g.ImportStatistics == nil || aws.ToInt64(g.ImportStatistics.EventsCompleted) == 0 {
			t.Fatalf("node A's GetImport of B's import = %+v; want COMPLETED with events", g)
		}
		_, rows := query(t, ca, `SELECT count(*) FROM `+id2)
		want := strconv.FormatInt(aws.ToInt64(g.ImportStatistics.EventsCompleted), 10)
		if len(rows) != 1 || fmt.Sprint(rows[0]) != "[map[_col0:"+want+"]]" {
			t.Errorf("node A counts %v in the imported store; want %s", rows, want)
		}
	})

	t.Run("StoresCreatedOnBothAtOnce", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for i := range 6 {
			c := ca
			if i%2 == 1 {
				c = cb
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := c.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String(fmt.Sprintf("race-%d", i)), StartIngestion: aws.Bool(false)})
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("CreateEventDataStore: %v", err)
			}
		}
		for _, c := range []*cloudtrail.Client{ca, cb} {
			l, err := c.ListEventDataStores(ctx, &cloudtrail.ListEventDataStoresInput{})
			if err != nil || len(l.EventDataStores) != 8 {
				t.Errorf("ListEventDataStores = %d stores, %v; want 8 (2 + 6 made at once on both nodes)", len(l.EventDataStores), err)
			}
		}
	})
}

// results waits for query qid to finish on c and returns its rows.
func results(t *testing.T, c *cloudtrail.Client, qid string) [][]map[string]string {
	t.Helper()
	ctx := context.Background()
	deadline := testwait.End(t)
	for {
		out, err := c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: aws.String(qid)})
		if err != nil {
			t.Fatal(err)
		}
		switch out.QueryStatus {
		case types.QueryStatusFinished:
			rows := out.QueryResultRows
			for out.NextToken != nil {
				out, err = c.GetQueryResults(ctx, &cloudtrail.GetQueryResultsInput{QueryId: aws.String(qid), NextToken: out.NextToken})
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, out.QueryResultRows...)
			}
			return rows
		case types.QueryStatusFailed, types.QueryStatusCancelled, types.QueryStatusTimedOut:
			t.Fatalf("query %s: %s %s", qid, out.QueryStatus, aws.ToString(out.ErrorMessage))
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s still %s at the test's deadline", qid, out.QueryStatus)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitImport waits until import id ends (as c's node sees it) and returns
// it.
func waitImport(t *testing.T, c *cloudtrail.Client, id string) *cloudtrail.GetImportOutput {
	t.Helper()
	deadline := testwait.End(t)
	for {
		g, err := c.GetImport(context.Background(), &cloudtrail.GetImportInput{ImportId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		if g.ImportStatus != types.ImportStatusInitializing && g.ImportStatus != types.ImportStatusInProgress {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("import %s still %s at the test's deadline", id, g.ImportStatus)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterLakeImportResumes: two `cairn serve` processes on one
// PostgreSQL database; an import started through one of them runs on the
// node holding the lake-imports lease, which is killed with SIGKILL once
// part of the import is committed. The other node takes the lease and
// resumes the import from the start (skipping what the store holds): it
// ends COMPLETED and the store holds every record of the source exactly
// once, as both nodes answer.
func TestClusterLakeImportResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two servers and waits for a lease to expire")
	}
	dsn := pgtest.Database(t)
	work := t.TempDir()
	src := filepath.Join(work, "logs")
	const files, perFile = 40, 5000
	writeSyntheticLogs(t, src, files, perFile)
	type node struct {
		id, dataDir, cfgPath, logPath string
		proc                          *serverProcess
	}
	nodes := make([]*node, 2)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("node-%d", i+1)}
		n.dataDir, n.cfgPath, n.logPath = filepath.Join(work, n.id), filepath.Join(work, n.id+".yaml"), filepath.Join(work, n.id+".log")
		writeFile(t, n.cfgPath, fmt.Sprintf(twoAccounts, 0)+fmt.Sprintf("store:\n  postgres: %q\ncluster:\n  node_id: %s\nlake:\n  import_roots: [%s]\n", dsn, n.id, src))
		nodes[i] = n
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s log:\n%s", n.id, tail(n.logPath))
			}
		}
	}()
	for _, n := range nodes {
		n.proc = startServerProcess(t, n.dataDir, n.cfgPath, n.logPath)
	}
	ctx := context.Background()
	client := func(n *node) *cloudtrail.Client {
		return (&testServer{endpoint: n.proc.endpoint}).client("AKIAALICE00000000001", "alice-secret-key", "us-east-1")
	}
	// holder returns the node holding the lake-imports lease.
	holder := func() *node {
		for deadline := testwait.End(t); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var held []*node
			for _, n := range nodes {
				if l, ok := leasesHeld(n.proc.endpoint); ok && slices.Contains(l, leaseLakeImports) {
					held = append(held, n)
				}
			}
			if len(held) == 1 {
				return held[0]
			}
		}
		t.Fatalf("no single holder of %s before the test's deadline", leaseLakeImports)
		return nil
	}
	victim := holder()
	var other *node
	for _, n := range nodes {
		if n != victim {
			other = n
		}
	}
	// The import is started through the node that does not run it.
	co := client(other)
	st, err := co.CreateEventDataStore(ctx, &cloudtrail.CreateEventDataStoreInput{Name: aws.String("resumed"), RetentionPeriod: aws.Int32(3653), StartIngestion: aws.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(st.EventDataStoreArn)
	id := arn[strings.LastIndex(arn, "/")+1:]
	im, err := co.StartImport(ctx, &cloudtrail.StartImportInput{Destinations: []string{arn},
		ImportSource: &types.ImportSource{S3: &types.S3ImportSource{S3LocationUri: aws.String("file://" + src),
			S3BucketRegion: aws.String("us-east-1"), S3BucketAccessRoleArn: aws.String("arn:aws:iam::111111111111:role/x")}}})
	if err != nil {
		t.Fatal(err)
	}
	count := func(c *cloudtrail.Client) int {
		_, rows := func() (string, [][]map[string]string) {
			q, err := c.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(`SELECT count(*) AS n FROM ` + id)})
			if err != nil {
				t.Fatal(err)
			}
			return "", results(t, c, aws.ToString(q.QueryId))
		}()
		n, _ := strconv.Atoi(rows[0][0]["n"])
		return n
	}
	// Kill the import's node once part of it is committed.
	var part int
	for deadline := testwait.End(t); ; time.Sleep(200 * time.Millisecond) {
		g, err := co.GetImport(ctx, &cloudtrail.GetImportInput{ImportId: im.ImportId})
		if err != nil {
			t.Fatal(err)
		}
		if g.ImportStatus != types.ImportStatusInProgress && g.ImportStatus != types.ImportStatusInitializing {
			t.Fatalf("the import ended (%s) before a part of it was seen committed; make the source larger", g.ImportStatus)
		}
		if part = count(co); part > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no part of the import committed before the test's deadline")
		}
	}
	victim.proc.kill()
	t.Logf("SIGKILL of %s with %d of %d records imported", victim.id, part, files*perFile)
	if part >= files*perFile {
		t.Fatalf("the whole import (%d) was committed before the kill; make the source larger", part)
	}
	nodes = []*node{other}
	if h := holder(); h != other {
		t.Fatalf("lake-imports held by %s; want %s", h.id, other.id)
	}
	g := waitImport(t, co, aws.ToString(im.ImportId))
	if g.ImportStatus != types.ImportStatusCompleted {
		t.Fatalf("the resumed import ended %s; want COMPLETED: %+v", g.ImportStatus, g)
	}
	if n := count(co); n != files*perFile {
		t.Errorf("the store holds %d records after the resumed import; want each of the %d once", n, files*perFile)
	}
	if got := aws.ToInt64(g.ImportStatistics.EventsCompleted); got != files*perFile {
		t.Errorf("EventsCompleted = %d; want %d", got, files*perFile)
	}
}

// writeSyntheticLogs writes files CloudTrail log files of perFile
// management events each (distinct event IDs, the last days' times) under
// dir.
func writeSyntheticLogs(t *testing.T, dir string, files, perFile int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	names := []string{"ListBuckets", "DescribeInstances", "GetCallerIdentity", "AssumeRole"}
	for f := range files {
		var b strings.Builder
		b.WriteString(`{"Records":[`)
		for i := range perFile {
			if i > 0 {
				b.WriteByte(',')
			}
			k := f*perFile + i
			fmt.Fprintf(&b, `{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAALICE","arn":"arn:aws:iam::111111111111:user/alice","accountId":"111111111111","accessKeyId":"AKIAALICE00000000001","userName":"alice"},"eventTime":%q,"eventSource":"ec2.amazonaws.com","eventName":%q,"awsRegion":"us-east-1","sourceIPAddress":"10.0.%d.%d","userAgent":"aws-cli/2.15.0","requestParameters":{"n":"%d"},"responseElements":null,"requestID":"req-%08d","eventID":"00000000-0000-4000-8000-%012d","readOnly":true,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"111111111111","eventCategory":"Management"}`,
				base.Add(time.Duration(k)*time.Millisecond).Format(time.RFC3339), names[k%len(names)], k/256%256, k%256, k, k, k)
		}
		b.WriteString(`]}`)
		writeFile(t, filepath.Join(dir, fmt.Sprintf("111111111111_CloudTrail_us-east-1_%04d.json", f)), b.String())
	}
}
