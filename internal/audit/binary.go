package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// cairn's binary encoding of a Record, shared by the ingest journal (every
// field) and the DuckDB store's record frames (the fields a lookup returns
// beside the JSON; the others are columns there):
//
//	raw || fields || uint32 little-endian len(fields)
//
// raw comes first so that a compressor finds the fields' values as matches
// into it, and a decoder returns it without copying. fields is
//
//	version byte: 1 or 2
//	eventName, eventSource, username, accessKeyId: uvarint length + bytes
//	readOnly byte (Tri)
//	resource count uvarint, then per resource type, name, ARN as strings
//	version 2 only:
//	account, region, eventID as strings
//	time: byte 0 (zero), or 1, varint Unix seconds, uvarint nanoseconds
//	category byte
//
// Version 1 is what DuckDB stores have held from the start; AppendBinary
// still writes it when the version 2 fields are all zero, so the store's
// frames keep their bytes and stay readable by earlier versions.
const (
	binaryV1 = 1
	binaryV2 = 2
)

// ErrBinary reports bytes that are not a record in the binary encoding.
var ErrBinary = errors.New("malformed binary record")

// AppendBinary appends r to dst in cairn's binary record encoding and
// returns the extended slice.
func AppendBinary(dst []byte, r *Record) []byte {
	dst = append(dst, r.Raw...)
	start := len(dst)
	v2 := r.Account != "" || r.Region != "" || r.EventID != "" || !r.Time.IsZero() || r.Category != 0
	if v2 {
		dst = append(dst, binaryV2)
	} else {
		dst = append(dst, binaryV1)
	}
	for _, s := range []string{r.EventName, r.EventSource, r.Username, r.AccessKeyID} {
		dst = appendString(dst, s)
	}
	dst = append(dst, byte(r.ReadOnly))
	dst = binary.AppendUvarint(dst, uint64(len(r.Resources)))
	for _, x := range r.Resources {
		dst = appendString(dst, x.Type)
		dst = appendString(dst, x.Name)
		dst = appendString(dst, x.ARN)
	}
	if v2 {
		for _, s := range []string{r.Account, r.Region, r.EventID} {
			dst = appendString(dst, s)
		}
		if r.Time.IsZero() {
			dst = append(dst, 0)
		} else {
			dst = append(dst, 1)
			dst = binary.AppendVarint(dst, r.Time.Unix())
			dst = binary.AppendUvarint(dst, uint64(r.Time.Nanosecond()))
		}
		dst = append(dst, byte(r.Category))
	}
	return binary.LittleEndian.AppendUint32(dst, uint32(len(dst)-start))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeBinary parses p, written by AppendBinary, into r. r.Raw aliases p
// (capped, so appending to it copies). Fields a version 1 encoding does not
// hold (Account, Region, EventID, Time, Category) are left as they are in
// r; the others are overwritten. Damaged bytes give an error wrapping
// ErrBinary, never a panic.
func DecodeBinary(p []byte, r *Record) error {
	if len(p) < 4 {
		return ErrBinary
	}
	n := int(binary.LittleEndian.Uint32(p[len(p)-4:]))
	if n < 1 || n > len(p)-4 {
		return ErrBinary
	}
	f := p[len(p)-4-n : len(p)-4]
	raw := p[: len(p)-4-n : len(p)-4-n]
	v := f[0]
	if v != binaryV1 && v != binaryV2 {
		return fmt.Errorf("%w: version %d", ErrBinary, v)
	}
	d := NewFieldReader(f[1:])
	var out Record
	out.Raw = raw
	out.EventName, out.EventSource, out.Username, out.AccessKeyID = d.String(), d.String(), d.String(), d.String()
	out.ReadOnly = Tri(d.Byte())
	count := d.Uvarint()
	if count > uint64(d.Len()) { // each resource takes 3 bytes at least
		return ErrBinary
	}
	if count > 0 {
		out.Resources = make([]Resource, count)
		for i := range out.Resources {
			out.Resources[i] = Resource{Type: d.String(), Name: d.String(), ARN: d.String()}
		}
	}
	if v == binaryV2 {
		out.Account, out.Region, out.EventID = d.String(), d.String(), d.String()
		if d.Byte() == 1 {
			sec, nsec := d.Varint(), d.Uvarint()
			if nsec >= 1e9 {
				d.Fail()
			}
			out.Time = time.Unix(sec, int64(nsec)).UTC()
		}
		out.Category = Category(d.Byte())
	} else {
		out.Account, out.Region, out.EventID, out.Time, out.Category = r.Account, r.Region, r.EventID, r.Time, r.Category
	}
	if d.Bad() || d.Len() != 0 {
		return ErrBinary
	}
	*r = out
	return nil
}

// SplitBinary returns the JSON and the eventName of p, written by
// AppendBinary, without decoding its other fields: the lean read of whole
// feeds (RawFeed), which needs nothing else. raw and name alias p (raw
// capped, so appending to it copies). Damaged bytes, as far as these two
// reach, give an error wrapping ErrBinary, never a panic; the fields after
// eventName are not checked (DecodeBinary does).
func SplitBinary(p []byte) (raw, name []byte, err error) {
	if len(p) < 4 {
		return nil, nil, ErrBinary
	}
	n := int(binary.LittleEndian.Uint32(p[len(p)-4:]))
	if n < 1 || n > len(p)-4 {
		return nil, nil, ErrBinary
	}
	f := p[len(p)-4-n : len(p)-4]
	raw = p[: len(p)-4-n : len(p)-4-n]
	if v := f[0]; v != binaryV1 && v != binaryV2 {
		return nil, nil, fmt.Errorf("%w: version %d", ErrBinary, v)
	}
	l, k := binary.Uvarint(f[1:])
	if k <= 0 || l > uint64(len(f)-1-k) {
		return nil, nil, ErrBinary
	}
	return raw, f[1+k : 1+k+int(l) : 1+k+int(l)], nil
}
