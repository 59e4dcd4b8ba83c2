package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/audit"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/pgtest"
	"github.com/cairn-audit/cairn/internal/testaddr"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// leaseHeld matches a cairn_lease_held sample of /metrics.
var leaseHeld = regexp.MustCompile(`^cairn_lease_held\{lease="([^"]+)"\} (\S+)$`)

// leasesHeld returns the leases the node at endpoint holds (its
// cairn_lease_held samples at 1), and whether it answered.
func leasesHeld(endpoint string) ([]string, bool) {
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	var held []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if m := leaseHeld.FindStringSubmatch(sc.Text()); m != nil && m[2] == "1" {
			held = append(held, m[1])
		}
	}
	return held, true
}

// TestServeLeasesEmbedded: one node without PostgreSQL holds every lease
// of the work it runs (Local), shown in /metrics, and --node-id refuses a
// name that is not host-name-like (exit 2, as any bad flag).
func TestServeLeasesEmbedded(t *testing.T) {
	ts := startServer(t, fmt.Sprintf(twoAccounts, 90), "")
	want := []string{leaseDelivery, leaseInsights, leaseRetention}
	testwait.UntilNil(t, fmt.Sprintf("the one node holding %v", want), func() error {
		held, _ := leasesHeld(ts.endpoint)
		slices.Sort(held)
		if !slices.Equal(held, want) {
			return fmt.Errorf("held %v", held)
		}
		return nil
	})
	for _, id := range []string{"a b", "node/1", "é", strings.Repeat("n", 129), "-\x00"} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"serve", "--node-id", id, "--listen", "127.0.0.1:0", "--data-dir", t.TempDir()}, &out, &errOut); code != 2 {
			t.Errorf("serve --node-id %q = exit %d; want 2 (%s)", id, code, errOut.String())
		}
	}
}

