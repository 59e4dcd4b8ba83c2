package audit

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSpecial8 checks the eight-byte test never misses a '"', '\\' or
// control byte (a false alarm only costs the byte loop).
func TestSpecial8(t *testing.T) {
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
		want := false
		for _, c := range b {
			want = want || c == '"' || c == '\\' || c < 0x20
		}
		if got := special8(binary.LittleEndian.Uint64(b[:])); want && !got {
			t.Fatalf("special8(%q) = false; want true", b)
		}
	}
}
