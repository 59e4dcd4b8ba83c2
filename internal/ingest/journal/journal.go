// Package journal is the ingest pipeline's write-ahead journal: an
// append-only log of records, fsynced before a commit is acknowledged, that
// the pipeline moves into the store behind the callers' backs.
//
// The journal is a directory of segment files named by a sequence number
// (00000000000000000001.seg, ...). Append writes records to the newest
// segment as CRC-checked frames and fsyncs it; once a segment has reached
// its size it is sealed and a new one starts. With Options.Preallocate a
// segment is created at its full size, zero-filled and fsynced, so that an
// Append overwrites blocks
// already allocated and its fdatasync flushes the data alone, without a
// commit of the file system's journal (which on ext4 also waits for other
// files' data, such as a DuckDB file's row groups); the zeros after the
// last frame are the segment's clean end. Done tells the journal that
// records of a segment are in the store; a sealed segment whose records
// are all in the store is deleted. At start, Replay hands the records of
// the segments left by an earlier run to the store (which drops the ones
// it already holds) and deletes those segments. A frame cut short by a
// crash, or failing its CRC, ends its segment's replay: it was never
// acknowledged (Append had not returned).
//
// Calls of Append (and Close) must not overlap: the pipeline serialises
// them. Done and Segments may be called concurrently with them.
package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

// DefaultSegmentSize is the size at which a segment is sealed.
const DefaultSegmentSize = 8 << 20

const segSuffix = ".seg"

// Options configures a Journal. The zero value works.
type Options struct {
	// SegmentSize is the size past which a segment is sealed and a new
	// one started (default DefaultSegmentSize).
	SegmentSize int64
	// Preallocate creates each segment at SegmentSize, zero-filled and
	// fsynced, so that an Append's fdatasync flushes its data without a
	// commit of the file system's journal (Lake's journal, PutAuditEvents:
	// faster calls in session 27's pairs). It writes every segment twice:
	// the ingest pipeline's journal, whose imports through a server wrote
	// 1.8x the bytes with it and were no faster, does not set it.
	Preallocate bool
}

// Journal is an open journal directory.
type Journal struct {
	dir  string
	opts Options

	// amu serializes Append (and Close): the ingest pipeline's group
	// leaders and its writer (queued records) both append.
	amu  sync.Mutex
	f    *os.File
	size int64
	buf  []byte
	// emu serializes Encode: chunk and payload gather a frame's records
	// and compress them, reused from call to call. Append takes it
	// under amu; the pipeline's group leader calls Encode, then Write,
	// outside amu (one leader at a time, so without another Encode).
	emu     sync.Mutex
	chunk   chunk
	payload []byte

	// sync makes a segment's appended frames durable: datasync (tests
	// count or fail it).
	sync func(*os.File) error

	mu     sync.Mutex
	active uint64              // segment Append writes to; 0 before the first
	next   uint64              // sequence number of the next segment
	old    []uint64            // segments found at Open, for Replay
	segs   map[uint64]*segment // segments written by this Journal
}

// segment counts the records of a segment written by this Journal.
type segment struct {
	written, done int
	sealed        bool
}

// Open opens the journal in dir, creating dir if needed. The segments it
// finds are left for Replay; Append writes to new ones.
func Open(dir string, opts Options) (*Journal, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	old, err := segments(dir)
	if err != nil {
		return nil, err
	}
	j := &Journal{dir: dir, opts: opts, old: old, next: 1, segs: map[uint64]*segment{}, sync: atomicfile.Datasync}
	if len(old) > 0 {
		j.next = old[len(old)-1] + 1
	}
	return j, nil
}

// segments lists the segment numbers in dir, in order.
func segments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

func (j *Journal) path(seg uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d%s", seg, segSuffix))
}

// ReplayStats describes a Replay.
type ReplayStats struct {
	Segments int   // segments read
	Records  int   // records handed to the store
	Bytes    int64 // bytes of valid frames
	// Torn counts the segments whose frames ended in a torn or damaged
	// frame; TornBytes the bytes after their last valid frame (not
	// replayed: never acknowledged, or damaged).
	Torn      int
	TornBytes int64
}

