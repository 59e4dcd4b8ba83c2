package dict

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// TestDictionaryUnchanged: the dictionary is the one records were stored
// with (its hash and ID), and S2V1 is its last s2.MaxDictSize bytes.
func TestDictionaryUnchanged(t *testing.T) {
	const want = "21d2388afe24923fb5de532af78f2fba9ee8a187686b9bfb63453ace1d47c76c"
	sum := sha256.Sum256(ZstdV1)
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Errorf("sha256(zstd-dict-v1.bin) = %s; want %s: stored records need the dictionary they were written with", got, want)
	}
	info, err := zstd.InspectDictionary(ZstdV1)
	if err != nil || info.ID() != ZstdV1ID {
		t.Errorf("InspectDictionary = %v, %v; want ID %d", info, err, ZstdV1ID)
	}
	if S2MaxSize != s2.MaxDictSize {
		t.Errorf("S2MaxSize = %d; want s2.MaxDictSize %d", S2MaxSize, s2.MaxDictSize)
	}
	if s2.NewDict(append([]byte{0}, S2V1()...)) == nil {
		t.Error("s2.NewDict refused S2V1")
	}
}
