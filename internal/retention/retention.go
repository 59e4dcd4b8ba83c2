// Package retention removes Event History records once the configured
// retention has passed since cairn received them (an import of old logs is
// kept for the whole retention from its import). Lookups hide expired
// records on their own (see apiserver); the janitor (New(Config), Run(ctx)
// error) reclaims their space.
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

// Config configures a Janitor; Store is required.
type Config struct {
	Store Deleter
	// Retention is how long records are kept; 0 keeps them forever and
	// makes Run return at once.
	Retention time.Duration
	// Interval between sweeps (default 1h).
	Interval time.Duration
	Now      func() time.Time // the clock (default time.Now)
	Logger   *slog.Logger     // default: discard
}

// Janitor deletes expired records at start and then every Interval.
type Janitor struct{ cfg Config }

// New returns a janitor.
func New(cfg Config) *Janitor {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Janitor{cfg: cfg}
}

// Sweep deletes what has expired now and returns how many records it removed.
func (j *Janitor) Sweep(ctx context.Context) (int64, error) {
	return j.cfg.Store.DeleteReceivedBefore(ctx, j.cfg.Now().Add(-j.cfg.Retention))
}

// Run sweeps until ctx ends. Failures are logged and retried at the next
// sweep; Run returns nil when ctx ends, after the sweep under way. It
// starts no goroutine.
func (j *Janitor) Run(ctx context.Context) error {
	if j.cfg.Retention <= 0 {
		return nil
	}
	log := j.cfg.Logger
	t := time.NewTicker(j.cfg.Interval)
	defer t.Stop()
	for {
		n, err := j.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("retention: sweep failed", "err", err)
		case n > 0:
			log.Info("retention: removed expired events", "events", n, "retention", j.cfg.Retention)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
