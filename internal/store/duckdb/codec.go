package duckdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/dict"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// dictV1 is the zstd dictionary both stores share (package dict), ID
// dictV1ID, written in the header of every frame compressed with it, so a
// later dictionary gets a new ID and file and both decode side by side.
// Its last 64 KiB are also the S2 dictionary, sealed.S2Dict.
var dictV1 = dict.ZstdV1

// dictV1ID is the ID inside dictV1.
const dictV1ID = dict.ZstdV1ID

// Frames come in two kinds, told apart by their first byte:
//   - a zstd frame (magic 28 B5 2F FD) made with dictV1 or no dictionary,
//   - frameS2V1 followed by one S2 block made with sealed.S2Dict.
//
// No zstd frame starts with frameS2V1 (zstd's frames start with 0x28 and
// its skippable frames with 0x50-0x5F), so both kinds live in one column
// and a store holds any mix of them.
const frameS2V1 = 0x01

// codec compresses raw records, one frame per record, and decompresses
// frames of either kind. Both directions are safe for concurrent use.
//
// New frames are S2 blocks with a dictionary unless small is set: on the
// real records S2 compresses 4.5x at 2 µs a record, zstd (SpeedFastest,
// with its dictionary) 6.0x at 16 µs, most of which is the encoder copying
// its 256 KiB dictionary table for every frame (docs/store.md).
type codec struct {
	small bool
	s2d   *s2.Dict
	enc   *zstd.Encoder
	dec   *zstd.Decoder
	// bdec decodes record blocks (blocks.go), which may be larger than
	// dec lets a frame be.
	bdec *zstd.Decoder
	// imp compresses an offline import's blocks at importLevel; made at
	// its first use (impErr), so that a server never holds its tables.
	impOnce sync.Once
	imp     *zstd.Encoder
	impErr  error
}

func newCodec(small bool) (*codec, error) {
	s2d, err := sealed.S2Dict()
	if err != nil {
		return nil, err
	}
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderDict(dictV1),
		// With a dictionary, SpeedFastest compresses real records 6.0x at
		// about 3x the speed of SpeedDefault (6.1x): see docs/store.md.
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // DuckDB checksums its blocks
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("duckdb: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecoderDicts(dictV1),
		zstd.WithDecoderConcurrency(0),
		// A frame never holds more than one record.
		zstd.WithDecoderMaxMemory(2*audit.MaxRecordSize),
	)
	if err != nil {
		enc.Close()
		return nil, fmt.Errorf("duckdb: zstd decoder: %w", err)
	}
	bdec, err := zstd.NewReader(nil,
		zstd.WithDecoderDicts(dictV1),
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxBlockContent),
	)
	if err != nil {
		enc.Close()
		dec.Close()
		return nil, fmt.Errorf("duckdb: zstd decoder: %w", err)
	}
	return &codec{small: small, s2d: s2d, enc: enc, dec: dec, bdec: bdec}, nil
}

// compressBlock returns the compressed block of content (frame contents
// one after the other): one zstd frame with dictV1, whatever small says.
// In blocks zstd is the better choice: the encoder's per-frame cost (its
// dictionary tables) is shared by tens of records, and it compressed the
// real records' 64 KiB blocks 7.5x, S2 5.0x (docs/store.md).
func (c *codec) compressBlock(content []byte) []byte {
	return c.enc.EncodeAll(content, make([]byte, 0, len(content)/4))
}

// newBlockEncoder returns an encoder of record blocks at level: frames
// with dictV1, as compressBlock makes, that decompressBlock reads whatever
// the level.
func newBlockEncoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderDict(dictV1),
		zstd.WithEncoderLevel(level),
		zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithEncoderCRC(false), // DuckDB checksums its blocks
		zstd.WithZeroFrames(true),
	)
	if err != nil {
		return nil, fmt.Errorf("duckdb: zstd encoder: %w", err)
	}
	return enc, nil
}

// compressBlockWith is compressBlock with an encoder of newBlockEncoder.
func compressBlockWith(enc *zstd.Encoder, content []byte) []byte {
	return enc.EncodeAll(content, make([]byte, 0, len(content)/4))
}

