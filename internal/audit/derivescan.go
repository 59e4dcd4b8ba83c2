package audit

import (
	"strings"
	"unicode/utf8"
	"unsafe"
)

// The derived resources' scanner: DeriveResources of a record the field
// scanner read, without decoding requestParameters and responseElements
// into maps (the decoding was 5% of an import's CPU, session 33). It
// follows the rules' paths through the members' JSON, skipping what no
// path reaches, and its strings share the record's memory. It gives up —
// and DeriveResources decodes as before — on anything it is not sure to
// read the way the decoding does: a name repeated in its object, anywhere
// (the decoding merges the values, or fails), a name with an escape or not
// valid UTF-8, a string at a path's end with an escape or not valid UTF-8,
// and whatever the field scanner leaves to the decoder (recordScanner.skip). The answer
// is DeriveResources's (TestScanMatchesDecoding, FuzzDeriveScan).

// pathNode is a place in requestParameters or responseElements that some
// of a source's paths reach: ends are the paths (indexes in the source's
// flattened list) whose string is there, members the names to follow when
// it is an object, each where to go for the elements when it is an array.
type pathNode struct {
	ends    []int
	members []pathMember
	each    *pathNode
}

type pathMember struct {
	name string
	next *pathNode
}

// sourcePaths are a source's paths as one tree for requestParameters
// (roots[0]) and one for responseElements (roots[1]), and each flattened
// path's rule type.
type sourcePaths struct {
	roots [2]*pathNode
	types []string
}

// scanPaths are sourceRules as trees, by source.
var scanPaths = func() map[string]*sourcePaths {
	m := map[string]*sourcePaths{}
	for source, rules := range sourceRules {
		sp := &sourcePaths{roots: [2]*pathNode{{}, {}}}
		for _, rule := range rules {
			for _, path := range rule.paths {
				idx := len(sp.types)
				sp.types = append(sp.types, rule.typ)
				var n *pathNode
				switch path[0] {
				case "requestParameters":
					n = sp.roots[0]
				case "responseElements":
					n = sp.roots[1]
				default:
					continue // reaches nothing (deriveFrom: top has only these)
				}
				for _, part := range path[1:] {
					name, each := strings.CutSuffix(part, "[]")
					n = n.member(name)
					if each {
						if n.each == nil {
							n.each = &pathNode{}
						}
						n = n.each
					}
				}
				n.ends = append(n.ends, idx)
			}
		}
		m[source] = sp
	}
	return m
}()

// member returns the node of n's member name, added when new.
func (n *pathNode) member(name string) *pathNode {
	for _, m := range n.members {
		if m.name == name {
			return m.next
		}
	}
	next := &pathNode{}
	n.members = append(n.members, pathMember{name, next})
	return next
}

// pathHit is a string found at the end of flattened path path.
type pathHit struct {
	path int
	s    string
}

// deriveScan is DeriveResources(source, readOnly, requestParameters,
// responseElements) read by the scanner; ok false when it gives up.
func deriveScan(source string, readOnly Tri, requestParameters, responseElements []byte) (_ []Resource, ok bool) {
	if !derivesResources(source, readOnly) {
		return nil, true
	}
	sp := scanPaths[source]
	var buf [16]pathHit
	hits := buf[:0]
	for k, raw := range [2][]byte{requestParameters, responseElements} {
		if len(raw) == 0 || raw[0] != '{' {
			continue // not decoded: not looked in
		}
		sc := recordScanner{b: raw, s: unsafe.String(unsafe.SliceData(raw), len(raw))}
		if !sc.paths(sp.roots[k], &hits) {
			return nil, false
		}
		sc.ws()
		if sc.i != len(raw) {
			return nil, false
		}
	}
	// As deriveFrom: each rule's paths in order, each path's strings in
	// the order of the JSON, once a type and name.
	var out []Resource
	for path, typ := range sp.types {
		for _, h := range hits {
			if h.path != path || h.s == "" || len(h.s) > 2048 || hasResource(out, typ, h.s) {
				continue
			}
			r := Resource{Type: typ, Name: h.s}
			if strings.HasPrefix(h.s, "arn:") {
				r.ARN = h.s
			}
			out = append(out, r)
		}
	}
	return out, true
}

func hasResource(rs []Resource, typ, name string) bool {
	for _, r := range rs {
		if r.Type == typ && r.Name == name {
			return true
		}
	}
	return false
}

// paths reads the value at sc.i, which n is the place of, adding the
// strings at the paths' ends to hits. (valuesAt stops at depth 16; no
// rule's path is that long.)
func (sc *recordScanner) paths(n *pathNode, hits *[]pathHit) bool {
	switch sc.peek() {
	case '"':
		if len(n.ends) == 0 {
			return sc.skip()
		}
		var s string
		if !sc.plainString(&s) {
			return false // escaped or not UTF-8: the decoder decides
		}
		for _, p := range n.ends {
			*hits = append(*hits, pathHit{p, s})
		}
		return true
	case '{':
		if len(n.members) == 0 {
			return sc.skipUnique()
		}
		var ns objectNames
		return sc.object(func(name string) bool {
			if !ns.add(name) {
				return false
			}
			for _, m := range n.members {
				if m.name == name {
					return sc.paths(m.next, hits)
				}
			}
			return sc.skipUnique()
		})
	case '[':
		if n.each == nil {
			return sc.skipUnique()
		}
		return sc.array(func() bool { return sc.paths(n.each, hits) })
	}
	return sc.skipUnique()
}

// skipUnique is skip, giving up (false) on an object with a repeated name
// or a name that is escaped or not valid UTF-8 (which might decode to a
// repeated one). A repeated name anywhere changes what the decoding
// answers: it merges the values, and fails when they do not merge (an
// object, then a string): then the member is not looked in at all.
func (sc *recordScanner) skipUnique() bool {
	switch sc.peek() {
	case '{':
		var ns objectNames
		return sc.object(func(name string) bool { return ns.add(name) && sc.skipUnique() })
	case '[':
		return sc.array(sc.skipUnique)
	}
	return sc.skip()
}

// objectNames are the names of one object's members so far.
type objectNames struct {
	small [16]string
	n     int
	big   map[string]struct{}
}

// add adds name (plain: recordScanner.object gives no other), false when
// the object has it already or it is not valid UTF-8.
func (ns *objectNames) add(name string) bool {
	if !utf8.ValidString(name) {
		return false
	}
	if ns.big != nil {
		if _, ok := ns.big[name]; ok {
			return false
		}
		ns.big[name] = struct{}{}
		return true
	}
	for _, s := range ns.small[:ns.n] {
		if s == name {
			return false
		}
	}
	if ns.n < len(ns.small) {
		ns.small[ns.n] = name
		ns.n++
		return true
	}
	ns.big = make(map[string]struct{}, 2*len(ns.small))
	for _, s := range ns.small {
		ns.big[s] = struct{}{}
	}
	ns.big[name] = struct{}{}
	return true
}
