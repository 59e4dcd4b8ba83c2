// Package testwait is how cairn's tests wait: for a condition, for as long
// as the test binary may run (go test -timeout, test.Deadline), never for a
// fixed time. A correct system on a slow or loaded machine (CI's 2 cores,
// a shared machine at load 15) reaches the condition late, and a test that
// gave up after 5, 15 or 30 s failed it for being slow, not wrong. A
// condition that never comes still fails the test, with a message saying
// what did not happen, Margin before the binary's deadline, so that its
// cleanups (child processes, databases) still run.
//
// No test asserts how long something took on the wall clock: a duration
// the product promises (a lease moves within TTL + Retry) is checked from
// the product's own configuration and the times it records, or under
// testing/synctest's clock (docs/testing.md).
package testwait

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"testing"
	"time"
)

// started approximates when the test binary started (this package's
// initialization), from which a benchmark's deadline is counted.
var started = time.Now()

// Margin is how long before the test binary's deadline a wait gives up,
// leaving its test time to report and clean up before the binary panics.
const Margin = 30 * time.Second

// maxPoll is the longest pause between two checks of a condition.
const maxPoll = 250 * time.Millisecond

// Deadline returns when a wait of tb gives up: Margin before tb's deadline
// (go test -timeout), and false when there is none (-timeout 0). A
// benchmark has no Deadline method: its deadline is counted from the
// binary's start and -test.timeout, as the testing package counts the
// panic it raises then.
func Deadline(tb testing.TB) (time.Time, bool) {
	if d, ok := tb.(interface{ Deadline() (time.Time, bool) }); ok {
		deadline, ok := d.Deadline()
		if !ok {
			return time.Time{}, false
		}
		return deadline.Add(-Margin), true
	}
	return binaryDeadline(flag.Lookup("test.timeout"))
}

// binaryDeadline is Margin before started plus the timeout f holds, and
// false when f is missing (not a test binary) or 0.
func binaryDeadline(f *flag.Flag) (time.Time, bool) {
	if f == nil {
		return time.Time{}, false
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return time.Time{}, false
	}
	timeout, ok := g.Get().(time.Duration)
	if !ok || timeout <= 0 {
		return time.Time{}, false
	}
	return started.Add(timeout - Margin), true
}

// End returns Deadline(tb), or a time far ahead when tb has none: for a
// loop that checks time.Now().After(end) itself between its attempts.
func End(tb testing.TB) time.Time {
	if d, ok := Deadline(tb); ok {
		return d
	}
	return time.Now().Add(100 * 365 * 24 * time.Hour)
}

// Context returns a context for tb's calls, cancelled at Deadline(tb) and
// when tb ends. Use it where a test bounded a call that may hang with a
// fixed timeout.
func Context(tb testing.TB) context.Context {
	if d, ok := Deadline(tb); ok {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		tb.Cleanup(cancel)
		return ctx
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	return ctx
}

// Wait calls check until it returns nil, then returns nil; at
// Deadline(tb) it returns the last error check returned. check runs at
// least once, however late, and then every few milliseconds at first,
// every 250 ms at most.
func Wait(tb testing.TB, check func() error) error {
	deadline, bounded := Deadline(tb)
	pause := 5 * time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if bounded && !time.Now().Add(pause).Before(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, maxPoll)
	}
}

// Until waits until cond returns true, failing tb (Fatal) at Deadline(tb)
// with "did not happen before the test's deadline: " and what.
func Until(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	errNot := errors.New("not yet")
	if err := Wait(tb, func() error {
		if cond() {
			return nil
		}
		return errNot
	}); err != nil {
		tb.Fatalf("did not happen before the test's deadline (-timeout less %v): %s", Margin, what)
	}
}

// UntilNil waits until check returns nil, failing tb (Fatal) at
// Deadline(tb) with what and the last error check returned.
func UntilNil(tb testing.TB, what string, check func() error) {
	tb.Helper()
	if err := Wait(tb, check); err != nil {
		tb.Fatal(Failure(what, err))
	}
}

// Failure is the message of a wait that reached its deadline: what did
// not happen, and the last state check reported.
func Failure(what string, last error) string {
	return fmt.Sprintf("did not happen before the test's deadline (-timeout less %v): %s: %v", Margin, what, last)
}