// compressImportBlock is compressBlock for the blocks of an offline import
// in order (BeginImport, InOrder): at importLevel, in Compact's 128 KiB
// blocks, since such an import is not compacted.
func (c *codec) compressImportBlock(content []byte) ([]byte, error) {
	c.impOnce.Do(func() { c.imp, c.impErr = newBlockEncoder(importLevel) })
	if c.impErr != nil {
		return nil, c.impErr
	}
	return compressBlockWith(c.imp, content), nil
}

// importLevel is the zstd level of an offline import's blocks: the
// appends' SpeedFastest, in Compact's 128 KiB blocks (session 24; session
// 21's SpeedDefault before, session 20's Compact level before that). With
// the dictionary, SpeedBetterCompression copies its 4 MiB long-match table
// back from the dictionary's for every block (the encoder's Reset: 1.9 of
// 7 CPU-s of zstd in the 1M year-spread import), SpeedDefault 1 MiB.
// SpeedFastest encodes an import's 128 KiB blocks in 0.55-0.70 of
// SpeedDefault's time for 2.6% more block bytes (3,000 blocks of the 1M
// year-spread import: 31.56 -> 32.38 MB): 4.3 -> 2.7 CPU-s of that
// import's profile, its data dir about 1% larger (docs/store.md,
// "Imports", session 24). The import's rate is the target further from
// its mark. Compact still makes its blocks at compactLevel. The level
// stays its own constant (and encoder) so that an import can be given
// another again.
const importLevel = zstd.SpeedFastest

// decompressBlock returns the content of a block.
func (c *codec) decompressBlock(data []byte) ([]byte, error) {
	out, err := c.bdec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("decompress block: %w", err)
	}
	return out, nil
}

// compress appends the frame of raw to dst.
func (c *codec) compress(dst, raw []byte) []byte {
	if c.small {
		return c.enc.EncodeAll(raw, dst)
	}
	return c.compressS2(dst, raw)
}

// compressS2 appends the frameS2V1 frame of raw to dst.
func (c *codec) compressS2(dst, raw []byte) []byte {
	n := 1 + s2.MaxEncodedLen(len(raw))
	if n <= 0 {
		panic("duckdb: record too large for S2") // MaxRecordSize is far below S2's bound
	}
	start := len(dst)
	if cap(dst)-start < n {
		dst = append(make([]byte, 0, start+n), dst...)
	}
	dst = append(dst, frameS2V1)
	// Dict.Encode writes from the start of the slice it is given, which has
	// the capacity it needs, so the block lands right after the tag.
	block := c.s2d.Encode(dst[start+1:start+n], raw)
	return dst[:start+1+len(block)]
}

// compressAll returns the frames of raws, compressed on every core.
func (c *codec) compressAll(raws [][]byte) [][]byte {
	out := make([][]byte, len(raws))
	workers := min(runtime.GOMAXPROCS(0), len(raws)/64+1)
	if !c.small {
		// S2 is fast enough that goroutines cost more than they save on
		// small batches.
		workers = min(runtime.GOMAXPROCS(0), len(raws)/512+1)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var scratch []byte
			for i := w; i < len(raws); i += workers {
				if c.small {
					out[i] = c.enc.EncodeAll(raws[i], nil)
					continue
				}
				// Encode into scratch (room for the worst case), keep a
				// copy of the right size.
				scratch = c.compressS2(scratch[:0], raws[i])
				out[i] = append([]byte(nil), scratch...)
			}
		})
	}
	wg.Wait()
	return out
}

// decompress returns the record a frame holds.
func (c *codec) decompress(frame []byte) ([]byte, error) {
	if len(frame) > 0 && frame[0] == frameS2V1 {
		block := frame[1:]
		n, k := binary.Uvarint(block)
		if k <= 0 || n > 2*audit.MaxRecordSize {
			return nil, errors.New("duckdb: decompress record: S2 block of invalid length")
		}
		out, err := c.s2d.Decode(make([]byte, 0, n), block)
		if err != nil {
			return nil, fmt.Errorf("duckdb: decompress record: %w", err)
		}
		return out, nil
	}
	out, err := c.dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: decompress record: %w", err)
	}
	return out, nil
}

func (c *codec) close() {
	if c.imp != nil {
		c.imp.Close()
	}
	c.enc.Close()
	c.dec.Close()
	c.bdec.Close()
}
