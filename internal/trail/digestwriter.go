package trail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/bucket/objects"
	"github.com/cairn-audit/cairn/internal/lease"
	"github.com/cairn-audit/cairn/internal/trail/chain"
)

// DigestTrails is what the writer needs of the trail registry: the
// *Registry (its status method is unexported, so only this package's
// types satisfy it).
type DigestTrails interface {
	Trails() []Trail
	// setDigestStatus records a digest delivery's outcome; the write
	// carries ctx's lease.Fence (refused with lease.ErrFenced once another
	// node holds the lease).
	setDigestStatus(ctx context.Context, arn string, at time.Time, deliveryErr string) error
}

// DigestConfig configures a DigestWriter. Dir, Trails, Bucket and Keys are
// required; the rest has working defaults.
type DigestConfig struct {
	// Dir is the data dir, where the writer keeps its chains
	// (digest-chains.json).
	Dir    string
	Trails DigestTrails
	// Bucket returns the bucket a trail names (false: not configured).
	Bucket func(name string) (Bucket, bool)
	Keys   *Keyring
	// State, when set, keeps the chains in a StateStore that other nodes
	// share (under the key digest-chains.json) instead of Dir: a node
	// that takes over the digests continues the chains where the last
	// writer left them. Each round and each delivered file first compare
	// the stored version (one small query) and read the chains again
	// when another node wrote them; a write that lost the race to
	// another node's is applied again to the chains read back.
	State audit.StateStore
	// Interval between digests of a chain (default 1 hour, as AWS).
	Interval time.Duration
	Now      func() time.Time // the clock (default time.Now)
	Logger   *slog.Logger     // default: discard
}

// DefaultDigestInterval is how often a chain gets a digest when
// DigestConfig.Interval is zero.
const DefaultDigestInterval = time.Hour

// DigestWriter writes the digest files of trails with log file validation: it
// learns of every delivered log file (Observer) and, every Interval,
// writes one digest per trail, account and region — also when no log file
// was delivered, as AWS does. Its chains (previous digest, log files not
// yet digested) are kept in the data dir, so a restart continues them.
type DigestWriter struct {
	cfg DigestConfig

	path string
	mu   sync.Mutex // guards chains and the state file
	// write serializes WriteDue (a digest round).
	write  sync.Mutex
	chains map[string]*chainState
	// version is the stored version of the chains (cfg.State).
	version int64
}

// chainState is the digest chain of one trail, account and region.
type chainState struct {
	TrailARN string `json:"trailArn"`
	Account  string `json:"account"`
	Region   string `json:"region"`
	// Logging is the trail's StartLoggingTime when the chain began: a
	// restart of logging begins a new chain.
	Logging time.Time `json:"logging"`
	// Start is the start of the next digest.
	Start time.Time `json:"start"`
	// Previous digest (empty for a chain without a digest yet).
	PrevBucket    string    `json:"prevBucket,omitempty"`
	PrevKey       string    `json:"prevKey,omitempty"`
	PrevHash      string    `json:"prevHash,omitempty"`
	PrevSignature string    `json:"prevSignature,omitempty"`
	PrevEnd       time.Time `json:"prevEnd,omitzero"`
	Pending       []pending `json:"pending,omitempty"`
	// Digested holds the keys of the log files of the chain's latest
	// digest: a file delivered again (a batch redone after a crash or a
	// takeover, under the same key with the same bytes) is listed once.
	Digested []string `json:"digested,omitempty"`
	// Ended is set by a final digest (logging stopped, validation off,
	// trail deleted): the chain writes no more digests unless files
	// delivered after it arrive, which get one more digest chained to it.
	Ended bool `json:"ended,omitempty"`
	// Trail holds what the final digest of a deleted trail needs.
	Trail *trailCopy `json:"trail,omitempty"`
}

