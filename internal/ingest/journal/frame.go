package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// A segment file starts with magic, then holds frames back to back:
//
//	length  uint32 little-endian: the payload's length
//	crc     uint32 little-endian: CRC-32C of the length's 4 bytes and the payload
//	payload length bytes: a call's records, compressed (payloadV3), or one record (earlier versions)
//
// The CRC covers the length, so a torn or zeroed tail (length 0 and CRC 0)
// is detected like a damaged payload.
const (
	magic     = "cairnj1\n"
	headerLen = 8
	// MaxFrame bounds a frame's payload: a length above it is damage, not
	// a record (the store takes records of at most 1 MiB; a frame holds one
	// with its extracted fields).
	MaxFrame = 8 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrTorn reports a frame cut short or failing its CRC: the end of what
// was durably written (a crash mid-write) or damage. Nothing after it in
// the segment is read.
var ErrTorn = errors.New("journal: torn or damaged frame")

// appendFrame appends payload as one frame to b.
func appendFrame(b, payload []byte) []byte {
	var h [headerLen]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(len(payload)))
	crc := crc32.Update(crc32.Checksum(h[:4], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:], crc)
	b = append(b, h[:]...)
	return append(b, payload...)
}

// Reader reads the frames of one segment.
type Reader struct {
	r   io.Reader
	off int64 // offset of the next frame
	buf []byte
}

// NewReader returns a Reader of the frames in r, which starts after the
// segment's magic.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Offset returns the offset (after the magic) of the frame Next reads next:
// after an error, where the valid frames end.
func (r *Reader) Offset() int64 { return r.off }

// Next returns the next frame's payload, valid until the following call.
// It returns io.EOF at a clean end (after a whole frame, or at the start)
// and ErrTorn for a frame cut short, too long or failing its CRC.
func (r *Reader) Next() ([]byte, error) {
	var h [headerLen]byte
	n, err := io.ReadFull(r.r, h[:])
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: %d-byte header at offset %d", ErrTorn, n, r.off)
		}
		return nil, err
	}
	size := binary.LittleEndian.Uint32(h[:4])
	if size > MaxFrame {
		return nil, fmt.Errorf("%w: length %d at offset %d", ErrTorn, size, r.off)
	}
	if cap(r.buf) < int(size) {
		r.buf = make([]byte, size)
	}
	p := r.buf[:size]
	if _, err := io.ReadFull(r.r, p); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("%w: payload cut short at offset %d", ErrTorn, r.off)
		}
		return nil, err
	}
	crc := crc32.Update(crc32.Checksum(h[:4], castagnoli), castagnoli, p)
	if crc != binary.LittleEndian.Uint32(h[4:]) {
		return nil, fmt.Errorf("%w: CRC mismatch at offset %d", ErrTorn, r.off)
	}
	r.off += headerLen + int64(size)
	return p, nil
}

// The first byte of a frame's payload says how the record in it is
// encoded: payloadV2, audit's binary encoding (audit.AppendBinary) of every
// field; payloadV1, the journal's own encoding before issue 12, still read
// so that a journal left by a crash of an earlier cairn is replayed
// (decodeRecordV1). Nothing writes payloadV1 any more: its reader can go
// once no journal of a release before issue 12 can be left.
//
// payloadV3 holds several records: one S2 block (no dictionary) of, for
// each, its length (uvarint) and its payloadV2 encoding without the
// version byte. Append writes a call's records in frames of this kind, a
// frame closed once its records pass chunkBytes, so that S2 sees many
// records at once: the journal of an import through a server was 1.5 GB
// of records' JSON and fields at 1M records, as many bytes as the store
// wrote, and its callers waited for their fsyncs (docs/store.md,
// "Imports through a server", sessions 18 and 22). payloadV2 is still
// read: a journal left by a cairn from before session 22 is replayed.
const (
	payloadV1 = 1
	payloadV2 = 2
	payloadV3 = 3
)

// chunkBytes is the plain size past which Append closes a frame of
// records: S2 compresses CloudTrail records' JSON well across records.
// A record joins a frame only if the frame cannot then compress past
// MaxFrame, however S2 fares (chunk.add); one that cannot be bound so
// even alone gets a payloadV2 frame of its own, as before session 22.
const chunkBytes = 1 << 20

// encodeRecord returns the payload of a frame holding rec alone: the
// record's bytes as recorded and every field of audit.Record, so that the
// record is rebuilt exactly as it was committed (not re-extracted).
func encodeRecord(b []byte, rec *audit.Record) []byte {
	var c chunk
	if !c.add(rec) {
		return append(append(b, payloadV2), c.enc...)
	}
	return c.payload(b)
}

// chunk gathers the records of one payloadV3 frame.
type chunk struct {
	plain []byte // each record's length and encoding
	enc   []byte // scratch: the last record's encoding (add)
}

