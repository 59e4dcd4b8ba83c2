package sigma

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Record is one decoded CloudTrail record, as DecodeRecord returns it:
// JSON objects are map[string]any, numbers json.Number.
type Record map[string]any

// DecodeRecord decodes one CloudTrail record's JSON for Match.
func DecodeRecord(data []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, err
	}
	return r, nil
}

// lookup follows a dotted path (userIdentity.sessionContext.attributes.mfaAuthenticated).
// An array met before the path's end is looked into element by element
// (requestParameters.eventSelectors.readWriteType): the result is the array
// of what each element holds, and matches when any of them does.
func (r Record) lookup(path []string) (any, bool) {
	return lookupIn(map[string]any(r), path, 0)
}

func lookupIn(cur any, path []string, depth int) (any, bool) {
	for i, p := range path {
		if a, ok := cur.([]any); ok {
			if depth > 8 {
				return nil, false
			}
			var out []any
			for _, e := range a {
				if v, ok := lookupIn(e, path[i:], depth+1); ok && v != nil {
					out = append(out, v)
				}
			}
			if out == nil {
				return nil, false
			}
			return out, true
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// selection is a map (fields ANDed) or a list of maps or keywords (ORed).
type selection struct {
	name     string
	alts     [][]fieldMatch // OR of ANDs
	keywords []valueMatcher // keyword search: any string anywhere in the record
}

func (s *selection) match(rec Record) bool {
	for _, and := range s.alts {
		ok := true
		for i := range and {
			if !and[i].match(rec) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	for _, k := range s.keywords {
		if anyLeaf(map[string]any(rec), k, 0) {
			return true
		}
	}
	return false
}

func anyLeaf(v any, m valueMatcher, depth int) bool {
	if depth > 64 {
		return false
	}
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if anyLeaf(e, m, depth+1) {
				return true
			}
		}
		return false
	case []any:
		for _, e := range x {
			if anyLeaf(e, m, depth+1) {
				return true
			}
		}
		return false
	}
	return m.match(v)
}

type fieldMatch struct {
	path   []string
	exists int8 // 0: no exists modifier; 1: exists: true; -1: exists: false
	all    bool
	null   bool // a null value: the field is absent or null
	values []valueMatcher
	refs   []fieldRef // fieldref: compare with other fields of the record
}

// fieldRef compares a field with another field of the same record
// (the fieldref modifier, alone or with contains, startswith, endswith).
type fieldRef struct {
	path  []string
	kind  strKind
	cased bool
}

func (r *fieldRef) match(v any, rec Record) bool {
	o, ok := rec.lookup(r.path)
	if !ok || o == nil {
		return false
	}
	ot, ok := text(o)
	if !ok {
		return false
	}
	m := strMatch{kind: r.kind, pat: ot, cased: r.cased}
	if !r.cased {
		m.pat = strings.ToLower(ot)
	}
	return matchValue(v, &m)
}

func (f *fieldMatch) match(rec Record) bool {
	v, ok := rec.lookup(f.path)
	if f.exists != 0 {
		return (ok && v != nil) == (f.exists > 0)
	}
	if !ok || v == nil {
		return f.null
	}
	if f.refs != nil {
		for i := range f.refs {
			hit := f.refs[i].match(v, rec)
			if hit != f.all {
				return hit
			}
		}
		return f.all
	}
	if f.all {
		for _, m := range f.values {
			if !matchValue(v, m) {
				return false
			}
		}
		return len(f.values) > 0
	}
	for _, m := range f.values {
		if matchValue(v, m) {
			return true
		}
	}
	return false
}

// matchValue matches a scalar, or any element of an array.
func matchValue(v any, m valueMatcher) bool {
	if a, ok := v.([]any); ok {
		for _, e := range a {
			if matchValue(e, m) {
				return true
			}
		}
		return false
	}
	return m.match(v)
}

// text is a scalar's text as Sigma compares it; false for objects and null.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

type valueMatcher interface{ match(v any) bool }

type strKind uint8

const (
	kEq strKind = iota
	kPrefix
	kSuffix
	kContains
	kRegexp
)

// strMatch is a Sigma string value: case-insensitive unless cased.
type strMatch struct {
	kind  strKind
	pat   string // lower-cased unless cased
	cased bool
	re    *regexp.Regexp
}

func (m *strMatch) match(v any) bool {
	s, ok := text(v)
	if !ok {
		return false
	}
	switch m.kind {
	case kEq:
		if m.cased {
			return s == m.pat
		}
		return len(s) == len(m.pat) && strings.EqualFold(s, m.pat)
	case kPrefix:
		if m.cased {
			return strings.HasPrefix(s, m.pat)
		}
		return len(s) >= len(m.pat) && strings.EqualFold(s[:len(m.pat)], m.pat)
	case kSuffix:
		if m.cased {
			return strings.HasSuffix(s, m.pat)
		}
		return len(s) >= len(m.pat) && strings.EqualFold(s[len(s)-len(m.pat):], m.pat)
	case kContains:
		if m.cased {
			return strings.Contains(s, m.pat)
		}
		return containsFold(s, m.pat)
	}
	return m.re.MatchString(s)
}

// containsFold is strings.Contains ignoring case, without allocating for
// ASCII text.
func containsFold(s, sub string) bool {
	n := len(sub)
	if n == 0 {
		return true
	}
	for i := 0; i+n <= len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == sub[0] || c >= 0x80 {
			if strings.EqualFold(s[i:i+n], sub) {
				return true
			}
		}
	}
	if !isASCII(s) {
		return strings.Contains(strings.ToLower(s), sub)
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// compileString compiles a Sigma string with its wildcards (* any run, ?
// one character, \ escaping *, ? and \ only).
func compileString(raw string, cased bool) (valueMatcher, error) {
	type piece struct {
		lit  string
		wild byte // 0, '*' or '?'
	}
	var pieces []piece
	var lit strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' && i+1 < len(raw) && (raw[i+1] == '*' || raw[i+1] == '?' || raw[i+1] == '\\') {
			lit.WriteByte(raw[i+1])
			i++
			continue
		}
		if c == '*' || c == '?' {
			if lit.Len() > 0 {
				pieces = append(pieces, piece{lit: lit.String()})
				lit.Reset()
			}
			pieces = append(pieces, piece{wild: c})
			continue
		}
		lit.WriteByte(c)
	}
	if lit.Len() > 0 {
		pieces = append(pieces, piece{lit: lit.String()})
	}
	norm := func(s string) string {
		if cased {
			return s
		}
		return strings.ToLower(s)
	}
	star := func(p piece) bool { return p.wild == '*' }
	switch {
	case len(pieces) == 0:
		return &strMatch{kind: kEq, cased: cased}, nil
	case len(pieces) == 1 && pieces[0].wild == 0:
		return &strMatch{kind: kEq, pat: norm(pieces[0].lit), cased: cased}, nil
	case len(pieces) == 1 && star(pieces[0]):
		return &strMatch{kind: kPrefix, cased: cased}, nil
	case len(pieces) == 2 && pieces[0].wild == 0 && star(pieces[1]):
		return &strMatch{kind: kPrefix, pat: norm(pieces[0].lit), cased: cased}, nil
	case len(pieces) == 2 && star(pieces[0]) && pieces[1].wild == 0:
		return &strMatch{kind: kSuffix, pat: norm(pieces[1].lit), cased: cased}, nil
	case len(pieces) == 3 && star(pieces[0]) && pieces[1].wild == 0 && star(pieces[2]):
		return &strMatch{kind: kContains, pat: norm(pieces[1].lit), cased: cased}, nil
	}
	var re strings.Builder
	if !cased {
		re.WriteString("(?i)")
	}
	re.WriteString("(?s)^")
	for _, p := range pieces {
		switch p.wild {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(p.lit))
		}
	}
	re.WriteString("$")
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return nil, err
	}
	return &strMatch{kind: kRegexp, re: rx, cased: cased}, nil
}

