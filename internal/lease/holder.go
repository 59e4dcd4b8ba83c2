package lease

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Holder. The zero value works: one node holding
// every lease of a Local table.
type Config struct {
	// Table keeps the leases (nil: a Local of the Holder's own).
	Table Table
	// Node names this node, the holder the table records.
	Node string
	// TTL is how long a holding lasts without renewal (default
	// DefaultTTL). The holder renews every TTL/3 and stops its job when
	// no renewal has succeeded for nine tenths of TTL.
	TTL time.Duration
	// Retry is how often a node that does not hold a lease tries to take
	// it (default DefaultRetry).
	Retry time.Duration
	// Logger receives acquisitions and losses (default: discard).
	Logger *slog.Logger
	// Registerer receives cairn_lease_held and cairn_lease_changes_total
	// (nil: none).
	Registerer prometheus.Registerer
}

// Holder runs jobs under leases for one node.
type Holder struct {
	cfg     Config
	held    *prometheus.GaugeVec
	changes *prometheus.CounterVec
}

// NewHolder returns a Holder; its metrics are registered on
// cfg.Registerer.
func NewHolder(cfg Config) *Holder {
	if cfg.Table == nil {
		cfg.Table = &Local{}
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Holder{cfg: cfg,
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cairn_lease_held",
			Help: "1 while this node holds the lease, else 0."}, []string{"lease"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cairn_lease_changes_total",
			Help: "Changes of this node's holding of the lease: acquired, lost (expired, taken or fenced off), released (at shutdown)."},
			[]string{"lease", "change"}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.held, h.changes)
	}
	return h
}

// Node returns the node's name.
func (h *Holder) Node() string { return h.cfg.Node }

// Run returns a worker (lifecycle.Group) that runs job while this node
// holds the lease name: it tries to acquire every Retry, starts job with a
// context carrying the holding's Fence, renews every TTL/3, and when the
// lease is lost cancels job's context with the cause ErrLost, waits for it
// to return and tries again. When its own context ends it cancels job
// (cause context.Canceled: the job's shutdown work runs), waits for it and
// releases the lease.
//
// A job returning ErrFenced (or an error wrapping it) lost the lease; one
// returning nil before being stopped has finished, and the worker returns
// nil (releasing the lease); any other error is returned.
func (h *Holder) Run(name string, job func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		held := h.held.WithLabelValues(name)
		held.Set(0)
		for _, c := range []string{"acquired", "lost", "released"} {
			h.changes.WithLabelValues(name, c)
		}
		log := h.cfg.Logger.With("lease", name, "node", h.cfg.Node)
		failing := false
		for {
			start := time.Now()
			token, ok, err := h.cfg.Table.Acquire(ctx, name, h.cfg.Node, h.cfg.TTL)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				if !failing { // once per outage, not every Retry
					log.Warn("lease: cannot acquire", "err", err)
				}
				failing = true
			case ok:
				failing = false
				f := Fence{Lease: name, Holder: h.cfg.Node, Token: token}
				held.Set(1)
				h.changes.WithLabelValues(name, "acquired").Inc()
				log.Info("lease acquired", "token", token)
				done, err := h.hold(ctx, f, start.Add(h.valid()), job, log)
				held.Set(0)
				if done {
					h.release(f, log)
					return err
				}
				h.changes.WithLabelValues(name, "lost").Inc()
				log.Warn("lease lost: its work stopped here", "token", token, "cause", err)
				// Whatever of the holding the table still has (a job
				// fenced off by a write, renewals cut off short of the
				// table's expiry) ends now.
				rctx, cancel := context.WithTimeout(context.Background(), h.cfg.Retry)
				_ = h.cfg.Table.Release(rctx, f)
				cancel()
			default:
				failing = false
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(h.cfg.Retry):
			}
		}
	}
}

// hold runs job under f until the lease is lost (done false, err the
// cause) or the worker ends (done true, err what Run returns).
func (h *Holder) hold(ctx context.Context, f Fence, validUntil time.Time, job func(context.Context) error, log *slog.Logger) (done bool, err error) {
	jctx, cancel := context.WithCancelCause(WithFence(ctx, f))
	defer cancel(nil)
	exit := make(chan error, 1)
	go func() { exit <- job(jctx) }()
	renew := time.NewTicker(h.cfg.TTL / 3)
	defer renew.Stop()
	expiry := time.NewTimer(time.Until(validUntil))
	defer expiry.Stop()
	lose := func(cause error) (bool, error) {
		cancel(ErrLost)
		<-exit
		return false, cause
	}
	for {
		select {
		case err := <-exit:
			switch {
			case ctx.Err() != nil && errors.Is(err, ErrFenced):
				return true, nil // stopping anyway
			case ctx.Err() != nil:
				return true, err
			case errors.Is(err, ErrFenced):
				return false, err
			default:
				return true, err
			}
		case <-ctx.Done():
			cancel(context.Canceled)
			err := <-exit
			if errors.Is(err, ErrFenced) {
				err = nil // stopping anyway
			}
			return true, err
		case <-expiry.C:
			return lose(errors.New("no renewal succeeded within the lease's TTL"))
		case <-renew.C:
			start := time.Now()
			rctx, rcancel := context.WithDeadline(ctx, validUntil)
			ok, err := h.cfg.Table.Renew(rctx, f, h.cfg.TTL)
			rcancel()
			switch {
			case ctx.Err() != nil:
				// stopping: the next round of the loop sees it
			case err == nil && !ok:
				return lose(errors.New("another node holds the lease"))
			case err == nil:
				validUntil = start.Add(h.valid())
				expiry.Reset(time.Until(validUntil))
			case !time.Now().Before(validUntil):
				return lose(err)
			default:
				log.Warn("lease: renewal failed; retrying", "err", err)
			}
		}
	}
}

// valid is how long after sending a successful Acquire or Renew this node
// takes its holding for valid: nine tenths of the TTL, so that its job has
// stopped before the table's holding (counted from when the table got the
// request, later) expires, even with clocks running at slightly different
// rates.
func (h *Holder) valid() time.Duration { return h.cfg.TTL - h.cfg.TTL/10 }

// release ends the holding at shutdown so that another node takes the
// lease without waiting for its expiry.
func (h *Holder) release(f Fence, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.cfg.Table.Release(ctx, f); err != nil {
		log.Warn("lease: release failed; it expires on its own", "err", err)
		return
	}
	h.changes.WithLabelValues(f.Lease, "released").Inc()
	log.Info("lease released", "token", f.Token)
}
