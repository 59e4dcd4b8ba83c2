package trail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
)

// SharedConfig configures a registry kept in a StateStore that several
// nodes share (OpenSharedRegistry). Its zero value, but State, works.
type SharedConfig struct {
	// State keeps the registry under the key "trails.json".
	State audit.StateStore
	// Logger receives failed refreshes; default slog.Default().
	Logger *slog.Logger
	// Timeout bounds each call to State (default 10 s).
	Timeout time.Duration
}

// maxUpdateTries is how often a change is applied again on the trails
// another node changed meanwhile before it is refused as unavailable.
const maxUpdateTries = 16

// OpenSharedRegistry reads the registry kept in cfg.State. Every read of
// the registry first compares the stored version with the one it holds
// (one small query) and reads the trails again when another node changed
// them; every change is applied to the trails as stored and written with
// compare-and-swap on their version, and applied again on a conflict, so
// no node's change overwrites another's. The registry's file in the data
// dir (OpenRegistry) is not read.
func OpenSharedRegistry(ctx context.Context, cfg SharedConfig) (*Registry, error) {
	if cfg.State == nil {
		return nil, errors.New("trail: a shared registry needs a StateStore")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	r := &Registry{trails: map[string]*Trail{}, shared: &cfg}
	if err := r.refresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// refresh reads the trails again if their stored version is not the one
// the registry holds.
func (r *Registry) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.shared.Timeout)
	defer cancel()
	v, err := r.shared.State.Version(ctx, registryFile)
	if err != nil {
		return fmt.Errorf("trail: read the registry's version: %w", err)
	}
	r.mu.Lock()
	have := r.version
	r.mu.Unlock()
	if v == have {
		return nil
	}
	b, v, err := r.shared.State.Get(ctx, registryFile)
	if err != nil {
		return fmt.Errorf("trail: read the registry: %w", err)
	}
	trails := map[string]*Trail{}
	if v != 0 {
		var list []*Trail
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("trail: the shared registry is damaged: %w", err)
		}
		for _, t := range list {
			trails[t.ARN()] = t
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if v > r.version { // versions only grow: a slower refresh never goes back
		for _, t := range trails {
			r.attachLocked(t)
		}
		r.trails, r.version = trails, v
	}
	return nil
}

// fresh brings a shared registry up to date before a read; a failure is
// logged and the trails last read are used (a read never fails for it).
func (r *Registry) fresh() {
	if r.shared == nil {
		return
	}
	if err := r.refresh(context.Background()); err != nil {
		r.shared.Logger.Warn("trail: the shared registry could not be read; using the trails last read", "err", err)
	}
}

// updateShared is update for a shared registry: fn runs on a copy of the
// stored trails and the result is written if no one changed them since;
// else fn runs again on the new ones. Changes of one node go one at a
// time (writeMu). The write carries ctx's lease.Fence (not its
// cancellation): a write fenced off returns an error wrapping
// lease.ErrFenced, never retried.
func (r *Registry) updateShared(ctx context.Context, fn func(trails map[string]*Trail) error) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	base := context.WithoutCancel(ctx)
	for try := 0; try < maxUpdateTries; try++ {
		if err := r.refresh(base); err != nil {
			return &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
				Message: "cairn cannot read its trails from the shared store. Retry later."}
		}
		r.mu.Lock()
		staged, version := cloneTrails(r.trails), r.version
		r.mu.Unlock()
		if err := fn(staged); err != nil {
			return err
		}
		b, err := encode(staged)
		if err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(base, r.shared.Timeout)
		nv, err := r.shared.State.Put(wctx, registryFile, b, version)
		cancel()
		if errors.Is(err, audit.ErrStateConflict) {
			continue // another node changed the trails: apply fn to theirs
		}
		if errors.Is(err, lease.ErrFenced) {
			return fmt.Errorf("trail: save: %w", err) // the lease is lost: the writer stops
		}
		if err != nil {
			return &audit.Error{Code: audit.CodeServiceUnavailable, Err: fmt.Errorf("trail: save: %w", err),
				Message: "cairn cannot save the change to its shared store. Retry later."}
		}
		r.mu.Lock()
		if nv > r.version {
			for _, t := range staged {
				r.attachLocked(t)
			}
			r.trails, r.version = staged, nv
		}
		r.mu.Unlock()
		return nil
	}
	return &audit.Error{Code: audit.CodeServiceUnavailable, Err: errors.New("trail: save: too many concurrent changes"),
		Message: "The trails are being changed by other calls. Retry later."}
}
