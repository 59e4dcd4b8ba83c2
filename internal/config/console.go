package config

import (
	"net"
	"time"

	"gopkg.in/yaml.v3"
)

// Console configures the web console served at /console/ (docs/console.md).
//
//	console:
//	  enabled: true               # false: no console; GET / answers as the API does
//	  session_idle: 30m           # a session unused this long ends
//	  session_max: 12h            # any session ends this long after its sign-in
//	  max_sessions: 1000          # sessions held; a sign-in beyond ends the least recently used
//	  persist_sessions: true      # keep sessions across restarts (data dir; token hashes only)
//	  signin_failures_per_key: 5  # failed sign-ins per access key ID within the window
//	  signin_failures_per_ip: 20  # failed sign-ins per source address within the window
//	  signin_failure_window: 15m
//	  signin_failure_slots: 10000 # keys and addresses whose failures are counted (fullest kept longest)
//	  trusted_proxies: []         # IPs or CIDRs whose X-Forwarded-For and X-Forwarded-Proto are believed (default: api.trusted_proxies)
type Console struct {
	Enabled                  bool          `yaml:"enabled"`
	SessionIdle              time.Duration `yaml:"session_idle"`
	SessionMax               time.Duration `yaml:"session_max"`
	MaxSessions              int           `yaml:"max_sessions"`
	PersistSessions          bool          `yaml:"persist_sessions"`
	SigninFailuresPerKey     int           `yaml:"signin_failures_per_key"`
	SigninFailuresPerAddress int           `yaml:"signin_failures_per_ip"`
	SigninFailureWindow      time.Duration `yaml:"signin_failure_window"`
	// SigninFailureSlots bounds the access key IDs and source addresses
	// whose failed sign-ins are counted at once.
	SigninFailureSlots int `yaml:"signin_failure_slots"`
	// TrustedProxies are the peers (a reverse proxy terminating TLS in
	// front of cairn) whose X-Forwarded-For names the browser's address,
	// for the sign-in throttle and the records, and whose
	// X-Forwarded-Proto https makes the cookies Secure.
	TrustedProxies []*net.IPNet `yaml:"trusted_proxies"`
}

// DefaultConsole is the console section's defaults (those of
// internal/console, which does not import config).
func DefaultConsole() Console {
	return Console{Enabled: true, SessionIdle: 30 * time.Minute, SessionMax: 12 * time.Hour, MaxSessions: 1000, PersistSessions: true,
		SigninFailuresPerKey: 5, SigninFailuresPerAddress: 20, SigninFailureWindow: 15 * time.Minute,
		SigninFailureSlots: 10000}
}

func (d *decoder) console(n *yaml.Node, path string, c *Console) {
	d.mapping(n, path,
		field{"enabled", false, func(v *yaml.Node, path string) {
			if b, ok := d.boolean(v, path); ok {
				c.Enabled = b
			}
		}},
		field{"session_idle", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Minute, 24*time.Hour); ok {
				c.SessionIdle = t
			}
		}},
		field{"session_max", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Minute, 30*24*time.Hour); ok {
				c.SessionMax = t
			}
		}},
		field{"max_sessions", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 1000000, "sessions", "held in memory"); ok {
				c.MaxSessions = i
			}
		}},
		field{"persist_sessions", false, func(v *yaml.Node, path string) {
			if b, ok := d.boolean(v, path); ok {
				c.PersistSessions = b
			}
		}},
		field{"signin_failures_per_key", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 1000, "failed sign-ins", "per access key ID within the window"); ok {
				c.SigninFailuresPerKey = i
			}
		}},
		field{"signin_failures_per_ip", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 100000, "failed sign-ins", "per source address within the window"); ok {
				c.SigninFailuresPerAddress = i
			}
		}},
		field{"signin_failure_window", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				c.SigninFailureWindow = t
			}
		}},
		field{"signin_failure_slots", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 100, 10000000, "slots", "keys and addresses whose failures are counted"); ok {
				c.SigninFailureSlots = i
			}
		}},
		field{"trusted_proxies", false, func(v *yaml.Node, path string) { c.TrustedProxies = d.trustedProxies(v, path) }},
	)
	if c.SessionIdle > c.SessionMax {
		d.failf(n, path, "session_idle (%s) is longer than session_max (%s)", c.SessionIdle, c.SessionMax)
	}
}
