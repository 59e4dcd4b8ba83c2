package builtin

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/sigma"
)

// Config sets the stateful hunts' parameters. Its zero value is the
// defaults.
type Config struct {
	// NewPrincipalBaseline is how long an account's history is only
	// learnt from before a principal's first write call is a finding
	// (default 7 days).
	NewPrincipalBaseline time.Duration
	// DeniedBurst denied calls by one principal within DeniedWindow are
	// a burst (defaults 10 and 10 minutes).
	DeniedBurst  int
	DeniedWindow time.Duration
	// MaxKeys bounds what each stateful hunt remembers (principals,
	// addresses, keys; default 1,000,000): past it, a hunt learns nothing
	// new and fires only on what it already knows.
	MaxKeys int
}

func (c Config) withDefaults() Config {
	if c.NewPrincipalBaseline <= 0 {
		c.NewPrincipalBaseline = 7 * 24 * time.Hour
	}
	if c.DeniedBurst <= 0 {
		c.DeniedBurst = 10
	}
	if c.DeniedWindow <= 0 {
		c.DeniedWindow = 10 * time.Minute
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 1_000_000
	}
	return c
}

// Rules loads the built-in Sigma rules. They are tested to load; an error
// here is a broken build.
func Rules() ([]*sigma.Rule, error) {
	rules, errs := sigma.LoadFS(sigma.Config{}, FS(), "builtin:")
	if len(errs) > 0 {
		return nil, fmt.Errorf("built-in hunts: %w", errs[0])
	}
	return rules, nil
}

// Stateful returns fresh instances of the built-in hunts that need state
// across records (written in Go: Sigma cannot say "never seen before" or
// "ten in ten minutes" per record).
func Stateful(cfg Config) []sigma.Stateful {
	cfg = cfg.withDefaults()
	return []sigma.Stateful{
		&newPrincipal{cfg: cfg, accounts: map[string]*acctSeen{}},
		&deniedBurst{cfg: cfg, calls: map[string]*burst{}},
		&instanceCreds{cfg: cfg, ipUser: map[string]string{}, keyIP: map[string]string{}, fired: map[string]bool{}},
	}
}

func eventTime(rec sigma.Record) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, rec.Str("eventTime"))
	return t, err == nil
}

// readOnly reports the record's readOnly field: true, false, or unknown
// (absent).
func readOnly(rec sigma.Record) (ro, known bool) {
	switch v := rec["readOnly"].(type) {
	case bool:
		return v, true
	case string:
		return strings.EqualFold(v, "true"), v != ""
	}
	return false, false
}

// newPrincipal fires on the first write call of a principal first seen
// after its account's baseline: in an account whose history began at T,
// principals seen before T+baseline are the known ones.
type newPrincipal struct {
	cfg      Config
	accounts map[string]*acctSeen
	keys     int
}

type acctSeen struct {
	start time.Time
	seen  map[string]*principalSeen
}

type principalSeen struct {
	first time.Time
	fired bool
}

func (h *newPrincipal) Info() sigma.Info {
	return sigma.Info{ID: "5b0f3c52-8d0e-4b7b-9b1e-0c2f9a6e4d11", Title: "Write call by a principal never seen before", Level: "medium",
		Tags:        []string{"attack.initial-access", "attack.persistence", "attack.t1078.004"},
		Description: "The first write call (readOnly false) of a principal that first appeared after the account's baseline (the first 7 days of its history)"}
}

func (h *newPrincipal) Observe(rec sigma.Record) (string, bool) {
	p := rec.Principal()
	t, ok := eventTime(rec)
	if p == "" || !ok || strings.EqualFold(rec.Str("userIdentity", "type"), "AWSService") || strings.HasSuffix(p, ".amazonaws.com") {
		return "", false
	}
	acct := rec.Str("recipientAccountId")
	a := h.accounts[acct]
	if a == nil {
		if h.keys >= h.cfg.MaxKeys {
			return "", false
		}
		a = &acctSeen{start: t, seen: map[string]*principalSeen{}}
		h.accounts[acct] = a
		h.keys++
	}
	if t.Before(a.start) {
		a.start = t
	}
	s := a.seen[p]
	if s == nil {
		if h.keys >= h.cfg.MaxKeys {
			return "", false
		}
		s = &principalSeen{first: t}
		a.seen[p] = s
		h.keys++
	}
	if t.Before(s.first) {
		s.first = t
	}
	if ro, known := readOnly(rec); !known || ro || s.fired {
		return "", false
	}
	if s.first.Before(a.start.Add(h.cfg.NewPrincipalBaseline)) {
		return "", false
	}
	s.fired = true
	return fmt.Sprintf("first seen %s, after the account's baseline (history from %s, baseline %s)",
		s.first.Format(time.RFC3339), a.start.Format(time.RFC3339), h.cfg.NewPrincipalBaseline), true
}

// deniedBurst fires when a principal's denied calls in one account reach
// DeniedBurst within DeniedWindow, once per burst.
type deniedBurst struct {
	cfg   Config
	calls map[string]*burst
	seen  int
}

type burst struct {
	times  []time.Time
	firing bool
}

func (h *deniedBurst) Info() sigma.Info {
	return sigma.Info{ID: "9e2a7f14-3c6b-4f0a-8a57-2d4e1b9c7f30", Title: "Burst of access-denied calls", Level: "medium",
		Tags:        []string{"attack.discovery", "attack.t1580", "attack.t1069.003"},
		Description: "One principal's calls refused for lack of permission (AccessDenied, UnauthorizedOperation) 10 times within 10 minutes in one account: permission enumeration or a stolen credential being tried"}
}

