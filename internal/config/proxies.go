package config

import (
	"net"

	"gopkg.in/yaml.v3"
)

// Trusted proxies (docs/security.md, "Clients behind reverse proxies"):
// the peers whose X-Forwarded-For (and, for the console, X-Forwarded-Proto)
// every edge believes. One top-level list serves them all:
//
//	trusted_proxies: [10.0.0.0/24]  # IPs or CIDRs of the reverse proxies in front of cairn
//
// An edge's own key, when given (even []), replaces it for that edge:
// api.trusted_proxies for the API's listener (the API, and the console
// served on it unless console.trusted_proxies is given),
// console.trusted_proxies and gateway.trusted_proxies (both released
// before the top-level key, and kept). Parse leaves the list each edge
// uses in API.TrustedProxies, Console.TrustedProxies and
// Gateway.TrustedProxies.

// trustedProxies decodes an edge's trusted_proxies and notes that the file
// gave it (a null value gives nothing: the edge inherits).
func (d *decoder) trustedProxies(v *yaml.Node, path string) []*net.IPNet {
	if isNull(v) {
		return nil
	}
	if d.proxiesGiven == nil {
		d.proxiesGiven = map[string]bool{}
	}
	d.proxiesGiven[path] = true
	return d.networks(v, path)
}

// inheritProxies gives each edge whose key the file did not give the list
// it inherits: the API the top level's, the console the API's, the
// gateway the top level's.
func (d *decoder) inheritProxies(c *Config) {
	if !d.proxiesGiven["api.trusted_proxies"] {
		c.API.TrustedProxies = c.TrustedProxies
	}
	if !d.proxiesGiven["console.trusted_proxies"] {
		c.Console.TrustedProxies = c.API.TrustedProxies
	}
	if c.Gateway != nil && !d.proxiesGiven["gateway.trusted_proxies"] {
		c.Gateway.TrustedProxies = c.TrustedProxies
	}
}
