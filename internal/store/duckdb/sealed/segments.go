package sealed

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cairn-audit/cairn/internal/atomicfile"
)

// DefaultSegmentBytes is the size at which Write starts a new segment when
// OpenSegments is given 0.
const DefaultSegmentBytes = 256 << 20

// castagnoli is the table of a Loc's CRC-32C.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Segments are the files that hold the sealed tier's blocks: a folder of
// segment files named %08d.seg (1, 2, ...), each the blocks' bytes one after
// the other with nothing between them. A block is found only through its
// Loc (segment, offset, length, CRC-32C), which its Meta row holds; the
// files carry no header, index or framing of their own (docs/store.md,
// "Segments").
//
// Write appends to the active segment (the highest-numbered) and returns
// once the bytes are durable; the store commits the blocks' rows after it,
// so a crash between the two leaves bytes no row references, which Recover
// cuts at the next open. Reads check each block's CRC. Safe for concurrent
// use: Writes (and Rotate, Remove, Recover) are serialised with each other,
// Reads run beside them and each other.
type Segments struct {
	dir      string
	maxBytes int64

	// wmu serialises Write, Recover, Rotate, Remove and Close; it guards
	// active, next, rotate, wrote.
	wmu    sync.Mutex
	active *segFile // the segment Write appends to; nil: none yet
	next   uint32   // the number of the next new segment
	rotate bool     // the next Write starts a new segment
	wrote  bool     // a Write has run (Recover then refuses)

	// mu guards files and closed; Reads take it shared.
	mu     sync.RWMutex
	files  map[uint32]*segFile
	closed bool

	stats segStats
}

// segFile is one open segment. size is its durable length: Reads see the
// bytes below it, Write raises it after the fdatasync.
type segFile struct {
	seg  uint32
	f    *os.File
	size atomic.Int64
}

type segStats struct {
	writes, bytesWritten, syncs, reads, bytesRead, readErrors atomic.Int64
}

// SegmentStats are the segments' counters since OpenSegments, for
// operators (the store exports them to /metrics).
type SegmentStats struct {
	// Writes is the Write calls that returned nil; BytesWritten their
	// blocks' bytes.
	Writes, BytesWritten int64
	// Syncs is the fdatasyncs of segments and fsyncs of the folder.
	Syncs int64
	// Reads is the Read calls that returned a block, BytesRead its bytes;
	// ReadErrors those that failed (a damaged or missing block among them).
	Reads, BytesRead, ReadErrors int64
}

// SegmentName returns the file name of segment seg.
func SegmentName(seg uint32) string { return fmt.Sprintf("%08d.seg", seg) }

// parseSegmentName returns the segment of a file name SegmentName gives.
func parseSegmentName(name string) (uint32, bool) {
	digits, ok := strings.CutSuffix(name, ".seg")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || n == 0 || SegmentName(uint32(n)) != name {
		return 0, false
	}
	return uint32(n), true
}

// OpenSegments opens the segments in dir, creating the folder (0700, its
// parent fsynced) when it does not exist. Each segment is opened; its
// length is its file's. maxBytes (0: DefaultSegmentBytes) is the size past
// which Write starts a new segment rather than append a block (a block
// larger than it gets a segment of its own). Files in dir not named as
// segments are left alone. The store calls Recover next, before any Write.
func OpenSegments(dir string, maxBytes int64) (*Segments, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("sealed: segments: maxBytes %d", maxBytes)
	}
	if maxBytes == 0 {
		maxBytes = DefaultSegmentBytes
	}
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, fmt.Errorf("sealed: segments: %w", err)
		}
	case !errors.Is(err, os.ErrExist):
		return nil, fmt.Errorf("sealed: segments: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sealed: segments: %w", err)
	}
	s := &Segments{dir: dir, maxBytes: maxBytes, next: 1, files: map[uint32]*segFile{}}
	for _, e := range ents {
		seg, ok := parseSegmentName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			s.closeFiles()
			return nil, fmt.Errorf("sealed: segments: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			s.closeFiles()
			return nil, fmt.Errorf("sealed: segments: %w", err)
		}
		sf := &segFile{seg: seg, f: f}
		sf.size.Store(fi.Size())
		s.files[seg] = sf
		if s.active == nil || seg > s.active.seg {
			s.active = sf
		}
	}
	if s.active != nil {
		s.next = s.active.seg + 1 // 0 after the last number: create refuses
	}
	return s, nil
}

