// Package who answers "what did this principal do?" over CloudTrail
// records: one principal's calls across accounts and regions as a
// timeline, with a summary (services, regions, write calls, errors,
// source addresses, user agents, keys and sessions, roles assumed). It
// backs `cairn who` (docs/hunting.md).
package who

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/sigma"
)

// Kind is what a principal argument names.
type Kind int

// The kinds of principal.
const (
	AccessKey Kind = iota + 1 // AKIA.../ASIA...: calls signed with the key
	ARN                       // a user, assumed-role session, federated user or root ARN: calls by it
	Role                      // arn:aws:iam::A:role/NAME: calls by every session of the role
	UserName                  // a name: IAM users of that name, and role sessions of that name
)

// Principal is a parsed principal argument.
type Principal struct {
	Kind  Kind
	Value string
}

var accessKeyRE = regexp.MustCompile(`^(AKIA|ASIA|AIDA|AROA)[A-Z0-9]{12,124}$`)

// Parse reads a principal argument: an access key ID, an ARN, or a user
// name.
func Parse(s string) (Principal, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Principal{}, fmt.Errorf("empty principal: want an access key ID, a user or role ARN, or a user name")
	case len(s) > 2048:
		return Principal{}, fmt.Errorf("principal of %d characters: too long for an ARN (2,048 at most)", len(s))
	case accessKeyRE.MatchString(s) && (strings.HasPrefix(s, "AKIA") || strings.HasPrefix(s, "ASIA")):
		return Principal{AccessKey, s}, nil
	case strings.HasPrefix(s, "arn:"):
		parts := strings.SplitN(s, ":", 6)
		if len(parts) != 6 || parts[5] == "" {
			return Principal{}, fmt.Errorf("%q: not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)", s)
		}
		if parts[2] == "iam" && strings.HasPrefix(parts[5], "role/") {
			return Principal{Role, s}, nil
		}
		return Principal{ARN, s}, nil
	case strings.ContainsAny(s, " \t\n/:"):
		return Principal{}, fmt.Errorf("%q: not an access key ID, an ARN or a user name", s)
	}
	return Principal{UserName, s}, nil
}

func (p Principal) String() string { return p.Value }

// Entry is one call of the timeline.
type Entry struct {
	EventTime   time.Time `json:"eventTime"`
	Account     string    `json:"recipientAccountId"`
	Region      string    `json:"awsRegion"`
	EventSource string    `json:"eventSource"`
	EventName   string    `json:"eventName"`
	ReadOnly    *bool     `json:"readOnly,omitempty"`
	ErrorCode   string    `json:"errorCode,omitempty"`
	SourceIP    string    `json:"sourceIPAddress,omitempty"`
	AccessKeyID string    `json:"accessKeyId,omitempty"`
	Identity    string    `json:"identity,omitempty"` // userIdentity.arn
	EventID     string    `json:"eventID"`
}

// Count is one value and how many calls had it.
type Count struct {
	Value string `json:"value"`
	Calls int    `json:"calls"`
}

// Summary sums up the principal's calls.
type Summary struct {
	Calls        int       `json:"calls"`
	WriteCalls   int       `json:"writeCalls"`
	ErrorCalls   int       `json:"errorCalls"`
	First        time.Time `json:"firstSeen,omitzero"`
	Last         time.Time `json:"lastSeen,omitzero"`
	Identities   []Count   `json:"identities"`
	Accounts     []Count   `json:"accounts"`
	Regions      []Count   `json:"regions"`
	Services     []Count   `json:"services"`
	Errors       []Count   `json:"errors"`
	SourceIPs    []Count   `json:"sourceIPAddresses"`
	UserAgents   []Count   `json:"userAgents"`
	AccessKeys   []Count   `json:"accessKeys"`
	Sessions     []Count   `json:"sessions"`     // session credentials it obtained (AssumeRole, GetSessionToken, GetFederationToken), by key
	RolesAssumed []Count   `json:"rolesAssumed"` // roleArn of its AssumeRole* calls (failed ones included)
}

// Config bounds a Profile. Its zero value works.
type Config struct {
	// MaxTimeline is the calls kept for the timeline (default 100,000);
	// the summary counts every call.
	MaxTimeline int
	// MaxValues bounds each summary list's distinct values (default
	// 10,000; further values are counted under "(other)").
	MaxValues int
}

// Profile gathers one principal's calls. Feed it every record with
// Observe; calls made with session credentials the principal obtained
// count as its own (the sessions it used), which takes a second pass
// (ObserveSessions) for the calls read before the credentials were. A
// Profile is used by one goroutine at a time.
type Profile struct {
	p        Principal
	cfg      Config
	timeline []Entry
	dropped  int
	seen     map[string]bool // account + eventID of calls counted
	sessions map[string]bool // access keys of sessions it obtained
	sum      Summary
	counts   map[string]map[string]int
}

// New returns an empty Profile of p.
func New(p Principal, cfg Config) *Profile {
	if cfg.MaxTimeline <= 0 {
		cfg.MaxTimeline = 100_000
	}
	if cfg.MaxValues <= 0 {
		cfg.MaxValues = 10_000
	}
	return &Profile{p: p, cfg: cfg, seen: map[string]bool{}, sessions: map[string]bool{}, counts: map[string]map[string]int{}}
}

