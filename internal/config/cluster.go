package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Cluster names this node among the nodes sharing one PostgreSQL store
// and times their leases (docs/scale.md).
//
//	cluster:
//	  node_id: cairn-1   # default: the host name; cairn serve --node-id overrides it
//	  lease_ttl: 10s     # a dead node's work moves to another within lease_ttl + 2 s
type Cluster struct {
	// NodeID names the node in the leases it holds and in its logs:
	// 1-128 of [A-Za-z0-9._:-], unique among the nodes (empty: the host
	// name). Two nodes with one id would share their leases' holdings.
	NodeID string `yaml:"node_id"`
	// LeaseTTL is how long a node's lease lasts without renewal; the
	// node renews it every third of it. 0: DefaultLeaseTTL.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// DefaultLeaseTTL is the leases' TTL when the file sets none (the lease
// package's default, which a zero LeaseTTL gets).
const DefaultLeaseTTL = 10 * time.Second

// ValidNodeID reports whether id may name a node: 1-128 of
// [A-Za-z0-9._:-] (a host name, a pod name).
func ValidNodeID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range []byte(id) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func (d *decoder) cluster(n *yaml.Node, path string, c *Cluster) {
	d.mapping(n, path,
		field{"node_id", false, func(v *yaml.Node, path string) {
			id, ok := d.str(v, path)
			if !ok {
				return
			}
			if !ValidNodeID(id) {
				d.failf(v, path, "want a node id of 1 to 128 letters, digits and . _ : - (like cairn-1), got %s", quote(id))
				return
			}
			c.NodeID = id
		}},
		field{"lease_ttl", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 3*time.Second, 5*time.Minute); ok {
				c.LeaseTTL = t
			}
		}},
	)
}
