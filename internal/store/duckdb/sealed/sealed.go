// Package sealed is Event History's sealed tier: records kept as one row
// per block of records instead of one row per record (issue 15; docs/store.md
// "The sealed tier"). The store (package duckdb) moves records whose day is
// complete into it when it compacts; the tier answers the lookups, the
// append-order feed, retention and the duplicate check for them.
//
// A block holds the records of one account, region and category within one
// UTC day, newest first (time, then event ID, descending), up to BlockBytes
// of content. Its bytes live in segment files beside the DuckDB file
// (Segments), compressed with zstd at SpeedBetterCompression (Level) and
// the store's dictionary (an import's with S2 and the dictionary's last
// 64 KiB, NewImportEncoder, until the store encodes them again at Level); its Meta (the bounds, counts and filters a lookup
// selects blocks by, and the bytes' Loc) is a row of the store's DuckDB
// file, written in the transaction that removes the records' rows, and held
// in memory by a Dir.
//
// A block's content (before zstd):
//
//	uvarint n
//	per record: flags byte (flagID: the event ID follows, else it is the
//	    JSON's; flagTime: the time follows, else it is the JSON's), then
//	    uvarint len + ID when flagID, uvarint (TMax - time) when flagTime,
//	    varint (the previous record's seq - seq), varint (the previous
//	    record's received - received): the first's previous are SeqMax
//	    and RecvMax
//	per record: uvarint len + audit.AppendBinary (version 1: the raw JSON
//	    and the fields LookupEvents returns, as the store's frames hold)
//
// The ID and time are taken from the JSON only where a reader finds there
// exactly what the record carries (checked when the block is written), so
// decoding is exact by construction.
package sealed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/dict"
)

// The layout's settings, from bench/blocklayout's measurements (session 28:
// 0.98x the .json.gz at 1M, 0.97x at 10M, lookups within p99 20 ms).
const (
	// BlockBytes closes a block once its content passes it.
	BlockBytes = 128 << 10
	// BitsPerValue sizes a block's filter of its attribute values (about
	// 1e-4 false positives); BitsPerID its filter of event IDs (about 1e-5:
	// an EventId lookup tests every block of its account).
	BitsPerValue = 20
	BitsPerID    = 24
	// Level is the blocks' zstd level: Compact's. SpeedDefault or hour
	// blocks measured 1.05–1.09x.
	Level = zstd.SpeedBetterCompression
	// MaxContent bounds a block's decoded content: BlockBytes plus one
	// record of the largest size, with room for its fields.
	MaxContent = BlockBytes + 2*audit.MaxRecordSize
)

const (
	flagID   = 1
	flagTime = 2
)

// Part is what a lookup reads: one account's region and category.
type Part struct {
	Account, Region string
	Category        audit.Category
}

// Entry is a stored record with its place in the append order (Seq) and
// when the store received it (Unix seconds).
type Entry struct {
	Record   audit.Record
	Seq      int64
	Received int64
}

// Loc is where a block's bytes are: a segment file, the offset and length
// in it, and the CRC-32C (Castagnoli) of the bytes.
type Loc struct {
	Seg uint32
	Off int64
	Len uint32
	CRC uint32
}

// End is the offset just past the block.
func (l Loc) End() int64 { return l.Off + int64(l.Len) }

// Meta is a block's row: what the lookups, the feed, retention and the
// duplicate check select blocks by, without reading them.
type Meta struct {
	// ID is the block's number, given by the store; unique.
	ID   int64
	Part Part
	// Day is the UTC day of every record's time (Unix seconds / 86400).
	Day int64
	// TMin and TMax bound the records' times (Unix seconds).
	TMin, TMax int64
	// N is the records; ROTrue and ROFalse those with readOnly true, false.
	N, ROTrue, ROFalse int
	// SeqMin and SeqMax bound the records' sequence numbers; RecvMin and
	// RecvMax when they were received.
	SeqMin, SeqMax   int64
	RecvMin, RecvMax int64
	// Filter holds the Tokens of the records' attribute values but their
	// event IDs; IDFilter the event IDs' (Token(audit.AttrEventID, id)).
	Filter, IDFilter Bloom
	Loc              Loc
}

// Token is the token of an attribute's value in a block's filters: xxhash
// of key, 0, value (the store's bucket index's token).
func Token(k audit.AttributeKey, v string) uint64 {
	var buf [192]byte
	if n := len(k) + 1 + len(v); n <= len(buf) {
		copy(buf[copy(buf[:], k)+1:], v)
		return xxhash.Sum64(buf[:n])
	}
	var d xxhash.Digest
	d.Reset()
	d.WriteString(string(k))
	d.Write([]byte{0})
	d.WriteString(v)
	return d.Sum64()
}

