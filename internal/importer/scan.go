package importer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// reader hands out the JSON values and lines of a stream with their exact
// bytes. It finds where a value ends without validating what is inside:
// every record it returns is validated by audit.Extract (json.Unmarshal), so
// a scan that only finds boundaries is enough and several times faster than
// encoding/json's Decoder, which scans each value twice.
type reader struct {
	src  io.Reader
	buf  []byte
	r, w int   // unread bytes are buf[r:w]
	err  error // sticky error from src (io.EOF at the end)
	max  int   // the buffer never grows beyond this
}

const (
	readChunk = 64 << 10
)

func newReader(src io.Reader, max int) *reader {
	return &reader{src: src, buf: make([]byte, 2*readChunk), max: max + 2*readChunk}
}

// reset makes rd read src, keeping its buffer (shrunk back to its first
// size if a large value grew it).
func (rd *reader) reset(src io.Reader) {
	if len(rd.buf) > 4*readChunk {
		rd.buf = make([]byte, 2*readChunk)
	}
	rd.src, rd.r, rd.w, rd.err = src, 0, 0, nil
}

// fill reads more bytes, keeping buf[r:w]. It returns false when no more
// can be read (rd.err says why) or the buffer is at its maximum and full.
func (rd *reader) fill() bool {
	if rd.err != nil {
		return false
	}
	if rd.r == rd.w {
		rd.r, rd.w = 0, 0
	}
	if len(rd.buf)-rd.w < readChunk {
		// Move the unread bytes to the front when that costs no more than
		// what was consumed (linear overall), or when the buffer is at its
		// maximum; else grow.
		if rd.r > 0 && (rd.r >= rd.w-rd.r || len(rd.buf) >= rd.max) {
			n := copy(rd.buf, rd.buf[rd.r:rd.w])
			rd.r, rd.w = 0, n
		}
	}
	if len(rd.buf)-rd.w < readChunk {
		if len(rd.buf) >= rd.max {
			// Callers discard what they scanned beyond their limit, which
			// is below max; reaching this is a bug, reported, not a panic.
			rd.err = errors.New("importer: read buffer limit reached")
			return false
		}
		nb := make([]byte, min(max(2*len(rd.buf), rd.w+readChunk), rd.max))
		copy(nb, rd.buf[:rd.w])
		rd.buf = nb
	}
	for range 100 {
		n, err := rd.src.Read(rd.buf[rd.w:])
		rd.w += n
		if err != nil {
			rd.err = err
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
	rd.err = io.ErrNoProgress
	return false
}

// readErr is the error to report when the stream ended inside something.
func (rd *reader) readErr() error {
	if rd.err == nil || rd.err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return rd.err
}

// eof reports whether the stream ended cleanly with nothing unread.
func (rd *reader) eof() bool {
	return rd.r == rd.w && !rd.fill() && rd.err == io.EOF
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

// peek skips whitespace and returns the next byte without consuming it.
// At the end of the stream it returns io.EOF, or the read error.
func (rd *reader) peek() (byte, error) {
	for {
		for rd.r < rd.w {
			if c := rd.buf[rd.r]; !isSpace(c) {
				return c, nil
			}
			rd.r++
		}
		if !rd.fill() {
			if rd.r < rd.w {
				continue
			}
			return 0, rd.err
		}
	}
}

// head returns up to n unread bytes (fewer at the end of the stream)
// without consuming them.
func (rd *reader) head(n int) []byte {
	for rd.w-rd.r < n && rd.fill() {
	}
	return rd.buf[rd.r:min(rd.w, rd.r+n)]
}

// errTooBig marks a value or line larger than the limit; it was skipped.
var errTooBig = errors.New("too big")

// value returns the next JSON value (after whitespace), exact bytes, valid
// until the next call. A value longer than limit is consumed and reported
// as errTooBig. Other errors are read errors or io.ErrUnexpectedEOF.
func (rd *reader) value(limit int) ([]byte, error) {
	if _, err := rd.peek(); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	var s scanState
	n := 0 // bytes of the value scanned so far, from rd.r
	tooBig := false
	for {
		m, done := s.scan(rd.buf[rd.r+n : rd.w])
		n += m
		if done {
			break
		}
		if n > limit {
			// Forget what was scanned; keep scanning to find the end.
			tooBig = true
			rd.r += n
			n = 0
		}
		if !rd.fill() {
			if rd.r+n < rd.w {
				continue
			}
			if rd.err == io.EOF && s.scalar() {
				break // a number or literal ends with the stream
			}
			return nil, rd.readErr()
		}
	}
	v := rd.buf[rd.r : rd.r+n]
	rd.r += n
	if tooBig || n > limit {
		return nil, errTooBig
	}
	return v, nil
}

// line returns the next non-blank line without its line end and the
// whitespace around it, valid until the next call. A line longer than limit
// is consumed and reported as errTooBig. At the end it returns io.EOF.
func (rd *reader) line(limit int) ([]byte, error) {
	for {
		if _, err := rd.peek(); err != nil {
			return nil, err
		}
		n := 0
		tooBig := false
		for {
			if i := bytes.IndexByte(rd.buf[rd.r+n:rd.w], '\n'); i >= 0 {
				n += i
				break
			}
			n = rd.w - rd.r
			if n > limit {
				tooBig = true
				rd.r += n
				n = 0
			}
			if !rd.fill() {
				if rd.r+n < rd.w {
					continue
				}
				if rd.err != io.EOF {
					return nil, rd.err
				}
				break
			}
		}
		l := bytes.TrimRight(rd.buf[rd.r:rd.r+n], " \t\r")
		rd.r += n
		if rd.r < rd.w {
			rd.r++ // the '\n'
		}
		switch {
		case tooBig || len(l) > limit:
			return nil, errTooBig
		case len(l) > 0:
			return l, nil
		}
	}
}

// expect consumes the next non-space byte, which must be c.
func (rd *reader) expect(c byte) error {
	got, err := rd.peek()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if got != c {
		return fmt.Errorf("found %s where %q was expected", describe(got), c)
	}
	rd.r++
	return nil
}

// describe names a byte for an error message without echoing content.
func describe(c byte) string {
	if c > ' ' && c < 0x7f {
		return fmt.Sprintf("%q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// scanState finds the end of one JSON value in a stream of chunks. It
// tracks nesting and strings only; it does not validate.
type scanState struct {
	started bool
	kind    byte // first byte of the value
	depth   int
	inStr   bool
	esc     bool // a backslash ended the previous chunk
}

// delim marks the bytes that end a number or literal.
var delim = [256]bool{' ': true, '\t': true, '\n': true, '\r': true, ',': true, ']': true, '}': true, ':': true, '[': true, '{': true, '"': true}

// structural marks the bytes that matter outside strings in an object or array.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// scalar reports whether the value being scanned is a number or literal,
// which may end at the end of the stream.
func (s *scanState) scalar() bool {
	return s.started && s.kind != '{' && s.kind != '[' && s.kind != '"'
}

// scan consumes b; it returns how many bytes belong to the value and
// whether the value ended within b. b must start with the value's first
// byte on the first call.
func (s *scanState) scan(b []byte) (int, bool) {
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
	quote := -1 // the index in b of the next '"' from i, once found (len(b): none)
	for i < len(b) {
		if s.inStr {
			// The next quote by IndexByte (vectorized), then whether a
			// backslash comes before it: a byte loop here was 5% of an
			// import's CPU. The quote's place is kept across the
			// escapes before it, so that a string of many escapes is
			// still scanned once (linear), not once per escape.
			if quote < i {
				quote = len(b)
				if k := bytes.IndexByte(b[i:], '"'); k >= 0 {
					quote = i + k
				}
			}
			if e := bytes.IndexByte(b[i:quote], '\\'); e >= 0 {
				i += e
			} else {
				i = quote
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
