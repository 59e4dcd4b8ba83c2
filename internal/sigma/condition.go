package sigma

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// node is a compiled condition.
type node interface {
	eval(sels []selection, rec Record) bool
}

type selNode int

func (n selNode) eval(s []selection, rec Record) bool { return s[n].match(rec) }

type notNode struct{ n node }

func (n notNode) eval(s []selection, rec Record) bool { return !n.n.eval(s, rec) }

type andNode []node

func (n andNode) eval(s []selection, rec Record) bool {
	for _, c := range n {
		if !c.eval(s, rec) {
			return false
		}
	}
	return true
}

type orNode []node

func (n orNode) eval(s []selection, rec Record) bool {
	for _, c := range n {
		if c.eval(s, rec) {
			return true
		}
	}
	return false
}

// ofNode is "N of pattern": at least n of the selections match.
type ofNode struct {
	n    int
	sels []int
}

func (o ofNode) eval(s []selection, rec Record) bool {
	hit := 0
	for i, idx := range o.sels {
		if s[idx].match(rec) {
			hit++
			if hit >= o.n {
				return true
			}
		}
		if hit+len(o.sels)-i-1 < o.n {
			return false
		}
	}
	return hit >= o.n
}

const (
	maxConditionLen   = 4096
	maxConditionDepth = 64
)

// parseCondition parses a Sigma condition over the selections names (in
// rule order; idx maps a name to its index). Precedence: not, and, or.
func parseCondition(src string, names []string, idx map[string]int) (node, error) {
	if len(src) > maxConditionLen {
		return nil, fmt.Errorf("longer than %d characters", maxConditionLen)
	}
	if strings.Contains(src, "|") {
		return nil, errors.New("aggregations (| count(), near...) are not supported")
	}
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	if len(toks) == 0 {
		return nil, errors.New("empty condition")
	}
	p := &condParser{toks: toks, names: names, idx: idx}
	n, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q", p.toks[p.pos])
	}
	return n, nil
}

func tokenize(s string) ([]string, error) {
	var toks []string
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')':
			toks = append(toks, string(c))
			i++
		case c == '_' || c == '*' || c == '-' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) {
				d := s[j]
				if d == '_' || d == '*' || d == '-' || d == '.' || d >= '0' && d <= '9' || d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' {
					j++
					continue
				}
				break
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", c)
		}
	}
	return toks, nil
}

type condParser struct {
	toks  []string
	pos   int
	names []string
	idx   map[string]int
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) or(depth int) (node, error) {
	if depth > maxConditionDepth {
		return nil, fmt.Errorf("nested deeper than %d", maxConditionDepth)
	}
	first, err := p.and(depth)
	if err != nil {
		return nil, err
	}
	alts := []node{first}
	for strings.EqualFold(p.peek(), "or") {
		p.pos++
		n, err := p.and(depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	if len(alts) == 1 {
		return first, nil
	}
	return orNode(alts), nil
}

func (p *condParser) and(depth int) (node, error) {
	first, err := p.not(depth)
	if err != nil {
		return nil, err
	}
	all := []node{first}
	for strings.EqualFold(p.peek(), "and") {
		p.pos++
		n, err := p.not(depth)
		if err != nil {
			return nil, err
		}
		all = append(all, n)
	}
	if len(all) == 1 {
		return first, nil
	}
	return andNode(all), nil
}

func (p *condParser) not(depth int) (node, error) {
	if strings.EqualFold(p.peek(), "not") {
		if depth > maxConditionDepth {
			return nil, fmt.Errorf("nested deeper than %d", maxConditionDepth)
		}
		p.pos++
		n, err := p.not(depth + 1)
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	}
	return p.primary(depth)
}

func (p *condParser) primary(depth int) (node, error) {
	t := p.peek()
	switch {
	case t == "":
		return nil, errors.New("unexpected end of condition")
	case t == "(":
		p.pos++
		n, err := p.or(depth + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, errors.New("missing )")
		}
		p.pos++
		return n, nil
	case t == ")":
		return nil, errors.New("unexpected )")
	case isKeyword(t):
		return nil, fmt.Errorf("unexpected %q", t)
	}
	p.pos++
	if p.pos < len(p.toks) && strings.EqualFold(p.toks[p.pos], "of") {
		p.pos++
		return p.of(t)
	}
	if strings.Contains(t, "*") {
		return nil, fmt.Errorf("wildcard %q outside \"1 of\"/\"all of\"", t)
	}
	i, ok := p.idx[t]
	if !ok {
		return nil, fmt.Errorf("unknown selection %q", t)
	}
	return selNode(i), nil
}

func isKeyword(t string) bool {
	switch strings.ToLower(t) {
	case "and", "or", "not", "of", "them":
		return true
	}
	return false
}

// of compiles "QUANT of TARGET": QUANT is all, any or a positive count;
// TARGET is them (every selection not starting with _) or a name pattern
// with * wildcards.
func (p *condParser) of(quant string) (node, error) {
	target := p.peek()
	if target == "" || target == "(" || target == ")" {
		return nil, fmt.Errorf("%q of what?", quant)
	}
	p.pos++
	var sels []int
	for i, n := range p.names {
		if strings.EqualFold(target, "them") {
			if !strings.HasPrefix(n, "_") {
				sels = append(sels, i)
			}
			continue
		}
		if ok, err := path.Match(target, n); err != nil {
			return nil, fmt.Errorf("pattern %q: %v", target, err)
		} else if ok {
			sels = append(sels, i)
		}
	}
	if len(sels) == 0 {
		return nil, fmt.Errorf("%q matches no selection", target)
	}
	switch q := strings.ToLower(quant); q {
	case "all":
		return ofNode{n: len(sels), sels: sels}, nil
	case "any":
		return ofNode{n: 1, sels: sels}, nil
	default:
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q of: want all, any or a positive count", quant)
		}
		return ofNode{n: n, sels: sels}, nil
	}
}