// ValueTokens appends to dst the tokens of r's attribute values but its
// event ID: what a block's Filter holds.
func ValueTokens(dst []uint64, r *audit.Record) []uint64 {
	add := func(k audit.AttributeKey, v string) {
		if v != "" {
			dst = append(dst, Token(k, v))
		}
	}
	add(audit.AttrEventName, r.EventName)
	add(audit.AttrEventSource, r.EventSource)
	add(audit.AttrUsername, r.Username)
	add(audit.AttrAccessKeyID, r.AccessKeyID)
	for _, res := range r.Resources {
		add(audit.AttrResourceType, res.Type)
		add(audit.AttrResourceName, res.Name)
		add(audit.AttrResourceName, res.ARN)
	}
	return dst
}

// Bloom is a Bloom filter of tokens: a whole number of bytes of bits and K
// probes, each a bit of its own hash of the token (splitmix64 of the token
// plus the probe's number, reduced to the filter's size by a multiply).
// Double hashing (h1 + i*h2 mod m) gave 5-10x the false positives designed
// for in the small filters of a block's IDs (session 29: 5e-5 to 1.1e-4
// against 1e-5): its probes fall into few cycles when h2 mod m is small.
// The zero Bloom holds nothing.
type Bloom struct {
	K    int
	Bits []byte
}

// NewBloom returns an empty filter for distinct tokens at bitsPer bits each.
func NewBloom(distinct int, bitsPer float64) Bloom {
	m := int(math.Ceil(float64(max(distinct, 1)) * bitsPer))
	m = (m + 7) / 8 * 8
	k := max(1, int(math.Round(bitsPer*math.Ln2)))
	return Bloom{K: k, Bits: make([]byte, m/8)}
}

func (b *Bloom) probes(t uint64, f func(bit uint64) bool) bool {
	m := uint64(len(b.Bits)) * 8
	for i := 0; i < b.K; i++ {
		x := t + uint64(i+1)*0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		x ^= x >> 31
		if hi, _ := bits.Mul64(x, m); !f(hi) {
			return false
		}
	}
	return true
}

// Add adds t.
func (b *Bloom) Add(t uint64) {
	b.probes(t, func(bit uint64) bool { b.Bits[bit/8] |= 1 << (bit % 8); return true })
}

// Has reports whether t may have been added (false: it was not).
func (b *Bloom) Has(t uint64) bool {
	if len(b.Bits) == 0 {
		return false
	}
	return b.probes(t, func(bit uint64) bool { return b.Bits[bit/8]&(1<<(bit%8)) != 0 })
}

// Marshal returns K, then the bits.
func (b Bloom) Marshal() []byte { return append([]byte{byte(b.K)}, b.Bits...) }

// UnmarshalBloom reads what Marshal wrote; the filter shares p's memory.
func UnmarshalBloom(p []byte) (Bloom, error) {
	if len(p) < 2 || p[0] == 0 || p[0] > 64 {
		return Bloom{}, errors.New("sealed: damaged filter")
	}
	return Bloom{K: int(p[0]), Bits: p[1:]}, nil
}

// Newer orders entries newest first, as the lookups do: time, then event ID,
// then account, descending (audit.Newer).
func Newer(a, b *Entry) int { return audit.Newer(&a.Record, &b.Record) }

// Day returns the UTC day of a Unix time in seconds.
func Day(unix int64) int64 { return floorDiv(unix, 86400) }