// trailCopy is the part of a trail that places its digests.
type trailCopy struct {
	Name                string `json:"name"`
	HomeRegion          string `json:"homeRegion"`
	S3BucketName        string `json:"s3BucketName"`
	S3KeyPrefix         string `json:"s3KeyPrefix,omitempty"`
	IsOrganizationTrail bool   `json:"isOrganizationTrail,omitempty"`
	OrganizationID      string `json:"organizationId,omitempty"`
}

func copyOf(t *Trail) *trailCopy {
	return &trailCopy{Name: t.Name, HomeRegion: t.HomeRegion, S3BucketName: t.S3BucketName, S3KeyPrefix: t.S3KeyPrefix,
		IsOrganizationTrail: t.IsOrganizationTrail, OrganizationID: t.OrganizationID}
}

// trail returns the trail a copy was taken of, as far as digests need it.
func (c *trailCopy) trail(account string) Trail {
	return Trail{Name: c.Name, Account: account, HomeRegion: c.HomeRegion, S3BucketName: c.S3BucketName,
		S3KeyPrefix: c.S3KeyPrefix, IsOrganizationTrail: c.IsOrganizationTrail, OrganizationID: c.OrganizationID}
}

type pending struct {
	DigestLogFile
	Oldest time.Time `json:"oldest"`
	Newest time.Time `json:"newest"`
}

func chainID(arn, account, region string) string { return arn + "|" + account + "|" + region }

// stateFile is the writer's file in the data dir.
const stateFile = "digest-chains.json"

// NewDigestWriter returns a writer keeping its chains in cfg.Dir. It
// owns that file: it removes the temporary files a crash left next to it,
// so only the server may open one.
func NewDigestWriter(cfg DigestConfig) (*DigestWriter, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultDigestInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	w := &DigestWriter{cfg: cfg, path: filepath.Join(cfg.Dir, stateFile), chains: map[string]*chainState{}}
	if cfg.State != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		if err := w.refreshLocked(); err != nil {
			return nil, err
		}
		return w, nil
	}
	if err := atomicfile.CleanTemp(w.path); err != nil {
		return nil, fmt.Errorf("digest: %w", err)
	}
	list, err := readList[*chainState]("digest", w.path)
	if err != nil {
		return nil, err
	}
	for _, c := range list {
		w.chains[chainID(c.TrailARN, c.Account, c.Region)] = c
	}
	return w, nil
}

// saveLocked writes the chains; a shared write carries ctx's values (its
// lease.Fence), not its cancellation.
func (w *DigestWriter) saveLocked(ctx context.Context) error {
	list := make([]*chainState, 0, len(w.chains))
	for _, c := range w.chains {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		return chainID(list[i].TrailARN, list[i].Account, list[i].Region) < chainID(list[j].TrailARN, list[j].Account, list[j].Region)
	})
	b, err := json.Marshal(list)
	if err != nil {
		return err
	}
	if w.cfg.State != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		v, err := w.cfg.State.Put(ctx, stateFile, b, w.version)
		if errors.Is(err, lease.ErrFenced) {
			// Another node holds the lease and writes the chains: the
			// ones changed here are dropped, read again if ever needed.
			w.version = -1
		}
		if err != nil {
			return fmt.Errorf("digest: save the chains: %w", err)
		}
		w.version = v
		return nil
	}
	return atomicfile.Write(w.path, b, 0o644)
}

// refreshLocked reads the shared chains again when another node wrote
// them since (nothing without cfg.State).
func (w *DigestWriter) refreshLocked() error {
	if w.cfg.State == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := w.cfg.State.Version(ctx, stateFile)
	if err != nil {
		return fmt.Errorf("digest: read the chains' version: %w", err)
	}
	if v == w.version {
		return nil
	}
	b, v, err := w.cfg.State.Get(ctx, stateFile)
	if err != nil {
		return fmt.Errorf("digest: read the chains: %w", err)
	}
	var list []*chainState
	if v != 0 {
		if err := json.Unmarshal(b, &list); err != nil {
			return fmt.Errorf("digest: the shared chains are damaged: %w", err)
		}
	}
	w.chains = make(map[string]*chainState, len(list))
	for _, c := range list {
		w.chains[chainID(c.TrailARN, c.Account, c.Region)] = c
	}
	w.version = v
	return nil
}

