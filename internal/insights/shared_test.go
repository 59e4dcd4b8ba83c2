package insights_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/statetest/adapters"
)

// TestRunnerResumesOnAnotherNode: a runner saving its state in a shared
// StateStore stops in the middle of a burst; another node's runner on the
// same store resumes from the saved position (it reads nothing at or
// before it) and stores the same Insights as a runner that never stopped.
// A damaged shared state makes it replay from the start instead.
func TestRunnerResumesOnAnotherNode(t *testing.T) {
	hist := burstHistory(t)
	slices.SortStableFunc(hist, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
	split := t0.Add(185 * time.Minute)
	i := slices.IndexFunc(hist, func(r audit.Record) bool { return !r.Time.Before(split) })
	partA, partB := hist[:i], hist[i:]
	atA, atB := split.Add(15*time.Minute), t0.Add(5*time.Hour)

	ref := audittest.NewMemStore()
	appendAll(t, ref, hist)
	tr := startRunner(ref, smallParams(), "", atB)
	tr.catchUp(t, atB)
	tr.stop(t)
	want := raws(insightRecords(t, ref))

	states := adapters.All()
	for name, open := range states {
		for _, damaged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/damaged=%v", name, damaged), func(t *testing.T) {
				st := open(t)
				s := audittest.NewMemStore()
				appendAll(t, s, partA)
				a := startRunnerOn(s, smallParams(), "", st, atA)
				a.catchUp(t, atA)
				a.stop(t)
				_, v, err := st.Get(context.Background(), "insights.state")
				if err != nil || v == 0 {
					t.Fatalf("node A saved no state: %d, %v", v, err)
				}
				if damaged {
					if _, err := st.Put(context.Background(), "insights.state", []byte("\x00not gob"), v); err != nil {
						t.Fatal(err)
					}
				}
				lastA, _ := s.LastSeq(context.Background())
				appendAll(t, s, partB)
				b := startRunnerOn(s, smallParams(), "", st, atB)
				b.catchUp(t, atB)
				seqs := b.stop(t)
				if first := slices.Min(seqs); !damaged && first <= lastA {
					t.Errorf("node B read seq %d, at or before A's saved position %d", first, lastA)
				} else if damaged && first != 1 {
					t.Errorf("over a damaged state node B read from seq %d; want a replay from 1", first)
				}
				if got := raws(insightRecords(t, s)); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("stored %v; without a takeover %v", got, want)
				}
			})
		}
	}
}
