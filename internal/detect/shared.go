package detect

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
)

// findingsPrefix is where a shared Detector keeps its findings: one key a
// stored batch, named by the feed position it ends at (and a random
// suffix, so two nodes never write one key), so keys sort in detection
// order.
const findingsPrefix = "detect-findings/"

// stateTimeout bounds each call to the shared store.
const stateTimeout = 10 * time.Second

// sharedState is what a shared Detector knows of the store.
type sharedState struct {
	version int64   // StateFile's version as last read or written
	listed  int64   // StateFile's version when the findings were last read
	batches []batch // the stored batches, in key order
}

// batch is one stored batch: its key, version and the findings of it
// that d.findings holds (repeats of earlier ones left out).
type batch struct {
	key     string
	version int64
	n       int
}

// openShared reads the positions and findings every node shares.
func (d *Detector) openShared() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.loadSharedLocked(context.Background()); err != nil {
		return err
	}
	d.live = true
	return nil
}

// loadSharedLocked reads the positions and every stored batch, in key
// order; a finding seen in an earlier batch is kept once, a damaged line
// is skipped and logged.
func (d *Detector) loadSharedLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	b, v, err := d.cfg.State.Get(ctx, StateFile)
	if err != nil {
		return fmt.Errorf("detect: read the shared positions: %w", err)
	}
	var st state
	if v != 0 {
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("detect: the shared %s is damaged: %w", StateFile, err)
		}
	}
	all, err := d.cfg.State.List(ctx, findingsPrefix)
	if err != nil {
		return fmt.Errorf("detect: read the shared findings: %w", err)
	}
	var findings []Finding
	var batches []batch
	seen := map[string]bool{}
	bad := 0
	for _, e := range all {
		bt := batch{key: e.Key, version: e.Version}
		sc := bufio.NewScanner(bytes.NewReader(e.Value))
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var f Finding
			if json.Unmarshal(sc.Bytes(), &f) != nil || f.ID == "" {
				bad++
				continue
			}
			if !seen[f.ID] {
				seen[f.ID] = true
				findings = append(findings, f)
				bt.n++
			}
		}
		batches = append(batches, bt)
	}
	if bad > 0 {
		d.log.Warn("detect: damaged lines of the shared findings skipped", "lines", bad)
	}
	d.st, d.findings, d.seen = st, findings, seen
	d.st.Delivered = min(d.st.Delivered, len(findings))
	d.shared = sharedState{version: v, listed: v, batches: batches}
	return nil
}

// refreshSharedLocked reads the findings again when another node saved
// positions since they were read (the positions move with every batch).
func (d *Detector) refreshSharedLocked(ctx context.Context) error {
	vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	v, err := d.cfg.State.Version(vctx, StateFile)
	if err != nil {
		return fmt.Errorf("detect: read the shared positions' version: %w", err)
	}
	if v == d.shared.listed {
		return nil
	}
	return d.loadSharedLocked(ctx)
}

// putBatchLocked stores one batch of n new findings (JSON lines) found up
// to feed position pos, before the position moves past it. The write
// carries ctx's lease.Fence (not its cancellation): once another node
// holds detection it is refused with an error wrapping lease.ErrFenced.
func (d *Detector) putBatchLocked(ctx context.Context, pos int64, lines []byte, n int) error {
	var suffix [4]byte
	rand.Read(suffix[:]) // never fails (crypto/rand)
	key := fmt.Sprintf("%s%020d-%s", findingsPrefix, pos, hex.EncodeToString(suffix[:]))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	v, err := d.cfg.State.Put(ctx, key, lines, 0)
	if err != nil {
		d.fencedLocked(err)
		return fmt.Errorf("detect: writing findings: %w", err)
	}
	d.shared.batches = append(d.shared.batches, batch{key: key, version: v, n: n})
	return nil
}

// saveSharedStateLocked saves the positions with compare-and-swap. When
// another node saved since, its positions are read: the feed position
// kept is the further one (the records before it are matched, by one node
// or the other), the webhook's the nearer one (a finding is posted again
// rather than never), and the findings are read again at the next List.
// The write carries ctx's lease.Fence, as putBatchLocked's; a fenced-off
// save is not retried.
func (d *Detector) saveSharedStateLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	for range 8 {
		b, _ := json.Marshal(d.st)
		in := d.shared.listed == d.shared.version
		v, err := d.cfg.State.Put(ctx, StateFile, b, d.shared.version)
		if err == nil {
			d.shared.version = v
			if in { // the findings held are the stored ones
				d.shared.listed = v
			}
			return nil
		}
		if !errors.Is(err, audit.ErrStateConflict) {
			d.fencedLocked(err)
			return fmt.Errorf("detect: saving the position: %w", err)
		}
		tb, tv, err := d.cfg.State.Get(ctx, StateFile)
		if err != nil {
			return fmt.Errorf("detect: saving the position: %w", err)
		}
		var theirs state
		if tv != 0 {
			if err := json.Unmarshal(tb, &theirs); err != nil {
				return fmt.Errorf("detect: the shared %s is damaged: %w", StateFile, err)
			}
		}
		d.st.Position = max(d.st.Position, theirs.Position)
		d.st.Delivered = min(d.st.Delivered, theirs.Delivered)
		d.shared.version = tv
	}
	return fmt.Errorf("detect: saving the position: %w", audit.ErrStateConflict)
}

// expireSharedLocked removes the whole batches among the n oldest
// findings (Expire's count): the position first, then the batches, each
// write carrying ctx's lease.Fence.
func (d *Detector) expireSharedLocked(ctx context.Context, n int) (int, error) {
	m, k := 0, 0
	for k < len(d.shared.batches) && m+d.shared.batches[k].n <= n {
		m += d.shared.batches[k].n
		k++
	}
	if k == 0 {
		return 0, nil
	}
	old := d.st
	d.st.Delivered = max(0, d.st.Delivered-m)
	if err := d.saveStateLocked(ctx); err != nil {
		d.st = old
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateTimeout)
	defer cancel()
	for _, b := range d.shared.batches[:k] {
		if err := d.cfg.State.Delete(ctx, b.key, b.version); errors.Is(err, lease.ErrFenced) {
			d.fencedLocked(err)
			return 0, fmt.Errorf("detect: removing an expired batch of findings: %w", err)
		} else if err != nil {
			d.log.Warn("detect: removing an expired batch of findings", "key", b.key, "err", err)
		}
	}
	for _, f := range d.findings[:m] {
		delete(d.seen, f.ID)
	}
	d.findings = slices.Clone(d.findings[m:])
	d.shared.batches = slices.Clone(d.shared.batches[k:])
	return m, nil
}

// fencedLocked notes a write refused because another node holds
// detection's lease (err wraps lease.ErrFenced): what this node holds may
// differ from the store now, so the next refresh reads everything again.
func (d *Detector) fencedLocked(err error) {
	if errors.Is(err, lease.ErrFenced) {
		d.shared.listed = -1
	}
}