// Split sorts es by Part, then Day, then newest first, and cuts it into the
// blocks the tier keeps: one Part and Day each, closed once the records'
// frames pass BlockBytes (a record of any size fits in a block of its own).
// The blocks share es's memory.
func Split(es []Entry) [][]Entry {
	// The order is sorted as indexes and then applied to es, each entry
	// moved once: sorting the entries themselves (about 200 bytes each)
	// moved them at every step of the sort (4% of an import's CPU).
	perm := make([]int32, len(es))
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(i, j int32) int {
		ra, rb := &es[i].Record, &es[j].Record
		if c := strings.Compare(ra.Account, rb.Account); c != 0 {
			return c
		}
		if c := strings.Compare(ra.Region, rb.Region); c != 0 {
			return c
		}
		if c := int(ra.Category) - int(rb.Category); c != 0 {
			return c
		}
		if c := Day(rb.Time.Unix()) - Day(ra.Time.Unix()); c != 0 {
			return int(max(-1, min(1, c)))
		}
		return Newer(&es[i], &es[j])
	})
	permute(es, perm)
	var out [][]Entry
	start, size := 0, 0
	for i := range es {
		r := &es[i].Record
		if i > start {
			p := &es[start].Record
			if size >= BlockBytes || r.Account != p.Account || r.Region != p.Region || r.Category != p.Category ||
				Day(r.Time.Unix()) != Day(p.Time.Unix()) {
				out = append(out, es[start:i])
				start, size = i, 0
			}
		}
		size += frameSize(r)
	}
	if start < len(es) {
		out = append(out, es[start:])
	}
	return out
}

// permute puts es[perm[i]] at i, following each cycle of perm (which it
// spends: marked -1 as it goes).
func permute(es []Entry, perm []int32) {
	for i := range perm {
		if perm[i] < 0 || int(perm[i]) == i {
			continue
		}
		tmp := es[i]
		j := i
		for {
			k := int(perm[j])
			perm[j] = -1
			if k == i {
				es[j] = tmp
				break
			}
			es[j] = es[k]
			j = k
		}
	}
}

// frameSize is about the bytes a record takes in a block's content.
func frameSize(r *audit.Record) int {
	n := len(r.Raw) + len(r.EventName) + len(r.EventSource) + len(r.Username) + len(r.AccessKeyID) + 16
	for _, res := range r.Resources {
		n += len(res.Type) + len(res.Name) + len(res.ARN) + 3
	}
	return n
}

// Encoder compresses blocks: zstd frames at a level (NewEncoderAt) or S2
// blocks (NewImportEncoder). Not safe for concurrent use.
type Encoder struct {
	zenc *zstd.Encoder
	// s2d is set in an import's encoder (NewImportEncoder): blocks are
	// blockS2 and an S2 block made in s2buf.
	s2d     *s2.Dict
	s2buf   []byte
	content []byte
	frame   []byte
	toks    []uint64
	idToks  []uint64
	seen    map[uint64]struct{}
}

// NewEncoder returns an encoder at Level with the store's dictionary.
func NewEncoder() (*Encoder, error) { return NewEncoderAt(Level) }

// NewEncoderAt returns an encoder at level with the store's dictionary.
func NewEncoderAt(level zstd.EncoderLevel) (*Encoder, error) {
	z, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderDict(dict.ZstdV1),
		zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, fmt.Errorf("sealed: zstd encoder: %w", err)
	}
	return &Encoder{zenc: z, seen: map[uint64]struct{}{}}, nil
}

// A block's bytes come in two kinds, told apart by their first byte: a
// zstd frame (magic 28 B5 2F FD) with the store's dictionary, at whatever
// level, or blockS2 followed by one S2 block made with the S2 dictionary
// (S2Dict). No zstd frame starts with blockS2 (its frames start with 0x28,
// its skippable frames with 0x50–0x5F), so a Decoder reads both and the
// segments hold any mix: the raw records' frames of the store (package
// duckdb, codec.go) are told apart the same way.
const blockS2 = 0x01

// S2Dict returns the store's S2 dictionary: the last 64 KiB of the zstd
// dictionary's content (dict.S2V1) with repeat offset 0. blockS2 blocks
// and the raw records' S2 frames (package duckdb, codec.go) both use it.
// Derived from the never-changing zstd dictionary, so it never changes
// either.
func S2Dict() (*s2.Dict, error) {
	d := s2.NewDict(append([]byte{0}, dict.S2V1()...))
	if d == nil {
		return nil, errors.New("sealed: S2 dictionary refused")
	}
	return d, nil
}

// NewImportEncoder returns the encoder an import seals with: its blocks
// are S2 blocks with the S2 dictionary (blockS2), which an import makes at
// about half of zstd SpeedFastest's CPU and 1.47 times its bytes (the 1M
// year-spread set's 12,991 blocks: 1.3 against 2.4–2.6 CPU-s, 194 against
// 132 MB; docs/store.md "Sealing with S2 at import"). The store encodes
// them again at Level later (package duckdb: RecompressSealed, run by a
// server, and `cairn compact`), as the issue's "compression chosen for
// speed at ingest and recompressed later" has it; a Decoder reads both
// kinds meanwhile.
func NewImportEncoder() (*Encoder, error) {
	d, err := S2Dict()
	if err != nil {
		return nil, err
	}
	return &Encoder{s2d: d, seen: map[uint64]struct{}{}}, nil
}

