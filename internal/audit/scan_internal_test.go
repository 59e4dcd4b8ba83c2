package audit

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestSpecialMask checks the eight-byte test never misses a '"', '\\' or
// control byte, and that its lowest bit is the first such byte's (str
// goes straight to it).
func TestSpecialMask(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var b [8]byte
	for n := range 200000 {
		for i := range b {
			if n%2 == 0 {
				b[i] = byte(rng.IntN(256))
			} else {
				b[i] = "a\"\\\x00\x1f \x7f\x80\xff"[rng.IntN(9)]
			}
		}
		first := -1
		for i, c := range b {
			if first < 0 && (c == '"' || c == '\\' || c < 0x20) {
				first = i
			}
		}
		m := specialMask(binary.LittleEndian.Uint64(b[:]))
		switch {
		case first < 0 && m != 0:
			// A false alarm would stop str at a byte that is not special:
			// it then goes on a byte at a time. None is expected.
			t.Fatalf("specialMask(%q) = %#x; want 0", b, m)
		case first >= 0 && (m == 0 || bits.TrailingZeros64(m)>>3 != first):
			t.Fatalf("specialMask(%q) = %#x; want its lowest bit in byte %d", b, m, first)
		}
	}
}
