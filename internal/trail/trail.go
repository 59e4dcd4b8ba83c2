// Package trail implements CloudTrail trails: the trail operations for a
// caller (Service: create, start logging, selectors, tags, ...; the API
// edge, apiserver, serves them on the wire), the registry that keeps
// trails in the data dir, event selection, and delivery of the selected
// records as log files to buckets in AWS's layout.
//
// It also implements log file integrity validation: per-region RSA key
// pairs kept in the data dir and rotated (Keyring; the API edge serves
// ListPublicKeys from it), and digest files (DigestWriter: one per trail,
// account and region every digest interval, chained through
// previousDigestSignature and signed with SHA256withRSA). The digest
// format and the validator that walks the chain as
// `aws cloudtrail validate-logs` does are in trail/chain (facts §5).
//
// A trail delivers every record the store holds that it selects and that
// was stored while it was logging: the registry keeps, per trail, the
// store's append sequence number up to which it has delivered, and moves it
// only after the bucket accepted the files (see docs/trails.md).
//
// The workers, NewDeliverer(DeliveryConfig) and NewDigestWriter(DigestConfig),
// run with Run(ctx) error (cmd/cairn runs them in its lifecycle.Group); a
// delivery status holds an S3 error code, never error text.
package trail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// Trail is one trail, in its home region.
type Trail struct {
	Name       string `json:"name"`
	Account    string `json:"account"`
	HomeRegion string `json:"homeRegion"`

	S3BucketName               string `json:"s3BucketName"`
	S3KeyPrefix                string `json:"s3KeyPrefix,omitempty"`
	IncludeGlobalServiceEvents bool   `json:"includeGlobalServiceEvents"`
	IsMultiRegionTrail         bool   `json:"isMultiRegionTrail"`
	LogFileValidationEnabled   bool   `json:"logFileValidationEnabled"`
	IsOrganizationTrail        bool   `json:"isOrganizationTrail"`
	// OrganizationID is the organization of an organization trail.
	OrganizationID string `json:"organizationId,omitempty"`

	// Selectors: exactly one kind is set (a new trail has the default
	// basic selector).
	EventSelectors         []EventSelector          `json:"eventSelectors,omitempty"`
	AdvancedEventSelectors []audit.AdvancedSelector `json:"advancedEventSelectors,omitempty"`
	CustomSelectors        bool                     `json:"customSelectors,omitempty"`
	InsightSelectors       []InsightSelector        `json:"insightSelectors,omitempty"`

	Tags []audit.Tag `json:"tags,omitempty"`

	Logging bool `json:"logging"`
	// Draining is set by StopLogging: the trail still delivers the records
	// of events up to StopLoggingTime (see drainWindow).
	Draining bool `json:"draining,omitempty"`
	// DeliverFrom is the time from which the trail delivers events: the
	// StartLoggingTime, or an earlier one when logging restarted while the
	// trail was still draining (then the stopped gap is delivered too:
	// rather twice than never).
	DeliverFrom      time.Time `json:"deliverFrom,omitzero"`
	StartLoggingTime time.Time `json:"startLoggingTime,omitzero"`
	StopLoggingTime  time.Time `json:"stopLoggingTime,omitzero"`

	// Position is the append sequence number of the store up to which the
	// trail has delivered (or skipped, while not logging).
	Position                  int64     `json:"position"`
	LatestDeliveryTime        time.Time `json:"latestDeliveryTime,omitzero"`
	LatestDeliveryAttemptTime time.Time `json:"latestDeliveryAttemptTime,omitzero"`
	LatestDeliveryError       string    `json:"latestDeliveryError,omitempty"`
	LatestDigestDeliveryTime  time.Time `json:"latestDigestDeliveryTime,omitzero"`
	LatestDigestDeliveryError string    `json:"latestDigestDeliveryError,omitempty"`
	// Pending is the batch a failed delivery left half written (see
	// Pending); nil when none.
	Pending *Pending `json:"pending,omitempty"`
	// Intent is the batch the trail is delivering: saved before its
	// first file is written, cleared when the position moves past it
	// (see Intent); nil when none.
	Intent *Intent `json:"intent,omitempty"`
	// SetAside counts the records the trail could not deliver and left
	// behind for good (their log key was refused): they stay in the
	// store, logged and counted, and never block the records after them.
	SetAside int64 `json:"setAside,omitempty"`
	// SetAsideCode and SetAsideTime are the error code and time of the
	// latest set-aside: LatestDeliveryError shows the code for
	// setAsideVisible after it, clean deliveries or not.
	SetAsideCode string    `json:"setAsideCode,omitempty"`
	SetAsideTime time.Time `json:"setAsideTime,omitzero"`

	// org is the organization of an organization trail (from the config).
	org *audit.Organization
}

