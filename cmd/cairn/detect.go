package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/config"
	"github.com/cairn-audit/cairn/internal/detect"
	"github.com/cairn-audit/cairn/internal/sigma/builtin"
)

// newDetector opens live detection as the config's detections section
// says (nil without one): findings in the data dir, rules from the
// configured folders and the built-in hunts.
//
// On a shared store (PostgreSQL) findings and positions are kept there
// instead, so every node lists the same findings (docs/scale.md).
func newDetector(cfg *config.Config, dataDir string, state audit.StateStore, feed detect.Feed, log *slog.Logger, reg prometheus.Registerer) (*detect.Detector, error) {
	dc := cfg.Detections
	if dc == nil {
		return nil, nil
	}
	c := detect.Config{Dir: dataDir, Feed: feed, Folders: dc.Rules, PollRules: dc.PollInterval, Retention: cfg.Retention(),
		Logger: log, Registerer: reg}
	if shared(state) {
		c.Dir, c.State = "", state
	}
	if dc.PollInterval == 0 {
		c.PollRules = -1 // only on SIGHUP
	}
	if dc.Builtin {
		c.Builtin = builtin.FS()
		c.Stateful = builtin.Stateful(huntParams(dc.Hunts))
		c.WarmUp = dc.Hunts.WarmUpRecords
		if c.WarmUp == 0 {
			c.WarmUp = -1 // none
		}
	}
	if w := dc.Webhook; w != nil {
		c.Webhook = detect.Webhook{URL: w.URL, Headers: w.Headers, Timeout: w.Timeout, MaxBackoff: w.MaxBackoff}
	}
	return detect.Open(c)
}

// runDetector runs run (d.Run, under its lease) until ctx ends, reloading
// d's rules on SIGHUP. SIGHUP is caught for as long as the server runs,
// the lease held or not: uncaught, it would end the process.
func runDetector(d *detect.Detector, run func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-hup:
					d.Reload()
				case <-done:
					return
				}
			}
		}()
		defer close(done)
		return run(ctx)
	}
}

// huntParams is the built-in stateful hunts' config.
func huntParams(h config.Hunts) builtin.Config {
	return builtin.Config{NewPrincipalBaseline: h.NewPrincipalBaseline, DeniedBurst: h.DeniedBurst,
		DeniedWindow: h.DeniedWindow, MaxKeys: h.MaxKeys}
}