// changeLocked runs fn on the chains and saves them. On a shared store
// that another node wrote meanwhile, fn runs again on the chains read
// back, so neither node's change is lost. With a lease.Fence in ctx the
// write is refused (lease.ErrFenced) once another node holds the lease.
func (w *DigestWriter) changeLocked(ctx context.Context, fn func()) error {
	for range 8 {
		if err := w.refreshLocked(); err != nil {
			return err
		}
		fn()
		err := w.saveLocked(ctx)
		if !errors.Is(err, audit.ErrStateConflict) {
			return err
		}
	}
	return fmt.Errorf("digest: save the chains: %w", audit.ErrStateConflict)
}

// LogDelivered records a delivered log file for the next digest of its
// trail, account and region (Observer). hash is the hex SHA-256 of the
// uncompressed file (chain.HashLog).
func (w *DigestWriter) LogDelivered(ctx context.Context, t Trail, account, region, key, hash string, oldest, newest time.Time) {
	if !t.LogFileValidationEnabled {
		return
	}
	p := pending{DigestLogFile: DigestLogFile{S3Bucket: t.S3BucketName, S3Object: key, HashValue: hash, HashAlgorithm: HashAlgorithm,
		NewestEventTime: chain.FormatTime(newest), OldestEventTime: chain.FormatTime(oldest)}, Oldest: oldest, Newest: newest}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.changeLocked(ctx, func() {
		c := w.chainLocked(&t, account, region)
		// A file is listed once: a batch delivered again writes the
		// same key with the same bytes. A file digested already stays
		// in that digest; one not digested yet gets its latest hash.
		if slices.Contains(c.Digested, key) {
			return
		}
		for i := range c.Pending {
			if c.Pending[i].S3Bucket == p.S3Bucket && c.Pending[i].S3Object == key {
				c.Pending[i] = p
				return
			}
		}
		c.Pending = append(c.Pending, p)
	}); err != nil {
		w.log().Error("digest: saving the chains", "err", err)
	}
}

// chainLocked returns the chain of t, account and region, beginning one
// when there is none.
func (w *DigestWriter) chainLocked(t *Trail, account, region string) *chainState {
	id := chainID(t.ARN(), account, region)
	c := w.chains[id]
	if c != nil && c.Ended && !t.StartLoggingTime.Equal(c.Logging) {
		// Logging restarted after a final digest: a new chain, keeping
		// the files not digested yet.
		pend := c.Pending
		delete(w.chains, id)
		c = w.chainLocked(t, account, region)
		c.Pending = append(pend, c.Pending...)
		return c
	}
	if c == nil {
		// The chain starts when logging started, but covers at most one
		// interval before now (validation may have been enabled later).
		now := w.now()
		start := now
		if !t.StartLoggingTime.IsZero() && t.StartLoggingTime.Before(now) {
			start = t.StartLoggingTime
			if floor := now.Add(-w.cfg.Interval); start.Before(floor) {
				start = floor
			}
		}
		c = &chainState{TrailARN: t.ARN(), Account: account, Region: region, Logging: t.StartLoggingTime, Start: start.UTC().Truncate(time.Second)}
		w.chains[id] = c
	}
	c.Trail = copyOf(t)
	return c
}

// Run writes the due digests at once (a restart, after a crash too,
// catches up on digests that came due while cairn was down instead of
// waiting another interval), then every Interval until ctx ends, and
// returns nil. Files delivered but not digested yet wait in the data dir
// for the next start. It starts no goroutine.
func (w *DigestWriter) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	if err := w.writeDue(ctx); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := w.writeDue(ctx); err != nil {
				return err // the lease is lost: the node holding it writes the digests
			}
		}
	}
}