// selectsAccount reports whether t delivers the events of account.
func (t *Trail) selectsAccount(account string) bool {
	return account == t.Account || t.org != nil && t.org.Has(account)
}

// Pending is a batch whose delivery failed part way: the groups of the
// records up to Upto (account/region/folder, as groupKey spells them)
// that were written or set aside already. A retry writes only the other
// groups, so a failure never rewrites earlier files into duplicates.
type Pending struct {
	Upto int64    `json:"upto"`
	Done []string `json:"done,omitempty"`
	// Wrote is set once the bucket accepted a file of the batch: a
	// refusal of another key is then about that key, not the bucket.
	Wrote bool `json:"wrote,omitempty"`
}

// Intent is a batch a trail has begun to deliver, saved in the registry
// (with the position, in the same write) before the batch's first file is
// written. It fixes everything that decides the batch's objects: the
// records (the feed's range from the trail's position to Upto), the trail
// as it selected and placed them (Trail: selectors, logging times, bucket,
// prefix), and the keys (the delivery time At and Seed, from which the
// random part of each file's key derives). A deliverer that finds an
// intent, after a crash, a restart or a takeover by another node, delivers
// exactly that batch again: the same keys with the same bytes, so the
// bucket holds each file once (a PutObject of an existing key replaces
// it) and each event in exactly one file.
type Intent struct {
	// From is the position the batch's range starts after (the trail's
	// position when it was begun): kept so that a StartLogging that moves
	// the position meanwhile does not move the range. Nil in intents
	// saved before it existed: their range starts at the position.
	From  *int64    `json:"from,omitempty"`
	Upto  int64     `json:"upto"`
	At    time.Time `json:"at"`
	Seed  string    `json:"seed"`
	Trail *Trail    `json:"trail"`
}

// intentStart returns the position the range of t's intent starts after.
func (t *Trail) intentStart() int64 {
	if in := t.Intent; in != nil && in.From != nil {
		return *in.From
	}
	return t.Position
}

// begun reports whether t holds a batch begun and not finished: its
// intent is cleared by the write that moves the position past it, and
// its range holds records.
func (t *Trail) begun() bool {
	return t.Intent != nil && t.Intent.Upto > t.intentStart()
}

// ARN returns the trail's ARN.
func (t *Trail) ARN() string {
	return "arn:aws:cloudtrail:" + t.HomeRegion + ":" + t.Account + ":trail/" + t.Name
}

// Covers reports whether the trail receives the events of region.
func (t *Trail) Covers(region string) bool {
	return t.IsMultiRegionTrail || region == t.HomeRegion
}

// Registry keeps the trails of every account in a JSON file, rewritten
// atomically when they change (trails are few: a handful per region).
//
// Changes are group-committed: update applies its change to a staged copy
// of the trails at once, and the change waits for the next write of the
// file; concurrent changes share that write and its fsync, and each caller
// is answered after the write that holds its change. Readers see the
// trails as last written.
type Registry struct {
	path string

	mu     sync.Mutex
	trails map[string]*Trail // by ARN, as last written
	org    *audit.Organization

	// Group commit (update). staged holds the changes waiting for a
	// write, on top of inflight (being written) or trails; sgroup is the
	// callers waiting for them. writing is set while a leader writes;
	// ready is closed when that write ends.
	staged   map[string]*Trail
	sgroup   *regGroup
	inflight map[string]*Trail
	writing  bool
	ready    chan struct{}
	// save writes the file's contents (r.write; tests replace it).
	save func(b []byte) error

	// shared is set for a registry in a StateStore (OpenSharedRegistry):
	// then version is the stored version trails were read at, and
	// writeMu orders this node's changes (shared.go).
	shared  *SharedConfig
	version int64
	writeMu sync.Mutex
}

