package detect

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/cairn-audit/cairn/internal/atomicfile"
)

// Expire removes the findings detected more than Config.Retention ago
// (none when Retention is 0), oldest first, and only those the webhook has
// taken: the findings file and the memory List reads stay bounded by the
// retention, as Event History is. Run calls it at start and hourly. It
// returns how many it removed.
func (d *Detector) Expire() (int, error) { return d.expire(context.Background()) }

// expire is Expire for Run: shared writes carry ctx's lease.Fence.
func (d *Detector) expire(ctx context.Context) (int, error) {
	if d.cfg.Retention <= 0 {
		return 0, nil
	}
	cut := d.cfg.Now().Add(-d.cfg.Retention)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.live {
		return 0, errors.New("detect: closed")
	}
	limit := len(d.findings)
	if d.cfg.Webhook.URL != "" {
		limit = d.st.Delivered
	}
	n := 0
	for n < limit && d.findings[n].DetectedAt.Before(cut) {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if d.cfg.State != nil {
		return d.expireSharedLocked(ctx, n)
	}
	// The position first: a crash before the file is rewritten posts
	// the n findings again (at least once), never skips one.
	old := d.st
	d.st.Delivered = max(0, d.st.Delivered-n)
	if err := d.saveStateLocked(ctx); err != nil {
		d.st = old
		return 0, err
	}
	keep := d.findings[n:]
	path := filepath.Join(d.cfg.Dir, FindingsFile)
	err := atomicfile.WriteFunc(path, 0o600, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, f := range keep {
			b, _ := json.Marshal(f)
			bw.Write(b)
			bw.WriteByte('\n')
		}
		return bw.Flush()
	})
	var nf *os.File
	if err == nil {
		nf, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	}
	if err != nil {
		d.st = old
		_ = d.saveStateLocked(ctx)
		return 0, fmt.Errorf("detect: removing expired findings: %w", err)
	}
	d.f.Close()
	d.f = nf
	for _, f := range d.findings[:n] {
		delete(d.seen, f.ID)
	}
	d.findings = slices.Clone(keep)
	return n, nil
}
