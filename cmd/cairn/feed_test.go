package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// stepFeed holds total records; each read takes step on the fake clock.
type stepFeed struct {
	total int64
	clock *time.Time
	step  time.Duration
}

func (f *stepFeed) ReadAppended(_ context.Context, after int64, limit int) ([]audit.Appended, error) {
	*f.clock = f.clock.Add(f.step)
	var out []audit.Appended
	for s := after + 1; s <= f.total && len(out) < limit; s++ {
		out = append(out, audit.Appended{Seq: s})
	}
	return out, nil
}

// TestBackgroundFeedPaces: a catch-up (full batches) pauses twice as long
// as each read took; a reader that is caught up is never paused; every
// record is read, in order; a pause ends with its context.
func TestBackgroundFeedPaces(t *testing.T) {
	clock := time.Unix(0, 0)
	var pauses []time.Duration
	f := backgroundFeed{feed: &stepFeed{total: 25, clock: &clock, step: 10 * time.Millisecond},
		now:   func() time.Time { return clock },
		sleep: func(_ context.Context, d time.Duration) error { pauses = append(pauses, d); return nil }}
	var pos int64
	for range 10 {
		got, err := f.ReadAppended(context.Background(), pos, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if a.Seq != pos+1 {
				t.Fatalf("read seq %d after %d", a.Seq, pos)
			}
			pos = a.Seq
		}
	}
	if pos != 25 {
		t.Errorf("read up to %d; want all 25 records", pos)
	}
	// Two full batches (1-10, 11-20), then 21-25 and empty reads: caught up.
	if want := []time.Duration{20 * time.Millisecond, 20 * time.Millisecond}; len(pauses) != len(want) || pauses[0] != want[0] || pauses[1] != want[1] {
		t.Errorf("pauses %v; want %v", pauses, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	real := backgroundFeed{feed: &stepFeed{total: 25, clock: &clock, step: time.Hour}, now: func() time.Time { return clock }}
	if _, err := real.ReadAppended(ctx, 0, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("a pause after its context ended: err %v; want context.Canceled", err)
	}
}

func (f *stepFeed) LastSeq(context.Context) (int64, error) { return f.total, nil }

// TestPacedTrailFeed: trail delivery's feed pauses after its full batches
// only, reads every record, and answers LastSeq from the store.
func TestPacedTrailFeed(t *testing.T) {
	clock := time.Unix(0, 0)
	var pauses []time.Duration
	f := newPacedTrailFeed(&stepFeed{total: 25, clock: &clock, step: 10 * time.Millisecond})
	f.paced.now = func() time.Time { return clock }
	f.paced.sleep = func(_ context.Context, d time.Duration) error { pauses = append(pauses, d); return nil }
	var pos int64
	for {
		got, err := f.ReadAppended(context.Background(), pos, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		pos = got[len(got)-1].Seq
	}
	if last, err := f.LastSeq(context.Background()); err != nil || last != 25 || pos != 25 {
		t.Errorf("read up to %d, LastSeq %d, %v; want 25, 25", pos, last, err)
	}
	if len(pauses) != 2 {
		t.Errorf("pauses %v; want one after each of the 2 full batches", pauses)
	}
}
