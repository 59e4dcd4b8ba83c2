package trail

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
)

// picky is a local bucket that refuses the keys holding refuse (with
// refuseErr), and every write once down is set (bucket down).
type picky struct {
	Bucket
	mu        sync.Mutex
	refuse    string
	refuseErr error
	down      bool
	puts      int
}

func (p *picky) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	if p.refuse != "" && strings.Contains(key, p.refuse) {
		return p.refuseErr
	}
	p.puts++
	return p.Bucket.Put(ctx, key, body, ct, meta)
}

// deliveryEnv is a logging trail over a memory store and a picky bucket.
type deliveryEnv struct {
	dir   string
	reg   *Registry
	store *audittest.MemStore
	local Bucket
	b     *picky
	d     *Deliverer
	now   time.Time
	arn   string
	prom  *prometheus.Registry
}

func newDeliveryEnv(t *testing.T) *deliveryEnv {
	ctx := context.Background()
	e := &deliveryEnv{dir: t.TempDir(), store: audittest.NewMemStore(), now: time.Date(2026, 11, 25, 8, 5, 0, 0, time.UTC)}
	var err error
	if e.reg, err = OpenRegistry(e.dir); err != nil {
		t.Fatal(err)
	}
	if e.local, err = local.New("logs", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	e.b = &picky{Bucket: e.local}
	head, _ := e.store.LastSeq(ctx)
	err = e.reg.update(func(trails map[string]*Trail) error {
		tr := &Trail{Name: "all", Account: "111111111111", HomeRegion: "us-east-1", S3BucketName: "logs", IsMultiRegionTrail: true,
			IncludeGlobalServiceEvents: true, Logging: true, StartLoggingTime: time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC), Position: head}
		trails[tr.ARN()] = tr
		e.arn = tr.ARN()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.open()
	return e
}

// open starts a new Deliverer on a reopened registry: a restart.
func (e *deliveryEnv) open() {
	reg, err := OpenRegistry(e.dir)
	if err != nil {
		panic(err)
	}
	e.reg = reg
	e.prom = prometheus.NewRegistry()
	e.d = NewDeliverer(DeliveryConfig{Registry: reg, Feed: e.store, Bucket: func(name string) (Bucket, bool) { return e.b, name == "logs" },
		Interval: time.Second, Now: func() time.Time { return e.now }, Registerer: e.prom})
}

func (e *deliveryEnv) add(t *testing.T, region, name string) {
	e.store.Append(context.Background(), []audit.Record{rec(t, "111111111111", region, "ec2.amazonaws.com", name, false, "")})
}

// round moves the clock past any backoff and delivers once.
func (e *deliveryEnv) round() {
	e.now = e.now.Add(10 * time.Minute)
	e.d.DeliverOnce(context.Background())
}

func (e *deliveryEnv) trail(t *testing.T) Trail {
	tr, ok := e.reg.get(e.arn)
	if !ok {
		t.Fatal("trail gone")
	}
	return tr
}

// names returns the event names delivered, sorted, and the number of files.
func (e *deliveryEnv) names(t *testing.T) (string, int) {
	keys, names := delivered(t, e.local, "")
	sort.Strings(names)
	return strings.Join(names, ","), len(keys)
}

func (e *deliveryEnv) setAside(code string) float64 {
	mfs, _ := e.prom.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "cairn_trail_records_set_aside_total" {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == code {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestUndeliverableRecordIsSetAside: a record whose log key cannot be
// written (stored before regions were validated, in region '..', '<x>' or
// 300 characters) is set aside with a visible error, and neither blocks
// the records after it nor is tried again, across restarts.
func TestUndeliverableRecordIsSetAside(t *testing.T) {
	for _, region := range []string{"..", "<script>", strings.Repeat("r", 300), "US-EAST-1", "a/../../b", "us-north-2r"} {
		t.Run(fmt.Sprintf("%.12s", region), func(t *testing.T) {
			e := newDeliveryEnv(t)
			e.add(t, "us-east-1", "Before")
			e.add(t, region, "Hostile")
			e.add(t, "eu-west-1", "After")
			e.round()
			tr := e.trail(t)
			head, _ := e.store.LastSeq(context.Background())
			if got, files := e.names(t); got != "After,Before" || files != 2 {
				t.Errorf("delivered %q in %d files; want After,Before in 2", got, files)
			}
			if tr.Position != head || tr.LatestDeliveryError != "InvalidArgument" || tr.SetAside != 1 || tr.Pending != nil {
				t.Errorf("trail after the round: position %d (head %d), error %q, set aside %d, pending %+v",
					tr.Position, head, tr.LatestDeliveryError, tr.SetAside, tr.Pending)
			}
			if n := e.setAside("InvalidArgument"); n != 1 {
				t.Errorf("cairn_trail_records_set_aside_total{code=InvalidArgument} = %v; want 1", n)
			}
			// A later event is delivered, after a restart too; nothing
			// is written twice and the error clears.
			e.open()
			e.add(t, "us-east-1", "Later")
			e.round()
			if got, files := e.names(t); got != "After,Before,Later" || files != 3 {
				t.Errorf("after a restart: delivered %q in %d files", got, files)
			}
			// The set-aside stays visible for a day, clean rounds or not.
			if tr := e.trail(t); tr.LatestDeliveryError != "InvalidArgument" || tr.SetAside != 1 {
				t.Errorf("after a clean round: error %q, set aside %d", tr.LatestDeliveryError, tr.SetAside)
			}
			e.now = e.now.Add(setAsideVisible)
			e.add(t, "us-east-1", "NextDay")
			e.round()
			if got, files := e.names(t); got != "After,Before,Later,NextDay" || files != 4 {
				t.Errorf("the next day: delivered %q in %d files", got, files)
			}
			if tr := e.trail(t); tr.LatestDeliveryError != "" || tr.SetAside != 1 {
				t.Errorf("a day later: error %q, set aside %d", tr.LatestDeliveryError, tr.SetAside)
			}
		})
	}
}

// TestRefusedKeyIsSetAside: a key the bucket refuses is set aside when
// the bucket says the key is at fault (ErrKeyRefused), or when it refuses
// it while accepting the batch's other keys; a refusal with no other key
// accepted is the bucket's failure: retried, nothing set aside.
func TestRefusedKeyIsSetAside(t *testing.T) {
	keyErr := &objects.CodeError{Code: "KeyTooLongError", Err: objects.ErrKeyRefused}
	reqErr := &objects.CodeError{Code: "InvalidRequest", Err: objects.ErrRequestRefused}
	for _, tc := range []struct {
		name      string
		err       error
		alone     bool // the refused group is the batch's only one
		code      string
		setAside  int64
		delivered string
	}{
		{"key refused", keyErr, false, "KeyTooLongError", 1, "Before"},
		{"key refused alone", keyErr, true, "KeyTooLongError", 1, ""},
		{"request refused, others written", reqErr, false, "InvalidRequest", 1, "Before"},
		{"request refused alone", reqErr, true, "InvalidRequest", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newDeliveryEnv(t)
			e.b.refuse, e.b.refuseErr = "_ap-south-2_", tc.err
			if !tc.alone {
				e.add(t, "us-east-1", "Before")
			}
			e.add(t, "ap-south-2", "Refused")
			e.round()
			tr := e.trail(t)
			head, _ := e.store.LastSeq(context.Background())
			got, _ := e.names(t)
			if got != tc.delivered || tr.LatestDeliveryError != tc.code || tr.SetAside != tc.setAside {
				t.Errorf("delivered %q, error %q, set aside %d; want %q, %q, %d", got, tr.LatestDeliveryError, tr.SetAside,
					tc.delivered, tc.code, tc.setAside)
			}
			if moved := tr.Position == head; moved != (tc.setAside > 0) {
				t.Errorf("position %d, head %d: moved %v", tr.Position, head, moved)
			}
		})
	}
}

// TestFailedBatchIsNotRewritten: a transient failure part way through a
// batch (bucket down after the first file) keeps the trail's position and
// sets nothing aside; the retry, after a restart too, writes only the
// files not written yet: no duplicates.
func TestFailedBatchIsNotRewritten(t *testing.T) {
	e := newDeliveryEnv(t)
	for _, r := range []string{"us-east-1", "eu-west-1", "ap-south-2"} {
		e.add(t, r, "In-"+r)
	}
	// The bucket fails from the second write on.
	e.d.cfg.Bucket = func(string) (Bucket, bool) { return &failAfter{picky: e.b, n: 1}, true }
	e.round()
	tr := e.trail(t)
	head, _ := e.store.LastSeq(context.Background())
	if tr.Position == head || tr.LatestDeliveryError != "ServiceUnavailable" || tr.SetAside != 0 || tr.Pending == nil || len(tr.Pending.Done) != 1 {
		t.Fatalf("after the failure: position %d (head %d), error %q, set aside %d, pending %+v", tr.Position, head,
			tr.LatestDeliveryError, tr.SetAside, tr.Pending)
	}
	e.open() // restart: the registry's Pending says what was written
	e.add(t, "us-east-1", "Later")
	// The round retries the batch, then goes on with Later.
	e.round()
	if got, files := e.names(t); got != "In-ap-south-2,In-eu-west-1,In-us-east-1,Later" || files != 4 {
		t.Errorf("after the retry: delivered %q in %d files; want each of the 4 once", got, files)
	}
	e.round()
	if got, files := e.names(t); got != "In-ap-south-2,In-eu-west-1,In-us-east-1,Later" || files != 4 {
		t.Errorf("then: delivered %q in %d files", got, files)
	}
	if tr := e.trail(t); tr.Pending != nil || tr.LatestDeliveryError != "" {
		t.Errorf("pending %+v, error %q after the batch was done", tr.Pending, tr.LatestDeliveryError)
	}
}

// failAfter lets n writes through, then fails as an unreachable bucket.
type failAfter struct {
	*picky
	n int
}

func (f *failAfter) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	if f.n <= 0 {
		return &netErr{}
	}
	f.n--
	return f.picky.Put(ctx, key, body, ct, meta)
}

type netErr struct{}

func (*netErr) Error() string   { return "dial tcp: connection refused" }
func (*netErr) Timeout() bool   { return false }
func (*netErr) Temporary() bool { return true }
