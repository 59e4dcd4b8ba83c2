package main

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/dict"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// The row-per-block layout measured here (issue 15, session 28). A block
// holds the records of one (account, region, category, hour), newest first
// (time DESC, event ID DESC), and its decompressed content is
//
//	uvarint n
//	per record: flags byte (flagID: the event ID follows, else it is the
//	    JSON's; flagTime: the time follows, else it is the JSON's), then
//	    uvarint len + ID when flagID, varint (tmax - time) when flagTime
//	per record: uvarint len + audit.AppendBinary (version 1: raw JSON and
//	    the fields LookupEvents returns, as the store's frames hold)
//
// compressed with zstd and the store's dictionary. The ID and time are
// taken from the JSON only where a reader finds there exactly what the
// record carries (checked when the block is written), so decoding is exact
// by construction; Options.IDColumn keeps every ID and time in the block
// instead (what the JSON duplicate costs).
const (
	flagID   = 1
	flagTime = 2
)

// Options choose the layout's knobs.
type Options struct {
	// BlockBytes closes a block once its content passes it.
	BlockBytes int
	// BitsPerValue sizes a block's filter of its values but event IDs:
	// bits per distinct token; IDBits its filter of event IDs.
	BitsPerValue, IDBits float64
	// Level is the zstd level.
	Level zstd.EncoderLevel
	// GroupHours is the hours a block may span (1: an hour, as the
	// store's blocks).
	GroupHours int
	// IDColumn stores every ID and time in the block even when the JSON
	// holds them.
	IDColumn bool
	// SideFile keeps the blocks' bytes in a file beside the DuckDB file
	// (FILE.data), the rows holding their place, instead of a BLOB.
	SideFile bool
}

// partKey is what a lookup reads: one account's region and category.
type partKey struct {
	account, region string
	category        audit.Category
}

// blockMeta is a block's row without its data: what a lookup selects
// blocks by.
type blockMeta struct {
	id         int64
	key        partKey
	hour       int64
	tmin, tmax int64
	n          int
	roTrue     int
	roFalse    int
	off, len   sql.NullInt64 // the block's place in the side file
	filter     sealed.Bloom  // the values but event IDs
	idFilter   sealed.Bloom  // the event IDs
}

// jsonID and jsonTime read the record's top-level eventID and eventTime
// the quick way: the first occurrence of the member's name. Used only
// where the writer found them equal to the record's own (so a record
// whose JSON has them elsewhere keeps them in the block).
func jsonID(raw []byte) (string, bool) {
	return jsonString(raw, `"eventID":"`)
}

