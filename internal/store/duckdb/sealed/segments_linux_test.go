package sealed

import (
	"math/rand/v2"
	"syscall"
	"testing"
)

// BenchmarkReadCold is BenchmarkRead with each block dropped from the page
// cache first (posix_fadvise DONTNEED on its range, outside the timing): a
// read from the disk, as a lookup's first read after a start.
func BenchmarkReadCold(b *testing.B) {
	s, locs, buf := benchSegment(b)
	rng := rand.New(rand.NewPCG(10, 11))
	for b.Loop() {
		l := locs[rng.IntN(len(locs))]
		b.StopTimer()
		fd := s.file(l.Seg).f.Fd()
		const posixFadvDontneed = 4
		if _, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, fd, uintptr(l.Off), uintptr(l.Len), posixFadvDontneed, 0, 0); errno != 0 {
			b.Fatal(errno)
		}
		b.StartTimer()
		if _, err := s.Read(l, buf); err != nil {
			b.Fatal(err)
		}
	}
}
