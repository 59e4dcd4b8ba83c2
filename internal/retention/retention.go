// Package retention removes Event History records once the configured
// retention has passed since cairn received them (an import of old logs is
// kept for the whole retention from its import). Lookups hide expired records on their own (see
// apiserver); the janitor reclaims their space.
package retention

import (
	"context"
	"log/slog"
	"time"
)

// Deleter is the part of audit.Store the janitor needs.
type Deleter interface {
	DeleteReceivedBefore(ctx context.Context, t time.Time) (int64, error)
}

// Janitor deletes expired records at start and then every Interval.
type Janitor struct {
	Store Deleter
	// Retention is how long records are kept; 0 keeps them forever and
	// makes Run return at once.
	Retention time.Duration
	// Interval between sweeps (default 1h).
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
}

// Sweep deletes what has expired now and returns how many records it removed.
func (j *Janitor) Sweep(ctx context.Context) (int64, error) {
	now := time.Now
	if j.Now != nil {
		now = j.Now
	}
	return j.Store.DeleteReceivedBefore(ctx, now().Add(-j.Retention))
}

// Run sweeps until ctx ends. Failures are logged and retried at the next
// sweep; Run returns nil when ctx ends.
func (j *Janitor) Run(ctx context.Context) error {
	if j.Retention <= 0 {
		return nil
	}
	log := j.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	every := j.Interval
	if every <= 0 {
		every = time.Hour
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := j.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention: sweep failed", "err", err)
		case n > 0:
			log.Info("retention: removed expired events", "events", n, "retention", j.Retention)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
