package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"runtime"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// blockSink is where sealed blocks' bytes go: sealed.Segments. Write
// returns once the bytes are durable.
type blockSink interface {
	Write(blocks [][]byte) ([]sealed.Loc, error)
}

// sealWriteBytes is the records' bytes sealWriter gathers before it
// encodes and writes them (about 48 blocks, on every core); a variable so
// that tests make it small.
var sealWriteBytes = 6 << 20

// encoderPool holds one sealed.Encoder a core: Compact's sealWriter and
// an import's sealing (importseal.go), whose two batches may encode at
// once, take them from it.
type encoderPool chan *sealed.Encoder

// newEncoderPool returns a pool of encoders made by newEnc: zstd at
// sealed.Level (sealed.NewEncoder) or an import's S2
// (sealed.NewImportEncoder).
func newEncoderPool(newEnc func() (*sealed.Encoder, error)) (encoderPool, error) {
	n := runtime.GOMAXPROCS(0)
	p := make(encoderPool, n)
	for range n {
		enc, err := newEnc()
		if err != nil {
			return nil, err
		}
		p <- enc
	}
	return p, nil
}

// encode encodes blocks on every core, returning each block's bytes and
// Meta (without ID and Loc).
func (p encoderPool) encode(blocks [][]sealed.Entry) ([][]byte, []sealed.Meta, error) {
	data := make([][]byte, len(blocks))
	metas := make([]sealed.Meta, len(blocks))
	errs := make([]error, len(blocks))
	next := make(chan int, len(blocks))
	for j := range blocks {
		next <- j
	}
	close(next)
	var wg sync.WaitGroup
	for range min(cap(p), len(blocks)) {
		wg.Go(func() {
			enc := <-p
			defer func() { p <- enc }()
			for j := range next {
				data[j], metas[j], errs[j] = enc.Encode(blocks[j])
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return data, metas, nil
}

// sealWriter gathers compactEvents' rows of complete days into sealed
// blocks (docs/store.md, "The sealed tier"): the rows come in eventsOrder,
// so a block is the consecutive rows of one account, region, category and
// UTC day, closed at sealed.BlockBytes. It encodes them on every core,
// writes their bytes to sink and their rows to database db of conn.
type sealWriter struct {
	conn   *sql.Conn
	db     string
	sink   blockSink
	encs   encoderPool
	nextID int64

	cur      []sealed.Entry
	curPart  sealed.Part
	curDay   int64
	curBytes int
	done     [][]sealed.Entry
	pending  int

	// What was sealed, for the copy's check: records, the XOR of their
	// key_hash and the sum of their sequence numbers.
	records int64
	keyXor  uint64
	seqSum  int64
	blocks  int64
	// keys is the XOR of the key_hash of the current block's rows, and
	// of each done block's.
	curKeys  uint64
	doneKeys []uint64
}

func newSealWriter(conn *sql.Conn, db string, sink blockSink, firstID int64) (*sealWriter, error) {
	encs, err := newEncoderPool(sealed.NewEncoder)
	if err != nil {
		return nil, err
	}
	return &sealWriter{conn: conn, db: db, sink: sink, encs: encs, nextID: firstID}, nil
}

// add takes a row whose content (its frame's) it keeps until written.
func (sw *sealWriter) add(ctx context.Context, r *compactRow) error {
	e := sealed.Entry{Seq: r.seq, Received: r.eventTime}
	if r.received.Valid {
		e.Received = r.received.Int64
	}
	rec := &e.Record
	rec.Account, rec.Region, rec.Category = r.account, r.region, audit.Category(r.category)
	rec.EventID, rec.Time = r.eventID, time.Unix(r.eventTime, 0).UTC()
	if err := audit.DecodeBinary(r.content, rec); err != nil {
		return fmt.Errorf("duckdb: seal: record %d: %w", r.seq, err)
	}
	// DecodeBinary keeps the columns' fields for a version 1 frame and
	// takes a version 2's own: they must agree.
	if rec.Account != r.account || rec.Region != r.region || rec.EventID != r.eventID || rec.Time.Unix() != r.eventTime {
		return fmt.Errorf("duckdb: seal: record %d: its frame and its row differ", r.seq)
	}
	rec.Time = time.Unix(r.eventTime, 0).UTC()
	part, day := sealed.Part{Account: r.account, Region: r.region, Category: audit.Category(r.category)}, sealed.Day(r.eventTime)
	if len(sw.cur) > 0 && (part != sw.curPart || day != sw.curDay || sw.curBytes >= sealed.BlockBytes) {
		if err := sw.close(ctx); err != nil {
			return err
		}
	}
	sw.curPart, sw.curDay = part, day
	sw.cur = append(sw.cur, e)
	sw.curBytes += len(r.content)
	sw.curKeys ^= r.keyHash
	sw.records++
	sw.keyXor ^= r.keyHash
	sw.seqSum += r.seq
	return nil
}

func (sw *sealWriter) close(ctx context.Context) error {
	if len(sw.cur) == 0 {
		return nil
	}
	sw.done = append(sw.done, sw.cur)
	sw.doneKeys = append(sw.doneKeys, sw.curKeys)
	sw.pending += sw.curBytes
	sw.cur, sw.curBytes, sw.curKeys = nil, 0, 0
	if sw.pending >= sealWriteBytes {
		return sw.write(ctx)
	}
	return nil
}

func (sw *sealWriter) finish(ctx context.Context) error {
	if err := sw.close(ctx); err != nil {
		return err
	}
	return sw.write(ctx)
}

// write encodes the closed blocks on every core, writes their bytes to
// the sink (durable when it returns) and their rows to the database.
func (sw *sealWriter) write(ctx context.Context) error {
	if len(sw.done) == 0 {
		return nil
	}
	data, metas, err := sw.encs.encode(sw.done)
	if err != nil {
		return fmt.Errorf("duckdb: seal: %w", err)
	}
	rows := make([]sealedRow, len(metas))
	for j := range metas {
		rows[j] = sealedRow{m: metas[j], keyXor: sw.doneKeys[j]}
	}
	locs, err := sw.sink.Write(data)
	if err != nil {
		return fmt.Errorf("duckdb: seal: %w", err)
	}
	for j := range rows {
		rows[j].m.ID, rows[j].m.Loc = sw.nextID, locs[j]
		sw.nextID++
	}
	if err := appendSealed(sw.conn, sw.db, rows); err != nil {
		return fmt.Errorf("duckdb: seal: %w", err)
	}
	sw.blocks += int64(len(rows))
	sw.done, sw.doneKeys, sw.pending = sw.done[:0], sw.doneKeys[:0], 0
	return ctx.Err()
}

// sealPlan asks Compact to seal the records of the UTC days before
// before (sealed.Day numbers) into sink.
type sealPlan struct {
	sink   blockSink
	before int64
}

// sameRecords checks that the copy holds every record of src.events,
// with its key and sequence number: in dst.events, or sealed by sw (nil:
// none sealed).
func sameRecords(ctx context.Context, conn *sql.Conn, sw *sealWriter) error {
	const check = `SELECT count(*), coalesce(bit_xor(key_hash), 0), coalesce(sum(seq), 0)::HUGEINT::VARCHAR FROM `
	var (
		n1, n2 int64
		x1, x2 uint64
		s1, s2 string
	)
	if err := conn.QueryRowContext(ctx, check+"src.events").Scan(&n1, &x1, &s1); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if err := conn.QueryRowContext(ctx, check+"dst.events").Scan(&n2, &x2, &s2); err != nil {
		return fmt.Errorf("duckdb: compact: %w", err)
	}
	if sw != nil {
		n2 += sw.records
		x2 ^= sw.keyXor
		var sum2 big.Int
		sum2.SetString(s2, 10)
		sum2.Add(&sum2, big.NewInt(sw.seqSum))
		s2 = sum2.String()
	}
	if n1 != n2 || x1 != x2 || s1 != s2 {
		return fmt.Errorf("duckdb: compact: events: copied or sealed %d records (%x, %s) of %d (%x, %s)", n2, x2, s2, n1, x1, s1)
	}
	return nil
}
