package sigma

import "strings"

// EventNames returns the event names a record's top-level eventName must
// have, compared case-insensitively (the names are lower-cased), for the
// rule to match it, and true; or nil and false when the rule can match
// records of any event name. A live detector indexes rules by these names
// and decodes a record only when some rule may match it: most CloudTrail
// rules name the calls they watch.
//
// The set is a necessary condition, never a narrower one: a record whose
// eventName (a string, compared with strings.ToLower) is not in it does
// not match. Only plain equality on eventName constrains (a value list,
// with or without cased or all); wildcards, other modifiers, null, exists,
// fieldref, keywords and not leave the rule unconstrained.
func (r *Rule) EventNames() ([]string, bool) {
	set, ok := r.eventNames(r.cond)
	if !ok {
		return nil, false
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	return names, true
}

type nameSet map[string]bool

func (r *Rule) eventNames(n node) (nameSet, bool) {
	switch x := n.(type) {
	case selNode:
		return r.sels[int(x)].eventNames()
	case andNode:
		// Every operand must match: any constrained one bounds the names.
		var out nameSet
		for _, c := range x {
			if s, ok := r.eventNames(c); ok {
				out = intersect(out, s)
			}
		}
		return out, out != nil
	case orNode:
		return r.union(x)
	case ofNode:
		if x.n >= len(x.sels) { // all of them: an AND
			var out nameSet
			for _, i := range x.sels {
				if s, ok := r.sels[i].eventNames(); ok {
					out = intersect(out, s)
				}
			}
			return out, out != nil
		}
		nodes := make([]node, len(x.sels))
		for i, s := range x.sels {
			nodes[i] = selNode(s)
		}
		return r.union(nodes)
	}
	return nil, false // not, or a node this analysis does not know
}

// union: any operand may match, so each must be constrained.
func (r *Rule) union(nodes []node) (nameSet, bool) {
	out := nameSet{}
	for _, c := range nodes {
		s, ok := r.eventNames(c)
		if !ok {
			return nil, false
		}
		for k := range s {
			out[k] = true
		}
	}
	return out, len(nodes) > 0
}

func intersect(a, b nameSet) nameSet {
	if a == nil {
		return b
	}
	out := nameSet{}
	for k := range a {
		if b[k] {
			out[k] = true
		}
	}
	return out
}

// eventNames of a selection: the union over its maps, each bounded by
// its eventName field; keywords match anywhere.
func (s *selection) eventNames() (nameSet, bool) {
	if len(s.keywords) > 0 || len(s.alts) == 0 {
		return nil, false
	}
	out := nameSet{}
	for _, and := range s.alts {
		var alt nameSet
		for i := range and {
			if set, ok := and[i].eventNames(); ok {
				alt = intersect(alt, set)
			}
		}
		if alt == nil {
			return nil, false
		}
		for k := range alt {
			out[k] = true
		}
	}
	return out, true
}

func (f *fieldMatch) eventNames() (nameSet, bool) {
	if len(f.path) != 1 || f.path[0] != "eventName" || f.exists != 0 || f.null || f.refs != nil || len(f.values) == 0 {
		return nil, false
	}
	out := nameSet{}
	for _, v := range f.values {
		m, ok := v.(*strMatch)
		if !ok || m.kind != kEq {
			return nil, false
		}
		out[strings.ToLower(m.pat)] = true
	}
	return out, true
}

// Fields returns the top-level members of a record the rule reads (the
// first part of every field path, fieldref targets included), and false
// when it may read any (keyword selections search every value). A
// matcher may decode only these members: the rule's result is the same.
func (r *Rule) Fields() ([]string, bool) {
	paths, ok := r.paths()
	if !ok {
		return nil, false
	}
	seen := map[string]bool{}
	var out []string
	for _, path := range paths {
		if len(path) > 0 && !seen[path[0]] {
			seen[path[0]] = true
			out = append(out, path[0])
		}
	}
	return out, true
}