// Recover makes the segments what the store's rows reference: ends holds,
// for each segment a row references, the end of its referenced bytes
// (Loc.End's maximum). A segment not in ends is removed; one longer than
// its end is truncated to it and fsynced; the folder is fsynced after. A
// segment shorter than its end, or missing, is an error naming it (bytes
// a committed row references are gone), and nothing is changed. Called
// once, after OpenSegments and before any Write.
func (s *Segments) Recover(ends map[uint32]int64) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wrote {
		return errors.New("sealed: segments: Recover after a Write")
	}
	s.mu.RLock()
	closed := s.closed
	var bad []string
	for seg, end := range ends {
		sf := s.files[seg]
		switch {
		case sf == nil:
			bad = append(bad, fmt.Sprintf("%s missing (referenced up to byte %d)", SegmentName(seg), end))
		case end < 0 || end > sf.size.Load():
			bad = append(bad, fmt.Sprintf("%s is %d bytes, referenced up to byte %d", SegmentName(seg), sf.size.Load(), end))
		}
	}
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("sealed: segments in %s: referenced bytes missing: %s", s.dir, strings.Join(bad, "; "))
	}
	changed := false
	for _, seg := range s.segs() {
		sf := s.file(seg)
		end, ok := ends[seg]
		switch {
		case !ok:
			s.mu.Lock()
			delete(s.files, seg)
			s.mu.Unlock()
			sf.f.Close()
			if err := os.Remove(sf.f.Name()); err != nil {
				return fmt.Errorf("sealed: segments: removing unreferenced %s: %w", SegmentName(seg), err)
			}
			if s.active == sf {
				s.active = nil
			}
			changed = true
		case end < sf.size.Load():
			if err := sf.f.Truncate(end); err != nil {
				return fmt.Errorf("sealed: segments: cutting %s to %d bytes: %w", SegmentName(seg), end, err)
			}
			if err := s.sync(sf.f); err != nil {
				return fmt.Errorf("sealed: segments: %s: %w", SegmentName(seg), err)
			}
			sf.size.Store(end)
			changed = true
		}
	}
	if s.active == nil {
		if segs := s.segs(); len(segs) > 0 {
			s.active = s.file(segs[len(segs)-1])
		}
	}
	if changed {
		if err := s.syncDir(); err != nil {
			return fmt.Errorf("sealed: segments: %w", err)
		}
	}
	return nil
}

