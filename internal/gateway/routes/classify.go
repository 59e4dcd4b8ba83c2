package routes

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
)

var initOnce sync.Once

func setup() {
	for _, s := range services {
		s.byName = make(map[string]*Operation, len(s.Operations))
		for i := range s.Operations {
			op := &s.Operations[i]
			s.byName[op.Name] = op
			if strings.HasPrefix(s.Protocol, "rest") {
				s.rest = append(s.rest, compile(op))
			}
		}
	}
}

// Lookup returns the service of a SigV4 signing name, or nil.
func Lookup(name string) *Service {
	initOnce.Do(setup)
	return services[name]
}

// Names returns the signing names of the services the tables hold.
func Names() []string {
	var n []string
	for k := range services {
		n = append(n, k)
	}
	return n
}

// Operation returns the named operation, or nil.
func (s *Service) Operation(name string) *Operation {
	initOnce.Do(setup)
	return s.byName[name]
}

type restRoute struct {
	op       *Operation
	segs     []string // literal, "{X}" or "{X+}"
	query    []kv     // literal query constraints of the template
	reqQuery []string // required querystring members
	reqHdr   []string // required header members (canonical)
	literals int
}

type kv struct{ k, v string }

func compile(op *Operation) *restRoute {
	r := &restRoute{op: op}
	path, q, _ := strings.Cut(op.URI, "?")
	for _, s := range strings.Split(strings.Trim(path, "/"), "/") {
		if s == "" {
			continue
		}
		r.segs = append(r.segs, s)
		if !strings.HasPrefix(s, "{") {
			r.literals++
		}
	}
	if q != "" {
		for _, p := range strings.Split(q, "&") {
			k, v, _ := strings.Cut(p, "=")
			if k == "x-id" { // SDK-only hint; other clients do not send it
				continue
			}
			r.query = append(r.query, kv{k, v})
		}
	}
	for _, m := range op.Members {
		if !m.Required {
			continue
		}
		switch m.Location {
		case "querystring":
			r.reqQuery = append(r.reqQuery, m.LocationName)
		case "header":
			r.reqHdr = append(r.reqHdr, http.CanonicalHeaderKey(m.LocationName))
		}
	}
	return r
}

// match reports whether r matches and binds the URI labels.
func (r *restRoute) match(segs []string, q url.Values, h http.Header) (map[string]string, bool) {
	for _, c := range r.query {
		vs, ok := q[c.k]
		if !ok || (c.v != "" && (len(vs) == 0 || vs[0] != c.v)) {
			return nil, false
		}
	}
	for _, k := range r.reqQuery {
		if _, ok := q[k]; !ok {
			return nil, false
		}
	}
	for _, k := range r.reqHdr {
		if h.Get(k) == "" {
			return nil, false
		}
	}
	var labels map[string]string
	i := 0
	for j, s := range r.segs {
		if strings.HasPrefix(s, "{") {
			name := strings.Trim(s, "{}")
			if strings.HasSuffix(name, "+") {
				if i >= len(segs) || j != len(r.segs)-1 {
					return nil, false
				}
				if labels == nil {
					labels = map[string]string{}
				}
				labels[strings.TrimSuffix(name, "+")] = strings.Join(segs[i:], "/")
				return labels, true
			}
			if i >= len(segs) || segs[i] == "" {
				return nil, false
			}
			if labels == nil {
				labels = map[string]string{}
			}
			labels[name] = segs[i]
			i++
			continue
		}
		if i >= len(segs) || segs[i] != s {
			return nil, false
		}
		i++
	}
	if i != len(segs) {
		return nil, false
	}
	return labels, true
}

func (r *restRoute) score() int {
	return r.literals*100 + len(r.query)*10 + len(r.reqQuery)*3 + len(r.reqHdr)*3 + len(r.segs)
}

// MatchREST finds the operation of a REST request: the route with the same
// method whose template matches the path (unescaped segments) and whose
// query and required members are present; the most specific wins. It
// returns the URI labels bound by the template.
func (s *Service) MatchREST(method, escapedPath string, q url.Values, h http.Header) (*Operation, map[string]string) {
	initOnce.Do(setup)
	var segs []string
	p := strings.TrimPrefix(escapedPath, "/")
	if p != "" {
		for _, e := range strings.Split(p, "/") {
			u, err := url.PathUnescape(e)
			if err != nil {
				u = e
			}
			segs = append(segs, u)
		}
	}
	// A trailing slash after a bucket ("/bucket/") is the bucket.
	// Elsewhere a trailing slash is not a segment; S3 keys may end in "/".
	if len(segs) > 0 && segs[len(segs)-1] == "" && (len(segs) == 2 || s.Name != "s3") {
		segs = segs[:len(segs)-1]
	}
	var best *restRoute
	var bestLabels map[string]string
	for _, r := range s.rest {
		if r.op.Method != method {
			continue
		}
		if l, ok := r.match(segs, q, h); ok && (best == nil || r.score() > best.score()) {
			best, bestLabels = r, l
		}
	}
	if best == nil {
		return nil, nil
	}
	return best.op, bestLabels
}

// MatchTarget returns the operation named by a JSON service's X-Amz-Target.
func (s *Service) MatchTarget(target string) *Operation {
	pfx, name, ok := strings.Cut(target, ".")
	if !ok || (s.TargetPrefix != "" && pfx != s.TargetPrefix) {
		return nil
	}
	return s.Operation(name)
}
