// Package lease runs the work that must have one writer (trail delivery
// and digests, Insights, live detection, retention) on one node at a time
// when several cairn nodes share one PostgreSQL database (docs/scale.md).
//
// A lease is a named row held by one node until it expires; its holder
// renews it well before. Every acquisition gives the lease a new fencing
// token, larger than any before, so a writer that lost its lease (paused,
// partitioned, its renewals failing) can be refused: the job runs with a
// Fence in its context (FenceFrom), and a store that writes shared state
// checks it in the same transaction as the write (store/postgres,
// CheckFence). A lost lease cancels the job's context with the cause
// ErrLost (Lost), so the job stops promptly and skips its shutdown work.
//
// Holder.Run wraps a job as a lifecycle worker: it acquires, runs the job
// while held, renews, and stops the job when the lease is lost or the
// node stops (then releasing it, so another node takes it at once). Table
// is the port: store/postgres implements it in the database; Local, for
// the embedded mode of one node, always grants.
package lease

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Default timings. A dead node's lease is taken by another within
// DefaultTTL + DefaultRetry (12 s).
const (
	DefaultTTL   = 10 * time.Second
	DefaultRetry = 2 * time.Second
)

// ErrLost is the cause of a job's context cancellation when its node lost
// the lease (context.Cause); Lost tests for it.
var ErrLost = errors.New("lease lost")

// ErrFenced is the error of a write refused because its fence is no
// longer the lease's: another node has held the lease since. The job that
// gets it has lost its lease; Holder.Run treats its return as a loss.
var ErrFenced = errors.New("lease: fenced off: another node holds the lease now")

// Fence identifies one holding of a lease: the lease, its holder and the
// fencing token of that acquisition. A write made under a lease is valid
// only while the lease's current token is Token.
type Fence struct {
	Lease  string
	Holder string
	Token  int64
}

type fenceKey struct{}

// WithFence returns ctx carrying f, for the writes a job makes.
func WithFence(ctx context.Context, f Fence) context.Context {
	return context.WithValue(ctx, fenceKey{}, f)
}

// FenceFrom returns the fence ctx carries: the job's, when ctx descends
// from a context Holder.Run gave a job.
func FenceFrom(ctx context.Context) (Fence, bool) {
	f, ok := ctx.Value(fenceKey{}).(Fence)
	return f, ok
}

// Lost reports whether ctx was cancelled because its lease was lost (not
// because the node is stopping): a job then does no final work.
func Lost(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), ErrLost)
}

// Table is where leases are kept. Times are the table's own (the
// database's clock for store/postgres), so nodes' clocks need not agree.
type Table interface {
	// Acquire takes the lease name for holder for ttl when no one holds
	// it (never taken, released, or expired), with a new token larger
	// than every token the lease had. It returns ok false, no error, when
	// the lease is held (by anyone, holder included: a restarted node
	// waits for its old holding to expire); an error only when the table
	// cannot be reached.
	Acquire(ctx context.Context, name, holder string, ttl time.Duration) (token int64, ok bool, err error)
	// Renew extends holder's unexpired holding of token by ttl from now;
	// ok false when it expired or another holding replaced it.
	Renew(ctx context.Context, f Fence, ttl time.Duration) (ok bool, err error)
	// Release ends the holding f at once (when it is still current), so
	// another node may acquire without waiting for the expiry.
	Release(ctx context.Context, f Fence) error
}

// Local is the Table of one node (the embedded mode): every Acquire
// succeeds unless the lease is held, tokens count up per lease. The zero
// value is ready to use.
type Local struct {
	mu     sync.Mutex
	tokens map[string]int64
	held   map[string]bool
}

// Acquire implements Table.
func (l *Local) Acquire(_ context.Context, name, _ string, _ time.Duration) (int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tokens == nil {
		l.tokens, l.held = map[string]int64{}, map[string]bool{}
	}
	if l.held[name] {
		return 0, false, nil
	}
	l.tokens[name]++
	l.held[name] = true
	return l.tokens[name], true, nil
}

// Renew implements Table: a current holding never expires.
func (l *Local) Renew(_ context.Context, f Fence, _ time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[f.Lease] && l.tokens[f.Lease] == f.Token, nil
}

// Release implements Table.
func (l *Local) Release(_ context.Context, f Fence) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tokens[f.Lease] == f.Token {
		delete(l.held, f.Lease)
	}
	return nil
}