type numMatch struct{ f float64 }

func (m numMatch) match(v any) bool {
	f, ok := number(v)
	return ok && f == m.f
}

type boolMatch bool

func (m boolMatch) match(v any) bool {
	switch x := v.(type) {
	case bool:
		return x == bool(m)
	case string:
		return strings.EqualFold(x, strconv.FormatBool(bool(m)))
	}
	return false
}

type reMatch struct{ re *regexp.Regexp }

func (m reMatch) match(v any) bool {
	s, ok := text(v)
	return ok && m.re.MatchString(s)
}

type cidrMatch struct{ p netip.Prefix }

func (m cidrMatch) match(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	a, err := netip.ParseAddr(s)
	return err == nil && m.p.Contains(a.Unmap())
}

type cmpMatch struct {
	op string
	f  float64
}

func (m cmpMatch) match(v any) bool {
	f, ok := number(v)
	if !ok {
		return false
	}
	switch m.op {
	case "lt":
		return f < m.f
	case "lte":
		return f <= m.f
	case "gt":
		return f > m.f
	}
	return f >= m.f
}

// unsupported are modifiers of the specification cairn refuses, with why.
var unsupported = map[string]string{
	"utf16le": "UTF-16 encodings apply to Windows logs, not CloudTrail's JSON",
	"utf16be": "UTF-16 encodings apply to Windows logs, not CloudTrail's JSON",
	"utf16":   "UTF-16 encodings apply to Windows logs, not CloudTrail's JSON",
	"wide":    "UTF-16 encodings apply to Windows logs, not CloudTrail's JSON",
	"expand":  "placeholders need a per-deployment mapping cairn does not have",
}