func jsonTime(raw []byte) (int64, bool) {
	s, ok := jsonString(raw, `"eventTime":"`)
	if !ok {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

func jsonString(raw []byte, member string) (string, bool) {
	i := bytes.Index(raw, []byte(member))
	if i < 0 {
		return "", false
	}
	rest := raw[i+len(member):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// newer orders records newest first, as the lookups do (one account).
func newer(a, b *audit.Record) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return strings.Compare(b.EventID, a.EventID)
}

// encodeBlock returns the content of a block of recs (sorted here newest
// first) and its metadata.
func encodeBlock(recs []*audit.Record, opts Options) (content []byte, m blockMeta, keptIDs, keptTimes int) {
	slices.SortFunc(recs, func(a, b *audit.Record) int { return newer(a, b) })
	m = blockMeta{
		key:  partKey{recs[0].Account, recs[0].Region, recs[0].Category},
		tmax: recs[0].Time.Unix(), tmin: recs[len(recs)-1].Time.Unix(), n: len(recs),
	}
	m.hour = floorDiv(m.tmax, 3600)
	content = binary.AppendUvarint(content, uint64(len(recs)))
	seen := map[uint64]struct{}{}
	var toks []uint64
	for _, r := range recs {
		switch r.ReadOnly {
		case audit.True:
			m.roTrue++
		case audit.False:
			m.roFalse++
		}
		toks = sealed.ValueTokens(toks[:0], r)
		for _, t := range toks {
			seen[t] = struct{}{}
		}
		var flags byte
		if id, ok := jsonID(r.Raw); opts.IDColumn || !ok || id != r.EventID {
			flags |= flagID
		}
		if t, ok := jsonTime(r.Raw); opts.IDColumn || !ok || t != r.Time.Unix() || r.Time.Nanosecond() != 0 {
			flags |= flagTime
		}
		content = append(content, flags)
		if flags&flagID != 0 {
			keptIDs++
		}
		if flags&flagTime != 0 {
			keptTimes++
		}
		if flags&flagID != 0 {
			content = binary.AppendUvarint(content, uint64(len(r.EventID)))
			content = append(content, r.EventID...)
		}
		if flags&flagTime != 0 {
			content = binary.AppendVarint(content, m.tmax-r.Time.Unix())
		}
	}
	var frame []byte
	for _, r := range recs {
		v1 := audit.Record{Raw: r.Raw, EventName: r.EventName, EventSource: r.EventSource, Username: r.Username,
			AccessKeyID: r.AccessKeyID, ReadOnly: r.ReadOnly, Resources: r.Resources}
		frame = audit.AppendBinary(frame[:0], &v1)
		content = binary.AppendUvarint(content, uint64(len(frame)))
		content = append(content, frame...)
	}
	m.filter = sealed.NewBloom(len(seen), opts.BitsPerValue)
	for t := range seen {
		m.filter.Add(t)
	}
	m.idFilter = sealed.NewBloom(len(recs), opts.IDBits)
	for _, r := range recs {
		m.idFilter.Add(sealed.Token(audit.AttrEventID, r.EventID))
	}
	return content, m, keptIDs, keptTimes
}

// decodeBlock returns the records of a block's content, newest first.
func decodeBlock(content []byte, m *blockMeta) ([]audit.Record, error) {
	rd := audit.NewFieldReader(content)
	n := int(rd.Uvarint())
	if rd.Bad() || n != m.n {
		return nil, fmt.Errorf("blocklayout: block %d: %d records, want %d", m.id, n, m.n)
	}
	recs := make([]audit.Record, n)
	flags := make([]byte, n)
	for i := range recs {
		flags[i] = rd.Byte()
		if flags[i]&flagID != 0 {
			recs[i].EventID = string(rd.Bytes())
		}
		if flags[i]&flagTime != 0 {
			recs[i].Time = time.Unix(m.tmax-rd.Varint(), 0).UTC()
		}
	}
	for i := range recs {
		r := &recs[i]
		frame := rd.Bytes()
		if rd.Bad() {
			break
		}
		id, t := r.EventID, r.Time
		if err := audit.DecodeBinary(frame, r); err != nil {
			return nil, fmt.Errorf("blocklayout: block %d record %d: %w", m.id, i, err)
		}
		r.EventID, r.Time = id, t
		if flags[i]&flagID == 0 {
			id, ok := jsonID(r.Raw)
			if !ok {
				return nil, fmt.Errorf("blocklayout: block %d record %d: no eventID", m.id, i)
			}
			r.EventID = id
		}
		if flags[i]&flagTime == 0 {
			s, ok := jsonTime(r.Raw)
			if !ok {
				return nil, fmt.Errorf("blocklayout: block %d record %d: no eventTime", m.id, i)
			}
			r.Time = time.Unix(s, 0).UTC()
		}
		r.Account, r.Region, r.Category = m.key.account, m.key.region, m.key.category
	}
	if rd.Bad() || rd.Len() != 0 {
		return nil, fmt.Errorf("blocklayout: block %d: damaged content", m.id)
	}
	return recs, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// newEncoder and newDecoder use the store's dictionary.
func newEncoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderDict(dict.ZstdV1), zstd.WithEncoderConcurrency(1))
}

func newDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderDicts(dict.ZstdV1), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
}
