package config

import (
	"net/url"
	"regexp"
	"time"

	"gopkg.in/yaml.v3"
)

// Detections configures live detection: Sigma rules matched against every
// event cairn stores (docs/hunting.md). Without a detections section (nil)
// nothing is matched.
//
//	detections:
//	  rules: [/etc/cairn/rules]   # folders (walked recursively) or files of Sigma rules
//	  builtin: true               # cairn's built-in hunts too (default true)
//	  poll_interval: 5s           # how often rule files are checked for changes; 0: only on SIGHUP
//	  hunts: {...}                # the stateful built-in hunts' parameters (Hunts)
//	  webhook:                    # optional: each finding POSTed as JSON
//	    url: https://hooks.example.com/cairn
//	    headers: {Authorization: "Bearer ..."}
//	    timeout: 10s              # one attempt
//	    max_backoff: 5m           # longest wait between attempts (retried until delivered)
//
// A rule folder or file that is missing, or a rule cairn cannot run, is
// logged with file:line: reason when the rules load; it never stops the
// server.
type Detections struct {
	Rules        []string
	Builtin      bool
	PollInterval time.Duration
	Webhook      *Webhook // nil: none
	// Hunts sets the stateful built-in hunts' parameters, for serve and
	// `cairn hunt --config`.
	Hunts Hunts
}

// Webhook is where findings are POSTed.
type Webhook struct {
	URL        string
	Headers    map[string]string
	Timeout    time.Duration
	MaxBackoff time.Duration
}

// Detection defaults.
const (
	DefaultDetectPoll        = 5 * time.Second
	DefaultWebhookTimeout    = 10 * time.Second
	DefaultWebhookMaxBackoff = 5 * time.Minute
)

var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")

func (d *decoder) detections(n *yaml.Node, path string) *Detections {
	c := &Detections{Builtin: true, PollInterval: DefaultDetectPoll, Hunts: DefaultHunts()}
	d.mapping(n, path,
		field{"rules", false, func(v *yaml.Node, path string) {
			c.Rules = list(d, v, path, func(n *yaml.Node, path string) string {
				s, ok := d.str(n, path)
				if ok && (s == "" || len(s) > 4096) {
					d.failf(n, path, "want the path of a rule folder or file")
				}
				return s
			})
		}},
		field{"builtin", false, func(v *yaml.Node, path string) {
			if b, ok := d.boolean(v, path); ok {
				c.Builtin = b
			}
		}},
		field{"poll_interval", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 0, time.Hour); ok {
				c.PollInterval = t
			}
		}},
		field{"webhook", false, func(v *yaml.Node, path string) { c.Webhook = d.webhook(v, path) }},
		field{"hunts", false, func(v *yaml.Node, path string) { d.hunts(v, path, &c.Hunts) }},
	)
	return c
}

func (d *decoder) webhook(n *yaml.Node, path string) *Webhook {
	w := &Webhook{Timeout: DefaultWebhookTimeout, MaxBackoff: DefaultWebhookMaxBackoff}
	d.mapping(n, path,
		field{"url", true, func(v *yaml.Node, path string) {
			s, ok := d.str(v, path)
			if !ok {
				return
			}
			// The URL may carry a token: messages never quote it.
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				d.failf(v, path, "want an http:// or https:// URL")
				return
			}
			w.URL = s
		}},
		field{"headers", false, func(v *yaml.Node, path string) {
			if isNull(v) {
				return
			}
			if v.Kind != yaml.MappingNode {
				d.wrongKind(v, path, "a mapping of header: value")
				return
			}
			w.Headers = map[string]string{}
			for i := 0; i+1 < len(v.Content); i += 2 {
				k, val := v.Content[i], v.Content[i+1]
				kp := join(path, k.Value)
				if k.Kind != yaml.ScalarNode || !headerNameRE.MatchString(k.Value) {
					d.failf(k, path, "want an HTTP header name, got %s", quote(k.Value))
					continue
				}
				// Values are often secrets: never quoted back.
				if val.Kind != yaml.ScalarNode || isNull(val) || !validHeaderValue(val.Value) {
					d.failf(val, kp, "want a header value on one line")
					continue
				}
				w.Headers[k.Value] = val.Value
			}
		}},
		field{"timeout", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 100*time.Millisecond, 5*time.Minute); ok {
				w.Timeout = t
			}
		}},
		field{"max_backoff", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, time.Second, 24*time.Hour); ok {
				w.MaxBackoff = t
			}
		}},
	)
	return w
}

// validHeaderValue reports whether s can be sent as a header value: no
// control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return len(s) <= 8192
}
