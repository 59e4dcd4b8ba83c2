package config

import (
	"net"

	"gopkg.in/yaml.v3"
)

// API configures the CloudTrail API server's limits on its clients
// (docs/security.md).
//
//	api:
//	  max_connections: 1024       # open client connections; more wait in the listen backlog
//	  max_unverified_body_mb: 64  # bodies read before their signature can be checked, all callers together
//	  trusted_proxies: []         # IPs or CIDRs whose X-Forwarded-For is believed (default: the top-level trusted_proxies)
type API struct {
	// MaxConnections bounds the connections served at once; a further
	// client waits to be accepted.
	MaxConnections int `yaml:"max_connections"`
	// MaxUnverifiedBodyMB bounds, in MiB, the request bodies read at
	// once before their signature can be verified (clients that do not
	// send X-Amz-Content-Sha256, as botocore); a request beyond it gets
	// ThrottlingException, its body unread.
	MaxUnverifiedBodyMB int `yaml:"max_unverified_body_mb"`
	// TrustedProxies are the peers of the API's listener whose
	// X-Forwarded-For names the client: the recorded sourceIPAddress and
	// the source of per-source limits. Without the key, the top-level
	// trusted_proxies (proxies.go).
	TrustedProxies []*net.IPNet `yaml:"trusted_proxies"`
}

// Defaults of the api section.
const (
	DefaultMaxConnections      = 1024
	DefaultMaxUnverifiedBodyMB = 64
)

// DefaultAPI is the api section's defaults.
func DefaultAPI() API {
	return API{MaxConnections: DefaultMaxConnections, MaxUnverifiedBodyMB: DefaultMaxUnverifiedBodyMB}
}

func (d *decoder) api(n *yaml.Node, path string, a *API) {
	d.mapping(n, path,
		field{"max_connections", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 1000000, "connections", "served at once; more wait to be accepted"); ok {
				a.MaxConnections = i
			}
		}},
		field{"max_unverified_body_mb", false, func(v *yaml.Node, path string) {
			// At least one 8 MiB ImportRecords body must fit.
			if i, ok := d.integer(v, path, 8, 65536, "MiB", "bodies read before their signature is checked, at least one 8 MiB import"); ok {
				a.MaxUnverifiedBodyMB = i
			}
		}},
		field{"trusted_proxies", false, func(v *yaml.Node, path string) { a.TrustedProxies = d.trustedProxies(v, path) }},
	)
}