// Replay hands the records of the segments found at Open to store, in
// order, at most batch records a call; once every call has succeeded it
// deletes those segments. store must be idempotent (the store drops
// records it already holds): a record may be handed again after a crash
// during or after its first append. Replay stops at store's first error,
// deleting nothing; the segments stay for the next try.
func (j *Journal) Replay(batch int, store func([]audit.Record) error) (ReplayStats, error) {
	var st ReplayStats
	if batch <= 0 {
		batch = 1000
	}
	j.mu.Lock()
	old := j.old
	j.mu.Unlock()
	for _, seg := range old {
		recs, n, torn, err := readSegment(j.path(seg))
		if err != nil {
			return st, err
		}
		st.Segments++
		st.Bytes += n
		if torn > 0 {
			st.Torn++
			st.TornBytes += torn
		}
		for len(recs) > 0 {
			k := min(batch, len(recs))
			if err := store(recs[:k]); err != nil {
				return st, err
			}
			st.Records += k
			recs = recs[k:]
		}
	}
	for _, seg := range old {
		if err := os.Remove(j.path(seg)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return st, fmt.Errorf("journal: %w", err)
		}
	}
	j.mu.Lock()
	j.old = nil
	j.mu.Unlock()
	return st, syncDir(j.dir)
}

// readSegment reads the records of the segment at path: n bytes of valid
// frames, then torn bytes that are not.
func readSegment(path string) (recs []audit.Record, n, torn int64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("journal: %w", err)
	}
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		if len(b) < len(magic) && strings.HasPrefix(magic, string(b)) {
			// Created, its magic not (all) written: a crash, nothing in it.
			return nil, 0, int64(len(b)), nil
		}
		return nil, 0, 0, fmt.Errorf("journal: %s is not a journal segment", path)
	}
	body := b[len(magic):]
	r := NewReader(bytes.NewReader(body))
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil { // ErrTorn: the end of what was acknowledged
			if rest := body[r.Offset():]; !allZero(rest) {
				torn = int64(len(rest))
			} // else the zeros a segment is created with: its clean end
			break
		}
		if recs, err = decodeFrame(p, recs); err != nil {
			return nil, 0, 0, fmt.Errorf("journal: %s at offset %d: %w", path, r.Offset(), err)
		}
	}
	return recs, r.Offset(), torn, nil
}

// allZero reports whether b holds zeros only.
func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Append writes records to the journal and fsyncs it, returning the
// segment that holds them (for Done) and the bytes written. Concurrent
// calls are written one after the other. On an error
// the records may or may not be in the journal (a later Replay may find
// them); the segment is sealed and the next Append starts a new one.
// It is Encode and Write in one call.
func (j *Journal) Append(records []audit.Record) (seg uint64, n int, err error) {
	j.amu.Lock()
	defer j.amu.Unlock()
	j.buf, err = j.Encode(j.buf[:0], records)
	if err != nil {
		return 0, 0, err
	}
	return j.write(j.buf, len(records))
}

// Encode appends the frames of records to dst, as Append writes them,
// for Write. It writes nothing; a record too large for a frame is an
// error (and dst is then to be dropped). Calls are serialized (they
// share the scratch), and one may run while a Write is under way.
func (j *Journal) Encode(dst []byte, records []audit.Record) ([]byte, error) {
	j.emu.Lock()
	defer j.emu.Unlock()
	c := &j.chunk
	flush := func() {
		if len(c.plain) > 0 {
			j.payload = c.payload(j.payload[:0])
			dst = appendFrame(dst, j.payload)
		}
	}
	for i := range records {
		if c.add(&records[i]) {
			if len(c.plain) >= chunkBytes {
				flush()
			}
			continue
		}
		// The frame with this record could compress past MaxFrame: close
		// it, and give the record a frame of its own, uncompressed, when
		// it cannot be bound in one compressed either.
		flush()
		if c.add(&records[i]) {
			continue
		}
		if 1+len(c.enc) > MaxFrame {
			c.plain = c.plain[:0]
			return dst, fmt.Errorf("journal: record %q of %d bytes is larger than a frame", records[i].EventID, len(c.enc))
		}
		j.payload = append(append(j.payload[:0], payloadV2), c.enc...)
		dst = appendFrame(dst, j.payload)
	}
	flush()
	return dst, nil
}

