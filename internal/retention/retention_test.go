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
		// Retention counts from when the store received a record: an
		// imported record of 2021 is kept 90 days from its import.
		st := audittest.NewMemStore()
		add := func(id string, at time.Time) {
			st.Append(t.Context(), []audit.Record{{Account: "1", EventID: id, Time: at}})
		}
		add("imported-2021", time.Date(2021, 3, 1, 0, 0, 0, 0, time.UTC))
		ctx, cancel := context.WithCancel(t.Context())
		j := New(Config{Store: st, Retention: 90 * 24 * time.Hour, Interval: time.Hour})
		done := make(chan error)
		go func() { done <- j.Run(ctx) }()
		synctest.Wait()
		if st.Len() != 1 {
			t.Fatalf("after the first sweep %d records remain; want the import kept", st.Len())
		}
		time.Sleep(45 * 24 * time.Hour)
		add("later", time.Now())
		// The import expires 90 days after it arrived; the hourly sweep
		// removes it once that has passed, and keeps the later record.
		time.Sleep(45*24*time.Hour + 2*time.Hour)
		synctest.Wait()
		if st.Len() != 1 {
			t.Errorf("90 days after the import %d records remain; want 1 (the later one)", st.Len())
		}
		time.Sleep(45 * 24 * time.Hour)
		synctest.Wait()
		if st.Len() != 0 {
			t.Errorf("90 days after the later record %d records remain; want 0", st.Len())
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

func (b *blockedDeleter) DeleteReceivedBefore(ctx context.Context, _ time.Time) (int64, error) {
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