func compileSelection(file string, n *yaml.Node) (selection, error) {
	var s selection
	switch n.Kind {
	case yaml.MappingNode:
		and, err := compileMap(file, n)
		if err != nil {
			return s, err
		}
		s.alts = append(s.alts, and)
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			return s, refuse(file, n, "empty selection")
		}
		for _, e := range n.Content {
			switch e.Kind {
			case yaml.MappingNode:
				and, err := compileMap(file, e)
				if err != nil {
					return s, err
				}
				s.alts = append(s.alts, and)
			case yaml.ScalarNode:
				m, err := compileString(e.Value, false)
				if err != nil {
					return s, refuse(file, e, "keyword %q: %v", e.Value, err)
				}
				s.keywords = append(s.keywords, m)
			default:
				return s, refuse(file, e, "a selection list holds maps or keywords")
			}
		}
	case yaml.ScalarNode:
		m, err := compileString(n.Value, false)
		if err != nil {
			return s, refuse(file, n, "keyword %q: %v", n.Value, err)
		}
		s.keywords = append(s.keywords, m)
	default:
		return s, refuse(file, n, "a selection is a map or a list")
	}
	return s, nil
}

func compileMap(file string, n *yaml.Node) ([]fieldMatch, error) {
	if len(n.Content) == 0 {
		return nil, refuse(file, n, "empty selection")
	}
	var out []fieldMatch
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, err := compileField(file, k, v)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func compileField(file string, k, v *yaml.Node) (fieldMatch, error) {
	var f fieldMatch
	parts := strings.Split(k.Value, "|")
	if parts[0] == "" {
		return f, refuse(file, k, "empty field name in %q", k.Value)
	}
	f.path = strings.Split(parts[0], ".")
	mods := parts[1:]

	var vals []*yaml.Node
	switch v.Kind {
	case yaml.ScalarNode:
		vals = []*yaml.Node{v}
	case yaml.SequenceNode:
		if len(v.Content) == 0 {
			return f, refuse(file, v, "field %q: empty value list", parts[0])
		}
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return f, refuse(file, e, "field %q: values are scalars", parts[0])
			}
		}
		vals = v.Content
	default:
		return f, refuse(file, v, "field %q: a value is a scalar or a list of scalars", parts[0])
	}

	// Sort the modifiers: value transformations in order, then at most one
	// type modifier (re, cidr, exists, lt...), then flags.
	var transforms []string
	typ := ""
	reFlags := ""
	cased := false
	for _, m := range mods {
		switch m {
		case "contains", "startswith", "endswith", "windash":
			transforms = append(transforms, m)
		case "base64", "base64offset":
			// Encoded text is matched as encoded: case matters.
			transforms = append(transforms, m)
			cased = true
		case "all":
			f.all = true
		case "cased":
			cased = true
		case "re", "cidr", "exists", "lt", "lte", "gt", "gte", "fieldref":
			if typ != "" {
				return f, refuse(file, k, "modifiers %q and %q cannot be combined", typ, m)
			}
			typ = m
		case "i", "m", "s":
			reFlags += m
		default:
			if why, ok := unsupported[m]; ok {
				return f, refuse(file, k, "modifier %q is not supported: %s", m, why)
			}
			return f, refuse(file, k, "unknown modifier %q", m)
		}
	}
	if reFlags != "" && typ != "re" {
		return f, refuse(file, k, "modifier %q applies to re only", reFlags[:1])
	}
	if typ == "fieldref" {
		return compileFieldref(file, f, transforms, cased, vals)
	}
	if typ != "" && len(transforms) > 0 {
		return f, refuse(file, k, "modifier %q cannot be combined with %q", typ, transforms[0])
	}

	if typ == "exists" {
		if len(vals) != 1 || vals[0].Tag != "!!bool" {
			return f, refuse(file, v, "exists takes true or false")
		}
		f.exists = 1
		if vals[0].Value == "false" {
			f.exists = -1
		}
		return f, nil
	}
	if compile := typedValue(typ, reFlags); compile != nil {
		for _, e := range vals {
			m, err := compile(e)
			if err != nil {
				return f, refuse(file, e, "%v", err)
			}
			f.values = append(f.values, m)
		}
		return f, nil
	}

	for _, e := range vals {
		switch e.Tag {
		case "!!null":
			if len(transforms) > 0 {
				return f, refuse(file, e, "null cannot take modifiers")
			}
			f.null = true
			continue
		case "!!int", "!!float":
			if len(transforms) == 0 {
				x, err := strconv.ParseFloat(e.Value, 64)
				if err != nil {
					return f, refuse(file, e, "bad number %q", e.Value)
				}
				f.values = append(f.values, numMatch{x})
				continue
			}
		case "!!bool":
			if len(transforms) == 0 {
				f.values = append(f.values, boolMatch(e.Value == "true"))
				continue
			}
		}
		strs := []string{e.Value}
		for _, t := range transforms {
			var err error
			if strs, err = transform(t, strs); err != nil {
				return f, refuse(file, e, "%s: %v", t, err)
			}
		}
		for _, s := range strs {
			m, err := compileString(s, cased)
			if err != nil {
				return f, refuse(file, e, "%v", err)
			}
			f.values = append(f.values, m)
		}
	}
	if f.all && f.null {
		return f, refuse(file, v, "all cannot combine null with other values")
	}
	return f, nil
}

