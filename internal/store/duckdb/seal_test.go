package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"hash/crc32"
	"sync"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// memSink keeps sealed blocks in memory, one segment.
type memSink struct {
	mu     sync.Mutex
	data   []byte
	writes int
	fail   error
}

func (m *memSink) Write(blocks [][]byte) ([]sealed.Loc, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	m.writes++
	locs := make([]sealed.Loc, len(blocks))
	for i, b := range blocks {
		locs[i] = sealed.Loc{Seg: 1, Off: int64(len(m.data)), Len: uint32(len(b)), CRC: crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))}
		m.data = append(m.data, b...)
	}
	return locs, nil
}

func (m *memSink) read(l sealed.Loc) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.data[l.Off:l.End()])
}

// TestCompactSeals: a compaction with a seal plan moves the records of the
// days before the plan's into sealed blocks, and leaves the others in
// events. Every record is in exactly one of the two, byte for byte, with
// its sequence number; a block is one account, region, category and day;
// the blocks' key_xor add up to the sealed records' keys.
func TestCompactSeals(t *testing.T) {
	ctx := context.Background()
	commitRows, writeBytes, pieceRows, sealBytes := compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes
	compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes = 100, 64<<10, 30, 16<<10
	t.Cleanup(func() {
		compactCommitRows, compactWriteBytes, compactPieceRows, sealWriteBytes = commitRows, writeBytes, pieceRows, sealBytes
	})
	batches := liveFilled()
	st, path := openTemp(t, batches...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// liveFilled's records are of 2025-03 and of 2026-12-01: seal every
	// day before 2026-11-30.
	before := sealed.Day(want[len(want)-1].Record.Time.Unix()) - 1
	sink := &memSink{}
	res, err := compact(ctx, path, Options{}, &sealPlan{sink: sink, before: before})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, n, _, err := loadSealed(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	var hot int64
	if err := db.QueryRow(`SELECT count(*) FROM events`).Scan(&hot); err != nil {
		t.Fatal(err)
	}
	if res.Records != hot {
		t.Errorf("Compact says %d records in events, the table holds %d", res.Records, hot)
	}
	bySeq := map[int64]audit.Record{}
	for _, a := range want {
		bySeq[a.Seq] = a.Record
	}
	dec, err := sealed.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	ids := map[int64]bool{}
	for _, m := range ms {
		if ids[m.ID] {
			t.Fatalf("block id %d twice", m.ID)
		}
		ids[m.ID] = true
		if m.Day >= before {
			t.Errorf("block %d of day %d sealed, the plan says before %d", m.ID, m.Day, before)
		}
		es, err := dec.Decode(sink.read(m.Loc), m)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			w, ok := bySeq[e.Seq]
			if !ok || seen[e.Seq] {
				t.Fatalf("block %d: record %d unknown or sealed twice", m.ID, e.Seq)
			}
			seen[e.Seq] = true
			if !bytes.Equal(w.Raw, e.Record.Raw) || w.EventID != e.Record.EventID || !w.Time.Equal(e.Record.Time) ||
				w.Account != e.Record.Account || w.Region != e.Record.Region || w.EventName != e.Record.EventName {
				t.Fatalf("record %d sealed differs", e.Seq)
			}
			if sealed.Day(w.Time.Unix()) != m.Day || (sealed.Part{Account: w.Account, Region: w.Region, Category: w.Category}) != m.Part {
				t.Fatalf("record %d in block %d of another part or day", e.Seq, m.ID)
			}
		}
	}
	rows, err := db.Query(`SELECT seq, event_time FROM events`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var seq, at int64
		if err := rows.Scan(&seq, &at); err != nil {
			t.Fatal(err)
		}
		if seen[seq] {
			t.Fatalf("record %d both sealed and in events", seq)
		}
		if sealed.Day(at) < before {
			t.Errorf("record %d of day %d left in events", seq, sealed.Day(at))
		}
		seen[seq] = true
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	if len(seen) != len(want) || n+hot != int64(len(want)) {
		t.Fatalf("%d records sealed or hot (%d + %d), want %d", len(seen), n, hot, len(want))
	}
	if n == 0 || hot == 0 || len(ms) < 4 {
		t.Fatalf("%d sealed in %d blocks, %d hot: the test seals nothing or everything", n, len(ms), hot)
	}
	if sink.writes < 2 {
		t.Errorf("%d writes to the sink; the test wants several", sink.writes)
	}
}

// TestCompactSealFailureLeavesTheStore: a sink that fails stops the
// compaction before its rename; the store is as it was.
func TestCompactSealFailureLeavesTheStore(t *testing.T) {
	ctx := context.Background()
	st, path := openTemp(t, liveFilled()...)
	want, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	sink := &memSink{fail: errSinkDown}
	if _, err := compact(ctx, path, Options{}, &sealPlan{sink: sink, before: sealed.Day(want[len(want)-1].Record.Time.Unix())}); err == nil {
		t.Fatal("compact with a failing sink succeeded")
	}
	st, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got, err := st.ReadAppended(ctx, 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d records after a failed seal, want %d", len(got), len(want))
	}
}

var errSinkDown = errorString("the sink is down")

type errorString string

func (e errorString) Error() string { return string(e) }