// TestClusterThreeNodes is issue 18's cluster test: three `cairn serve`
// processes on one PostgreSQL database, 4 clients writing to whichever
// node, through the API (ImportRecords: acknowledged once in PostgreSQL)
// and the gateway (S3 CreateBucket, moto_server upstream), and
// the node holding the delivery lease killed with SIGKILL while trails
// deliver. It checks:
//   - each lease is held by exactly one node, before and after; SIGHUP
//     (a rule reload) leaves every node serving, detect lease or not;
//   - an event acknowledged by one node is found by LookupEvents on
//     another at once (the store is shared; no node caches), and a write
//     call's record, acknowledged once journaled, shortly after (logged);
//   - the killed node's leases move to a survivor within 15 s (issue
//     18), checked from the lease rows' times and the TTL and retry in use
//     (10 s + 2 s), not from how fast a loaded machine ran the test;
//   - no acknowledged event is lost (the killed node restarted on its data
//     dir replays its journal);
//   - every event the trail selects is in exactly one delivered log file
//     and validate-logs accepts the digest chain across the failover: this
//     part needs the trails registry and digest chains shared in
//     PostgreSQL (issue 18 item 2) and is skipped, saying so, while a
//     trail created on one node is unknown to the others.
func TestClusterThreeNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three servers and waits for a lease to expire")
	}
	dsn := pgtest.Database(t)
	moto := mototest.Start(t)
	ctx := context.Background()
	s3c := newS3(moto, "x", "y", 0)
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("audit-logs")}); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	type node struct {
		id, dataDir, cfgPath, logPath string
		gateway                       string // the gateway's address
		proc                          *serverProcess
		dead                          atomic.Bool
	}
	nodes := make([]*node, 3)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("node-%d", i+1)}
		n.dataDir, n.cfgPath, n.logPath = filepath.Join(work, n.id), filepath.Join(work, n.id+".yaml"), filepath.Join(work, n.id+".log")
		n.gateway = testaddr.Free(t)
		writeFile(t, n.cfgPath, fmt.Sprintf(twoAccounts, 90)+fmt.Sprintf(`buckets:
  - name: audit-logs
    s3: {endpoint: %q, region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
delivery:
  interval: 1s
  digest_interval: 2s
store:
  postgres: %q
cluster:
  node_id: %s
detections:
  builtin: true
gateway:
  listen: %s
  upstreams:
    default: %s
`, moto, dsn, n.id, n.gateway, moto))
		nodes[i] = n
	}
	defer func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("%s log:\n%s", n.id, tail(n.logPath))
			}
		}
	}()
	var starting sync.WaitGroup
	for _, n := range nodes {
		// The first start migrates; the others wait on its lock.
		starting.Go(func() { n.proc = startServerProcess(t, n.dataDir, n.cfgPath, n.logPath) })
	}
	starting.Wait()
	if t.Failed() {
		return
	}

	// holders returns, for each lease, the live nodes holding it.
	holders := func() map[string][]string {
		out := map[string][]string{}
		for _, n := range nodes {
			if n.dead.Load() {
				continue
			}
			held, _ := leasesHeld(n.proc.endpoint)
			for _, l := range held {
				out[l] = append(out[l], n.id)
			}
		}
		return out
	}
	// settled waits until each of leases has exactly one holder among
	// the live nodes, failing if one ever has two, and returns them.
	settled := func(leases ...string) map[string]string {
		t.Helper()
		var one map[string]string
		testwait.UntilNil(t, fmt.Sprintf("leases %v held by one node each", leases), func() error {
			h := holders()
			one = map[string]string{}
			for l, ns := range h {
				if len(ns) > 1 {
					t.Fatalf("lease %s held by %v at once", l, ns)
				}
				one[l] = ns[0]
			}
			if len(one) >= len(leases) && !slices.ContainsFunc(leases, func(l string) bool { return one[l] == "" }) {
				return nil
			}
			return fmt.Errorf("holders %v", h)
		})
		return one
	}
	before := settled(leaseDelivery, leaseInsights, leaseRetention, leaseDetect)
	t.Logf("leases: %v", before)
	// SIGHUP reloads detection rules on every node, holding the detect
	// lease or not (uncaught, it would end the process).
	for _, n := range nodes {
		n.proc.cmd.Process.Signal(syscall.SIGHUP)
	}
	time.Sleep(500 * time.Millisecond)
	for _, n := range nodes {
		if _, ok := leasesHeld(n.proc.endpoint); !ok {
			t.Fatalf("%s does not answer after SIGHUP", n.id)
		}
	}

	client := func(n *node) *cloudtrail.Client {
		return newCloudTrail(n.proc.endpoint, "us-east-1", "AKIAALICE00000000001", "alice-secret-key", 3)
	}
	// A write call's record (acknowledged once in the node's journal,
	// stored within 200 ms) reaches the other nodes' LookupEvents: the
	// delay is logged (docs/scale.md), not asserted.
	var slowest time.Duration
	for i, n := range nodes {
		_, err := client(n).DeleteTrail(ctx, &cloudtrail.DeleteTrailInput{Name: aws.String(fmt.Sprintf("ghost-%d", i))})
		if errCode(err) != "TrailNotFoundException" {
			t.Fatalf("DeleteTrail of no trail on %s = %v; want TrailNotFoundException", n.id, err)
		}
		acked := time.Now()
		for _, other := range nodes {
			if other == n {
				continue
			}
			testwait.UntilNil(t, fmt.Sprintf("%s finding the %dth DeleteTrail event, acknowledged by %s", other.id, i+1, n.id), func() error {
				evs := lookupAll(t, client(other), &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventName, "DeleteTrail")})
				if len(evs) != i+1 {
					return fmt.Errorf("%d DeleteTrail events", len(evs))
				}
				return nil
			})
			slowest = max(slowest, time.Since(acked))
		}
	}
	t.Logf("a write call acknowledged by one node was found on the others within %v at most", slowest.Round(time.Millisecond))
	ct := client(nodes[0])
	created, err := ct.CreateTrail(ctx, &cloudtrail.CreateTrailInput{Name: aws.String("org-audit"), S3BucketName: aws.String("audit-logs"),
		EnableLogFileValidation: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ct.StartLogging(ctx, &cloudtrail.StartLoggingInput{Name: created.TrailARN}); err != nil {
		t.Fatal(err)
	}
	// A trail created through one node is every node's only once the
	// registry is shared (issue 18 item 2).
	shared, err := client(nodes[1]).DescribeTrails(ctx, &cloudtrail.DescribeTrailsInput{TrailNameList: []string{aws.ToString(created.TrailARN)}})
	sharedTrails := err == nil && len(shared.TrailList) == 1
	from := time.Now().Truncate(time.Second).Add(time.Second)
	time.Sleep(time.Until(from))

	// 4 clients, each sending to the live nodes in turn: three import
	// records through the API and, after some of their acknowledged
	// imports, look the records up on another node at once; the fourth
	// creates S3 buckets through the nodes' gateways (moto_server
	// upstream), its calls recorded once journaled.
	var (
		wg          sync.WaitGroup
		stop        = make(chan struct{})
		ackMu       sync.Mutex
		acked       = map[string]bool{} // eventIDs of acknowledged imports
		buckets     = map[string]bool{} // buckets created through a gateway
		written     atomic.Int64
		seq         atomic.Int64
		crossChecks atomic.Int64
	)
	live := func(k int) *node {
		for {
			if n := nodes[k%len(nodes)]; !n.dead.Load() {
				return n
			}
			k++
		}
	}
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			to := live(k)
			name := fmt.Sprintf("gw-%d", k)
			_, err := newS3("http://"+to.gateway, "AKIAALICE00000000001", "alice-secret-key", 1).CreateBucket(ctx,
				&s3.CreateBucketInput{Bucket: aws.String(name)})
			if err == nil {
				ackMu.Lock()
				buckets[name] = true
				ackMu.Unlock()
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	for c := range 3 {
		wg.Go(func() {
			for k := c; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				to := live(k)
				sink := cairnclient.NewImporter(cairnclient.ImporterConfig{Endpoint: to.proc.endpoint, Region: "us-east-1", MaxAttempts: 1,
					HTTPClient:  &http.Client{Timeout: 30 * time.Second},
					Credentials: credentials.NewStaticCredentialsProvider("AKIAALICE00000000001", "alice-secret-key", "")})
				recs := make([]audit.Record, 10)
				ids := make([]string, len(recs))
				for i := range recs {
					n := int(seq.Add(1))
					recs[i].Raw = crashRecord(n, time.Now())
					ids[i] = fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)
				}
				res, fails, err := sink.AppendReport(ctx, recs)
				if err != nil || len(fails) > 0 || res.Inserted != len(recs) {
					if err == nil {
						t.Errorf("ImportRecords to %s: %+v %+v", to.id, res, fails)
						return
					}
					continue // the node is down: not acknowledged
				}
				ackMu.Lock()
				for _, id := range ids {
					acked[id] = true
				}
				ackMu.Unlock()
				written.Add(int64(len(recs)))
				if k%3 == 0 {
					other := live(k + 1)
					if other == to {
						continue
					}
					out, err := client(other).LookupEvents(ctx, &cloudtrail.LookupEventsInput{
						LookupAttributes: attr(types.LookupAttributeKeyEventId, ids[len(ids)-1])})
					if err == nil && len(out.Events) != 1 && !other.dead.Load() {
						t.Errorf("event %s acknowledged by %s: %s finds %d events; want it at once", ids[len(ids)-1], to.id, other.id, len(out.Events))
					}
					if err == nil {
						crossChecks.Add(1)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	// Kill the delivery lease's holder while the trail delivers (once
	// files arrive, when the registry is shared; after a few seconds of
	// writes otherwise).
	deliveredIDs := newDeliveredIDs()
	testwait.UntilNil(t, "300 records acknowledged (and 2 log files delivered, with shared trails)", func() error {
		deliveredIDs.readS3(t, s3c, "audit-logs")
		if written.Load() < 300 || sharedTrails && deliveredIDs.files < 2 {
			return fmt.Errorf("%d records acknowledged, %d log files delivered", written.Load(), deliveredIDs.files)
		}
		return nil
	})
	var victim *node
	for _, n := range nodes {
		if n.id == before[leaseDelivery] {
			victim = n
		}
	}
	victimHeld, _ := leasesHeld(victim.proc.endpoint)
	victim.dead.Store(true)
	victim.proc.kill()
	// The lease rows as the table has them once the victim is gone, with
	// the database's clock (the lease's own clock) in the same statement.
	atKill := leaseRows(t, dsn)
	after := settled(victimHeld...)
	moved := leaseRows(t, dsn)
	t.Logf("SIGKILL of %s (holding %v) after %d records acknowledged; leases moved: %v", victim.id, victimHeld, written.Load(), after)
	for _, l := range victimHeld {
		if after[l] == victim.id || after[l] == "" {
			t.Errorf("lease %s did not move off the killed node: %v", l, after)
		}
	}
	// Issue 18: the killed node's leases move within 15 s. That is a
	// property of the TTL and the retry period the nodes run with, and of
	// the times the lease table records, so it is checked there and not
	// with a stopwatch around a loaded machine (at load 12-15 the
	// survivors' /metrics took longer to show the move than the move
	// took). The victim's holdings, as the table had them after the
	// kill, end within the TTL (the longest a renewal extends one); a
	// survivor's holding starts only after that end, with a larger
	// token; and TTL + Retry, the longest a survivor waits for an expired
	// lease when it runs on time (internal/lease's synctest tests prove
	// the Holder does), is within 15 s. How late a survivor's retry ran
	// on this machine is logged, not asserted.
	ttl := clusterLeaseTTL(t, victim.cfgPath)
	if ttl+lease.DefaultRetry > 15*time.Second {
		t.Errorf("lease TTL %v + retry %v = %v; want within 15 s (issue 18)", ttl, lease.DefaultRetry, ttl+lease.DefaultRetry)
	}
	for _, l := range victimHeld {
		old, now := atKill.rows[l], moved.rows[l]
		if old.holder != victim.id {
			t.Errorf("lease %s in the table after the kill: %+v; want the victim %s's holding", l, old, victim.id)
			continue
		}
		if left := old.expires.Sub(atKill.now); left > ttl {
			t.Errorf("lease %s: the killed holding expires %v after the kill; want within the TTL %v", l, left, ttl)
		}
		// acquired is read in Acquire's statement a moment before its
		// check that the old holding has expired (both clock_timestamp()),
		// hence the second's allowance: far less than the TTL.
		if now.token <= old.token || now.holder == victim.id || now.acquired.Add(time.Second).Before(old.expires) {
			t.Errorf("lease %s: holding %+v after %+v; want a survivor's, a larger token, acquired once the old holding expired", l, now, old)
		}
		t.Logf("lease %s: the killed holding had %v left; %s took it %v after it expired (retry %v)", l,
			old.expires.Sub(atKill.now).Round(time.Millisecond), now.holder, now.acquired.Sub(old.expires).Round(time.Millisecond), lease.DefaultRetry)
	}
	// Writes go on for a while on the survivors, then stop.
	target := written.Load() + 200
	testwait.Until(t, fmt.Sprintf("%d records acknowledged by the survivors", target), func() bool { return written.Load() >= target })
	stopWriters()
	if crossChecks.Load() == 0 {
		t.Errorf("no acknowledged event was looked up on another node")
	}
	if t.Failed() {
		return
	}
	// The killed node comes back on its data dir (its journal replayed);
	// the leases stay where they are, each with one holder.
	victim.proc = startServerProcess(t, victim.dataDir, victim.cfgPath, victim.logPath)
	victim.dead.Store(false)
	settled(leaseDelivery, leaseInsights, leaseRetention, leaseDetect)

	// No acknowledged event is lost, on any node: the imports, and the
	// gateway's CreateBucket calls (those the killed node acknowledged
	// from its journal, replayed at its restart).
	if len(buckets) == 0 {
		t.Errorf("no CreateBucket call through a gateway succeeded")
	}
	for _, n := range nodes {
		found, foundBuckets := map[string]bool{}, map[string]bool{}
		// Journaled records are stored within 200 ms on a quiet machine.
		if err := testwait.Wait(t, func() error {
			for _, e := range lookupAll(t, client(n), &cloudtrail.LookupEventsInput{StartTime: aws.Time(from),
				LookupAttributes: attr(types.LookupAttributeKeyEventSource, "s3.amazonaws.com")}) {
				found[aws.ToString(e.EventId)] = true
				var r struct {
					RequestParameters struct {
						BucketName string `json:"bucketName"`
					} `json:"requestParameters"`
				}
				if json.Unmarshal([]byte(aws.ToString(e.CloudTrailEvent)), &r) == nil {
					foundBuckets[r.RequestParameters.BucketName] = true
				}
			}
			lost, lostBuckets := 0, 0
			for id := range acked {
				if !found[id] {
					lost++
				}
			}
			for b := range buckets {
				if !foundBuckets[b] {
					lostBuckets++
				}
			}
			if lost > 0 || lostBuckets > 0 {
				return fmt.Errorf("%d of %d acknowledged imported events and %d of %d gateway calls not found", lost, len(acked), lostBuckets, len(buckets))
			}
			return nil
		}); err != nil {
			t.Errorf("%s: %v", n.id, err)
		}
	}
	t.Logf("%d imported events and %d gateway calls acknowledged, all found on every node", len(acked), len(buckets))

	t.Run("delivery across the failover", func(t *testing.T) {
		if !sharedTrails {
			t.Skip("needs the trails registry, delivery positions and digest chains in PostgreSQL (issue 18 item 2, branch pg18a): " +
				"a trail created on node-1 is unknown to node-2")
		}
		checkClusterDelivery(t, s3c, deliveredIDs, client(nodes[1]), from, moto, aws.ToString(created.TrailARN), nodes[1].proc.endpoint)
	})
}

// checkClusterDelivery checks, once delivery has caught up, that every
// event the trail selects (management events: all of alice's) is in
// exactly one log file, and that validate-logs accepts the chain.
func checkClusterDelivery(t *testing.T, s3c *s3.Client, d *deliveredIDs, c *cloudtrail.Client, from time.Time, moto, trailARN, endpoint string) {
	ctx := context.Background()
	want := map[string]bool{}
	for _, e := range lookupAll(t, c, &cloudtrail.LookupEventsInput{StartTime: aws.Time(from)}) {
		want[aws.ToString(e.EventId)] = true
	}
	testwait.UntilNil(t, "every event delivered after the failover", func() error {
		d.readS3(t, s3c, "audit-logs")
		if missing := d.missing(want); len(missing) > 0 {
			return fmt.Errorf("%d of %d events not delivered (e.g. %v)", len(missing), len(want), missing[:min(3, len(missing))])
		}
		return nil
	})
	if n := d.duplicates(); n > 0 {
		// Exactly once (docs/trails.md): the next holder finds the
		// killed holder's intent and writes the same keys again.
		t.Errorf("%d events delivered in more than one log file across the failover; want each in exactly one", n)
	}

	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIAALICE00000000001", "AWS_SECRET_ACCESS_KEY": "alice-secret-key", "AWS_CONFIG_FILE": "/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	var vo, ve bytes.Buffer
	code := run(ctx, []string{"validate-logs", "--trail-arn", trailARN, "--start-time", from.Add(-time.Minute).UTC().Format(time.RFC3339),
		"--endpoint-url", endpoint, "--s3-endpoint-url", moto}, &vo, &ve)
	if code != 0 || ve.Len() > 0 {
		t.Errorf("validate-logs across the failover = %d\n%s%s", code, vo.String(), ve.String())
	}
}

// leaseRow is one row of the leases table (store/postgres).
type leaseRow struct {
	holder            string
	token             int64
	expires, acquired time.Time
}

// leaseTable is the leases table at one moment of the database's clock.
type leaseTable struct {
	now  time.Time
	rows map[string]leaseRow
}

// leaseRows reads the leases table of the database at dsn, and the
// database's clock, in one statement.
func leaseRows(t *testing.T, dsn string) leaseTable {
	t.Helper()
	ctx := testwait.Context(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT name, holder, token, expires, acquired, clock_timestamp() FROM leases")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := leaseTable{rows: map[string]leaseRow{}}
	for rows.Next() {
		var name string
		var r leaseRow
		if err := rows.Scan(&name, &r.holder, &r.token, &r.expires, &r.acquired, &out.now); err != nil {
			t.Fatal(err)
		}
		out.rows[name] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// clusterLeaseTTL is the lease TTL a node with the config file at path
// runs with (cluster.lease_ttl, or the lease package's default).
func clusterLeaseTTL(t *testing.T, path string) time.Duration {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.LeaseTTL > 0 {
		return cfg.Cluster.LeaseTTL
	}
	return lease.DefaultTTL
}