// denied reports whether an errorCode means "not allowed".
func denied(code string) bool {
	c := strings.ToLower(code)
	return strings.HasPrefix(c, "accessdenied") || strings.HasSuffix(c, "unauthorizedoperation") ||
		c == "unauthorizedaccess" || c == "unauthorizedexception"
}

func (h *deniedBurst) Observe(rec sigma.Record) (string, bool) {
	code := rec.Str("errorCode")
	if code == "" || !denied(code) {
		return "", false
	}
	t, ok := eventTime(rec)
	p := rec.Principal()
	if !ok || p == "" {
		return "", false
	}
	h.seen++
	if h.seen%100_000 == 0 {
		h.prune(t)
	}
	key := rec.Str("recipientAccountId") + "\x00" + p
	b := h.calls[key]
	if b == nil {
		if len(h.calls) >= h.cfg.MaxKeys {
			return "", false
		}
		b = &burst{}
		h.calls[key] = b
	}
	// Records may come in any order (a LookupEvents dump is newest
	// first): keep the calls within the window on either side of t,
	// sorted, and look for DeniedBurst of them within one window.
	from, to := t.Add(-h.cfg.DeniedWindow), t.Add(h.cfg.DeniedWindow)
	kept := b.times[:0]
	for _, x := range b.times {
		if x.After(from) && x.Before(to) {
			kept = append(kept, x)
		}
	}
	b.times = append(kept, t)
	slices.SortFunc(b.times, func(a, b time.Time) int { return a.Compare(b) })
	if max := 4 * h.cfg.DeniedBurst; len(b.times) > max {
		b.times = b.times[len(b.times)-max:]
	}
	n := h.cfg.DeniedBurst
	inBurst := false
	for i := 0; i+n <= len(b.times); i++ {
		if b.times[i+n-1].Sub(b.times[i]) < h.cfg.DeniedWindow {
			inBurst = true
			break
		}
	}
	if !inBurst {
		b.firing = false
		return "", false
	}
	if b.firing {
		return "", false
	}
	b.firing = true
	return fmt.Sprintf("%d denied calls within %s (this one: %s)", n, h.cfg.DeniedWindow, code), true
}

// prune forgets principals whose last denied call is older than the
// window before t.
func (h *deniedBurst) prune(t time.Time) {
	for k, b := range h.calls {
		if n := len(b.times); n == 0 || b.times[n-1].Before(t.Add(-2*h.cfg.DeniedWindow)) {
			delete(h.calls, k)
		}
	}
}

// instanceCreds fires when credentials delivered to an EC2 instance
// (userIdentity.sessionContext.ec2RoleDelivery) are used from an address
// that an IAM user, root or a federated user of the same account called
// from, or
// from a second address: the instance's credentials taken out of it.
type instanceCreds struct {
	cfg    Config
	ipUser map[string]string // account + address -> first IAM user, root or federated user
	keyIP  map[string]string // account + access key -> first address
	fired  map[string]bool   // account + access key
}

func (h *instanceCreds) Info() sigma.Info {
	return sigma.Info{ID: "c4d8e1a9-6f27-4b35-9e0c-7a1b2d3e4f56", Title: "EC2 instance credentials used outside the instance", Level: "high",
		Tags:        []string{"attack.credential-access", "attack.t1552.005"},
		Description: "A session delivered to an EC2 instance (ec2RoleDelivery) calls from an address an IAM user, root or federated user of the account called from, or from a second address"}
}

// address is the record's source address when it is one a client could
// call from ("" for AWS Internal and service names).
func address(rec sigma.Record) string {
	ip := rec.Str("sourceIPAddress")
	if ip == "" || strings.EqualFold(ip, "AWS Internal") || strings.Contains(ip, ".amazonaws.com") {
		return ""
	}
	return ip
}

func (h *instanceCreds) Observe(rec sigma.Record) (string, bool) {
	ip := address(rec)
	if ip == "" {
		return "", false
	}
	acct := rec.Str("recipientAccountId")
	if rec.Str("userIdentity", "sessionContext", "ec2RoleDelivery") == "" {
		// Only callers with their own long-term identity count: an
		// instance's applications assume other roles from its address.
		p := rec.Principal()
		switch strings.ToLower(rec.Str("userIdentity", "type")) {
		case "iamuser", "root", "federateduser":
		default:
			return "", false
		}
		k := acct + "\x00" + ip
		if _, ok := h.ipUser[k]; !ok && len(h.ipUser) < h.cfg.MaxKeys {
			h.ipUser[k] = p
		}
		return "", false
	}
	key := acct + "\x00" + rec.Str("userIdentity", "accessKeyId")
	if h.fired[key] {
		return "", false
	}
	detail := ""
	if u, ok := h.ipUser[acct+"\x00"+ip]; ok {
		detail = fmt.Sprintf("from %s, the address %s called from", ip, u)
	} else if first, ok := h.keyIP[key]; ok && first != ip {
		detail = fmt.Sprintf("from %s after %s", ip, first)
	} else if !ok && len(h.keyIP) < h.cfg.MaxKeys {
		h.keyIP[key] = ip
	}
	if detail == "" {
		return "", false
	}
	if len(h.fired) < h.cfg.MaxKeys {
		h.fired[key] = true
	}
	return detail, true
}
