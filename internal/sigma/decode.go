package sigma

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeFields is DecodeRecord without reflection: the same Record
// (objects map[string]any, arrays []any, numbers json.Number, a repeated
// member's last value, invalid UTF-8 and lone surrogates as U+FFFD) in a
// fraction of the time; live detection and retro hunts decode every event
// a rule or a stateful hunt reads with it. TestDecodeLikeDecodeRecord
// holds it to DecodeRecord.
//
// With fields non-nil, only those top-level members are decoded (Rule.Fields
// and StatefulFields say which a rule or a stateful hunt reads); the others
// are skipped, checked only as far as finding their end (the store holds
// records audit.Extract parsed whole, so they are valid JSON; a syntax error
// in a skipped member may go unnoticed).
func DecodeFields(b []byte, fields map[string]bool) (Record, error) {
	var tree fieldTree
	if fields != nil {
		tree = make(fieldTree, len(fields))
		for k := range fields {
			tree[k] = nil
		}
	}
	return decodeTree(b, tree)
}

// fieldTree names the members of an object to decode: each to its
// sub-members to decode when it is an object (or, in an array, each
// element's), nil for the whole value. A nil fieldTree decodes every
// member.
type fieldTree map[string]fieldTree

// decodeTree is DecodeFields decoding only the members of tree, at every
// depth: a lookup of a path within tree finds what it finds in the whole
// record.
func decodeTree(b []byte, tree fieldTree) (Record, error) {
	return (*Decoder)(nil).decodeTree(b, tree)
}

// A ctree is a fieldTree compiled for the parser, which looks up every
// member name of a record in it: a small open-addressed table hashed on
// the name's length and a few of its bytes (a Go map hashes every byte
// and was 14% of a retro hunt's CPU with the sharing maps' lookups), each
// member with its name as the decoded map's key (shared without a lookup)
// and an id for a Decoder's last-value cache. A nil *ctree decodes every
// member. It is never written once compiled, so goroutines share it.
type ctree struct {
	ents  []centry
	slots []uint16 // index+1 into ents; 0: empty
	mask  uint32
}

type centry struct {
	name string
	sub  *ctree // nil: decoded whole
	id   int32  // slot in a Decoder's last-value cache; -1: none
}

// lastIDs numbers the members of compiled trees for the Decoders'
// last-value caches; past maxLastIDs (rules reloaded many times) members
// get no slot and share through the Decoder's map only.
var lastIDs atomic.Int32

const maxLastIDs = 1 << 16

// compileTree compiles t; with cache, its members get ids for the
// Decoders' last-value caches (a tree compiled for one call, which would
// use up the ids, gets none).
func compileTree(t fieldTree, cache bool) *ctree {
	if t == nil {
		return nil
	}
	n := 8
	for n < 2*len(t) {
		n *= 2
	}
	c := &ctree{slots: make([]uint16, n), mask: uint32(n - 1)}
	names := make([]string, 0, len(t))
	for k := range t {
		names = append(names, k)
	}
	slices.Sort(names) // the same table whatever the map's order
	for _, k := range names {
		id := int32(-1)
		if cache && lastIDs.Load() < maxLastIDs {
			if id = lastIDs.Add(1) - 1; id >= maxLastIDs {
				id = -1
			}
		}
		c.ents = append(c.ents, centry{name: k, sub: compileTree(t[k], cache), id: id})
		i := keyHash(k) & c.mask
		for c.slots[i] != 0 {
			i = (i + 1) & c.mask
		}
		c.slots[i] = uint16(len(c.ents))
	}
	return c
}

// keyHash hashes a member name on its length and four of its bytes: the
// names of a record's members differ there (a collision costs a compare).
func keyHash[S ~string | ~[]byte](b S) uint32 {
	n := len(b)
	if n == 0 {
		return 0
	}
	h := uint32(n)*0x9e3779b1 ^ uint32(b[0]) ^ uint32(b[n-1])<<8 ^ uint32(b[n/2])<<16 ^ uint32(b[(n*3)/4])<<24
	return h ^ h>>15 ^ h>>7
}

// find returns the member named b, nil when the tree does not have it.
func (t *ctree) find(b []byte) *centry {
	for i := keyHash(b) & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nil
		}
		if e := &t.ents[s-1]; e.name == string(b) {
			return e
		}
	}
}

// A Decoder decodes records as DecodeFields and DecodeBrief do, with fewer
// allocations: the short strings it meets (member names, account IDs,
// ARNs, regions, addresses: values records repeat) are kept and shared
// between the records it decodes, up to a bound. Its zero value is ready;
// a nil *Decoder shares nothing. A Decoder is used by one goroutine at a
// time.
type Decoder struct {
	keys map[string]string
	vals map[string]any
	// last is, by a compiled member's id, the last string values the
	// Decoder read there (lastSlots of them, by keyHash of the value)
	// and each as an any: a record's region, account, event source,
	// identity or address is most often one a record before it had,
	// found by one compare instead of a hash of the whole value and a
	// lookup in vals.
	last []*[lastSlots]lastVal
}