// Encode returns the compressed block of es and its Meta (without ID and
// Loc, which the store gives). es must be non-empty, share one Part and one
// Day and fit MaxContent (Split cuts records into such blocks); Encode sorts them newest first in place. The block does not
// share memory with es.
func (e *Encoder) Encode(es []Entry) ([]byte, Meta, error) {
	if len(es) == 0 {
		return nil, Meta{}, errors.New("sealed: empty block")
	}
	slices.SortFunc(es, func(a, b Entry) int { return Newer(&a, &b) })
	first := &es[0].Record
	m := Meta{
		Part: Part{first.Account, first.Region, first.Category},
		TMax: first.Time.Unix(), TMin: es[len(es)-1].Record.Time.Unix(), N: len(es),
		SeqMin: math.MaxInt64, SeqMax: math.MinInt64, RecvMin: math.MaxInt64, RecvMax: math.MinInt64,
	}
	m.Day = Day(m.TMax)
	clear(e.seen)
	for i := range es {
		x := &es[i]
		r := &x.Record
		if (Part{r.Account, r.Region, r.Category}) != m.Part || Day(r.Time.Unix()) != m.Day {
			return nil, Meta{}, fmt.Errorf("sealed: record %s is not of the block's account, region, category and day", r.EventID)
		}
		if x.Seq <= 0 || x.Received < 0 {
			return nil, Meta{}, fmt.Errorf("sealed: record %s: sequence number %d, received %d", r.EventID, x.Seq, x.Received)
		}
		m.SeqMin, m.SeqMax = min(m.SeqMin, x.Seq), max(m.SeqMax, x.Seq)
		m.RecvMin, m.RecvMax = min(m.RecvMin, x.Received), max(m.RecvMax, x.Received)
		switch r.ReadOnly {
		case audit.True:
			m.ROTrue++
		case audit.False:
			m.ROFalse++
		}
	}
	c := binary.AppendUvarint(e.content[:0], uint64(len(es)))
	prevSeq, prevRecv := m.SeqMax, m.RecvMax
	e.idToks = e.idToks[:0]
	for i := range es {
		x := &es[i]
		r := &x.Record
		// What the reader finds (jsonString, jsonTime), read without
		// copying it: the JSON's ID compared as bytes. This reads the
		// record from its start, and the tokens of its values (which
		// are in it) follow while it is in the cache: the records come
		// from memory (an import's batch is 15 MB), and the tokens
		// reading them first cost a cache miss each (session 33).
		var flags byte
		if id, ok := jsonValue(r.Raw, memberID, anchorID); !ok || string(id) != r.EventID {
			flags |= flagID
		}
		if t, ok := jsonTime(r.Raw); !ok || t != r.Time.Unix() || r.Time.Nanosecond() != 0 {
			flags |= flagTime
		}
		e.toks = ValueTokens(e.toks[:0], r)
		for _, t := range e.toks {
			e.seen[t] = struct{}{}
		}
		e.idToks = append(e.idToks, Token(audit.AttrEventID, r.EventID))
		c = append(c, flags)
		if flags&flagID != 0 {
			c = binary.AppendUvarint(c, uint64(len(r.EventID)))
			c = append(c, r.EventID...)
		}
		if flags&flagTime != 0 {
			c = binary.AppendUvarint(c, uint64(m.TMax-r.Time.Unix()))
		}
		// Each as the change from the record before (SeqMax and RecvMax
		// before the first): an import's or a live day's sequence
		// numbers fall with time, and its received times repeat, so the
		// changes are small and alike (1.5 B a record less than offsets
		// from SeqMin, measured at 1M).
		c = binary.AppendVarint(c, prevSeq-x.Seq)
		c = binary.AppendVarint(c, prevRecv-x.Received)
		prevSeq, prevRecv = x.Seq, x.Received
	}
	for i := range es {
		r := &es[i].Record
		v1 := audit.Record{Raw: r.Raw, EventName: r.EventName, EventSource: r.EventSource, Username: r.Username,
			AccessKeyID: r.AccessKeyID, ReadOnly: r.ReadOnly, Resources: r.Resources}
		e.frame = audit.AppendBinary(e.frame[:0], &v1)
		c = binary.AppendUvarint(c, uint64(len(e.frame)))
		c = append(c, e.frame...)
	}
	e.content = c
	if len(c) > MaxContent {
		return nil, Meta{}, fmt.Errorf("sealed: block content %d bytes, over %d", len(c), MaxContent)
	}
	m.Filter = NewBloom(len(e.seen), BitsPerValue)
	for t := range e.seen {
		m.Filter.Add(t)
	}
	m.IDFilter = NewBloom(len(es), BitsPerID)
	for _, t := range e.idToks {
		m.IDFilter.Add(t)
	}
	if e.s2d != nil {
		// S2 writes into a destination of its largest size (more than
		// the content), so the block is made in s2buf, kept, and copied
		// out at its size (about an eighth of the content).
		if n := s2.MaxEncodedLen(len(c)); cap(e.s2buf) < n {
			e.s2buf = make([]byte, n)
		}
		blk := e.s2d.Encode(e.s2buf, c)
		out := make([]byte, 1+len(blk))
		out[0] = blockS2
		copy(out[1:], blk)
		return out, m, nil
	}
	// Room for the block as it compresses (about 9x): zstd sizes a nil
	// destination to the whole content, zeroed, for each block.
	return e.zenc.EncodeAll(c, make([]byte, 0, len(c)/4+64)), m, nil
}

