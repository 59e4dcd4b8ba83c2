package console

import (
	"net"
	"net/http"

	"github.com/cairn-audit/cairn/internal/clientaddr"
)

// clientOf returns where r came from: the browser's address and whether
// the browser's connection was TLS, as the configured trusted proxies tell
// them (Config.TrustedProxies; clientaddr has the rule every edge shares).
// Every use of the client's address (the sign-in throttle, sign-in
// records, the recorded API calls' sourceIPAddress) and of its scheme (the
// cookies' Secure attribute, the sign-in record's loginTo) goes through
// clientOf, so a header from an untrusted peer never decides either.
func (c *Console) clientOf(r *http.Request) clientaddr.Client {
	return clientaddr.Trusted(c.cfg.TrustedProxies).Of(r)
}

// throttleKey is the source a client's failed sign-ins count against: its
// IPv4 address, or its IPv6 address's /64 (one host, or one attacker,
// holds a whole /64; counting addresses would give it 2^64 sources).
func throttleKey(ip string) string {
	a := net.ParseIP(ip)
	if a == nil {
		return "ip:" + ip
	}
	if v4 := a.To4(); v4 != nil {
		return "ip:" + v4.String() // ::ffff:192.0.2.1 is 192.0.2.1
	}
	return "ip:" + a.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
