package duckdb

import (
	_ "embed"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
)

// dictV1 is a zstd dictionary trained on compact CloudTrail records of the
// real test data (see TestTrainDictionary). Its ID, dictV1ID, is written in
// the header of every frame compressed with it, so a later dictionary gets
// a new ID and file and both decode side by side. Never change this file:
// stored records need it to be read.
//
//go:embed zstd-dict-v1.bin
var dictV1 []byte

// dictV1ID is the ID inside dictV1. IDs below 32768 are reserved by the
// zstd format for a registry; cairn's start at 32768.
const dictV1ID = 32769

// codec compresses raw records, one zstd frame per record, with the newest
// dictionary, and decompresses frames made with any known dictionary or
// none. Both directions are safe for concurrent use.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec() (*codec, error) {
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
	return &codec{enc: enc, dec: dec}, nil
}

// compress appends the frame of raw to dst.
func (c *codec) compress(dst, raw []byte) []byte { return c.enc.EncodeAll(raw, dst) }

// compressAll returns the frames of raws, compressed on every core.
func (c *codec) compressAll(raws [][]byte) [][]byte {
	out := make([][]byte, len(raws))
	workers := min(runtime.GOMAXPROCS(0), len(raws)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(raws); i += workers {
				out[i] = c.enc.EncodeAll(raws[i], nil)
			}
		})
	}
	wg.Wait()
	return out
}

// decompress returns the record a frame holds.
func (c *codec) decompress(frame []byte) ([]byte, error) {
	out, err := c.dec.DecodeAll(frame, nil)
	if err != nil {
		return nil, fmt.Errorf("duckdb: decompress record: %w", err)
	}
	return out, nil
}

func (c *codec) close() {
	c.enc.Close()
	c.dec.Close()
}
