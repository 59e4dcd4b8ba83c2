package audit

import (
	"encoding/binary"
	"testing"
)

// TestFieldReader: the fields written by encoding/binary's appenders read back
// in order, and the Reader ends empty and not bad.
func TestFieldReader(t *testing.T) {
	var b []byte
	b = append(b, 7)
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -5)
	b = binary.AppendUvarint(b, 3)
	b = append(b, "abc"...)
	b = binary.AppendUvarint(b, 0)
	r := NewFieldReader(b)
	if got := r.Byte(); got != 7 {
		t.Errorf("Byte = %d", got)
	}
	if got := r.Uvarint(); got != 300 {
		t.Errorf("Uvarint = %d", got)
	}
	if got := r.Varint(); got != -5 {
		t.Errorf("Varint = %d", got)
	}
	s := r.Bytes()
	if string(s) != "abc" || cap(s) != 3 {
		t.Errorf("Bytes = %q (cap %d); want abc, capped", s, cap(s))
	}
	if got := r.String(); got != "" {
		t.Errorf("String = %q", got)
	}
	if r.Bad() || r.Len() != 0 {
		t.Errorf("bad %v, %d bytes left; want neither", r.Bad(), r.Len())
	}
}

// TestFieldReaderDamaged: every way of running out or of a damaged varint marks the
// Reader bad, returns zero values from then on, and never panics.
func TestFieldReaderDamaged(t *testing.T) {
	for name, read := range map[string]func(*FieldReader){
		"byte of nothing":     func(r *FieldReader) { r.Byte() },
		"uvarint of nothing":  func(r *FieldReader) { r.Uvarint() },
		"varint of nothing":   func(r *FieldReader) { r.Varint() },
		"bytes of nothing":    func(r *FieldReader) { r.Bytes() },
		"length past the end": func(r *FieldReader) { *r = NewFieldReader([]byte{5, 'a'}); r.Bytes() },
		"varint too long": func(r *FieldReader) {
			*r = NewFieldReader([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
			r.Uvarint()
		},
		"truncated varint": func(r *FieldReader) { *r = NewFieldReader([]byte{0x80}); r.Varint() },
	} {
		r := NewFieldReader(nil)
		read(&r)
		if !r.Bad() {
			t.Errorf("%s: not bad", name)
		}
		if r.Byte() != 0 || r.Uvarint() != 0 || r.String() != "" || !r.Bad() {
			t.Errorf("%s: reads after the damage gave values", name)
		}
	}
}
