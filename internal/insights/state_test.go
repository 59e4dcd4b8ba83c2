package insights_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/insights"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// watchedFeed records the sequence numbers it returns and signals when a
// read found nothing after target (the reader is caught up).
type watchedFeed struct {
	feed   insights.Feed
	mu     sync.Mutex
	seqs   []int64
	target atomic.Int64
	empty  int // empty reads at or after target
	caught chan struct{}
}

func (f *watchedFeed) ReadAppended(ctx context.Context, after int64, limit int) ([]audit.Appended, error) {
	got, err := f.feed.ReadAppended(ctx, after, limit)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range got {
		f.seqs = append(f.seqs, a.Seq)
	}
	if err == nil && len(got) == 0 && after >= f.target.Load() {
		// the second empty read: the loop between them (judging the
		// minutes the clock allows, storing their Insights) is done
		if f.empty++; f.empty < 2 {
			return got, err
		}
		select {
		case f.caught <- struct{}{}:
		default:
		}
	}
	return got, err
}

// testRunner is a runner over a MemStore with a clock the test sets.
type testRunner struct {
	s      *audittest.MemStore
	f      *watchedFeed
	now    atomic.Int64
	cancel context.CancelFunc
	done   chan error
}

// startRunner starts a runner with its clock at now.
func startRunner(s *audittest.MemStore, p insights.Params, statePath string, now time.Time) *testRunner {
	return startRunnerOn(s, p, statePath, nil, now)
}

// startRunnerOn is startRunner saving its state in st when st is set.
func startRunnerOn(s *audittest.MemStore, p insights.Params, statePath string, st audit.StateStore, now time.Time) *testRunner {
	tr := &testRunner{s: s, f: &watchedFeed{feed: s, caught: make(chan struct{}, 1)}, done: make(chan error, 1)}
	tr.now.Store(now.Unix())
	tr.f.target.Store(1 << 62)
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	r := insights.NewRunner(insights.RunnerConfig{Feed: tr.f, Sink: s, History: s, All: true, Params: p, Poll: time.Millisecond,
		Now: func() time.Time { return time.Unix(tr.now.Load(), 0) }, StatePath: statePath, State: st})
	go func() { tr.done <- r.Run(ctx) }()
	return tr
}

// catchUp sets the clock to now and waits until the runner has read
// everything in the store, the Insights it stored included.
func (tr *testRunner) catchUp(t *testing.T, now time.Time) {
	t.Helper()
	tr.now.Store(now.Unix())
	for {
		l, err := tr.s.LastSeq(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if l == tr.f.target.Load() {
			return
		}
		tr.f.mu.Lock() // reads signal under it
		tr.f.target.Store(l)
		tr.f.empty = 0
		select {
		case <-tr.f.caught: // a read before the target moved
		default:
		}
		tr.f.mu.Unlock()
		select {
		case <-tr.f.caught:
		case <-testwait.Context(t).Done():
			t.Fatal("the runner did not catch up")
		}
	}
}

// stop stops the runner (its state, if any, saved) and returns the
// sequence numbers it read.
func (tr *testRunner) stop(t *testing.T) []int64 {
	t.Helper()
	tr.cancel()
	if err := <-tr.done; err != nil {
		t.Fatal(err)
	}
	tr.f.mu.Lock()
	defer tr.f.mu.Unlock()
	return slices.Clone(tr.f.seqs)
}

// TestRunnerResumesFromSavedState: a runner restarted with minutes of a
// burst pending, or in the middle of an Insight (an active series), reads
// only the records appended after its saved position and stores the same
// Insights as a runner that never stopped. A state it cannot use (corrupt,
// truncated, saved under other parameters) makes it replay the store from
// its start, with the same Insights.
func TestRunnerResumesFromSavedState(t *testing.T) {
	hist := burstHistory(t)
	slices.SortStableFunc(hist, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
	split := t0.Add(185 * time.Minute) // the burst runs from 180 to 192
	i := slices.IndexFunc(hist, func(r audit.Record) bool { return !r.Time.Before(split) })
	partA, partB := hist[:i], hist[i:]
	atB := t0.Add(5 * time.Hour)

	for _, phase := range []struct {
		name string
		atA  time.Time // the clock when the runner stops
	}{
		{"pending", split.Add(2 * time.Minute)}, // minutes 172-184 not judged yet: the Start is to come
		{"active", split.Add(15 * time.Minute)}, // judged through 184: the Start is out, the End to come
	} {
		ref := audittest.NewMemStore()
		appendAll(t, ref, partA)
		tr := startRunner(ref, smallParams(), "", phase.atA)
		tr.catchUp(t, phase.atA)
		startedA := len(insightRecords(t, ref))
		appendAll(t, ref, partB)
		tr.catchUp(t, atB)
		tr.stop(t)
		want := raws(insightRecords(t, ref))
		if len(want) != 4 {
			t.Fatalf("%s: a runner that never stopped stored %d Insights, want 4 (Start and End of each type)", phase.name, len(want))
		}
		if phase.name == "pending" && startedA != 0 || phase.name == "active" && startedA != 2 {
			t.Fatalf("%s: %d Insights stored before the restart", phase.name, startedA)
		}

		for _, tc := range []struct {
			name    string
			spoil   func(t *testing.T, path string) // before the restart
			params  insights.Params                 // after it
			resumed bool
		}{
			{name: "resumes", params: smallParams(), resumed: true},
			{name: "corrupt", params: smallParams(), spoil: func(t *testing.T, path string) {
				if err := os.WriteFile(path, []byte("not a state"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "truncated", params: smallParams(), spoil: func(t *testing.T, path string) {
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b[:len(b)/2], 0o600); err != nil {
					t.Fatal(err)
				}
			}},
			{name: "other parameters", params: func() insights.Params { p := smallParams(); p.MaxSeries = 9999; return p }()},
			{name: "other lateness", params: func() insights.Params { p := smallParams(); p.Lateness = 14 * time.Minute; return p }()},
		} {
			t.Run(phase.name+"/"+tc.name, func(t *testing.T) {
				s := audittest.NewMemStore()
				path := filepath.Join(t.TempDir(), "insights.state")
				appendAll(t, s, partA)
				tr := startRunner(s, smallParams(), path, phase.atA)
				tr.catchUp(t, phase.atA)
				tr.stop(t)
				if _, err := os.Stat(path); err != nil {
					t.Fatalf("no state saved: %v", err)
				}
				lastA, _ := s.LastSeq(context.Background())
				if tc.spoil != nil {
					tc.spoil(t, path)
				}
				appendAll(t, s, partB)
				tr = startRunner(s, tc.params, path, atB)
				tr.catchUp(t, atB)
				seqs := tr.stop(t)
				if len(seqs) == 0 {
					t.Fatal("the restarted runner read nothing")
				}
				if first := slices.Min(seqs); tc.resumed && first <= lastA {
					t.Errorf("the restarted runner read seq %d, at or before its saved position %d", first, lastA)
				} else if !tc.resumed && first != 1 {
					t.Errorf("with an unusable state the runner read from seq %d; want a replay from 1", first)
				}
				if got := raws(insightRecords(t, s)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("stored %v; without a restart %v", got, want)
				}
			})
		}
	}
}

// raws are the records' JSON, sorted: the Insights with their baselines.
func raws(rs []audit.Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Raw))
	}
	slices.Sort(out)
	return out
}
