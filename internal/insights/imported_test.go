package insights_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
	"github.com/cairn-audit/cairn/internal/insights"
)

// importInto appends rs to s in batches as an offline import does, giving
// each batch's records to im in the order s numbered them, as the store's
// OnCommitted hook does.
func importInto(t *testing.T, s *audittest.MemStore, im *insights.Importing, rs []audit.Record, batch int) {
	t.Helper()
	for i := 0; i < len(rs); i += batch {
		b := slices.Clone(rs[i:min(i+batch, len(rs))])
		first, err := s.LastSeq(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		ptrs := make([]*audit.Record, len(b))
		for j := range b {
			ptrs[j] = &b[j]
		}
		im.Observe(first+1, ptrs)
		for j := range b { // the importer's buffers are its own again
			b[j] = audit.Record{}
		}
	}
}

// TestImportingMatchesRunner: the detector run over an import's records as
// they are stored (Importing) saves the state a runner reading the feed
// would have: a runner that resumes from it reads none of the imported
// records and stores the same Insights (the burst's Start and End of both
// types, found during the import and carried in the state) as a runner
// that read the whole store. A second import onto the first continues from
// its state; an import whose appends skip a sequence number saves nothing.
func TestImportingMatchesRunner(t *testing.T) {
	hist := burstHistory(t)
	// in time order, as a trail's logs are imported (shuffled, most of
	// them would be late for the runner as well)
	slices.SortStableFunc(hist, func(a, b audit.Record) int { return a.Time.Compare(b.Time) })
	at := t0.Add(5 * time.Hour)
	clock := func() time.Time { return at }

	ref := audittest.NewMemStore()
	appendAll(t, ref, hist)
	tr := startRunner(ref, smallParams(), "", at)
	tr.catchUp(t, at)
	tr.stop(t)
	want := raws(insightRecords(t, ref))
	if len(want) != 4 {
		t.Fatalf("a runner reading the store stored %d Insights, want 4", len(want))
	}

	for _, tc := range []struct {
		name  string
		parts int // imports one after the other
		batch int
	}{
		{"one import", 1, 1000},
		{"small batches", 1, 7},
		{"two imports", 2, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := audittest.NewMemStore()
			path := filepath.Join(t.TempDir(), "insights.state")
			per := (len(hist) + tc.parts - 1) / tc.parts
			found := 0
			for p := range tc.parts {
				last, _ := s.LastSeq(context.Background())
				im, err := insights.StartImporting(smallParams(), path, last, clock)
				if err != nil {
					t.Fatal(err)
				}
				importInto(t, s, im, hist[p*per:min((p+1)*per, len(hist))], tc.batch)
				last, _ = s.LastSeq(context.Background())
				saved, err := im.Finish(last)
				if err != nil || !saved {
					t.Fatalf("import %d: saved %v, %v", p, saved, err)
				}
				found = int(im.Stats().Observed)
			}
			if found == 0 {
				t.Fatal("the import's detector observed nothing")
			}
			if got := insightRecords(t, s); len(got) != 0 {
				t.Fatalf("the import stored %d Insights records itself", len(got))
			}
			last, _ := s.LastSeq(context.Background())
			tr := startRunner(s, smallParams(), path, at)
			tr.catchUp(t, at)
			seqs := tr.stop(t)
			if len(seqs) > 0 && slices.Min(seqs) <= last {
				t.Errorf("the runner read seq %d, at or before the import's end %d", slices.Min(seqs), last)
			}
			if got := raws(insightRecords(t, s)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("stored %v; a runner reading the store %v", got, want)
			}
		})
	}

	t.Run("not resumable", func(t *testing.T) {
		s := audittest.NewMemStore()
		appendAll(t, s, hist[:100])
		path := filepath.Join(t.TempDir(), "insights.state")
		// records stored and no state: the runner must read them
		if _, err := insights.StartImporting(smallParams(), path, 100, clock); !errors.Is(err, insights.ErrNotResumable) {
			t.Fatalf("no state over 100 records: %v, want ErrNotResumable", err)
		}
		im, err := insights.StartImporting(smallParams(), path, 0, clock)
		if err != nil {
			t.Fatal(err)
		}
		rs := slices.Clone(hist[100:110])
		ptrs := []*audit.Record{&rs[0], &rs[1]}
		im.Observe(1, ptrs)
		im.Observe(5, ptrs) // 3 and 4 were not given
		if saved, err := im.Finish(6); saved || err != nil {
			t.Fatalf("a gap: saved %v, %v; want nothing saved", saved, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a state was written: %v", err)
		}
		im, err = insights.StartImporting(smallParams(), path, 0, clock)
		if err != nil {
			t.Fatal(err)
		}
		im.Observe(1, ptrs)
		if saved, err := im.Finish(3); saved || err != nil {
			t.Fatalf("records stored and not given: saved %v, %v; want nothing saved", saved, err)
		}
	})
}