// Write writes frames made by Encode, which hold n records, and fsyncs
// them, as Append does, returning the segment that holds them (for Done)
// and the bytes written. Calls of Write and Append are written one after
// the other; an error is Append's.
func (j *Journal) Write(frames []byte, n int) (seg uint64, size int, err error) {
	j.amu.Lock()
	defer j.amu.Unlock()
	return j.write(frames, n)
}

// write is Write under amu.
func (j *Journal) write(frames []byte, n int) (seg uint64, size int, err error) {
	if j.f == nil {
		if err := j.create(); err != nil {
			return 0, 0, err
		}
	}
	seg = j.active
	// With Preallocate the segment's blocks are allocated (create):
	// fdatasync writes the frames without the file system's journal,
	// unless they run past SegmentSize and the file grows, which it then
	// also makes durable (as it does every append without Preallocate).
	if _, err = j.f.WriteAt(frames, j.size); err == nil {
		err = j.sync(j.f)
	}
	if err != nil {
		j.seal()
		return 0, 0, fmt.Errorf("journal: %w", err)
	}
	j.size += int64(len(frames))
	j.mu.Lock()
	j.segs[seg].written += n
	j.mu.Unlock()
	if j.size >= j.opts.SegmentSize {
		j.seal()
	}
	return seg, len(frames), nil
}

// create starts a new segment: its magic written, the rest of
// SegmentSize zero-filled, and the file and the directory entry fsynced.
func (j *Journal) create() error {
	j.mu.Lock()
	seg := j.next
	j.next++
	j.mu.Unlock()
	f, err := os.OpenFile(j.path(seg), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err = f.WriteString(magic); err == nil {
		if j.opts.Preallocate {
			err = zeroFill(f, int64(len(magic)), j.opts.SegmentSize)
		}
		if err == nil {
			if err = f.Sync(); err == nil {
				err = syncDir(j.dir)
			}
		}
	}
	if err != nil {
		f.Close()
		os.Remove(j.path(seg))
		return fmt.Errorf("journal: %w", err)
	}
	j.f, j.size = f, int64(len(magic))
	j.mu.Lock()
	j.active = seg
	j.segs[seg] = &segment{}
	j.mu.Unlock()
	return nil
}

// zeros is what zeroFill writes.
var zeros = make([]byte, 1<<20)

// zeroFill writes zeros to f from off up to size.
func zeroFill(f *os.File, off, size int64) error {
	for off < size {
		n := min(size-off, int64(len(zeros)))
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

// seal closes the active segment; it is deleted once its records are
// all in the store.
func (j *Journal) seal() {
	if j.f == nil {
		return
	}
	j.f.Close()
	j.f = nil
	j.mu.Lock()
	defer j.mu.Unlock()
	seg := j.active
	j.active = 0
	if s := j.segs[seg]; s != nil {
		s.sealed = true
		j.collect(seg, s)
	}
}

// Done records that n records of segment seg are in the store.
func (j *Journal) Done(seg uint64, n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if s := j.segs[seg]; s != nil {
		s.done += n
		j.collect(seg, s)
	}
}

// collect deletes seg once it is sealed and every record in it is stored.
// A failed deletion leaves a segment that the next Replay hands to the
// store again (harmlessly: the store drops what it holds).
func (j *Journal) collect(seg uint64, s *segment) {
	if s.sealed && s.done >= s.written {
		delete(j.segs, seg)
		os.Remove(j.path(seg))
	}
}

// Pending returns the number of records written by this Journal and not
// yet reported stored (Done): how far the store is behind the journal.
func (j *Journal) Pending() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for _, s := range j.segs {
		n += max(0, s.written-s.done)
	}
	return n
}

// Segments returns the number of segment files the journal holds.
func (j *Journal) Segments() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.segs) + len(j.old)
}

// Close closes the active segment. Segments with records not yet in the
// store stay for the next Open's Replay; those with all their records
// stored are deleted.
func (j *Journal) Close() error {
	j.amu.Lock()
	defer j.amu.Unlock()
	j.seal()
	return nil
}

// syncDir fsyncs a directory, making its entries durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}