// Decoder decodes blocks of both kinds (blockS2). Safe for concurrent use.
type Decoder struct {
	zdec *zstd.Decoder
	s2d  *s2.Dict
}

// NewDecoder returns a decoder with the store's dictionary.
func NewDecoder() (*Decoder, error) {
	z, err := zstd.NewReader(nil, zstd.WithDecoderDicts(dict.ZstdV1), zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(MaxContent))
	if err != nil {
		return nil, fmt.Errorf("sealed: zstd decoder: %w", err)
	}
	d, err := S2Dict()
	if err != nil {
		z.Close()
		return nil, err
	}
	return &Decoder{zdec: z, s2d: d}, nil
}

// Decode returns the entries of the block data whose Meta is m, newest
// first. The entries' Raw shares memory with one buffer of their own (not
// with data). Damaged data is an error, never a panic.
func (d *Decoder) Decode(data []byte, m *Meta) ([]Entry, error) {
	if len(data) > 0 && data[0] == blockS2 {
		blk := data[1:]
		n, k := binary.Uvarint(blk)
		if k <= 0 || n > MaxContent {
			return nil, fmt.Errorf("sealed: block %d: S2 block of invalid length", m.ID)
		}
		content, err := d.s2d.Decode(make([]byte, 0, n), blk)
		if err != nil {
			return nil, fmt.Errorf("sealed: block %d: %w", m.ID, err)
		}
		return decodeContent(content, m)
	}
	content, err := d.zdec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("sealed: block %d: %w", m.ID, err)
	}
	return decodeContent(content, m)
}

func decodeContent(content []byte, m *Meta) ([]Entry, error) {
	damaged := func(why string) error { return fmt.Errorf("sealed: block %d: damaged content: %s", m.ID, why) }
	rd := audit.NewFieldReader(content)
	n := rd.Uvarint()
	if rd.Bad() || n != uint64(m.N) || n == 0 || n > uint64(len(content)) {
		return nil, damaged(fmt.Sprintf("%d records, want %d", n, m.N))
	}
	es := make([]Entry, n)
	flags := make([]byte, n)
	prevSeq, prevRecv := m.SeqMax, m.RecvMax
	for i := range es {
		x := &es[i]
		flags[i] = rd.Byte()
		if flags[i]&^(flagID|flagTime) != 0 {
			return nil, damaged("flags")
		}
		if flags[i]&flagID != 0 {
			x.Record.EventID = rd.String()
		}
		if flags[i]&flagTime != 0 {
			d := rd.Uvarint()
			if d > uint64(m.TMax-m.TMin) {
				return nil, damaged("time")
			}
			x.Record.Time = time.Unix(m.TMax-int64(d), 0).UTC()
		}
		dseq, drecv := rd.Varint(), rd.Varint()
		if dseq < prevSeq-m.SeqMax || dseq > prevSeq-m.SeqMin || drecv < prevRecv-m.RecvMax || drecv > prevRecv-m.RecvMin {
			return nil, damaged("sequence number or received time")
		}
		x.Seq, x.Received = prevSeq-dseq, prevRecv-drecv
		prevSeq, prevRecv = x.Seq, x.Received
		if rd.Bad() {
			return nil, damaged("header")
		}
	}
	for i := range es {
		r := &es[i].Record
		frame := rd.Bytes()
		if rd.Bad() {
			return nil, damaged("frame")
		}
		id, t := r.EventID, r.Time
		if err := audit.DecodeBinary(frame, r); err != nil {
			return nil, fmt.Errorf("sealed: block %d record %d: %w", m.ID, i, err)
		}
		r.EventID, r.Time = id, t
		if flags[i]&flagID == 0 {
			if r.EventID, _ = jsonString(r.Raw, memberID, anchorID); r.EventID == "" {
				return nil, damaged("no eventID")
			}
		}
		if flags[i]&flagTime == 0 {
			s, ok := jsonTime(r.Raw)
			if !ok || s < m.TMin || s > m.TMax {
				return nil, damaged("eventTime")
			}
			r.Time = time.Unix(s, 0).UTC()
		}
		r.Account, r.Region, r.Category = m.Part.Account, m.Part.Region, m.Part.Category
	}
	if rd.Len() != 0 {
		return nil, damaged("trailing bytes")
	}
	return es, nil
}

