package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Hunts sets the parameters of the built-in hunts that keep state across
// records (docs/hunting.md), live (serve) and for `cairn hunt --builtin`.
// It is the hunts member of the detections section.
//
//	detections:
//	  hunts:
//	    new_principal_baseline: 168h  # an account's first week only teaches who its principals are
//	    denied_burst: 10              # this many access-denied calls by one principal...
//	    denied_window: 10m            # ...within this long are a burst
//	    max_keys: 1000000             # principals, addresses and keys each hunt remembers
//	    warmup_records: 1000000       # stored records the hunts re-read at start (0: none)
type Hunts struct {
	NewPrincipalBaseline time.Duration `yaml:"new_principal_baseline"`
	DeniedBurst          int           `yaml:"denied_burst"`
	DeniedWindow         time.Duration `yaml:"denied_window"`
	MaxKeys              int           `yaml:"max_keys"`
	// WarmUpRecords bounds the stored records serve's live hunts observe
	// at start, without reporting, to rebuild their memory (0: none).
	WarmUpRecords int `yaml:"warmup_records"`
}

// DefaultHunts is the detections.hunts section's defaults (those of
// internal/sigma/builtin, which does not import config).
func DefaultHunts() Hunts {
	return Hunts{NewPrincipalBaseline: 7 * 24 * time.Hour, DeniedBurst: 10, DeniedWindow: 10 * time.Minute, MaxKeys: 1_000_000, WarmUpRecords: 1_000_000}
}

func (d *decoder) hunts(n *yaml.Node, path string, h *Hunts) {
	d.mapping(n, path,
		field{"new_principal_baseline", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Hour, 365*24*time.Hour); ok {
				h.NewPrincipalBaseline = t
			}
		}},
		field{"denied_burst", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 2, 100000, "calls", "access-denied calls by one principal that make a burst"); ok {
				h.DeniedBurst = i
			}
		}},
		field{"denied_window", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				h.DeniedWindow = t
			}
		}},
		field{"max_keys", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1000, 100_000_000, "keys", "remembered by each stateful hunt"); ok {
				h.MaxKeys = i
			}
		}},
		field{"warmup_records", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 0, 100_000_000, "records", "re-read by the live hunts at start"); ok {
				h.WarmUpRecords = i
			}
		}},
	)
}
