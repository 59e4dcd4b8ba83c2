package testwait

import (
	"errors"
	"flag"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTB is a testing.TB with a deadline of its own, so that a wait's end
// at the deadline can be seen without waiting for the binary's.
type fakeTB struct {
	testing.TB
	deadline time.Time
	fatal    string
}

func (f *fakeTB) Deadline() (time.Time, bool) { return f.deadline, true }
func (f *fakeTB) Helper()                     {}
func (f *fakeTB) Cleanup(func())              {}
func (f *fakeTB) Fatal(args ...any)           { f.fatal = args[0].(string) }
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = format
}

// TestWaitConditionComes: a condition that comes late ends the wait
// with nil, whatever the time it took.
func TestWaitConditionComes(t *testing.T) {
	var n atomic.Int32
	if err := Wait(t, func() error {
		if n.Add(1) < 5 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatalf("Wait = %v; want nil", err)
	}
	if got := n.Load(); got != 5 {
		t.Errorf("checks = %d; want 5", got)
	}
}

// TestWaitNeverComes: a condition that never comes fails at the
// deadline (here a TB's own, Margin + 50 ms away), naming what and the
// last state; a deadline already past still checks once.
func TestWaitNeverComes(t *testing.T) {
	f := &fakeTB{TB: t, deadline: time.Now().Add(Margin + 50*time.Millisecond)}
	checks := 0
	UntilNil(f, "the moon rose", func() error { checks++; return errors.New("still dark") })
	if !strings.Contains(f.fatal, "the moon rose") || !strings.Contains(f.fatal, "still dark") {
		t.Errorf("failure = %q; want what did not happen and the last state", f.fatal)
	}
	if checks < 2 {
		t.Errorf("checks = %d; want several before the deadline", checks)
	}
	past := &fakeTB{TB: t, deadline: time.Now()}
	checks = 0
	Until(past, "x", func() bool { checks++; return false })
	if checks != 1 || past.fatal == "" {
		t.Errorf("past the deadline: %d checks, failure %q; want 1 check and a failure", checks, past.fatal)
	}
	ok := &fakeTB{TB: t, deadline: time.Now()}
	Until(ok, "x", func() bool { return true })
	if ok.fatal != "" {
		t.Errorf("a condition true at once failed: %q", ok.fatal)
	}
}

// TestContext: the context ends at the wait's deadline.
func TestContext(t *testing.T) {
	ctx := Context(t)
	d, ok := ctx.Deadline()
	want, wok := Deadline(t)
	if ok != wok || !d.Equal(want) {
		t.Errorf("Context deadline = %v, %v; want %v, %v", d, ok, want, wok)
	}
}

// TestBenchmarkDeadline: a TB without a Deadline method (a benchmark's)
// waits until Margin before the binary's -test.timeout, counted from its
// start, and without end when there is no timeout.
func TestBenchmarkDeadline(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	timeout := fs.Duration("test.timeout", 0, "")
	if _, ok := binaryDeadline(fs.Lookup("test.timeout")); ok {
		t.Error("-test.timeout 0 gave a deadline")
	}
	if _, ok := binaryDeadline(nil); ok {
		t.Error("no -test.timeout flag gave a deadline")
	}
	*timeout = 10 * time.Minute
	if d, ok := binaryDeadline(fs.Lookup("test.timeout")); !ok || !d.Equal(started.Add(10*time.Minute-Margin)) {
		t.Errorf("-test.timeout 10m: deadline %v, %v; want %v", d, ok, started.Add(10*time.Minute-Margin))
	}
	bench := struct{ testing.TB }{t} // no Deadline method
	got, ok := Deadline(bench)
	want, wok := binaryDeadline(flag.Lookup("test.timeout"))
	if ok != wok || !got.Equal(want) {
		t.Errorf("Deadline of a TB without one = %v, %v; want the binary's %v, %v", got, ok, want, wok)
	}
}