// regGroup is the callers whose changes one write of the file holds.
type regGroup struct {
	done chan struct{} // closed once written (or failed); err is then set
	err  error
}

// registryFile is the registry's file in the data dir, replaced with
// atomicfile; registryTemp the prefix of the temporary files a crash
// during a write can leave (trails.json.tmp-DIGITS, and trails.json.tmp
// of earlier versions), which the next open removes.
const (
	registryFile = "trails.json"
	registryTemp = registryFile + ".tmp"
)

// OpenRegistry reads the registry kept in dir (empty when the file does
// not exist yet). It removes the temporary files a crash left behind.
func OpenRegistry(dir string) (*Registry, error) {
	r := &Registry{path: filepath.Join(dir, registryFile), trails: map[string]*Trail{}}
	r.save = r.write
	// trails.json.tmp-* of atomicfile, and trails.json.tmp of earlier versions.
	if stale, err := filepath.Glob(filepath.Join(dir, registryTemp+"*")); err == nil {
		for _, f := range stale {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("trail: removing %s left by a crash: %w", f, err)
			}
		}
	}
	list, err := readList[*Trail]("trail", r.path)
	if err != nil {
		return nil, err
	}
	for _, t := range list {
		r.trails[t.ARN()] = t
	}
	return r, nil
}

// readList reads the JSON list kept in path (the registry's trails, the
// digest writer's chains): none when the file does not exist yet. Its
// errors begin with pkg.
func readList[T any](pkg, path string) ([]T, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: read %s: %w", pkg, path, err)
	}
	var list []T
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("%s: %s is damaged: %w", pkg, path, err)
	}
	return list, nil
}

// WarnRefusedSelectors logs a warning for each trail whose advanced
// selectors PutEventSelectors refuses today (saved before they were
// validated as AWS does: a readOnly other than true or false, an operator
// other than Equals on eventCategory, readOnly or resources.type, a
// category a trail does not take) and returns how many. Such a trail is
// kept and keeps logging with its selectors, evaluated as before (a
// category that is not an event's matches nothing), until
// PutEventSelectors replaces them. Call it once after OpenRegistry.
func (r *Registry) WarnRefusedSelectors(log *slog.Logger) int {
	r.fresh()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, t := range sortedTrails(r.trails) {
		if len(t.AdvancedEventSelectors) == 0 {
			continue
		}
		if err := audit.ValidateSelectors(t.AdvancedEventSelectors, audit.ForTrail); err != nil {
			n++
			log.Warn("trail: trail has advanced event selectors PutEventSelectors refuses; it keeps them until PutEventSelectors replaces them",
				"trail", t.ARN(), "err", err)
		}
	}
	return n
}

// encode returns the file's contents for trails.
func encode(trails map[string]*Trail) ([]byte, error) {
	b, err := json.MarshalIndent(sortedTrails(trails), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("trail: save: %w", err)
	}
	return b, nil
}

// write replaces the registry's file with b: the temporary file, fsync,
// rename, fsync of the folder. A full disk is answered as
// ServiceUnavailable (the client may retry once space is freed).
func (r *Registry) write(b []byte) error {
	err := atomicfile.Write(r.path, b, 0o600)
	if errors.Is(err, atomicfile.ErrNotDurable) {
		// The rename is done, so the change stands (and is answered as
		// done) even though the folder's sync, its durability across a
		// power loss, failed.
		return nil
	}
	if err != nil {
		return saveError(err)
	}
	return nil
}

// saveError is the error a failed write answers: ServiceUnavailable for
// a full disk (the client may retry once space is freed), else the cause
// (InternalFailure for the client, logged).
func saveError(err error) error {
	err = fmt.Errorf("trail: save: %w", err)
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
			Message: "cairn cannot save the change: the disk of its data directory is full. Retry once space has been freed."}
	}
	return err
}

// cloneTrails copies trails (each Trail copied; fns replace a trail's
// slices rather than change their elements).
func cloneTrails(trails map[string]*Trail) map[string]*Trail {
	out := make(map[string]*Trail, len(trails))
	for k, t := range trails {
		c := *t
		out[k] = &c
	}
	return out
}