func compileFieldref(file string, f fieldMatch, transforms []string, cased bool, vals []*yaml.Node) (fieldMatch, error) {
	kind := kEq
	switch {
	case len(transforms) > 1:
		return f, refuse(file, vals[0], "fieldref takes at most one of contains, startswith, endswith")
	case len(transforms) == 1:
		switch transforms[0] {
		case "contains":
			kind = kContains
		case "startswith":
			kind = kPrefix
		case "endswith":
			kind = kSuffix
		default:
			return f, refuse(file, vals[0], "fieldref cannot be combined with %q", transforms[0])
		}
	}
	for _, e := range vals {
		if e.Value == "" || e.Tag == "!!null" {
			return f, refuse(file, e, "fieldref takes a field name")
		}
		f.refs = append(f.refs, fieldRef{path: strings.Split(e.Value, "."), kind: kind, cased: cased})
	}
	return f, nil
}

// typedValue returns how a value of type modifier typ (re, cidr, lt, lte,
// gt, gte) compiles, nil for no type modifier (or exists, fieldref).
func typedValue(typ, reFlags string) func(e *yaml.Node) (valueMatcher, error) {
	switch typ {
	case "re":
		return func(e *yaml.Node) (valueMatcher, error) {
			rx, err := regexp.Compile(reFlagsPrefix(reFlags) + e.Value)
			if err != nil {
				return nil, fmt.Errorf("bad regular expression (RE2 syntax): %v", err)
			}
			return reMatch{rx}, nil
		}
	case "cidr":
		return func(e *yaml.Node) (valueMatcher, error) {
			p, err := netip.ParsePrefix(e.Value)
			if err != nil {
				return nil, fmt.Errorf("bad CIDR: %v", err)
			}
			return cidrMatch{p.Masked()}, nil
		}
	case "lt", "lte", "gt", "gte":
		return func(e *yaml.Node) (valueMatcher, error) {
			x, err := strconv.ParseFloat(e.Value, 64)
			if err != nil || e.Tag == "!!str" {
				return nil, fmt.Errorf("%s takes a number", typ)
			}
			return cmpMatch{typ, x}, nil
		}
	}
	return nil
}

func reFlagsPrefix(flags string) string {
	if flags == "" {
		return ""
	}
	return "(?" + flags + ")"
}

func transform(t string, in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		switch t {
		case "contains":
			out = append(out, "*"+s+"*")
		case "startswith":
			out = append(out, s+"*")
		case "endswith":
			out = append(out, "*"+s)
		case "windash":
			out = append(out, windash(s)...)
		case "base64", "base64offset":
			if strings.ContainsAny(s, "*?") {
				return nil, fmt.Errorf("cannot encode a value with wildcards")
			}
			if t == "base64" {
				out = append(out, base64.StdEncoding.EncodeToString([]byte(s)))
				continue
			}
			out = append(out, base64Offsets(s)...)
		}
	}
	return out, nil
}

// windash returns s with every dash or slash that starts a word (a command
// line flag) replaced by each of -, /, en dash, em dash and horizontal bar.
func windash(s string) []string {
	dashes := []string{"-", "/", "\u2013", "\u2014", "\u2015"}
	out := make([]string, 0, len(dashes))
	for _, d := range dashes {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			if (c == '-' || c == '/') && (i == 0 || !isWord(s[i-1])) && i+1 < len(s) && isWord(s[i+1]) {
				b.WriteString(d)
				continue
			}
			b.WriteByte(c)
		}
		out = append(out, b.String())
	}
	return out
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// base64Offsets are the three encodings of s at each offset into a base64
// stream, trimmed of the characters that depend on the neighbours (as the
// specification's base64offset, and pySigma, define them).
func base64Offsets(s string) []string {
	start := []int{0, 2, 3}
	endTrim := []int{0, 3, 2}
	var out []string
	for i := 0; i < 3; i++ {
		enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", i) + s))
		e := len(enc) - endTrim[(len(s)+i)%3]
		if start[i] > e {
			continue
		}
		out = append(out, enc[start[i]:e])
	}
	return out
}