// WriteDue writes a digest for every chain whose interval has passed: of
// every logging trail with validation, in its home region and in every
// region it delivered logs for, per account. A chain whose trail stopped
// logging, lost validation, restarted logging or was deleted gets a final
// digest and ends; its next digest will be a starting digest.
func (w *DigestWriter) WriteDue(ctx context.Context) { _ = w.writeDue(ctx) }

// writeDue is WriteDue; it stops at a save of the chains fenced off (ctx
// carries a lease.Fence another node's holding replaced) and returns its
// error (lease.ErrFenced), after which it writes nothing more.
func (w *DigestWriter) writeDue(ctx context.Context) error {
	w.write.Lock()
	defer w.write.Unlock()
	now := w.now().UTC().Truncate(time.Second)
	trails := map[string]Trail{}
	for _, t := range w.cfg.Trails.Trails() {
		trails[t.ARN()] = t
	}
	w.mu.Lock()
	if err := w.refreshLocked(); err != nil {
		w.log().Error("digest: reading the shared chains; using those last read", "err", err)
	}
	for _, t := range trails {
		// A trail homed in a region that is no region (created before
		// regions were validated) gets no home-region chain: its digest
		// keys could not be written.
		if t.Logging && t.LogFileValidationEnabled && audit.ValidRegion(t.HomeRegion) {
			for _, acct := range t.accounts() {
				w.chainLocked(&t, acct, t.HomeRegion)
			}
		}
	}
	ids := make([]string, 0, len(w.chains))
	for id := range w.chains {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	sort.Strings(ids)

	for _, id := range ids {
		w.mu.Lock()
		c := w.chains[id]
		var snap chainState
		if c != nil {
			snap = *c
			snap.Pending = append([]pending(nil), c.Pending...)
		}
		w.mu.Unlock()
		if c == nil {
			continue
		}
		t, ok := trails[snap.TrailARN]
		active := ok && t.Logging && t.LogFileValidationEnabled && t.StartLoggingTime.Equal(snap.Logging)
		if snap.Ended && len(snap.Pending) == 0 {
			w.mu.Lock()
			if err := w.changeLocked(ctx, func() {
				if cur := w.chains[id]; cur != nil && len(cur.Pending) == 0 {
					switch {
					case !ok:
						delete(w.chains, id) // deleted trail: done
					case active:
						// Validation turned back on: a starting digest next.
						cur.Ended, cur.PrevBucket, cur.PrevKey, cur.PrevHash, cur.PrevSignature = false, "", "", "", ""
						cur.Start = now
					}
				}
			}); err != nil {
				w.mu.Unlock()
				if errors.Is(err, lease.ErrFenced) {
					return err
				}
				w.log().Error("digest: saving the chains", "err", err)
				continue
			}
			w.mu.Unlock()
			continue
		}
		if active && !snap.Ended && now.Sub(snap.Start) < w.cfg.Interval {
			continue
		}
		if !ok {
			if snap.Trail == nil {
				w.mu.Lock()
				err := w.changeLocked(ctx, func() { delete(w.chains, id) })
				w.mu.Unlock()
				if errors.Is(err, lease.ErrFenced) {
					return err
				}
				if err != nil {
					w.log().Error("digest: saving the chains", "err", err)
				}
				continue
			}
			// Deleted trail: a final digest, with the settings it had.
			t = snap.Trail.trail(snap.Account)
		}
		if !now.After(snap.PrevEnd) || !now.After(snap.Start) {
			continue // at most one digest per second
		}
		err := w.writeDigest(ctx, &t, &snap, now)
		if err != nil && ctx.Err() != nil {
			return nil // shutdown: no failure; the chain is unchanged and the next start writes it
		}
		if err != nil {
			w.log().Warn("digest: delivery failed", "trail", t.ARN(), "account", snap.Account, "region", snap.Region, "err", err)
			// The status gets an S3-style code, never raw text.
			if serr := w.cfg.Trails.setDigestStatus(ctx, t.ARN(), now, objects.ErrorCode(err)); serr != nil {
				if errors.Is(serr, lease.ErrFenced) {
					return serr
				}
				w.log().Error("digest: saving the digest status", "err", serr)
			}
			continue
		}
		w.mu.Lock()
		err = w.changeLocked(ctx, func() {
			if cur := w.chains[id]; cur != nil {
				if ok {
					cur.Trail = copyOf(&t)
				}
				cur.PrevBucket, cur.PrevKey, cur.PrevHash, cur.PrevSignature, cur.PrevEnd =
					snap.PrevBucket, snap.PrevKey, snap.PrevHash, snap.PrevSignature, snap.PrevEnd
				cur.Start = now
				// The files this digest holds (read back from another
				// node's write, the chain may hold fewer).
				n := min(len(snap.Pending), len(cur.Pending))
				cur.Digested = cur.Digested[:0:0]
				for _, p := range cur.Pending[:n] {
					cur.Digested = append(cur.Digested, p.S3Object)
				}
				cur.Pending = cur.Pending[n:]
				cur.Ended = !active
			}
		})
		w.mu.Unlock()
		if errors.Is(err, lease.ErrFenced) {
			return err
		}
		if err != nil {
			w.log().Error("digest: saving the chains", "err", err)
		}
		if serr := w.cfg.Trails.setDigestStatus(ctx, t.ARN(), now, ""); serr != nil {
			if errors.Is(serr, lease.ErrFenced) {
				return serr
			}
			w.log().Error("digest: saving the digest status", "err", serr)
		}
	}
	return nil
}

// writeDigest writes c's digest ending at end and advances c (a copy) to
// it.
func (w *DigestWriter) writeDigest(ctx context.Context, t *Trail, c *chainState, end time.Time) error {
	b, ok := w.cfg.Bucket(t.S3BucketName)
	if !ok {
		return &objects.CodeError{Code: "NoSuchBucket", Err: fmt.Errorf("bucket %s is not configured", t.S3BucketName)}
	}
	k, err := w.cfg.Keys.Current(c.Region, end)
	if err != nil {
		return err
	}
	key := chain.ObjectKey(t.keyPrefix(c.Account, folderDigests, c.Region), c.Account, c.Region, t.Name, t.HomeRegion, end)
	f := DigestFile{AWSAccountID: c.Account, DigestStartTime: chain.FormatTime(c.Start), DigestEndTime: chain.FormatTime(end),
		DigestS3Bucket: t.S3BucketName, DigestS3Object: key, LogFiles: []DigestLogFile{}}
	var oldest, newest time.Time
	for i, p := range c.Pending {
		f.LogFiles = append(f.LogFiles, p.DigestLogFile)
		if i == 0 || p.Oldest.Before(oldest) {
			oldest = p.Oldest
		}
		if i == 0 || p.Newest.After(newest) {
			newest = p.Newest
		}
	}
	if len(c.Pending) > 0 {
		o, n := chain.FormatTime(oldest), chain.FormatTime(newest)
		f.OldestEventTime, f.NewestEventTime = &o, &n
	}
	if c.PrevKey != "" {
		alg := HashAlgorithm
		f.PreviousDigestS3Bucket, f.PreviousDigestS3Object = &c.PrevBucket, &c.PrevKey
		f.PreviousDigestHashValue, f.PreviousDigestHashAlgorithm, f.PreviousDigestSignature = &c.PrevHash, &alg, &c.PrevSignature
	}
	s, err := SignDigest(&f, k)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, key, s.Gzip, "application/json", s.Metadata()); err != nil {
		return err
	}
	c.PrevBucket, c.PrevKey, c.PrevHash, c.PrevSignature, c.PrevEnd = t.S3BucketName, key, s.Hash, s.Signature, end
	return nil
}

func (w *DigestWriter) now() time.Time { return w.cfg.Now() }

func (w *DigestWriter) log() *slog.Logger { return w.cfg.Logger }
