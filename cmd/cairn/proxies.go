package main

import (
	"log/slog"
	"net"

	"github.com/cairn-audit/cairn/internal/config"
)

// warnOpenProxies logs, at start, every edge whose trusted proxies hold
// a network of every address (0.0.0.0/0, ::/0): there any client chooses
// the address cairn records for it, and the source its limits count. The
// config stays valid (the released keys took it), but the operator hears.
func warnOpenProxies(cfg *config.Config, log *slog.Logger) {
	type edge struct {
		key  string
		nets []*net.IPNet
	}
	edges := []edge{{"api.trusted_proxies", cfg.API.TrustedProxies}, {"console.trusted_proxies", cfg.Console.TrustedProxies}}
	if cfg.Gateway != nil {
		edges = append(edges, edge{"gateway.trusted_proxies", cfg.Gateway.TrustedProxies})
	}
	for _, e := range edges {
		for _, n := range e.nets {
			if ones, _ := n.Mask.Size(); ones == 0 {
				log.Warn("trusted proxies include every address: any client can choose its recorded sourceIPAddress; name only the proxies",
					"setting", e.key, "network", n.String())
			}
		}
	}
}