// The members the blocks take the ID and time from, and the index in each
// of the byte audit.IndexAt looks for: a capital letter, rarer in records
// than the quote they begin with (about 6 a KB against 90 in the 1M set).
const (
	memberID   = `"eventID":"`
	anchorID   = 7 // D
	memberTime = `"eventTime":"`
	anchorTime = 6 // T
)

// jsonTime reads the record's eventTime the quick way (jsonString): as
// time.Parse with RFC3339 reads it.
func jsonTime(raw []byte) (int64, bool) {
	v, ok := jsonValue(raw, memberTime, anchorTime)
	if !ok {
		return 0, false
	}
	return parseTime(v)
}

// parseTime returns the Unix time of v as time.Parse(time.RFC3339, v)
// reads it. The form CloudTrail writes, 2006-01-02T15:04:05Z, is read
// here without copying v; any other goes to time.Parse.
func parseTime(v []byte) (int64, bool) {
	if len(v) == 20 && v[4] == '-' && v[7] == '-' && v[10] == 'T' && v[13] == ':' && v[16] == ':' && v[19] == 'Z' {
		y, ok1 := digits(v[0:4])
		mo, ok2 := digits(v[5:7])
		d, ok3 := digits(v[8:10])
		h, ok4 := digits(v[11:13])
		mi, ok5 := digits(v[14:16])
		s, ok6 := digits(v[17:19])
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && mo >= 1 && mo <= 12 && d >= 1 && d <= daysIn(mo, y) &&
			h <= 23 && mi <= 59 && s <= 59 {
			return time.Date(y, time.Month(mo), d, h, mi, s, 0, time.UTC).Unix(), true
		}
	}
	t, err := time.Parse(time.RFC3339, string(v))
	if err != nil {
		return 0, false
	}
	return t.Unix(), true
}

// digits returns the decimal number b spells, when b is all digits.
func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the days of month m (1-12) of year y.
func daysIn(m, y int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// jsonString returns the string value after the first occurrence of member
// (`"name":"`) in raw, when it has no escapes. The writer keeps a record's
// ID or time in the block unless what this finds equals the record's, so a
// record whose JSON has the member elsewhere first still decodes exactly.
func jsonString(raw []byte, member string, anchor int) (string, bool) {
	v, ok := jsonValue(raw, member, anchor)
	return string(v), ok
}

// jsonValue is jsonString's value, sharing raw's memory; anchor is the
// index in member of the byte audit.IndexAt looks for.
func jsonValue(raw []byte, member string, anchor int) ([]byte, bool) {
	i := audit.IndexAt(raw, member, anchor)
	if i < 0 {
		return nil, false
	}
	rest := raw[i+len(member):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// sameRecord reports how a and b differ, or "" (tests and checks).
func sameRecord(a, b *audit.Record) string {
	switch {
	case !bytes.Equal(a.Raw, b.Raw):
		return "raw"
	case a.Account != b.Account || a.Region != b.Region || a.Category != b.Category:
		return "partition"
	case a.EventID != b.EventID || !a.Time.Equal(b.Time):
		return "id or time"
	case a.EventName != b.EventName || a.EventSource != b.EventSource || a.Username != b.Username ||
		a.AccessKeyID != b.AccessKeyID || a.ReadOnly != b.ReadOnly:
		return "fields"
	case !slices.Equal(a.Resources, b.Resources):
		return "resources"
	}
	return ""
}