// Write appends blocks to the active segment, in order, and returns where
// each is. A block goes to a new segment instead when the active one would
// pass maxBytes with it (and is not empty) or after Rotate; a new segment's
// creation fsyncs the folder. Each segment written is fdatasynced once,
// after its blocks: the blocks are durable when Write returns nil. On an
// error no Loc is returned, the segments are cut back (best effort) to
// where they were, and the next Write starts a new segment (a segment
// whose write or fdatasync failed is not trusted to take more). A block
// must not be empty. Serialised with other Writes; safe beside Reads.
func (s *Segments) Write(blocks [][]byte) ([]Loc, error) {
	for i, b := range blocks {
		if len(b) == 0 || int64(len(b)) > math.MaxUint32 {
			return nil, fmt.Errorf("sealed: segments: block %d of a Write is %d bytes", i, len(b))
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return nil, errClosed
	}
	s.wrote = true
	type span struct {
		sf         *segFile
		start, end int64
	}
	var spans []span
	locs := make([]Loc, len(blocks))
	fail := func(err error) ([]Loc, error) {
		for _, sp := range spans {
			sp.sf.f.Truncate(sp.start) // best effort: the bytes are past the durable size and no Loc names them
		}
		s.rotate = true
		return nil, err
	}
	for i, b := range blocks {
		n := int64(len(b))
		var sp *span
		if len(spans) > 0 {
			sp = &spans[len(spans)-1]
		}
		switch {
		case sp != nil && (sp.end == 0 || sp.end+n <= s.maxBytes):
		case sp == nil && s.active != nil && !s.rotate &&
			(s.active.size.Load() == 0 || s.active.size.Load()+n <= s.maxBytes):
			spans = append(spans, span{s.active, s.active.size.Load(), s.active.size.Load()})
			sp = &spans[len(spans)-1]
		default:
			sf, err := s.create()
			if err != nil {
				return fail(err)
			}
			spans = append(spans, span{sf, 0, 0})
			sp = &spans[len(spans)-1]
		}
		if _, err := sp.sf.f.WriteAt(b, sp.end); err != nil {
			return fail(fmt.Errorf("sealed: segments: writing %s at %d: %w", SegmentName(sp.sf.seg), sp.end, err))
		}
		locs[i] = Loc{Seg: sp.sf.seg, Off: sp.end, Len: uint32(n), CRC: crc32.Checksum(b, castagnoli)}
		sp.end += n
	}
	for _, sp := range spans {
		if err := s.sync(sp.sf.f); err != nil {
			return fail(fmt.Errorf("sealed: segments: %s: %w", SegmentName(sp.sf.seg), err))
		}
	}
	var bytes int64
	for _, sp := range spans {
		sp.sf.size.Store(sp.end)
		bytes += sp.end - sp.start
	}
	s.stats.writes.Add(1)
	s.stats.bytesWritten.Add(bytes)
	return locs, nil
}

// create starts a new segment and makes it the active one; the folder is
// fsynced before it is used. Called with wmu held.
func (s *Segments) create() (*segFile, error) {
	if s.next == 0 {
		return nil, errors.New("sealed: segments: out of segment numbers")
	}
	seg := s.next
	path := filepath.Join(s.dir, SegmentName(seg))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sealed: segments: %w", err)
	}
	if err := s.syncDir(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("sealed: segments: creating %s: %w", SegmentName(seg), err)
	}
	s.next++
	sf := &segFile{seg: seg, f: f}
	s.mu.Lock()
	s.files[seg] = sf
	s.mu.Unlock()
	s.active, s.rotate = sf, false
	return sf, nil
}

// Read reads the block at loc into buf (grown when shorter than loc.Len)
// and returns it, after checking its CRC. A CRC mismatch, a segment that
// does not exist (or was removed) and a range outside the segment's
// durable bytes are errors naming the segment and offset; a Loc read from
// a damaged row is never a panic, nor an allocation larger than the
// segment. Safe for concurrent use.
func (s *Segments) Read(loc Loc, buf []byte) ([]byte, error) {
	b, err := s.read(loc, buf)
	if err != nil {
		s.stats.readErrors.Add(1)
		return nil, err
	}
	s.stats.reads.Add(1)
	s.stats.bytesRead.Add(int64(loc.Len))
	return b, nil
}