// update runs fn on the registry's trails and returns once the change is
// written; on an error of fn or of the write nothing changes. fn runs
// under the registry's lock on the staged trails (the last written ones
// with the changes waiting for a write); concurrent updates share one
// write and fsync (group commit). A failed write fails every change it
// holds and those staged on top of them.
func (r *Registry) update(fn func(trails map[string]*Trail) error) error {
	return r.updateCtx(context.Background(), fn)
}

// updateCtx is update for a job that writes under a lease (the
// deliverer): a shared registry's write carries ctx's values, its
// lease.Fence among them, so that it is refused (an error wrapping
// lease.ErrFenced) once another node holds the lease. ctx's cancellation
// does not stop the write (a round settles what it wrote).
func (r *Registry) updateCtx(ctx context.Context, fn func(trails map[string]*Trail) error) error {
	if r.shared != nil {
		return r.updateShared(ctx, fn)
	}
	r.mu.Lock()
	if r.path == "" { // a registry in memory (tests)
		defer r.mu.Unlock()
		return apply(r.trails, fn)
	}
	if r.staged == nil {
		base := r.trails
		if r.inflight != nil {
			base = r.inflight
		}
		r.staged = cloneTrails(base)
		r.sgroup = &regGroup{done: make(chan struct{})}
	}
	if err := apply(r.staged, fn); err != nil {
		r.mu.Unlock()
		return err
	}
	g := r.sgroup
	for {
		select {
		case <-g.done:
			r.mu.Unlock()
			return g.err
		default:
		}
		if g != r.sgroup { // another member leads its write
			r.mu.Unlock()
			<-g.done
			return g.err
		}
		if !r.writing {
			break
		}
		ready := r.ready
		r.mu.Unlock()
		<-ready
		r.mu.Lock()
	}
	// Lead the write of g.
	snap := r.staged
	r.staged, r.sgroup = nil, nil
	r.inflight, r.writing, r.ready = snap, true, make(chan struct{})
	r.mu.Unlock()

	b, err := encode(snap)
	if err == nil {
		err = r.save(b)
	}

	r.mu.Lock()
	if err == nil {
		r.trails = snap
	} else if r.staged != nil {
		// Staged on top of the failed changes: they fail too.
		r.sgroup.err = err
		close(r.sgroup.done)
		r.staged, r.sgroup = nil, nil
	}
	r.inflight, r.writing = nil, false
	g.err = err
	close(g.done)
	close(r.ready)
	r.mu.Unlock()
	return err
}

// apply runs fn on trails; on an error every trail is put back as it was.
func apply(trails map[string]*Trail, fn func(trails map[string]*Trail) error) error {
	before := make(map[string]Trail, len(trails))
	for k, t := range trails {
		before[k] = *t
	}
	err := fn(trails)
	if err != nil {
		for k := range trails {
			if _, ok := before[k]; !ok {
				delete(trails, k)
			}
		}
		for k, t := range before {
			if cur := trails[k]; cur != nil {
				*cur = t
			} else {
				t := t
				trails[k] = &t
			}
		}
	}
	return err
}

// snapshot returns copies of the trails fn selects, sorted by ARN.
func (r *Registry) snapshot(fn func(t *Trail) bool) []Trail {
	r.fresh()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Trail
	for _, t := range r.trails {
		if fn == nil || fn(t) {
			out = append(out, *t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN() < out[j].ARN() })
	return out
}

// Trails returns copies of every trail, sorted by ARN.
func (r *Registry) Trails() []Trail { return r.snapshot(nil) }

// view runs fn on the registry under its lock, without saving.
func (r *Registry) view(fn func(trails map[string]*Trail) error) error {
	r.fresh()
	r.mu.Lock()
	defer r.mu.Unlock()
	return fn(r.trails)
}

// sortedTrails returns the trails sorted by ARN.
func sortedTrails(trails map[string]*Trail) []*Trail {
	out := make([]*Trail, 0, len(trails))
	for _, t := range trails {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ARN() < out[j].ARN() })
	return out
}
