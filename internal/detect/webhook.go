package detect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/cairn-audit/cairn/internal/lease"
)

// deliver posts the findings after the webhook position, one POST each, in
// detection order, until ctx ends. A failed POST (no answer, or a status
// other than 2xx) is retried after a capped, jittered, doubling wait, for
// ever: the outbox is FindingsFile itself and the position (Delivered) is
// saved after each delivery, so findings wait through a restart. Delivery
// is at least once (a crash after a POST, before the position is saved,
// posts it again): receivers deduplicate by findingId. The saves carry
// ctx's lease.Fence: a save fenced off (another node holds detection)
// calls fenced with its error and ends the delivery.
func (d *Detector) deliver(ctx context.Context, fenced func(error)) {
	w := d.cfg.Webhook
	delay := w.MinBackoff
	var saved time.Time
	stopped := false
	defer func() { // what was delivered since the last save
		d.mu.Lock()
		if d.live && !stopped {
			_ = d.saveStateLocked(ctx)
		}
		d.mu.Unlock()
	}()
	for {
		d.mu.Lock()
		var next *Finding
		if d.st.Delivered < len(d.findings) {
			f := d.findings[d.st.Delivered]
			next = &f
		}
		d.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return
			case <-d.wake:
				continue
			}
		}
		if err := d.post(ctx, next); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.m.posts.WithLabelValues("error").Inc()
			wait := rand.N(delay) + 1 // full jitter
			d.log.Warn("detect: webhook POST failed; retrying", "finding_id", next.ID, "err", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			delay = min(delay*2, w.MaxBackoff)
			continue
		}
		d.m.posts.WithLabelValues("ok").Inc()
		delay = w.MinBackoff
		d.mu.Lock()
		if d.st.Delivered < len(d.findings) && d.findings[d.st.Delivered].ID == next.ID {
			d.st.Delivered++
			// The position is saved when the outbox empties, and at most
			// once a second during a burst: a save is three fsyncs, on the
			// disk the ingest journal fsyncs to. A crash re-posts what
			// was delivered since the last save (at least once).
			if d.st.Delivered == len(d.findings) || time.Since(saved) >= time.Second {
				err := d.saveStateLocked(ctx)
				if errors.Is(err, lease.ErrFenced) {
					stopped = true
					d.mu.Unlock()
					fenced(err)
					return
				}
				if err != nil {
					d.log.Error("detect: saving the webhook position", "err", err)
				}
				saved = time.Now()
			}
		}
		d.mu.Unlock()
	}
}

// post sends one finding; any 2xx is delivered.
func (d *Detector) post(ctx context.Context, f *Finding) error {
	w := d.cfg.Webhook
	body, _ := json.Marshal(f)
	ctx, cancel := context.WithTimeout(ctx, w.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cairn-detect")
	for k, v := range w.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which may carry a token
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
