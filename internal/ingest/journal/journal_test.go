package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cairn-audit/cairn/internal/atomicfile"
	"github.com/cairn-audit/cairn/internal/audit"
)

func record(i int) audit.Record {
	raw := fmt.Sprintf(`{"eventVersion":"1.08","eventTime":"2026-12-02T15:00:00Z","eventSource":"s3.amazonaws.com","eventName":"GetObject","eventID":"id-%d","recipientAccountId":"111111111111"}`, i)
	return audit.Record{
		Raw: []byte(raw), Account: "111111111111", Region: "us-east-1", EventID: fmt.Sprintf("id-%d", i),
		Time: time.Date(2026, 12, 2, 15, 0, i%60, 0, time.UTC), EventName: "GetObject", EventSource: "s3.amazonaws.com",
		ReadOnly: audit.True, Username: "alice", AccessKeyID: "AKIAALICE00000000001", Category: audit.CategoryData,
		Resources: []audit.Resource{{Type: "AWS::S3::Object", ARN: fmt.Sprintf("arn:aws:s3:::b/k%d", i)}, {Type: "AWS::S3::Bucket", Name: "b", ARN: "arn:aws:s3:::b"}},
	}
}

func records(from, n int) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = record(from + i)
	}
	return out
}

// replayAll opens dir and replays it, returning the records handed over.
func replayAll(t *testing.T, dir string) ([]audit.Record, ReplayStats) {
	t.Helper()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var got []audit.Record
	st, err := j.Replay(7, func(rs []audit.Record) error {
		if len(rs) > 7 {
			t.Errorf("Replay handed %d records; want at most 7", len(rs))
		}
		got = append(got, rs...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	return got, st
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// written returns the segment at path up to the end of its frames,
// without the zeros it was created with after them.
func written(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, n, torn, err := readSegment(path)
	if err != nil || torn != 0 {
		t.Fatalf("readSegment(%s): %d torn bytes, %v", path, torn, err)
	}
	if end := len(magic) + int(n); len(b) > end && allZero(b[end:]) {
		b = b[:end]
	}
	return b
}

// copyDir copies the segment files of dir to a new directory: the
// journal as a crash would leave it.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	for _, f := range segFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, filepath.Base(f)), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestRecordsRoundTrip(t *testing.T) {
	for _, rec := range []audit.Record{
		record(1),
		{Raw: []byte("{}")}, // zero time, no resources
		{Raw: []byte(`{"x":1}`), Account: "a", Time: time.Unix(-62135596800, 999999999).UTC(), ReadOnly: audit.False, Category: audit.CategoryOther},
	} {
		got, err := decodeRecord(encodeRecord(nil, &rec))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(rec, got); diff != "" {
			t.Errorf("decode(encode(r)) differs (-want +got):\n%s", diff)
		}
	}
}

// Records appended and not marked done are replayed by the next Open, in
// order and exactly as appended; the replay deletes their segments.
func TestAppendedRecordsAreReplayed(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := records(0, 50)
	for i := 0; i < 50; i += 10 {
		if _, _, err := j.Append(want[i : i+10]); err != nil {
			t.Fatal(err)
		}
	}
	// No Close: a crash.
	got, st := replayAll(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed records differ (-want +got):\n%s", diff)
	}
	if st.Segments != 1 || st.Records != 50 || st.Torn != 0 {
		t.Errorf("stats = %+v; want 1 segment, 50 records, none torn", st)
	}
	if f := segFiles(t, dir); len(f) != 0 {
		t.Errorf("segments after replay: %v; want none", f)
	}
	if got, _ := replayAll(t, dir); len(got) != 0 {
		t.Errorf("second replay handed %d records; want 0", len(got))
	}
}

// A segment cut anywhere inside its last frame (a crash mid-write) replays
// every whole frame before it and ignores the rest.
func TestTornTailIsIgnored(t *testing.T) {
	src := t.TempDir()
	j, err := Open(src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := records(0, 3)
	if _, _, err := j.Append(want[:2]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Append(want[2:]); err != nil {
		t.Fatal(err)
	}
	files := segFiles(t, src)
	full := written(t, files[0])
	last := len(appendFrame(nil, encodeRecord(nil, &want[2])))
	for cut := len(full) - last; cut < len(full); cut++ {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		got, st := replayAll(t, dir)
		if diff := cmp.Diff(want[:2], got); diff != "" {
			t.Fatalf("cut at %d: replayed records differ (-want +got):\n%s", cut, diff)
		}
		if torn := int64(cut - (len(full) - last)); st.TornBytes != torn || (torn > 0) != (st.Torn == 1) {
			t.Errorf("cut at %d: stats = %+v; want %d torn bytes", cut, st, torn)
		}
	}
	// A tail of zeros (the rest of a segment as create fills it) is the
	// segment's clean end; a frame cut short before it is torn.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), append(bytes.Clone(full), make([]byte, 64)...), 0o600)
	if got, st := replayAll(t, dir); len(got) != 3 || st.Torn != 0 || st.TornBytes != 0 {
		t.Errorf("zero tail: %d records, stats %+v; want 3 records and no torn tail", len(got), st)
	}
	for _, cut := range []int{len(full) - last + 3, len(full) - last + headerLen + 1, len(full) - 1} {
		if allZero(full[cut:]) {
			continue // as written
		}
		b := append(bytes.Clone(full[:cut]), make([]byte, len(full)-cut+64)...)
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), b, 0o600)
		got, st := replayAll(t, dir)
		if diff := cmp.Diff(want[:2], got); diff != "" {
			t.Fatalf("zeros from %d: replayed records differ (-want +got):\n%s", cut, diff)
		}
		if st.Torn != 1 || st.TornBytes != int64(last+64) {
			t.Errorf("zeros from %d: stats = %+v; want a torn segment of %d bytes", cut, st, last+64)
		}
	}
	// A segment created but whose magic was not written holds nothing.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), []byte(magic[:3]), 0o600)
	if got, _ := replayAll(t, dir); len(got) != 0 {
		t.Errorf("partial magic: %d records replayed; want 0", len(got))
	}
}

// A byte flipped anywhere in a frame fails its CRC: the frames before it
// are replayed, it and the rest are not.
func TestCorruptFrameEndsTheSegment(t *testing.T) {
	src := t.TempDir()
	j, _ := Open(src, Options{})
	want := records(0, 3)
	// One frame each (a call's records share frames).
	for i := range want {
		if _, _, err := j.Append(want[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	files := segFiles(t, src)
	full := written(t, files[0])
	first := len(magic) + len(appendFrame(nil, encodeRecord(nil, &want[0])))
	second := len(appendFrame(nil, encodeRecord(nil, &want[1])))
	for off := first; off < first+second; off++ {
		b := bytes.Clone(full)
		b[off] ^= 0x40
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), b, 0o600)
		got, st := replayAll(t, dir)
		if diff := cmp.Diff(want[:1], got); diff != "" {
			t.Fatalf("byte %d flipped: replayed records differ (-want +got):\n%s", off, diff)
		}
		if st.Torn != 1 {
			t.Errorf("byte %d flipped: stats = %+v; want a torn segment", off, st)
		}
	}
	// A file that is not a segment is an error, not an empty journal.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), []byte("not a journal segment"), 0o600)
	j, _ = Open(dir, Options{})
	if _, err := j.Replay(10, func([]audit.Record) error { return nil }); err == nil {
		t.Error("Replay of a foreign file succeeded; want an error")
	}
}

// Segments are sealed at their size and deleted once every record in
// them is done; the active one stays until Close.
func TestSegmentsAreDeletedOnceStored(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{SegmentSize: 2000})
	if err != nil {
		t.Fatal(err)
	}
	type put struct {
		seg uint64
		n   int
	}
	var puts []put
	for i := range 20 {
		seg, _, err := j.Append(records(i*3, 3))
		if err != nil {
			t.Fatal(err)
		}
		puts = append(puts, put{seg, 3})
	}
	segs := map[uint64]bool{}
	for _, p := range puts {
		segs[p.seg] = true
	}
	if len(segs) < 3 {
		t.Fatalf("%d segments for 20 appends of ~1.2 KB with SegmentSize 2000; want several", len(segs))
	}
	if n := len(segFiles(t, dir)); n != len(segs) {
		t.Fatalf("%d segment files; want %d", n, len(segs))
	}
	// All but the last append done: every sealed segment but the one
	// holding the last append goes.
	for _, p := range puts[:len(puts)-1] {
		j.Done(p.seg, p.n)
	}
	lastSeg := puts[len(puts)-1].seg
	files := segFiles(t, dir)
	if len(files) != 1 || filepath.Base(files[0]) != fmt.Sprintf("%020d.seg", lastSeg) {
		t.Errorf("segment files = %v; want only segment %d", files, lastSeg)
	}
	// Its records, not done, are replayed after a crash.
	got, _ := replayAll(t, copyDir(t, dir))
	if n := len(got); n < 3 {
		t.Errorf("replayed %d records; want the last append's 3 (at least)", n)
	}
	j.Done(lastSeg, 3)
	j.Close()
	if f := segFiles(t, dir); len(f) != 0 {
		t.Errorf("segment files after everything is done and closed: %v; want none", f)
	}
}

// A replay whose store fails keeps the segments; the next replay hands
// every record again (the store drops the ones it took the first time).
func TestReplayIsRepeatedUntilItSucceeds(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, Options{})
	want := records(0, 20)
	j.Append(want)
	j2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = j2.Replay(5, func(rs []audit.Record) error {
		if calls++; calls == 3 {
			return errors.New("disk on fire")
		}
		return nil
	})
	if err == nil {
		t.Fatal("Replay succeeded although the store failed")
	}
	if n := len(segFiles(t, dir)); n != 1 {
		t.Fatalf("%d segment files after a failed replay; want 1", n)
	}
	got, _ := replayAll(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("second replay differs (-want +got):\n%s", diff)
	}
}

// Appends after Open go to a new segment, after the ones left for Replay.
func TestAppendsFollowOldSegments(t *testing.T) {
	dir := t.TempDir()
	j, _ := Open(dir, Options{})
	j.Append(records(0, 2))
	j2, _ := Open(dir, Options{})
	seg, _, err := j2.Append(records(2, 2))
	if err != nil {
		t.Fatal(err)
	}
	if seg != 2 {
		t.Errorf("new segment = %d; want 2", seg)
	}
	var got []audit.Record
	if _, err := j2.Replay(10, func(rs []audit.Record) error { got = append(got, rs...); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(records(0, 2), got); diff != "" {
		t.Errorf("replay differs (-want +got):\n%s", diff)
	}
	j2.Close()
	if got, _ := replayAll(t, dir); len(got) != 2 {
		t.Errorf("%d records left for the next replay; want the 2 not done", len(got))
	}
}

// FuzzReader feeds arbitrary bytes to the frame reader and the record
// decoder: no panic, no frame beyond MaxFrame, only frames whose CRC
// matches, and records that encode back to a decodable payload.
func FuzzReader(f *testing.F) {
	var seg []byte
	for i := range 3 {
		r := record(i)
		seg = appendFrame(seg, encodeRecord(nil, &r))
	}
	f.Add(seg)
	f.Add(seg[:len(seg)-5])
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Add(appendFrame(nil, []byte{1, 0}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for {
			p, err := r.Next()
			if err == io.EOF {
				if r.Offset() != int64(len(b)) {
					t.Fatalf("EOF at offset %d of %d", r.Offset(), len(b))
				}
				return
			}
			if err != nil {
				if !errors.Is(err, ErrTorn) {
					t.Fatalf("Next: %v; want ErrTorn", err)
				}
				return
			}
			if len(p) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(p))
			}
			rec, err := decodeRecord(p)
			if err != nil {
				continue
			}
			again, err := decodeRecord(encodeRecord(nil, &rec))
			if err != nil {
				t.Fatalf("re-encoded record does not decode: %v", err)
			}
			if diff := cmp.Diff(rec, again); diff != "" {
				t.Fatalf("record changed through encode/decode (-first +second):\n%s", diff)
			}
		}
	})
}

// Appends from several goroutines at once (the pipeline's group leaders
// and its writer journaling queued records) are written one after the
// other: every record is replayed, none torn.
func TestConcurrentAppendsAreAllReplayed(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{SegmentSize: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	const writers, calls, per = 4, 25, 8
	done := make(chan error, writers)
	for w := range writers {
		go func() {
			for c := range calls {
				if _, _, err := j.Append(records((w*calls+c)*per, per)); err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range writers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// No Close: a crash.
	got, st := replayAll(t, dir)
	if st.Torn != 0 || len(got) != writers*calls*per {
		t.Fatalf("replayed %d records of %d, %d segments torn; want all, none", len(got), writers*calls*per, st.Torn)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.EventID] = true
	}
	if len(seen) != writers*calls*per {
		t.Errorf("%d distinct records replayed; want %d", len(seen), writers*calls*per)
	}
}

// TestLargeRecordsAreReplayed: nothing acknowledged is lost for its size.
// Incompressible records whose frame S2 could make larger than MaxFrame
// (which Next takes for damage) are framed so that it cannot: a compressed
// frame is closed before it could, and a record too large to be bound in
// one alone gets a frame of its own, uncompressed; one larger than a frame
// even so is refused, nothing of its call written.
func TestLargeRecordsAreReplayed(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		r := rand.New(rand.NewPCG(uint64(n), 1))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	want := records(0, 3)
	want[0].Raw = random(900 << 10)
	// The first two together make exactly MaxFrame of plain payload: S2
	// adds bytes to incompressible ones, so compressed together they
	// would make a frame past MaxFrame.
	plain := func() int {
		n := 1
		for _, r := range want[:2] {
			enc := audit.AppendBinary(nil, &r)
			n += len(binary.AppendUvarint(nil, uint64(len(enc)))) + len(enc)
		}
		return n
	}
	want[1].Raw = random(MaxFrame - 1<<20)
	for plain() != MaxFrame {
		want[1].Raw = random(len(want[1].Raw) + MaxFrame - plain())
	}
	want[2].Raw = random(300 << 10)
	if _, _, err := j.Append(want); err != nil {
		t.Fatal(err)
	}
	tooLarge := records(3, 1)
	tooLarge[0].Raw = random(MaxFrame)
	if _, _, err := j.Append(tooLarge); err == nil {
		t.Error("a record larger than a frame was appended")
	}
	got, st := replayAll(t, dir)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replayed records differ (-want +got):\n%.2000s", diff)
	}
	if st.Torn != 0 {
		t.Errorf("stats = %+v; want none torn", st)
	}
}

// syncWatch replaces j's sync: each sync notes the records on disk when it
// starts (read back from the segment), and once it has returned they are
// durable. fail makes the n-th sync (from 1) fail instead.
type syncWatch struct {
	t       *testing.T
	mu      sync.Mutex
	syncs   int
	fail    int
	durable map[string]bool
}

func watchSyncs(t *testing.T, j *Journal, fail int) *syncWatch {
	w := &syncWatch{t: t, fail: fail, durable: map[string]bool{}}
	j.sync = func(f *os.File) error {
		recs, _, _, err := readSegment(f.Name())
		if err != nil {
			t.Errorf("reading %s at a sync: %v", f.Name(), err)
		}
		w.mu.Lock()
		w.syncs++
		n := w.syncs
		w.mu.Unlock()
		if n == w.fail {
			return errors.New("injected sync failure")
		}
		if err := atomicfile.Datasync(f); err != nil {
			return err
		}
		w.mu.Lock()
		for _, r := range recs {
			w.durable[r.EventID] = true
		}
		w.mu.Unlock()
		return nil
	}
	return w
}

// check fails the test unless every record of recs is durable.
func (w *syncWatch) check(recs []audit.Record) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range recs {
		if !w.durable[r.EventID] {
			w.t.Errorf("Append returned with record %s not covered by a sync that started after it was written", r.EventID)
		}
	}
}

// An Append returns only once a sync that started after its records were
// written has returned, whatever the concurrency; a failed sync fails the
// Appends it was to cover, and the journal goes on in a new segment.
func TestAppendReturnsAfterItsSync(t *testing.T) {
	dir := t.TempDir()
	j, err := Open(dir, Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := watchSyncs(t, j, 7)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []audit.Record
	failed := 0
	for c := range 4 {
		wg.Go(func() {
			for i := range 25 {
				recs := records((c*25+i)*4, 4)
				_, _, err := j.Append(recs)
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					continue
				}
				w.check(recs)
				mu.Lock()
				acked = append(acked, recs...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed == 0 {
		t.Error("no Append failed; want the one(s) the failed sync was to cover")
	}
	j.Close()
	got, _ := replayAll(t, dir)
	have := map[string]bool{}
	for _, r := range got {
		have[r.EventID] = true
	}
	for _, r := range acked {
		if !have[r.EventID] {
			t.Errorf("acknowledged record %s not replayed", r.EventID)
		}
	}
	t.Logf("%d syncs for 100 appends, %d failed", w.syncs, failed)
}

// TestPreallocate: with Options.Preallocate a segment is created at its
// full size (the zeros after the frames its clean end); without it a
// segment holds what was written. Either replays the same records, with
// no torn tail.
func TestPreallocate(t *testing.T) {
	for _, pre := range []bool{false, true} {
		dir := t.TempDir()
		j, err := Open(dir, Options{SegmentSize: 64 << 10, Preallocate: pre})
		if err != nil {
			t.Fatal(err)
		}
		want := records(0, 3)
		if _, _, err := j.Append(want); err != nil {
			t.Fatal(err)
		}
		files := segFiles(t, dir)
		if len(files) != 1 {
			t.Fatalf("preallocate %v: %d segments; want 1", pre, len(files))
		}
		fi, err := os.Stat(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if full := fi.Size() == 64<<10; full != pre {
			t.Errorf("preallocate %v: the segment is %d bytes (SegmentSize 65536)", pre, fi.Size())
		}
		got, st := replayAll(t, copyDir(t, dir))
		if diff := cmp.Diff(want, got); diff != "" || st.Torn != 0 {
			t.Errorf("preallocate %v: replay stats %+v, records differ (-want +got):\n%s", pre, st, diff)
		}
		j.Close()
	}
}
