package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
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

	"github.com/cairn-audit/cairn/internal/audit"
	cairnclient "github.com/cairn-audit/cairn/internal/client"
	"github.com/cairn-audit/cairn/internal/mototest"
	"github.com/cairn-audit/cairn/internal/pgtest"
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
	for i := 0; ; i++ {
		held, _ := leasesHeld(ts.endpoint)
		slices.Sort(held)
		if slices.Equal(held, want) {
			break
		}
		if i > 500 {
			t.Fatalf("leases held by the one node = %v; want %v", held, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
//   - the killed node's leases move to a survivor within 15 s (the
//     default 10 s TTL + 2 s retry);
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
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		n.gateway = ln.Addr().String()
		ln.Close()
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
	settled := func(within time.Duration, leases ...string) map[string]string {
		t.Helper()
		for deadline := time.Now().Add(within); ; {
			h := holders()
			one := map[string]string{}
			for l, ns := range h {
				if len(ns) > 1 {
					t.Fatalf("lease %s held by %v at once", l, ns)
				}
				one[l] = ns[0]
			}
			if len(one) >= len(leases) && !slices.ContainsFunc(leases, func(l string) bool { return one[l] == "" }) {
				return one
			}
			if time.Now().After(deadline) {
				t.Fatalf("leases %v not held by one node each within %v: %v", leases, within, h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	before := settled(time.Minute, leaseDelivery, leaseInsights, leaseRetention, leaseDetect)
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
			for {
				evs := lookupAll(t, client(other), &cloudtrail.LookupEventsInput{LookupAttributes: attr(types.LookupAttributeKeyEventName, "DeleteTrail")})
				if len(evs) == i+1 {
					break
				}
				if time.Since(acked) > 30*time.Second {
					t.Fatalf("%s: %d DeleteTrail events 30 s after %s acknowledged the %dth", other.id, len(evs), n.id, i+1)
				}
				time.Sleep(10 * time.Millisecond)
			}
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
	for deadline := time.Now().Add(2 * time.Minute); written.Load() < 300 || sharedTrails && deliveredIDs.files < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("in 2 minutes: %d records acknowledged, %d log files delivered", written.Load(), deliveredIDs.files)
		}
		time.Sleep(200 * time.Millisecond)
		deliveredIDs.readS3(t, s3c, "audit-logs")
	}
	var victim *node
	for _, n := range nodes {
		if n.id == before[leaseDelivery] {
			victim = n
		}
	}
	victimHeld, _ := leasesHeld(victim.proc.endpoint)
	victim.dead.Store(true)
	victim.proc.kill()
	killed := time.Now()
	after := settled(time.Minute, victimHeld...)
	took := time.Since(killed)
	t.Logf("SIGKILL of %s (holding %v) after %d records acknowledged; leases moved in %v: %v", victim.id, victimHeld, written.Load(), took.Round(100*time.Millisecond), after)
	for _, l := range victimHeld {
		if after[l] == victim.id || after[l] == "" {
			t.Errorf("lease %s did not move off the killed node: %v", l, after)
		}
	}
	if took > 15*time.Second {
		t.Errorf("the killed node's leases moved after %v; want within 15 s (issue 18)", took)
	}
	// Writes go on for a while on the survivors, then stop.
	for target := written.Load() + 200; written.Load() < target; {
		time.Sleep(100 * time.Millisecond)
	}
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
	settled(time.Minute, leaseDelivery, leaseInsights, leaseRetention, leaseDetect)

	// No acknowledged event is lost, on any node: the imports, and the
	// gateway's CreateBucket calls (those the killed node acknowledged
	// from its journal, replayed at its restart).
	if len(buckets) == 0 {
		t.Errorf("no CreateBucket call through a gateway succeeded")
	}
	for _, n := range nodes {
		found, foundBuckets := map[string]bool{}, map[string]bool{}
		for deadline := time.Now().Add(30 * time.Second); ; {
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
			if lost == 0 && lostBuckets == 0 {
				break
			}
			if time.Now().After(deadline) { // journaled records are stored within 200 ms
				t.Errorf("%s: %d of %d acknowledged imported events and %d of %d gateway calls not found", n.id, lost, len(acked), lostBuckets, len(buckets))
				break
			}
			time.Sleep(200 * time.Millisecond)
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
	for deadline := time.Now().Add(2 * time.Minute); ; {
		d.readS3(t, s3c, "audit-logs")
		missing := d.missing(want)
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 minutes after the failover, %d of %d events not delivered (e.g. %v)", len(missing), len(want), missing[:min(3, len(missing))])
		}
		time.Sleep(500 * time.Millisecond)
	}
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
