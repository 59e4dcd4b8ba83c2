package audit

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random version-4 UUID in lower-case hex
// (xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx): the form of CloudTrail event IDs
// and AWS request IDs, and cairn's IDs of queries, imports, stores and
// channels. It reads crypto/rand, which does not fail.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never returns an error (crypto/rand since Go 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
