package sealed

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/cairn-audit/cairn/internal/testproc"
)

// testBlock returns block id's bytes: n bytes derived from id, so that a
// reader can tell one block from another.
func testBlock(id string, n int) []byte {
	b := make([]byte, 0, n+sha256.Size)
	h := sha256.Sum256([]byte(id))
	for len(b) < n {
		b = append(b, h[:]...)
		h = sha256.Sum256(h[:])
	}
	return b[:n]
}

// ends returns each segment's referenced end over locs.
func ends(locs ...Loc) map[uint32]int64 {
	m := map[uint32]int64{}
	for _, l := range locs {
		m[l.Seg] = max(m[l.Seg], l.End())
	}
	return m
}

func openSegs(t testing.TB, dir string, maxBytes int64) *Segments {
	t.Helper()
	s, err := OpenSegments(dir, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

type written struct {
	loc  Loc
	data []byte
}

func writeRandom(t *testing.T, s *Segments, rng *rand.Rand, writes, maxBlocks, maxLen int, label string) []written {
	t.Helper()
	var out []written
	for w := range writes {
		blocks := make([][]byte, 1+rng.IntN(maxBlocks))
		for i := range blocks {
			blocks[i] = testBlock(fmt.Sprintf("%s-%d-%d", label, w, i), 1+rng.IntN(maxLen))
		}
		locs, err := s.Write(blocks)
		if err != nil {
			t.Fatal(err)
		}
		if len(locs) != len(blocks) {
			t.Fatalf("Write of %d blocks returned %d Locs", len(blocks), len(locs))
		}
		for i, l := range locs {
			if int(l.Len) != len(blocks[i]) {
				t.Fatalf("Loc %+v for a block of %d bytes", l, len(blocks[i]))
			}
			out = append(out, written{l, blocks[i]})
		}
	}
	return out
}

func readAll(t *testing.T, s *Segments, ws []written) {
	t.Helper()
	var buf []byte
	for _, w := range ws {
		got, err := s.Read(w.loc, buf)
		if err != nil {
			t.Fatalf("Read(%+v): %v", w.loc, err)
		}
		if !bytes.Equal(got, w.data) {
			t.Fatalf("Read(%+v): other bytes than written", w.loc)
		}
		buf = got
	}
}

func TestSegmentsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "segments")
	const maxBytes = 64 << 10
	s := openSegs(t, dir, maxBytes)
	if err := s.Recover(nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("folder: %v, %v; want mode 0700", fi, err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	ws := writeRandom(t, s, rng, 60, 12, 9000, "a")
	// A block larger than a segment gets one of its own.
	big, err := s.Write([][]byte{testBlock("big", 3*maxBytes)})
	if err != nil {
		t.Fatal(err)
	}
	ws = append(ws, written{big[0], testBlock("big", 3*maxBytes)})
	ws = append(ws, writeRandom(t, s, rng, 5, 12, 9000, "b")...)
	readAll(t, s, ws)

	// Blocks are laid one after the other; segments roll over past maxBytes.
	sizes := s.Sizes()
	if len(sizes) < 5 {
		t.Fatalf("%d segments after %d blocks at maxBytes %d; want rotation", len(sizes), len(ws), maxBytes)
	}
	if got := ends(big...); sizes[big[0].Seg] != got[big[0].Seg] || big[0].Off != 0 {
		t.Errorf("the big block at %+v, its segment %d bytes; want one of its own", big[0], sizes[big[0].Seg])
	}
	next := map[uint32]int64{}
	for _, w := range ws {
		if w.loc.Off != next[w.loc.Seg] {
			t.Fatalf("block at %+v; want offset %d", w.loc, next[w.loc.Seg])
		}
		next[w.loc.Seg] = w.loc.End()
	}
	for seg, size := range sizes {
		if size != next[seg] {
			t.Errorf("segment %d is %d bytes; its blocks end at %d", seg, size, next[seg])
		}
		if size > maxBytes && seg != big[0].Seg {
			t.Errorf("segment %d is %d bytes, past maxBytes %d", seg, size, maxBytes)
		}
		fi, err := os.Stat(filepath.Join(dir, SegmentName(seg)))
		if err != nil || fi.Size() != size || fi.Mode().Perm() != 0o600 {
			t.Errorf("segment %d's file: %v, %v; want %d bytes, mode 0600", seg, fi, err, size)
		}
	}
	st := s.Stats()
	var total int64
	for _, w := range ws {
		total += int64(w.loc.Len)
	}
	if st.Writes != 66 || st.BytesWritten != total || st.Reads != int64(len(ws)) || st.BytesRead != total ||
		st.ReadErrors != 0 || st.Syncs < 66+int64(len(sizes)) {
		t.Errorf("Stats() = %+v; want 66 writes, %d bytes written and read, %d reads, at least %d syncs",
			st, total, len(ws), 66+len(sizes))
	}

	// Reopened: every block reads back, and Writes append to the last segment.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(ws[0].loc, nil); err == nil {
		t.Error("Read after Close succeeded")
	}
	s = openSegs(t, dir, maxBytes)
	if err := s.Recover(ends(locsOf(ws)...)); err != nil {
		t.Fatal(err)
	}
	readAll(t, s, ws)
	last := ws[len(ws)-1].loc
	more, err := s.Write([][]byte{[]byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Loc{Seg: last.Seg, Off: last.End(), Len: 1}); more[0].Seg != want.Seg || more[0].Off != want.Off {
		t.Errorf("Write after reopening at %+v; want after the last block, %+v", more[0], want)
	}
	if err := s.Recover(nil); err == nil {
		t.Error("Recover after a Write succeeded")
	}
	// Files that are not segments are left alone.
	if err := os.WriteFile(filepath.Join(dir, "note.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openSegs(t, dir, maxBytes)
	if err := s.Recover(ends(append(locsOf(ws), more[0])...)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "note.txt")); err != nil {
		t.Error(err)
	}
}

func locsOf(ws []written) []Loc {
	locs := make([]Loc, len(ws))
	for i, w := range ws {
		locs[i] = w.loc
	}
	return locs
}

func TestSegmentsRotateRemove(t *testing.T) {
	dir := t.TempDir()
	s := openSegs(t, dir, 0)
	a, err := s.Write([][]byte{[]byte("one"), []byte("two")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(); err != nil { // twice: still one new segment
		t.Fatal(err)
	}
	b, err := s.Write([][]byte{[]byte("three")})
	if err != nil {
		t.Fatal(err)
	}
	if a[0].Seg != 1 || b[0].Seg != 2 || b[0].Off != 0 {
		t.Fatalf("Locs %+v then, after Rotate, %+v; want segment 1, then 2 at 0", a, b)
	}
	if err := s.Remove(2); err == nil {
		t.Error("Remove of the active segment succeeded")
	}
	if err := s.Remove(9); err == nil {
		t.Error("Remove of a missing segment succeeded")
	}
	if err := s.Remove(1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, SegmentName(1))); !os.IsNotExist(err) {
		t.Errorf("segment 1 after Remove: %v", err)
	}
	if _, err := s.Read(a[0], nil); err == nil || !strings.Contains(err.Error(), "00000001.seg") {
		t.Errorf("Read of a removed segment: %v; want an error naming it", err)
	}
	if got := s.Sizes(); len(got) != 1 || got[2] != 5 {
		t.Errorf("Sizes() = %v; want map[2:5]", got)
	}
	// After Rotate the last segment may go too; the next Write starts another.
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(2); err != nil {
		t.Fatal(err)
	}
	c, err := s.Write([][]byte{[]byte("four")})
	if err != nil {
		t.Fatal(err)
	}
	if c[0].Seg != 3 {
		t.Errorf("Write after removing every segment at %+v; want a new segment 3", c[0])
	}
}

func TestSegmentsDamage(t *testing.T) {
	dir := t.TempDir()
	s := openSegs(t, dir, 0)
	locs, err := s.Write([][]byte{testBlock("a", 5000), testBlock("b", 7000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([][]byte{{}}); err == nil {
		t.Error("Write of an empty block succeeded")
	}
	// A flipped byte fails its block's CRC, not its neighbour's.
	f, err := os.OpenFile(filepath.Join(dir, SegmentName(1)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var one [1]byte
	f.ReadAt(one[:], 5100)
	one[0] ^= 0x10
	if _, err := f.WriteAt(one[:], 5100); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.Read(locs[0], nil); err != nil {
		t.Errorf("Read of the undamaged block: %v", err)
	}
	if _, err := s.Read(locs[1], nil); err == nil || !strings.Contains(err.Error(), "00000001.seg at 5000") ||
		!strings.Contains(err.Error(), "CRC") {
		t.Errorf("Read of the damaged block: %v; want a CRC error naming segment and offset", err)
	}
	bad := []struct {
		name string
		loc  Loc
		want string
	}{
		{"past the end", Loc{Seg: 1, Off: 11000, Len: 2000}, "00000001.seg at 11000"},
		{"at the end", Loc{Seg: 1, Off: 12000, Len: 1}, "outside"},
		{"missing segment", Loc{Seg: 7, Off: 0, Len: 10}, "00000007.seg at 0"},
		{"segment 0", Loc{Seg: 0, Off: 0, Len: 10}, "no such segment"},
		{"huge length", Loc{Seg: 1, Off: 0, Len: math.MaxUint32}, "outside"},
		{"huge offset", Loc{Seg: 1, Off: math.MaxInt64, Len: 10}, "outside"},
		{"negative offset", Loc{Seg: 1, Off: -5, Len: 10}, "outside"},
		{"empty", Loc{Seg: 1, Off: 0, Len: 0}, "outside"},
		{"wrong CRC", Loc{Seg: 1, Off: 0, Len: 5000, CRC: locs[0].CRC + 1}, "damaged"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := s.Read(c.loc, nil)
			runtime.ReadMemStats(&after)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Read(%+v) = %d bytes, %v; want an error with %q", c.loc, len(got), err, c.want)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("Read(%+v) allocated %d bytes", c.loc, n)
			}
		})
	}
	if st := s.Stats(); st.ReadErrors != int64(len(bad))+1 {
		t.Errorf("Stats().ReadErrors = %d; want %d", st.ReadErrors, len(bad)+1)
	}
}

func TestSegmentsRecover(t *testing.T) {
	dir := t.TempDir()
	s := openSegs(t, dir, 20000)
	if err := s.Recover(nil); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	committed := writeRandom(t, s, rng, 10, 5, 4000, "c")
	old := ends(locsOf(committed)...)
	oldSizes := s.Sizes()
	files := map[uint32][]byte{}
	for seg := range oldSizes {
		files[seg], _ = os.ReadFile(filepath.Join(dir, SegmentName(seg)))
	}
	last := committed[len(committed)-1].loc

	t.Run("written, never committed", func(t *testing.T) {
		// The store's crash between Write and its rows' commit: the bytes
		// are there, no row references them.
		lost := writeRandom(t, s, rng, 6, 5, 4000, "lost")
		if len(s.Sizes()) == len(oldSizes) {
			t.Fatal("the lost writes started no new segment; want the case of a segment no row references")
		}
		s.Close()
		s = openSegs(t, dir, 20000)
		if err := s.Recover(old); err != nil {
			t.Fatal(err)
		}
		if got := s.Sizes(); fmt.Sprint(got) != fmt.Sprint(oldSizes) {
			t.Fatalf("Sizes() after Recover = %v; want as before the lost writes, %v", got, oldSizes)
		}
		for seg, want := range files {
			got, _ := os.ReadFile(filepath.Join(dir, SegmentName(seg)))
			if !bytes.Equal(got, want) {
				t.Errorf("segment %d differs from before the lost writes", seg)
			}
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != len(oldSizes) {
			t.Errorf("%d files after Recover; want %d", len(ents), len(oldSizes))
		}
		readAll(t, s, committed)
		for _, w := range lost {
			if _, err := s.Read(w.loc, nil); err == nil && w.loc.Seg != last.Seg {
				t.Errorf("Read of the lost block at %+v succeeded", w.loc)
			}
		}
		// The next Write goes where the committed bytes end.
		locs, err := s.Write([][]byte{[]byte("next")})
		if err != nil {
			t.Fatal(err)
		}
		if locs[0].Seg != last.Seg || locs[0].Off != last.End() {
			t.Errorf("Write after Recover at %+v; want segment %d at %d", locs[0], last.Seg, last.End())
		}
		committed = append(committed, written{locs[0], []byte("next")})
		old = ends(locsOf(committed)...)
	})

	t.Run("short segment", func(t *testing.T) {
		s.Close()
		path := filepath.Join(dir, SegmentName(last.Seg))
		before, _ := os.ReadFile(path)
		if err := os.Truncate(path, last.End()-1); err != nil {
			t.Fatal(err)
		}
		extra := filepath.Join(dir, SegmentName(last.Seg+1))
		if err := os.WriteFile(extra, []byte("unreferenced"), 0o600); err != nil {
			t.Fatal(err)
		}
		s = openSegs(t, dir, 20000)
		err := s.Recover(old)
		if err == nil || !strings.Contains(err.Error(), SegmentName(last.Seg)) {
			t.Fatalf("Recover with a short segment: %v; want an error naming %s", err, SegmentName(last.Seg))
		}
		if _, err := os.Stat(extra); err != nil {
			t.Errorf("a failed Recover removed the unreferenced segment: %v", err)
		}
		missing := unionEnds(old, map[uint32]int64{last.Seg + 5: 10})
		if err := s.Recover(missing); err == nil || !strings.Contains(err.Error(), SegmentName(last.Seg+5)) {
			t.Errorf("Recover with a missing segment: %v; want an error naming it", err)
		}
		s.Close()
		if err := os.WriteFile(path, before, 0o600); err != nil {
			t.Fatal(err)
		}
		s = openSegs(t, dir, 20000)
		if err := s.Recover(old); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(extra); !os.IsNotExist(err) {
			t.Errorf("the unreferenced segment after Recover: %v", err)
		}
		readAll(t, s, committed)
	})

	t.Run("tail cut", func(t *testing.T) {
		// Only the referenced prefix of the first segment stays.
		first := committed[0].loc
		keep := map[uint32]int64{first.Seg: first.End()}
		s.Close()
		s = openSegs(t, dir, 20000)
		if err := s.Recover(keep); err != nil {
			t.Fatal(err)
		}
		if got := s.Sizes(); len(got) != 1 || got[first.Seg] != first.End() {
			t.Errorf("Sizes() = %v; want map[%d:%d]", got, first.Seg, first.End())
		}
		if fi, err := os.Stat(filepath.Join(dir, SegmentName(first.Seg))); err != nil || fi.Size() != first.End() {
			t.Errorf("segment file %v, %v; want %d bytes", fi, err, first.End())
		}
		readAll(t, s, committed[:1])
	})
}

func unionEnds(a, b map[uint32]int64) map[uint32]int64 {
	m := map[uint32]int64{}
	for k, v := range a {
		m[k] = v
	}
	for k, v := range b {
		m[k] = v
	}
	return m
}

func TestSegmentsFailedWrite(t *testing.T) {
	dir := t.TempDir()
	s := openSegs(t, dir, 0)
	a, err := s.Write([][]byte{[]byte("kept")})
	if err != nil {
		t.Fatal(err)
	}
	// The active segment's file closed under the Write: it fails.
	s.file(a[0].Seg).f.Close()
	locs, err := s.Write([][]byte{[]byte("lost"), []byte("lost too")})
	if err == nil || locs != nil {
		t.Fatalf("Write to a closed file = %v, %v; want an error and no Locs", locs, err)
	}
	if got := s.Sizes()[a[0].Seg]; got != 4 {
		t.Errorf("segment %d is %d bytes after the failed Write; want 4", a[0].Seg, got)
	}
	b, err := s.Write([][]byte{[]byte("next")})
	if err != nil {
		t.Fatal(err)
	}
	if b[0].Seg == a[0].Seg {
		t.Errorf("Write after a failed one at %+v; want a new segment", b[0])
	}
	if got, err := s.Read(b[0], nil); err != nil || string(got) != "next" {
		t.Errorf("Read = %q, %v", got, err)
	}
}

func TestSegmentsConcurrent(t *testing.T) {
	s := openSegs(t, t.TempDir(), 256<<10)
	var (
		mu   sync.Mutex
		ws   []written
		done atomic.Bool
		wg   sync.WaitGroup
	)
	errs := make(chan error, 8)
	wg.Go(func() {
		defer done.Store(true)
		rng := rand.New(rand.NewPCG(5, 6))
		for w := range 150 {
			blocks := make([][]byte, 1+rng.IntN(8))
			for i := range blocks {
				blocks[i] = testBlock(fmt.Sprintf("w%d-%d", w, i), 1+rng.IntN(20000))
			}
			locs, err := s.Write(blocks)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			for i, l := range locs {
				ws = append(ws, written{l, blocks[i]})
			}
			mu.Unlock()
			if w%40 == 39 {
				s.Rotate()
			}
		}
	})
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 7))
			var buf []byte
			reads := 0
			for !done.Load() || reads < 100 {
				mu.Lock()
				if len(ws) == 0 {
					mu.Unlock()
					runtime.Gosched()
					continue
				}
				w := ws[rng.IntN(len(ws))]
				mu.Unlock()
				got, err := s.Read(w.loc, buf)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, w.data) {
					errs <- fmt.Errorf("Read(%+v): other bytes than written", w.loc)
					return
				}
				buf = got
				reads++
				if reads%50 == 0 {
					s.Sizes()
					s.Stats()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	readAll(t, s, ws)
}

func TestSegmentsReadBesideRemove(t *testing.T) {
	s := openSegs(t, t.TempDir(), 64<<10)
	rng := rand.New(rand.NewPCG(12, 13))
	ws := writeRandom(t, s, rng, 40, 8, 8000, "rm")
	last := ws[len(ws)-1].loc.Seg
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 14))
			for range 3000 {
				w := ws[rng.IntN(len(ws))]
				got, err := s.Read(w.loc, nil)
				switch {
				case err != nil && !strings.Contains(err.Error(), SegmentName(w.loc.Seg)):
					errs <- fmt.Errorf("Read(%+v): %v; want an error naming its segment", w.loc, err)
					return
				case err == nil && !bytes.Equal(got, w.data):
					errs <- fmt.Errorf("Read(%+v): other bytes than written", w.loc)
					return
				}
			}
		})
	}
	for seg := uint32(1); seg < last; seg++ {
		if err := s.Remove(seg); err != nil {
			t.Error(err)
		}
		runtime.Gosched()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, w := range ws {
		if _, err := s.Read(w.loc, nil); (err == nil) != (w.loc.Seg == last) {
			t.Errorf("Read(%+v) after the others' Remove: %v", w.loc, err)
		}
	}
}

// TestSegmentsCrashChild is TestSegmentsCrash's child (it runs only with
// CAIRN_SEGMENTS_CRASH_CHILD set): it writes blocks in a loop and prints
// each one's Loc once Write has returned it, until it is killed.
func TestSegmentsCrashChild(t *testing.T) {
	dir := os.Getenv("CAIRN_SEGMENTS_CRASH_CHILD")
	if dir == "" {
		t.Skip("TestSegmentsCrash's child; CAIRN_SEGMENTS_CRASH_CHILD unset")
	}
	round := os.Getenv("CAIRN_SEGMENTS_CRASH_ROUND")
	s, err := OpenSegments(dir, 256<<10)
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 1))
	for w := 0; ; w++ {
		blocks := make([][]byte, 1+rng.IntN(10))
		ids := make([]string, len(blocks))
		for i := range blocks {
			ids[i] = fmt.Sprintf("r%s-%d-%d/%d", round, w, i, 1+rng.IntN(30000))
			blocks[i] = crashBlock(ids[i])
		}
		locs, err := s.Write(blocks)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range locs {
			fmt.Fprintf(out, "ack %s %d %d %d %d\n", ids[i], l.Seg, l.Off, l.Len, l.CRC)
		}
		out.Flush()
	}
}

// crashBlock returns the bytes of the crash child's block id ("name/length").
func crashBlock(id string) []byte {
	_, n, _ := strings.Cut(id, "/")
	size, _ := strconv.Atoi(n)
	return testBlock(id, size)
}

// TestSegmentsCrash runs a child process that writes blocks and kills it
// with SIGKILL at a random moment, several times on the same folder; after
// each kill the folder is reopened and recovered with the ends of the
// blocks the child reported as written, and every one of them reads back.
func TestSegmentsCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	dir := t.TempDir()
	acked := map[string]Loc{}
	for round := range 4 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSegmentsCrashChild$")
		cmd.Env = append(os.Environ(), "CAIRN_SEGMENTS_CRASH_CHILD="+dir, fmt.Sprintf("CAIRN_SEGMENTS_CRASH_ROUND=%d", round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := testproc.Start(cmd); err != nil {
			t.Fatal(err)
		}
		killAt := 200 + rand.IntN(2000)
		sc := bufio.NewScanner(stdout)
		n, killed := 0, false
		for sc.Scan() {
			var id string
			var l Loc
			if _, err := fmt.Sscanf(sc.Text(), "ack %s %d %d %d %d", &id, &l.Seg, &l.Off, &l.Len, &l.CRC); err != nil {
				t.Fatalf("child printed %q: %v", sc.Text(), err)
			}
			acked[id] = l
			if n++; n == killAt && !killed {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		io.Copy(io.Discard, stdout)
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited after %d blocks: %v\n%s", round, n, err, stderr.String())
		}
		var locs []Loc
		for _, l := range acked {
			locs = append(locs, l)
		}
		want := ends(locs...)
		s, err := OpenSegments(dir, 256<<10)
		if err != nil {
			t.Fatal(err)
		}
		before := s.Sizes()
		if err := s.Recover(want); err != nil {
			t.Fatal(err)
		}
		if got := s.Sizes(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("round %d: Sizes() after Recover = %v; want %v", round, got, want)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			seg, _ := parseSegmentName(e.Name())
			if fi, err := e.Info(); err != nil || fi.Size() != want[seg] {
				t.Errorf("round %d: after Recover %s is %v, %v; want %d bytes", round, e.Name(), fi, err, want[seg])
			}
		}
		var buf []byte
		for id, l := range acked {
			got, err := s.Read(l, buf)
			if err != nil {
				t.Fatalf("round %d: block %s: %v", round, id, err)
			}
			if !bytes.Equal(got, crashBlock(id)) {
				t.Fatalf("round %d: block %s at %+v: other bytes than written", round, id, l)
			}
			buf = got
		}
		var cut int64
		for seg, size := range before {
			cut += size - want[seg]
		}
		t.Logf("round %d: SIGKILL after %d blocks (%d so far, %d segments); Recover cut %d unreferenced bytes, %d segments",
			round, n, len(acked), len(want), cut, len(before)-len(want))
		s.Close()
	}
}

// BenchmarkRead reads random 128 KiB blocks of a 512 MiB segment written
// once (CAIRN_SEGMENTS_BENCH_DIR: where, default a temporary folder). The
// machine's page cache holds the file: this is a read's cost without the
// disk, as a lookup's warm reads. BenchmarkReadCold (Linux) evicts each
// block from the page cache before its read.
func BenchmarkRead(b *testing.B) {
	s, locs, buf := benchSegment(b)
	rng := rand.New(rand.NewPCG(10, 11))
	for b.Loop() {
		if _, err := s.Read(locs[rng.IntN(len(locs))], buf); err != nil {
			b.Fatal(err)
		}
	}
}

// benchSegment writes BenchmarkRead's segment: 4,096 blocks of 128 KiB of
// random bytes.
func benchSegment(b *testing.B) (*Segments, []Loc, []byte) {
	const blockLen, blocks = 128 << 10, 4096
	s := openSegs(b, benchDir(b), 1<<30)
	var locs []Loc
	rng := rand.New(rand.NewPCG(8, 9))
	batch := make([][]byte, 64)
	for range blocks / len(batch) {
		for i := range batch {
			batch[i] = make([]byte, blockLen)
			for j := 0; j < blockLen; j += 8 {
				binary.LittleEndian.PutUint64(batch[i][j:], rng.Uint64())
			}
		}
		l, err := s.Write(batch)
		if err != nil {
			b.Fatal(err)
		}
		locs = append(locs, l...)
	}
	b.SetBytes(blockLen)
	return s, locs, make([]byte, blockLen)
}

// BenchmarkWrite measures a Write of 20 blocks of 40 KiB with its
// fdatasync (CAIRN_SEGMENTS_BENCH_DIR: where; a temporary folder may be in
// memory).
func BenchmarkWrite(b *testing.B) {
	s := openSegs(b, benchDir(b), 0)
	blocks := make([][]byte, 20)
	for i := range blocks {
		blocks[i] = testBlock(fmt.Sprint(i), 40<<10)
	}
	b.SetBytes(20 * 40 << 10)
	for b.Loop() {
		if _, err := s.Write(blocks); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDir(b *testing.B) string {
	root := os.Getenv("CAIRN_SEGMENTS_BENCH_DIR")
	if root == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(root, "segments")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