func (s *Segments) read(loc Loc, buf []byte) ([]byte, error) {
	where := func() string { return fmt.Sprintf("%s at %d (%d bytes)", SegmentName(loc.Seg), loc.Off, loc.Len) }
	s.mu.RLock()
	sf, closed := s.files[loc.Seg], s.closed
	s.mu.RUnlock()
	switch {
	case closed:
		return nil, errClosed
	case sf == nil:
		return nil, fmt.Errorf("sealed: block in %s: no such segment", where())
	case loc.Len == 0 || loc.Off < 0 || loc.Off > sf.size.Load()-int64(loc.Len):
		return nil, fmt.Errorf("sealed: block in %s: outside the segment's %d bytes", where(), sf.size.Load())
	}
	if cap(buf) < int(loc.Len) {
		buf = make([]byte, loc.Len)
	}
	buf = buf[:loc.Len]
	// A Remove may close the file under us; os.File then fails the read
	// (ErrClosed) rather than read another file's bytes.
	if _, err := sf.f.ReadAt(buf, loc.Off); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return nil, fmt.Errorf("sealed: block in %s: segment removed", where())
		}
		return nil, fmt.Errorf("sealed: block in %s: %w", where(), err)
	}
	if c := crc32.Checksum(buf, castagnoli); c != loc.CRC {
		return nil, fmt.Errorf("sealed: block in %s: damaged: CRC-32C %08x, want %08x", where(), c, loc.CRC)
	}
	return buf, nil
}

// Rotate makes the next Write start a new segment, unless the active one is
// empty: what copying an old segment's live blocks wants, so that the old
// one can then be removed whole.
func (s *Segments) Rotate() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.isClosed() {
		return errClosed
	}
	if s.active != nil && s.active.size.Load() > 0 {
		s.rotate = true
	}
	return nil
}

// Remove closes and removes segment seg and fsyncs the folder; Reads of it
// fail from then on. The active segment (the one the next Write would
// append to) cannot be removed: Rotate first.
func (s *Segments) Remove(seg uint32) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	sf := s.file(seg)
	switch {
	case s.isClosed():
		return errClosed
	case sf == nil:
		return fmt.Errorf("sealed: segments: removing %s: no such segment", SegmentName(seg))
	case sf == s.active && !s.rotate:
		return fmt.Errorf("sealed: segments: removing %s: it is the active segment", SegmentName(seg))
	}
	s.mu.Lock()
	delete(s.files, seg)
	s.mu.Unlock()
	if sf == s.active {
		s.active = nil
	}
	sf.f.Close()
	if err := os.Remove(sf.f.Name()); err != nil {
		return fmt.Errorf("sealed: segments: removing %s: %w", SegmentName(seg), err)
	}
	if err := s.syncDir(); err != nil {
		return fmt.Errorf("sealed: segments: removing %s: %w", SegmentName(seg), err)
	}
	return nil
}

// Sizes returns each segment's durable length in bytes: Recover's work
// done, the bytes Writes have returned.
func (s *Segments) Sizes() map[uint32]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[uint32]int64, len(s.files))
	for seg, sf := range s.files {
		m[seg] = sf.size.Load()
	}
	return m
}

// Stats returns the counters.
func (s *Segments) Stats() SegmentStats {
	return SegmentStats{
		Writes: s.stats.writes.Load(), BytesWritten: s.stats.bytesWritten.Load(), Syncs: s.stats.syncs.Load(),
		Reads: s.stats.reads.Load(), BytesRead: s.stats.bytesRead.Load(), ReadErrors: s.stats.readErrors.Load(),
	}
}

// Close closes the segment files; every method fails after it. Reads in
// flight fail or complete.
func (s *Segments) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	return s.closeFiles()
}

var errClosed = errors.New("sealed: segments closed")

func (s *Segments) closeFiles() error {
	var errs []error
	for _, sf := range s.files {
		errs = append(errs, sf.f.Close())
	}
	return errors.Join(errs...)
}

func (s *Segments) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

func (s *Segments) file(seg uint32) *segFile {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.files[seg]
}

// segs returns the segments' numbers in order.
func (s *Segments) segs() []uint32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	segs := make([]uint32, 0, len(s.files))
	for seg := range s.files {
		segs = append(segs, seg)
	}
	slices.Sort(segs)
	return segs
}

func (s *Segments) sync(f *os.File) error {
	s.stats.syncs.Add(1)
	return atomicfile.Datasync(f)
}

func (s *Segments) syncDir() error {
	s.stats.syncs.Add(1)
	return syncDir(s.dir)
}

// syncDir fsyncs a folder, making the creation and removal of its entries
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
