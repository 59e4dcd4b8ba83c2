package importer

import (
	"context"
	"errors"
	"testing"
)

// The window of files offered to a FileSink at once: files fit while
// their bytes stay within max; one that does not fit waits (here: its
// context ends first) until bytes are released; a file larger than max
// goes alone, once none is in flight; the zero window bounds nothing.
func TestWindowBoundsTheBytesInFlight(t *testing.T) {
	ctx := context.Background()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	w := newWindow(10)
	for _, n := range []int64{6, 4} {
		if err := w.acquire(ctx, n); err != nil {
			t.Fatalf("acquire(%d) within a window of 10 = %v; want it to fit", n, err)
		}
	}
	if err := w.acquire(ended, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire(1) with the window full = %v; want it to wait until ctx ends", err)
	}
	w.release(6)
	if err := w.acquire(ended, 7); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire(7) with 4 of 10 used = %v; want it to wait", err)
	}
	if err := w.acquire(ctx, 6); err != nil {
		t.Fatalf("acquire(6) with 4 of 10 used = %v", err)
	}
	w.release(6)
	w.release(4)
	if err := w.acquire(ctx, 25); err != nil {
		t.Fatalf("acquire(25) with none in flight = %v; want a file larger than the window to go alone", err)
	}
	if err := w.acquire(ended, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire(1) beside a file larger than the window = %v; want it to wait", err)
	}
	w.release(25)
	if !w.sem.TryAcquire(10) {
		t.Fatal("the window is not whole after every release")
	}
	var zero window
	for range 3 {
		if err := zero.acquire(ended, 1<<40); err != nil {
			t.Fatalf("the zero window's acquire = %v; want no bound", err)
		}
	}
}
