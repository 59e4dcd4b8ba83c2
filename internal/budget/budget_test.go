package budget

import (
	"sync"
	"testing"
)

func TestTakeWithinTheBudgetOnly(t *testing.T) {
	b := New(100)
	if !b.Take(60) || !b.Take(40) {
		t.Fatal("takes within the budget refused")
	}
	if b.Take(1) {
		t.Fatal("a take beyond the budget granted")
	}
	b.Give(40)
	if b.Take(41) {
		t.Fatal("a take beyond what was given back granted")
	}
	if !b.Take(40) || b.InUse() != 100 {
		t.Fatalf("in use %d; want 100", b.InUse())
	}
	var zero Bytes
	if zero.Take(1) || !zero.Take(0) {
		t.Fatal("the zero budget must hold nothing")
	}
}

// TestConcurrentTakesNeverExceed: whatever the interleaving, what is held
// never passes the budget and everything comes back.
func TestConcurrentTakesNeverExceed(t *testing.T) {
	b := New(1000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	peak := int64(0)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				if b.Take(300) {
					mu.Lock()
					peak = max(peak, b.InUse())
					mu.Unlock()
					b.Give(300)
				}
			}
		}()
	}
	wg.Wait()
	if peak > 1000 || b.InUse() != 0 {
		t.Fatalf("peak %d (budget 1000), in use at the end %d", peak, b.InUse())
	}
}