type lastVal struct {
	s string
	v any
}

// lastSlots is how many values a Decoder keeps of each compiled member
// (512 bytes).
const lastSlots = 16

// Bounds of what a Decoder keeps: strings up to maxShared bytes, at most
// maxSharedN of them (then it forgets them all and starts again), about
// 2 MB.
const (
	maxShared  = 128
	maxSharedN = 8192
)

// Fields is DecodeFields.
func (d *Decoder) Fields(b []byte, fields map[string]bool) (Record, error) {
	var tree fieldTree
	if fields != nil {
		tree = make(fieldTree, len(fields))
		for k := range fields {
			tree[k] = nil
		}
	}
	return d.decodeTree(b, tree)
}

// Brief is DecodeBrief.
func (d *Decoder) Brief(b []byte) (Record, error) { return d.decode(b, briefC) }

// briefC is briefTree compiled.
var briefC = compileTree(briefTree, true)

func (d *Decoder) decodeTree(b []byte, tree fieldTree) (Record, error) {
	return d.decode(b, compileTree(tree, false))
}

func (d *Decoder) decode(b []byte, tree *ctree) (Record, error) {
	p := parser{b: b, d: d}
	if d != nil && (d.keys == nil || len(d.keys)+len(d.vals) >= maxSharedN) {
		d.keys, d.vals = make(map[string]string, 256), make(map[string]any, 1024)
	}
	p.ws()
	if p.lit("null") == nil {
		return nil, nil // as encoding/json: a null leaves the map nil
	}
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return nil, errSyntax
	}
	m, err := p.object(0, tree)
	if err != nil {
		return nil, err
	}
	return Record(m), nil
}

var errSyntax = errors.New("sigma: record is not a JSON object")

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

type parser struct {
	b []byte
	i int
	d *Decoder // nil: share nothing

	noShare bool // the value read is unique to the record: not shared
}

// uniqueMember reports whether a top-level member's value is one no
// other record has (a Decoder does not keep it).
func uniqueMember(name []byte) bool {
	switch string(name) {
	case "eventID", "eventTime", "requestID", "sharedEventID":
		return true
	}
	return false
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value(depth int, tree *ctree) (any, error) {
	p.ws()
	if p.i >= len(p.b) {
		return nil, errSyntax
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.object(depth+1, tree)
	case c == '[':
		return p.array(depth+1, tree)
	case c == '"':
		if p.d != nil && !p.noShare {
			return p.sharedStr()
		}
		return p.str()
	case c == 't':
		return true, p.lit("true")
	case c == 'f':
		return false, p.lit("false")
	case c == 'n':
		return nil, p.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return nil, errSyntax
}

func (p *parser) lit(s string) error {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return errSyntax
	}
	p.i += len(s)
	return nil
}

func (p *parser) object(depth int, tree *ctree) (map[string]any, error) {
	if depth > maxDepth {
		return nil, errSyntax
	}
	p.i++ // {
	var m map[string]any
	if tree != nil {
		m = make(map[string]any, len(tree.ents))
	} else {
		m = map[string]any{}
	}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return m, nil
	}
	for {
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != '"' {
			return nil, errSyntax
		}
		var k string
		kb, plain := p.plainStr()
		if !plain {
			var err error
			if k, err = p.str(); err != nil {
				return nil, err
			}
			kb = []byte(k)
		}
		p.ws()
		if p.i >= len(p.b) || p.b[p.i] != ':' {
			return nil, errSyntax
		}
		p.i++
		var ent *centry
		if tree != nil {
			if ent = tree.find(kb); ent == nil {
				if err := p.skip(); err != nil {
					return nil, err
				}
			}
		}
		if tree == nil || ent != nil {
			var sub *ctree
			if ent != nil {
				sub = ent.sub
			}
			// values unique to a record are not worth sharing
			p.noShare = depth == 0 && uniqueMember(kb)
			var v any
			var err error
			if ent != nil && ent.id >= 0 && p.d != nil && !p.noShare {
				v, err = p.lastStr(depth, ent.id, sub)
			} else {
				v, err = p.value(depth, sub)
			}
			p.noShare = false
			if err != nil {
				return nil, err
			}
			switch {
			case ent != nil:
				k = ent.name
			case plain:
				k = p.key(kb)
			}
			m[k] = v
		}
		end, err := p.sep('}')
		if err != nil {
			return nil, err
		}
		if end {
			return m, nil
		}
	}
}

// sep reads what follows a member or an element: a comma (false) or the
// closing byte of its object or array (true), both consumed.
func (p *parser) sep(close byte) (bool, error) {
	p.ws()
	if p.i >= len(p.b) {
		return false, errSyntax
	}
	switch p.b[p.i] {
	case ',':
		p.i++
		return false, nil
	case close:
		p.i++
		return true, nil
	}
	return false, errSyntax
}

func (p *parser) array(depth int, tree *ctree) ([]any, error) {
	if depth > maxDepth {
		return nil, errSyntax
	}
	p.i++ // [
	a := []any{}
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == ']' {
		p.i++
		return a, nil
	}
	for {
		v, err := p.value(depth, tree)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		end, err := p.sep(']')
		if err != nil {
			return nil, err
		}
		if end {
			return a, nil
		}
	}
}

