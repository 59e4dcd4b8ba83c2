package retention

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/audit/audittest"
)

func TestJanitorSweepsAtStartAndOnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := audittest.NewMemStore()
		now := time.Now()
		add := func(age time.Duration, id string) {
			st.Append(t.Context(), []audit.Record{{Account: "1", EventID: id, Time: now.Add(-age)}})
		}
		add(100*24*time.Hour, "old")
		add(time.Hour, "new")
		ctx, cancel := context.WithCancel(t.Context())
		j := New(Config{Store: st, Retention: 90 * 24 * time.Hour, Interval: time.Hour})
		done := make(chan error)
		go func() { done <- j.Run(ctx) }()
		synctest.Wait()
		if st.Len() != 1 {
			t.Fatalf("after the first sweep %d records remain; want 1", st.Len())
		}
		// "new" expires 90 days after it was written; the hourly sweep
		// removes it once that has passed.
		time.Sleep(90*24*time.Hour - time.Hour + 2*time.Hour)
		synctest.Wait()
		if st.Len() != 0 {
			t.Errorf("after 90 days %d records remain; want 0", st.Len())
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
}

func TestJanitorKeepsForeverWithZeroRetention(t *testing.T) {
	st := audittest.NewMemStore()
	st.Append(t.Context(), []audit.Record{{Account: "1", EventID: "x", Time: time.Unix(0, 0)}})
	if err := New(Config{Store: st}).Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st.Len() != 1 {
		t.Errorf("retention 0 removed records")
	}
}

// blockedDeleter holds a sweep until its context ends.
type blockedDeleter struct {
	entered  chan struct{}
	returned bool
}

func (b *blockedDeleter) DeleteBefore(ctx context.Context, _ time.Time) (int64, error) {
	close(b.entered)
	<-ctx.Done()
	b.returned = true
	return 0, ctx.Err()
}

// A cancelled Run returns only after the sweep under way, and nil.
func TestJanitorRunReturnsAfterItsSweep(t *testing.T) {
	b := &blockedDeleter{entered: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- New(Config{Store: b, Retention: time.Hour}).Run(ctx) }()
	<-b.entered
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v; want nil", err)
	}
	if !b.returned {
		t.Error("Run returned before its sweep")
	}
}
