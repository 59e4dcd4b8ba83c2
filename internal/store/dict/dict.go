// Package dict holds the compression dictionary both event stores share,
// embedded once: a zstd dictionary trained on compact CloudTrail records
// of the real test data (internal/store/duckdb's TestTrainDictionary made
// it), whose last 64 KiB are also the S2 dictionary of both stores' S2
// blocks. Stored records need it to be read: never change
// zstd-dict-v1.bin (TestDictionaryUnchanged); a new dictionary gets a new
// ID and file, read beside this one.
package dict

import (
	_ "embed"
)

// ZstdV1 is the zstd dictionary, ID ZstdV1ID. Callers must not modify it.
//
//go:embed zstd-dict-v1.bin
var ZstdV1 []byte

// ZstdV1ID is the dictionary ID inside ZstdV1, written in the header of
// every frame compressed with it. IDs below 32768 are reserved by the
// zstd format for a registry; cairn's start at 32768.
const ZstdV1ID = 32769

// S2MaxSize is the largest S2 dictionary (s2.MaxDictSize), kept here so
// that this package needs no compression library.
const S2MaxSize = 64 << 10

// S2V1 returns the content of the S2 dictionary: the last 64 KiB of
// ZstdV1 (its most frequent record shapes), used with repeat offset 0.
// Callers must not modify it.
func S2V1() []byte { return ZstdV1[len(ZstdV1)-S2MaxSize:] }
