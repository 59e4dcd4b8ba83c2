package main

import (
	"context"
	"syscall"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
)

// niceFeed records the nice value of the thread each read runs on.
type niceFeed struct{ nice []int }

func (f *niceFeed) ReadAppended(_ context.Context, after int64, limit int) ([]audit.Appended, error) {
	// The raw syscall returns 20 - nice.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	if err != nil {
		return nil, err
	}
	f.nice = append(f.nice, 20-p)
	return []audit.Appended{{Seq: after + 1}}, nil
}

// TestBackgroundFeedLowPriority: the catch-up readers' reads run at the
// lowest CPU priority, each on a thread of its own, and the caller's thread
// keeps its own.
func TestBackgroundFeedLowPriority(t *testing.T) {
	f := &niceFeed{}
	bg := backgroundFeed{f}
	for i := range 3 {
		got, err := bg.ReadAppended(context.Background(), int64(i), 10)
		if err != nil || len(got) != 1 || got[0].Seq != int64(i)+1 {
			t.Fatalf("ReadAppended(%d) = %v, %v; want the feed's record", i, got, err)
		}
	}
	for i, n := range f.nice {
		if n != 19 {
			t.Errorf("read %d ran at nice %d; want 19", i, n)
		}
	}
	// The test's own thread keeps its priority.
	own := &niceFeed{}
	if _, err := own.ReadAppended(context.Background(), 0, 1); err != nil {
		t.Fatal(err)
	}
	if own.nice[0] == 19 {
		t.Errorf("the caller's thread is at nice 19 after backgroundFeed's reads")
	}
}