// add encodes rec into c.enc and adds it, unless the frame's payload
// could then be larger than MaxFrame (S2's bound for incompressible
// bytes is above their size): then it returns false and adds nothing.
func (c *chunk) add(rec *audit.Record) bool {
	c.enc = audit.AppendBinary(c.enc[:0], rec)
	if 1+s2.MaxEncodedLen(len(c.plain)+binary.MaxVarintLen64+len(c.enc)) > MaxFrame {
		return false
	}
	c.plain = binary.AppendUvarint(c.plain, uint64(len(c.enc)))
	c.plain = append(c.plain, c.enc...)
	return true
}

// payload appends the frame payload of the records added to b and
// empties the chunk.
func (c *chunk) payload(b []byte) []byte {
	n := s2.MaxEncodedLen(len(c.plain))
	start := len(b)
	if cap(b)-start < 1+n {
		b = append(make([]byte, 0, start+1+n), b...)
	}
	b = append(b, payloadV3)
	// Encode writes from the start of the slice it is given, which has
	// the capacity it needs: the block lands right after the tag.
	block := s2.Encode(b[start+1:start+1+n], c.plain)
	c.plain = c.plain[:0]
	return b[:start+1+len(block)]
}

// decodeFrame appends the records of a frame's payload to out; they do
// not share memory with p.
func decodeFrame(p []byte, out []audit.Record) ([]audit.Record, error) {
	if len(p) == 0 || p[0] != payloadV3 {
		rec, err := decodeRecord(p)
		if err != nil {
			return out, err
		}
		return append(out, rec), nil
	}
	n, err := s2.DecodedLen(p[1:])
	if err != nil || n > chunkBytes+MaxFrame+binary.MaxVarintLen64 {
		return out, fmt.Errorf("%w: compressed records of invalid length", errRecord)
	}
	b, err := s2.Decode(make([]byte, n), p[1:])
	if err != nil {
		return out, fmt.Errorf("%w: %w", errRecord, err)
	}
	for len(b) > 0 {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return out, fmt.Errorf("%w: compressed records cut short", errRecord)
		}
		var rec audit.Record
		if err := audit.DecodeBinary(b[k:k+int(l)], &rec); err != nil {
			return out, fmt.Errorf("%w: %w", errRecord, err)
		}
		audit.AddDerivedResources(&rec)
		out = append(out, rec)
		b = b[k+int(l):]
	}
	return out, nil
}

// errRecord reports a frame whose payload is not an encoded record (its
// CRC matched: a bug or a foreign file, not a torn write).
var errRecord = errors.New("journal: frame is not a record")

// decodeRecord rebuilds the record of a payload of one record: one
// encodeRecord wrote, or an earlier cairn's. The record does not share
// memory with p.
func decodeRecord(p []byte) (audit.Record, error) {
	if len(p) == 0 {
		return audit.Record{}, errRecord
	}
	var rec audit.Record
	switch p[0] {
	case payloadV3:
		recs, err := decodeFrame(p, nil)
		if err != nil {
			return audit.Record{}, err
		}
		if len(recs) != 1 {
			return audit.Record{}, fmt.Errorf("%w: %d records in one", errRecord, len(recs))
		}
		return recs[0], nil
	case payloadV1:
		var err error
		if rec, err = decodeRecordV1(p[1:]); err != nil {
			return rec, err
		}
	case payloadV2:
		if err := audit.DecodeBinary(bytes.Clone(p[1:]), &rec); err != nil {
			return audit.Record{}, fmt.Errorf("%w: %w", errRecord, err)
		}
	default:
		return audit.Record{}, fmt.Errorf("%w: version %d", errRecord, p[0])
	}
	// A record an earlier cairn journaled lacks the resources LookupEvents
	// now derives (a no-op for this version's records).
	audit.AddDerivedResources(&rec)
	return rec, nil
}

// decodeRecordV1 reads a record of the journal's first encoding (payload
// version 1): raw, account, region, eventID, eventName, eventSource,
// username, accessKeyId as uvarint length + bytes; time (0, or 1 with
// varint seconds and uvarint nanoseconds); readOnly and category bytes;
// resource count, then type, name and ARN of each.
func decodeRecordV1(p []byte) (audit.Record, error) {
	d := audit.NewFieldReader(p)
	var rec audit.Record
	rec.Raw = append([]byte(nil), d.Bytes()...)
	for _, s := range []*string{&rec.Account, &rec.Region, &rec.EventID, &rec.EventName, &rec.EventSource, &rec.Username, &rec.AccessKeyID} {
		*s = d.String()
	}
	if d.Byte() == 1 {
		sec := d.Varint()
		nsec := d.Uvarint()
		if nsec >= 1e9 {
			d.Fail()
		}
		rec.Time = time.Unix(sec, int64(nsec)).UTC()
	}
	rec.ReadOnly = audit.Tri(d.Byte())
	rec.Category = audit.Category(d.Byte())
	n := d.Uvarint()
	if n > uint64(d.Len()) { // each resource takes at least 3 bytes
		d.Fail()
	}
	for i := uint64(0); i < n && !d.Bad(); i++ {
		rec.Resources = append(rec.Resources, audit.Resource{Type: d.String(), Name: d.String(), ARN: d.String()})
	}
	if d.Bad() || d.Len() != 0 {
		return audit.Record{}, errRecord
	}
	return rec, nil
}
