package duckdb

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cairn-audit/cairn/internal/audit"
)

// A stored record (the record column) is one zstd frame holding the
// original JSON followed by the fields a lookup returns beside it, so that
// a lookup fetches one column per row instead of nine: at 1M records a
// 100-hour lookup took 2.6-5.4 ms with the nine and 1.1 ms with one (see
// docs/store.md). The fields repeat values of the JSON, so zstd stores
// them in a few bytes as matches into it.
//
// The frame's content is raw || fields || uint32 LE len(fields), where
// fields is
//
//	version byte (1)
//	eventName, eventSource, username, accessKeyId: uvarint length + bytes
//	readOnly byte (audit.Tri)
//	resource count uvarint, then per resource type, name, ARN as strings
//
// The filter columns (event_name, username, ...) keep the same values for
// DuckDB to filter on; they are never read back.

const fieldsVersion = 1

// appendFields appends r's fields to dst in the frame's encoding.
func appendFields(dst []byte, r *audit.Record) []byte {
	start := len(dst)
	dst = append(dst, fieldsVersion)
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
	return binary.LittleEndian.AppendUint32(dst, uint32(len(dst)-start))
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

var errBadFields = errors.New("malformed stored fields")

// splitFields parses content (raw || fields || length) into r: r.Raw and
// the fields. r.Raw aliases content.
func splitFields(content []byte, r *audit.Record) error {
	if len(content) < 4 {
		return errBadFields
	}
	n := int(binary.LittleEndian.Uint32(content[len(content)-4:]))
	if n < 1 || n > len(content)-4 {
		return errBadFields
	}
	f := content[len(content)-4-n : len(content)-4]
	r.Raw = content[: len(content)-4-n : len(content)-4-n]
	if f[0] != fieldsVersion {
		return fmt.Errorf("stored fields version %d: %w", f[0], errBadFields)
	}
	p := fieldReader{b: f[1:]}
	r.EventName, r.EventSource, r.Username, r.AccessKeyID = p.str(), p.str(), p.str(), p.str()
	r.ReadOnly = audit.Tri(p.byte())
	count := p.uvarint()
	if count > uint64(len(p.b)) { // each resource takes 3 bytes at least
		return errBadFields
	}
	r.Resources = nil
	if count > 0 {
		r.Resources = make([]audit.Resource, count)
		for i := range r.Resources {
			r.Resources[i] = audit.Resource{Type: p.str(), Name: p.str(), ARN: p.str()}
		}
	}
	if p.bad || len(p.b) != 0 {
		return errBadFields
	}
	return nil
}

// fieldReader reads the encoding of appendFields; a read past the end
// sets bad and returns zero values.
type fieldReader struct {
	b   []byte
	bad bool
}

func (p *fieldReader) uvarint() uint64 {
	v, n := binary.Uvarint(p.b)
	if n <= 0 {
		p.bad = true
		p.b = nil
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *fieldReader) byte() byte {
	if len(p.b) == 0 {
		p.bad = true
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *fieldReader) str() string {
	n := p.uvarint()
	if n > uint64(len(p.b)) {
		p.bad = true
		p.b = nil
		return ""
	}
	s := string(p.b[:n])
	p.b = p.b[n:]
	return s
}