// matches reports whether rec is a call by the principal itself.
func (pr *Profile) matches(rec sigma.Record) bool {
	v := pr.p.Value
	switch pr.p.Kind {
	case AccessKey:
		return rec.Str("userIdentity", "accessKeyId") == v
	case ARN:
		return strings.EqualFold(rec.Str("userIdentity", "arn"), v)
	case Role:
		return strings.EqualFold(rec.Str("userIdentity", "sessionContext", "sessionIssuer", "arn"), v)
	case UserName:
		if strings.EqualFold(rec.Str("userIdentity", "userName"), v) {
			return true
		}
		// LookupEvents' Username of an assumed-role session is the
		// session name.
		if strings.EqualFold(rec.Str("userIdentity", "type"), "AssumedRole") {
			arn := rec.Str("userIdentity", "arn")
			return strings.EqualFold(arn[strings.LastIndexByte(arn, '/')+1:], v)
		}
	}
	return false
}

// Observe counts rec when it is a call by the principal or with a session
// it obtained.
func (pr *Profile) Observe(rec sigma.Record) {
	if pr.matches(rec) {
		pr.add(rec)
		return
	}
	if k := rec.Str("userIdentity", "accessKeyId"); k != "" && pr.sessions[k] {
		pr.add(rec)
	}
}

// HasSessions reports whether the principal obtained session credentials:
// then a second pass with ObserveSessions finds their calls read before.
func (pr *Profile) HasSessions() bool { return len(pr.sessions) > 0 }

// ObserveSessions counts rec when it was made with a session the
// principal obtained and is not counted yet (the second pass).
func (pr *Profile) ObserveSessions(rec sigma.Record) {
	if k := rec.Str("userIdentity", "accessKeyId"); k != "" && pr.sessions[k] {
		pr.add(rec)
	}
}

func (pr *Profile) count(list, value string) {
	if value == "" {
		return
	}
	m := pr.counts[list]
	if m == nil {
		m = map[string]int{}
		pr.counts[list] = m
	}
	if _, ok := m[value]; !ok && len(m) >= pr.cfg.MaxValues {
		value = "(other)"
	}
	m[value]++
}

func (pr *Profile) add(rec sigma.Record) {
	id := rec.Str("recipientAccountId") + "\x00" + rec.Str("eventID")
	if pr.seen[id] {
		return
	}
	pr.seen[id] = true
	t, _ := time.Parse(time.RFC3339, rec.Str("eventTime"))
	e := Entry{EventTime: t.UTC(), Account: rec.Str("recipientAccountId"), Region: rec.Str("awsRegion"),
		EventSource: rec.Str("eventSource"), EventName: rec.Str("eventName"), ErrorCode: rec.Str("errorCode"),
		SourceIP: rec.Str("sourceIPAddress"), AccessKeyID: rec.Str("userIdentity", "accessKeyId"),
		Identity: rec.Principal(), EventID: rec.Str("eventID")}
	if e.Account == "" {
		e.Account = rec.Str("userIdentity", "accountId")
	}
	switch v := rec["readOnly"].(type) {
	case bool:
		e.ReadOnly = &v
	case string:
		b := strings.EqualFold(v, "true")
		e.ReadOnly = &b
	}
	s := &pr.sum
	s.Calls++
	if e.ReadOnly != nil && !*e.ReadOnly {
		s.WriteCalls++
	}
	if e.ErrorCode != "" {
		s.ErrorCalls++
		pr.count("errors", e.ErrorCode)
	}
	if !t.IsZero() && (s.First.IsZero() || t.Before(s.First)) {
		s.First = e.EventTime
	}
	if t.After(s.Last) {
		s.Last = e.EventTime
	}
	pr.count("identities", e.Identity)
	pr.count("accounts", e.Account)
	pr.count("regions", e.Region)
	pr.count("services", e.EventSource)
	pr.count("ips", e.SourceIP)
	pr.count("agents", rec.Str("userAgent"))
	pr.count("keys", e.AccessKeyID)
	if e.EventSource == "sts.amazonaws.com" {
		if strings.HasPrefix(e.EventName, "AssumeRole") {
			pr.count("roles", rec.Str("requestParameters", "roleArn"))
		}
		if k := rec.Str("responseElements", "credentials", "accessKeyId"); k != "" {
			pr.sessions[k] = true
			pr.count("sessions", k)
		}
	}
	if len(pr.timeline) < pr.cfg.MaxTimeline {
		pr.timeline = append(pr.timeline, e)
	} else {
		pr.dropped++
	}
}

func (pr *Profile) list(name string) []Count {
	out := []Count{}
	for v, n := range pr.counts[name] {
		out = append(out, Count{v, n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Calls, a.Calls), cmp.Compare(a.Value, b.Value))
	})
	return out
}

// Report is a Profile's result.
type Report struct {
	Principal string  `json:"principal"`
	Summary   Summary `json:"summary"`
	// Timeline is the calls in time order (at most MaxTimeline of them;
	// NotListed says how many more were counted).
	Timeline  []Entry `json:"timeline"`
	NotListed int     `json:"notListed,omitempty"`
}

// Report returns the summary and the timeline.
func (pr *Profile) Report() Report {
	s := pr.sum
	s.Identities, s.Accounts, s.Regions, s.Services = pr.list("identities"), pr.list("accounts"), pr.list("regions"), pr.list("services")
	s.Errors, s.SourceIPs, s.UserAgents, s.AccessKeys = pr.list("errors"), pr.list("ips"), pr.list("agents"), pr.list("keys")
	s.Sessions, s.RolesAssumed = pr.list("sessions"), pr.list("roles")
	tl := slices.Clone(pr.timeline)
	if tl == nil {
		tl = []Entry{}
	}
	slices.SortStableFunc(tl, func(a, b Entry) int {
		return cmp.Or(a.EventTime.Compare(b.EventTime), cmp.Compare(a.EventID, b.EventID))
	})
	return Report{Principal: pr.p.Value, Summary: s, Timeline: tl, NotListed: pr.dropped}
}