func (p *parser) number() (any, error) {
	start := p.i
	b := p.b
	if b[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(b) && b[p.i] >= '0' && b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.i < len(b) && b[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, errSyntax
	}
	if p.i < len(b) && b[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	if p.i < len(b) && (b[p.i] == 'e' || b[p.i] == 'E') {
		p.i++
		if p.i < len(b) && (b[p.i] == '+' || b[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	return json.Number(b[start:p.i]), nil
}

// plainStr reads a string at p.i (at its opening quote) that has no
// escape, control character or byte beyond ASCII: its bytes, which alias
// the record. It reads nothing when the string is not plain.
func (p *parser) plainStr() ([]byte, bool) {
	b := p.b
	for j := p.i + 1; j < len(b); j++ {
		c := b[j]
		if c == '"' {
			s := b[p.i+1 : j]
			p.i = j + 1
			return s, true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			return nil, false
		}
	}
	return nil, false
}

// key is the member name kb (plain), shared through the Decoder.
func (p *parser) key(kb []byte) string {
	if p.d == nil {
		return string(kb)
	}
	if k, ok := p.d.keys[string(kb)]; ok {
		return k
	}
	k := string(kb)
	if len(k) <= maxShared {
		p.d.keys[k] = k
	}
	return k
}

// lastStr reads the value of the compiled member id (decoded whole) at
// p.i as value does; a plain string equal to the last one read there is
// that one's. sub is the member's tree, for a value that is not a string.
func (p *parser) lastStr(depth int, id int32, sub *ctree) (any, error) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return p.value(depth, sub)
	}
	start := p.i
	sb, plain := p.plainStr()
	if !plain {
		p.i = start
		return p.str()
	}
	d := p.d
	if int(id) >= len(d.last) {
		d.last = append(d.last, make([]*[lastSlots]lastVal, int(id)+1-len(d.last))...)
	}
	slots := d.last[id]
	if slots == nil {
		slots = new([lastSlots]lastVal)
		d.last[id] = slots
	}
	l := &slots[keyHash(sb)%lastSlots]
	if l.v != nil && l.s == string(sb) {
		return l.v, nil
	}
	p.i = start
	v, err := p.sharedStr()
	if s, _ := v.(string); err == nil && len(s) <= maxShared {
		*l = lastVal{s: s, v: v}
	}
	return v, err
}

// sharedStr reads a string value at p.i as str does, shared through the
// Decoder when it is plain and short.
func (p *parser) sharedStr() (any, error) {
	start := p.i
	sb, plain := p.plainStr()
	if !plain {
		p.i = start
		return p.str()
	}
	if v, ok := p.d.vals[string(sb)]; ok {
		return v, nil
	}
	s := string(sb)
	var v any = s
	if len(s) <= maxShared {
		p.d.vals[s] = v
	}
	return v, nil
}

// str reads a string at p.i (at its opening quote).
func (p *parser) str() (string, error) {
	p.i++
	start := p.i
	b := p.b
	for p.i < len(b) {
		c := b[p.i]
		if c == '"' {
			s := string(b[start:p.i])
			p.i++
			return s, nil
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		p.i++
	}
	// Slow path: escapes, control characters, UTF-8.
	out := append([]byte(nil), b[start:p.i]...)
	for p.i < len(b) {
		c := b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(out), nil
		case c < 0x20:
			return "", errSyntax
		case c == '\\':
			if p.i+1 >= len(b) {
				return "", errSyntax
			}
			e := b[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", errSyntax
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p.i+1 < len(b) && b[p.i] == '\\' && b[p.i+1] == 'u' {
						save := p.i
						p.i += 2
						if x, ok := p.hex4(); ok {
							r2 = x
						} else {
							return "", errSyntax
						}
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							out = utf8.AppendRune(out, d)
							continue
						}
						p.i = save // the second escape stands alone
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", errSyntax
			}
		case c < 0x80:
			out = append(out, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(b[p.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, b[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return "", errSyntax
}

func (p *parser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.b[p.i : p.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}

// skip passes over one value without building it.
func (p *parser) skip() error {
	p.ws()
	depth := 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for { // to the next quote not escaped by an odd run of backslashes
				j := bytes.IndexByte(p.b[p.i:], '"')
				if j < 0 {
					return errSyntax
				}
				p.i += j
				n := 0
				for k := p.i - 1; k >= 0 && p.b[k] == '\\'; k-- {
					n++
				}
				p.i++
				if n%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the enclosing object
			}
			depth--
			p.i++
		case ',':
			if depth == 0 {
				return nil
			}
			p.i++
		default:
			p.i++
		}
		if depth == 0 && p.i < len(p.b) {
			// a whole string or container ends the value; a scalar
			// runs to the next separator
			if c := p.b[p.i-1]; c == '"' || c == '}' || c == ']' {
				return nil
			}
		}
	}
	return errSyntax
}
