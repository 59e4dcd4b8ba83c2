package trail

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/bucket/local"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
	"github.com/cairn-audit/cairn/internal/statefile"
)

// refusingBucket fails its first refuse Puts as a bucket that is down.
type refusingBucket struct {
	Bucket
	refuse *int
}

func (b refusingBucket) Put(ctx context.Context, key string, body []byte, ct string, meta map[string]string) error {
	if *b.refuse > 0 {
		*b.refuse--
		return &objects.CodeError{Code: "ServiceUnavailable", Err: fmt.Errorf("bucket down")}
	}
	return b.Bucket.Put(ctx, key, body, ct, meta)
}

// TestStartLoggingFinishesBegunBatch: a stopped trail's last minute, over
// when it is delivered, is delivered in several batches of one round, and
// the process dies in a later batch after its intent was saved (before or
// after its file's write, in the second or third batch). Then, after a
// restart (registry in the data dir or shared), StartLogging: the begun
// batch and the rest of the last minute after it must still be delivered,
// each event in exactly one file, also when the bucket refuses the first
// retry; events after StartLogging are delivered, and those of the stop
// too (the trail had not delivered its last minute: it keeps its start).
// Before the fix the round's first batch ended the trail's draining,
// and StartLogging then moved its position past the begun batch: the rest
// was never written. The legacy variants start from that state as an
// earlier version saved it (no longer draining, an intent without its
// range's start): StartLogging moves the position (the stop's events are
// not delivered), the intent keeps the batch's range.
func TestStartLoggingFinishesBegunBatch(t *testing.T) {
	for _, at := range []int{3, 4, 5, 6} {
		for _, shared := range []bool{false, true} {
			for _, refuse := range []int{0, 1} {
				for _, legacy := range []bool{false, true} {
					if legacy && at < 5 { // the legacy state ends at its begun batch
						continue
					}
					t.Run(fmt.Sprintf("crash%d-shared%v-refuse%d-legacy%v", at, shared, refuse, legacy), func(t *testing.T) {
						testStartLoggingFinishesBegunBatch(t, at, shared, refuse, legacy)
					})
				}
			}
		}
	}
}

func testStartLoggingFinishesBegunBatch(t *testing.T, crashAt int, shared bool, refuse int, legacy bool) {
	ctx := context.Background()
	dir := memDir(t)
	bkt, err := local.New("logs", filepath.Join(dir, "bucket"))
	if err != nil {
		t.Fatal(err)
	}
	store := audittest.NewMemStore()
	c := &crasher{at: crashAt}
	stop := time.Date(2026, 11, 25, 8, 1, 0, 0, time.UTC)
	now := stop.Add(2 * time.Minute) // the last minute is over
	refusals := 0
	open := func() (*Registry, *Deliverer) {
		var reg *Registry
		var err error
		if shared {
			reg, err = OpenSharedRegistry(ctx, SharedConfig{State: statefile.Open(dir)})
		} else {
			reg, err = OpenRegistry(dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		bucket := func(n string) (Bucket, bool) {
			return refusingBucket{&crashingBucket{bkt, c}, &refusals}, n == "logs"
		}
		d := NewDeliverer(DeliveryConfig{Registry: reg, Feed: store, Bucket: bucket, Interval: time.Second,
			Now: func() time.Time { return now }})
		d.batch = 3 // three batches of the last minute
		return reg, d
	}
	round := func(d *Deliverer) (crashed bool) {
		defer func() {
			if r := recover(); r != nil {
				if r != errCrash {
					panic(r)
				}
				crashed = true
			}
		}()
		now = now.Add(time.Second)
		d.DeliverOnce(ctx)
		return false
	}

	reg, d := open()
	tr := &Trail{Name: "last-minute", Account: onceMgmt, HomeRegion: "us-east-1", S3BucketName: "logs", S3KeyPrefix: "p",
		IncludeGlobalServiceEvents: true, Draining: true, StartLoggingTime: stop.Add(-time.Hour), StopLoggingTime: stop}
	if err := reg.update(func(trails map[string]*Trail) error { trails[tr.ARN()] = tr; return nil }); err != nil {
		t.Fatal(err)
	}
	ids := func(n int, at time.Time) []audit.Record {
		var out []audit.Record
		for i := range n {
			r := rec(t, onceMgmt, "us-east-1", "ec2.amazonaws.com", fmt.Sprintf("Op%02d", i), false, "")
			r.Time = at
			out = append(out, r)
		}
		return out
	}
	lastMinute := ids(9, stop.Add(-30*time.Second))
	store.Append(ctx, lastMinute)
	if !round(d) {
		t.Fatal("the delivery passed no crash point: the scenario lost its crash")
	}
	reg, d = open() // the restarted process
	if got := reg.Trails()[0]; got.Logging || !got.Draining || !got.begun() || got.Intent.From == nil {
		t.Fatalf("after the crash the trail is logging %v, draining %v, intent %+v: not the scenario", got.Logging, got.Draining, got.Intent)
	}
	if legacy {
		// As an earlier version left it: the minute ended by the batch
		// before, an intent without its range's start.
		if err := reg.update(func(trails map[string]*Trail) error {
			for _, tr := range trails {
				in := *tr.Intent
				in.From = nil
				tr.Draining, tr.Intent = false, &in
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	stopped := ids(2, stop.Add(time.Minute+30*time.Second)) // while stopped
	store.Append(ctx, stopped)
	refusals = refuse
	svc := &Service{Registry: reg, Feed: store}
	start := now.Add(time.Second)
	if err := svc.StartLogging(ctx, audit.Principal{AccountID: onceMgmt, Region: "us-east-1"}, "last-minute", start); err != nil {
		t.Fatal(err)
	}
	after := ids(4, start.Add(time.Second))
	store.Append(ctx, after)
	head, _ := store.LastSeq(ctx)
	for range 10 {
		if round(d) {
			t.Fatal("crashed twice")
		}
		if got := reg.Trails()[0]; got.Position == head && got.Intent == nil {
			break
		}
	}
	if got := reg.Trails()[0]; got.Position != head || got.Intent != nil {
		t.Fatalf("the trail did not settle: position %d of %d, intent %+v", got.Position, head, got.Intent)
	}
	e := &onceEnv{bkt: bkt}
	files, _ := e.deliveredIDs(t)
	want := map[string]int{}
	for _, r := range append(append([]audit.Record(nil), lastMinute...), after...) {
		want[r.EventID] = 1
	}
	for _, r := range stopped {
		// A trail whose last minute is not all delivered keeps its
		// start at StartLogging: the stop's events are delivered too
		// (docs/trails.md: rather twice than never).
		want[r.EventID] = 1
		if legacy {
			want[r.EventID] = 0
		}
	}
	for id, n := range want {
		if files["p"][id] != n {
			t.Errorf("event %s in %d files; want %d", id, files["p"][id], n)
		}
	}
	if n := len(want) - len(stopped); !legacy && len(files["p"]) != len(want) || legacy && len(files["p"]) != n {
		t.Errorf("%d events delivered; want %d (legacy %v)", len(files["p"]), len(want), legacy)
	}
}
