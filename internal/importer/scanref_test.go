package importer

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// refScan is scanState.scan as a byte loop (its first form): the
// reference the vectorized string skipping must agree with.
func (s *scanState) refScan(b []byte) (int, bool) {
	i := 0
	if !s.started {
		if len(b) == 0 {
			return 0, false
		}
		s.started = true
		s.kind = b[0]
		i = 1
		switch s.kind {
		case '{', '[':
			s.depth = 1
		case '"':
			s.inStr = true
		}
	}
	if s.scalar() {
		for ; i < len(b); i++ {
			if delim[b[i]] {
				return i, true
			}
		}
		return i, false
	}
	if s.esc {
		if i >= len(b) {
			return i, false
		}
		s.esc = false
		i++
	}
	for i < len(b) {
		if s.inStr {
			for i < len(b) && b[i] != '"' && b[i] != '\\' {
				i++
			}
			if i == len(b) {
				return i, false
			}
			if b[i] == '\\' {
				if i+1 == len(b) {
					s.esc = true
					return i + 1, false
				}
				i += 2
				continue
			}
			s.inStr = false
			i++
			if s.kind == '"' {
				return i, true
			}
			continue
		}
		for i < len(b) && !structural[b[i]] {
			i++
		}
		if i == len(b) {
			return i, false
		}
		switch b[i] {
		case '"':
			s.inStr = true
		case '{', '[':
			s.depth++
		default:
			s.depth--
			if s.depth == 0 {
				return i + 1, true
			}
		}
		i++
	}
	return i, false
}

// TestScanMatchesByteLoop feeds random values rich in quotes and
// backslashes, split into random chunks, to scan and to the byte loop:
// both must end each value at the same byte, in the same states.
func TestScanMatchesByteLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{`"`, `\`, `\\`, `\"`, `{`, `}`, `[`, `]`, `a`, `,`, `:`, ` `, strings.Repeat("x", 40)}
	for n := range 20000 {
		var sb strings.Builder
		switch n % 3 {
		case 0:
			sb.WriteString(`{"k":"`)
		case 1:
			sb.WriteString(`"`)
		default:
			sb.WriteString(`[`)
		}
		for range rng.IntN(60) {
			sb.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		in := []byte(sb.String())
		var got, want scanState
		gi, wi := 0, 0
		for gi < len(in) {
			end := min(len(in), gi+1+rng.IntN(16))
			gm, gd := got.scan(in[gi:end])
			wm, wd := want.refScan(in[wi:end])
			if gm != wm || gd != wd || got != want {
				t.Fatalf("%q at %d..%d: scan %d %v %+v, byte loop %d %v %+v", in, gi, end, gm, gd, got, wm, wd, want)
			}
			gi += gm
			wi += wm
			if gd {
				break
			}
		}
	}
}

// TestScanManyEscapes: a long string of escapes (a Windows path, a policy
// document quoted twice) ends where it ends.
func TestScanManyEscapes(t *testing.T) {
	body := strings.Repeat(`C:\\dir\"`, 20000)
	in := []byte(`{"p":"` + body + `","q":1} tail`)
	var s scanState
	n, done := s.scan(in)
	if !done || string(in[:n]) != `{"p":"`+body+`","q":1}` {
		t.Fatalf("scan ended at %d of %d, done %v", n, len(in), done)
	}
}
