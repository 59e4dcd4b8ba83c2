package audit

import "encoding/binary"

// FieldReader reads the fields of cairn's binary encodings (AppendBinary's
// fields beside a record's JSON; the journal's first record encoding):
// bytes, varints and length-prefixed byte strings, one after the other. A
// read past the end or of a damaged varint marks it bad and returns a zero
// value, and so does every read after it, so a decoder reads all its
// fields and checks Bad once: damaged input gives an error, never a panic.
type FieldReader struct {
	b   []byte
	bad bool
}

// NewFieldReader returns a FieldReader of b.
func NewFieldReader(b []byte) FieldReader { return FieldReader{b: b} }

// Bad reports whether a read went past the end, met a damaged varint, or
// Fail was called.
func (r *FieldReader) Bad() bool { return r.bad }

// Fail marks r bad: a field read well but out of its range.
func (r *FieldReader) Fail() { r.bad, r.b = true, nil }

// Len is the number of bytes not read yet.
func (r *FieldReader) Len() int { return len(r.b) }

// Byte reads one byte.
func (r *FieldReader) Byte() byte {
	if len(r.b) == 0 {
		r.Fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Uvarint reads an unsigned varint (encoding/binary's).
func (r *FieldReader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Varint reads a signed varint (encoding/binary's).
func (r *FieldReader) Varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

// Bytes reads a uvarint length and that many bytes, which alias the
// FieldReader's slice.
func (r *FieldReader) Bytes() []byte {
	n := r.Uvarint()
	if n > uint64(len(r.b)) {
		r.Fail()
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// String reads what Bytes reads, as a string (a copy).
func (r *FieldReader) String() string { return string(r.Bytes()) }
