package config

import (
	"net"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Gateway configures the recording gateway (docs/gateway.md). Without a
// gateway section (nil) no gateway runs.
//
//	gateway:
//	  listen: 127.0.0.1:4580
//	  upstreams:
//	    s3: http://127.0.0.1:5000
//	    default: http://127.0.0.1:5000
//	  trusted_proxies: []          # IPs or CIDRs whose X-Forwarded-For is believed (default: the top-level trusted_proxies)
//	  virtual_host_domains: []     # extra S3 domains: <bucket>.<domain>
//	  exclude_event_sources: []    # e.g. [sqs.amazonaws.com]
//	  exclude_event_names: []      # e.g. [GetBucketLocation, s3.amazonaws.com:HeadObject]
//	  default_account: ""          # receives records of unknown callers (default: the first account)
//	  max_sessions: 100000         # STS credentials remembered (least recently used dropped first)
//	  persist_sessions: true       # keep them in the data dir across restarts
//	  max_connections: 1024        # client connections served at once; more wait to be accepted
//	  max_buffered_body_mb: 64     # JSON/query bodies held for requestParameters, all calls together
type Gateway struct {
	Listen             string
	Upstreams          map[string]*url.URL
	TrustedProxies     []*net.IPNet
	VirtualHostDomains []string
	ExcludeSources     []string
	ExcludeNames       []string
	DefaultAccount     string
	MaxSessions        int  // default DefaultMaxSessions
	PersistSessions    bool // default true
	// MaxConnections bounds the client connections served at once
	// (default DefaultMaxConnections).
	MaxConnections int
	// MaxBufferedBodyMB bounds, in MiB, the request bodies the gateway
	// holds at once to record their parameters; a body beyond it is
	// forwarded unread (default DefaultMaxBufferedBodyMB).
	MaxBufferedBodyMB int
}

// DefaultMaxBufferedBodyMB is gateway.max_buffered_body_mb's default.
const DefaultMaxBufferedBodyMB = 64

// DefaultMaxSessions bounds the STS credentials the gateway remembers.
const DefaultMaxSessions = 100000

var serviceNameRE = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)

func (d *decoder) gateway(n *yaml.Node, path string) *Gateway {
	g := &Gateway{Upstreams: map[string]*url.URL{}, MaxSessions: DefaultMaxSessions, PersistSessions: true,
		MaxConnections: DefaultMaxConnections, MaxBufferedBodyMB: DefaultMaxBufferedBodyMB}
	strs := func(v *yaml.Node, path string) []string {
		return list(d, v, path, func(n *yaml.Node, path string) string { s, _ := d.str(n, path); return s })
	}
	d.mapping(n, path,
		field{"listen", true, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if _, _, err := net.SplitHostPort(s); err != nil {
					d.failf(v, path, "want host:port, got %s", quote(s))
				}
				g.Listen = s
			}
		}},
		field{"upstreams", true, func(v *yaml.Node, path string) {
			if v.Kind != yaml.MappingNode {
				d.wrongKind(v, path, "a mapping of service: URL")
				return
			}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, u := v.Content[i], v.Content[i+1]
				kp := join(path, k.Value)
				if !serviceNameRE.MatchString(k.Value) {
					d.failf(k, kp, "want a SigV4 service name (s3, dynamodb...) or default, got %s", quote(k.Value))
					continue
				}
				s, ok := d.str(u, kp)
				if !ok {
					continue
				}
				pu, err := url.Parse(s)
				if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
					d.failf(u, kp, "want an http:// or https:// URL, got %s", quote(s))
					continue
				}
				g.Upstreams[k.Value] = pu
			}
			if g.Upstreams["default"] == nil {
				d.failf(v, join(path, "default"), "required, but missing")
			}
		}},
		field{"trusted_proxies", false, func(v *yaml.Node, path string) { g.TrustedProxies = d.trustedProxies(v, path) }},
		field{"virtual_host_domains", false, func(v *yaml.Node, path string) { g.VirtualHostDomains = strs(v, path) }},
		field{"exclude_event_sources", false, func(v *yaml.Node, path string) { g.ExcludeSources = strs(v, path) }},
		field{"exclude_event_names", false, func(v *yaml.Node, path string) { g.ExcludeNames = strs(v, path) }},
		field{"max_sessions", false, func(v *yaml.Node, path string) {
			if n, ok := d.integer(v, path, 1, 10000000, "sessions", "STS credentials remembered"); ok {
				g.MaxSessions = n
			}
		}},
		field{"max_connections", false, func(v *yaml.Node, path string) {
			if n, ok := d.integer(v, path, 1, 1000000, "connections", "served at once; more wait to be accepted"); ok {
				g.MaxConnections = n
			}
		}},
		field{"max_buffered_body_mb", false, func(v *yaml.Node, path string) {
			if n, ok := d.integer(v, path, 1, 65536, "MiB", "bodies held to record their parameters; more are forwarded unread"); ok {
				g.MaxBufferedBodyMB = n
			}
		}},
		field{"persist_sessions", false, func(v *yaml.Node, path string) {
			if b, ok := d.boolean(v, path); ok {
				g.PersistSessions = b
			}
		}},
		field{"default_account", false, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if !regexp.MustCompile(`^[0-9]{12}$`).MatchString(s) {
					d.failf(v, path, "%s is not a 12-digit account ID", quote(s))
				}
				g.DefaultAccount = s
			}
		}},
	)
	return g
}

// networks decodes a list of IP addresses or CIDRs (an address is its
// own /32 or /128), as trusted_proxies are given.
func (d *decoder) networks(v *yaml.Node, path string) []*net.IPNet {
	var out []*net.IPNet
	strs := list(d, v, path, func(n *yaml.Node, path string) string { s, _ := d.str(n, path); return s })
	for i, orig := range strs {
		s := orig
		if !strings.Contains(s, "/") {
			if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
				s += "/32"
			} else {
				s += "/128"
			}
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			d.failf(v.Content[i], path, "want an IP address or CIDR, got %s", quote(orig))
			continue
		}
		out = append(out, n)
	}
	return out
}
