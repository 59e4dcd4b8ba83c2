package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// An append's rows travel in PostgreSQL's binary COPY format, written by
// the functions below straight from the records (the S2 block compressed
// into the stream's own buffer): pgx's CopyFrom would box every value in
// an interface and look up its encoder, and the rows would be built in
// full before the first byte went out. Instead the events rows are
// encoded by a goroutine while the server takes the batch's keys, and
// streamed to the events COPY as they are made, so that the client's
// work and the server's overlap (docs/scale.md, "Ingest: the client
// beside the server").

// copyHeader opens a binary COPY stream: the signature, no flags, no
// header extension.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

// copyTrailer ends it (a tuple of -1 fields).
var copyTrailer = []byte{0xff, 0xff}

// Element type OIDs of the arrays a posting holds.
const (
	oidInt4 = 23
	oidInt8 = 20
)

func cpTuple(w []byte, fields int) []byte { return binary.BigEndian.AppendUint16(w, uint16(fields)) }

func cpNull(w []byte) []byte { return binary.BigEndian.AppendUint32(w, 0xffffffff) }

func cpString(w []byte, v string) []byte {
	w = binary.BigEndian.AppendUint32(w, uint32(len(v)))
	return append(w, v...)
}

func cpBytes(w, v []byte) []byte {
	w = binary.BigEndian.AppendUint32(w, uint32(len(v)))
	return append(w, v...)
}

// cpNullable is a string column that is NULL when empty.
func cpNullable(w []byte, v string) []byte {
	if v == "" {
		return cpNull(w)
	}
	return cpString(w, v)
}

func cpInt16(w []byte, v int16) []byte {
	return binary.BigEndian.AppendUint16(append(w, 0, 0, 0, 2), uint16(v))
}

func cpInt32(w []byte, v int32) []byte {
	return binary.BigEndian.AppendUint32(append(w, 0, 0, 0, 4), uint32(v))
}

func cpInt64(w []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(w, 0, 0, 0, 8), uint64(v))
}

// cpArrayHead writes the header of a one-dimensional array without NULLs
// of n elements of type oid, each of size bytes.
func cpArrayHead(w []byte, oid uint32, n, size int) []byte {
	w = binary.BigEndian.AppendUint32(w, uint32(20+n*(4+size)))
	w = binary.BigEndian.AppendUint32(w, 1) // dimensions
	w = binary.BigEndian.AppendUint32(w, 0) // no NULLs
	w = binary.BigEndian.AppendUint32(w, oid)
	w = binary.BigEndian.AppendUint32(w, uint32(n))
	return binary.BigEndian.AppendUint32(w, 1) // lower bound
}

func cpInt32s(w []byte, v []int32) []byte {
	w = cpArrayHead(w, oidInt4, len(v), 4)
	for _, x := range v {
		w = cpInt32(w, x)
	}
	return w
}

func cpInt64s(w []byte, v []int64) []byte {
	w = cpArrayHead(w, oidInt8, len(v), 8)
	for _, x := range v {
		w = cpInt64(w, x)
	}
	return w
}

// copySQL is the COPY statement of table's columns in the binary format.
func copySQL(table string, cols []string) string {
	return "COPY " + table + " (" + strings.Join(cols, ", ") + ") FROM STDIN (FORMAT binary)"
}

var (
	copyEvents   = copySQL("events", columns)
	copyPostings = copySQL("event_postings", postingColumns)
	copyKeysSQL  = copySQL("event_keys", []string{"event_id", "account", "received", "batch", "ord"})
)

// copyIn runs a COPY of a binary stream in tx.
func copyIn(ctx context.Context, tx pgx.Tx, sql string, r io.Reader) error {
	_, err := tx.Conn().PgConn().CopyFrom(ctx, r, sql)
	return err
}

// appendEventRow appends the events row of r (the columns of columns,
// the values row gives them) to w.
func (s *Store) appendEventRow(w []byte, r *audit.Record, received, batch int64, ord int32) ([]byte, error) {
	w = cpTuple(w, len(columns))
	w = cpString(w, r.Account)
	w = cpString(w, r.Region)
	w = cpInt16(w, int16(r.Category))
	w = cpInt64(w, r.Time.Unix())
	w = cpString(w, r.EventID)
	w = cpString(w, r.EventName)
	w = cpString(w, r.EventSource)
	w = cpNullable(w, r.Username)
	w = cpNullable(w, r.AccessKeyID)
	w = cpInt16(w, int16(r.ReadOnly))
	w = cpInt64(w, received)
	w = cpInt64(w, batch)
	w = cpInt32(w, ord)
	// raw: the S2 block, compressed in place.
	n := s2.MaxEncodedLen(len(r.Raw))
	if n < 0 {
		return nil, errors.New("a record too large to compress")
	}
	w = slices.Grow(w, 4+n)
	at := len(w)
	block := s.s2d.Encode(w[at+4:at+4+n], r.Raw)
	w = w[:at+4+len(block)]
	if len(block) > 0 && &block[0] != &w[at+4] {
		copy(w[at+4:], block) // not in place (Encode's contract allows it)
	}
	binary.BigEndian.PutUint32(w[at:], uint32(len(block)))
	// fields: the binary encoding of the record without its text.
	noRaw := *r
	noRaw.Raw = nil
	at = len(w)
	w = audit.AppendBinary(append(w, 0, 0, 0, 0), &noRaw)
	binary.BigEndian.PutUint32(w[at:], uint32(len(w)-at-4))
	return cpInt16(w, codecS2), nil
}

// appendPostings appends the event_postings rows of one batch (recs[i]
// has place i in it; see postings) to w.
func appendPostings(w []byte, recs []*audit.Record, batch, received int64) []byte {
	keys, lists := collectPostings(recs)
	for i, k := range keys {
		l := lists[i]
		lo, hi := l.bounds()
		w = cpTuple(w, len(postingColumns))
		w = cpString(w, k.account)
		w = cpString(w, k.region)
		w = cpInt16(w, k.category)
		w = cpInt16(w, k.kind)
		w = cpString(w, k.value)
		w = cpInt64(w, batch)
		w = cpInt64(w, received)
		w = cpInt64(w, lo)
		w = cpInt64(w, hi)
		w = cpInt32s(w, l.ords)
		w = cpInt64s(w, l.times)
		w = cpBytes(w, l.readOnly)
	}
	return w
}

// appendKeys appends the event_keys rows of a batch's keys, the i-th
// with place i, in the order given by order.
func appendKeys(w []byte, accts, ids [][]byte, order []int, received, batch int64) []byte {
	for _, i := range order {
		w = cpTuple(w, 5)
		w = cpBytes(w, ids[i])
		w = cpBytes(w, accts[i])
		w = cpInt64(w, received)
		w = cpInt64(w, batch)
		w = cpInt32(w, int32(i))
	}
	return w
}

// streamChunk is the size of the pieces a row stream hands to the COPY:
// the server starts on the first while the rest are made.
const streamChunk = 128 << 10

// chunks keeps the streams' buffers between appends: fresh ones would be
// zeroed and faulted in by the kernel at every batch.
var chunks = sync.Pool{New: func() any { b := make([]byte, 0, streamChunk+streamChunk/4); return &b }}

func getChunk() []byte { return (*chunks.Get().(*[]byte))[:0] }

func putChunk(b []byte) {
	if cap(b) > 32*streamChunk {
		return // grown by a large record: let it go
	}
	b = b[:0]
	chunks.Put(&b)
}

// A rowStream is the binary COPY of a batch's events rows (record i at
// place i), made by a goroutine as the COPY reads it, and then that
// batch's postings. Close stops the goroutine and waits for it.
type rowStream struct {
	data chan []byte   // the stream's chunks, in order; closed at its end
	quit chan struct{} // closed by Close: stop making rows
	done chan struct{} // closed when the goroutine has returned

	cur, buf []byte // the chunk being read and its whole buffer

	// Set by the goroutine before done is closed.
	postings []byte
	err      error
}

// streamRows starts making the events rows of recs under batch and
// received, then their postings.
func (s *Store) streamRows(recs []*audit.Record, batch, received int64) *rowStream {
	st := &rowStream{data: make(chan []byte, 16), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(st.done)
		ended := false
		defer func() {
			if !ended {
				close(st.data)
			}
		}()
		send := func(w []byte) bool {
			select {
			case st.data <- w:
				return true
			case <-st.quit:
				putChunk(w)
				return false
			}
		}
		w := append(getChunk(), copyHeader...)
		for i, r := range recs {
			var err error
			if w, err = s.appendEventRow(w, r, received, batch, int32(i)); err != nil {
				st.err = err
				putChunk(w)
				return
			}
			if len(w) >= streamChunk {
				if !send(w) {
					return
				}
				w = getChunk()
			}
		}
		if !send(append(w, copyTrailer...)) {
			return
		}
		ended = true
		close(st.data)
		// The postings while the server takes the last rows.
		st.postings = appendPostings(append(getChunk(), copyHeader...), recs, batch, received)
		st.postings = append(st.postings, copyTrailer...)
	}()
	return st
}

// Read gives the stream's next bytes, waiting for the goroutine to make
// them; io.EOF after the trailer (or an error if a row could not be made).
func (st *rowStream) Read(p []byte) (int, error) {
	for len(st.cur) == 0 {
		if st.buf != nil {
			putChunk(st.buf)
			st.buf = nil
		}
		b, ok := <-st.data
		if !ok {
			// (err is set before data is closed)
			if st.err != nil {
				return 0, st.err
			}
			return 0, io.EOF
		}
		st.buf, st.cur = b, b
	}
	n := copy(p, st.cur)
	st.cur = st.cur[n:]
	return n, nil
}

// Postings waits for the goroutine and returns the binary COPY of the
// batch's postings.
func (st *rowStream) Postings() ([]byte, error) {
	<-st.done
	if st.err != nil {
		return nil, st.err
	}
	return st.postings, nil
}

// Close stops the goroutine, waits for it and gives its buffers back.
func (st *rowStream) Close() {
	select {
	case <-st.quit:
		return // closed already
	default:
	}
	close(st.quit)
	<-st.done
	for b := range st.data {
		putChunk(b)
	}
	if st.buf != nil {
		putChunk(st.buf)
		st.buf, st.cur = nil, nil
	}
	if st.postings != nil {
		putChunk(st.postings)
		st.postings = nil
	}
}

// encodeRows is the binary COPY of the events rows of recs (record i at
// place i) made in one piece, for a batch that held duplicates.
func (s *Store) encodeRows(recs []*audit.Record, batch, received int64) ([]byte, error) {
	w := append([]byte(nil), copyHeader...)
	for i, r := range recs {
		var err error
		if w, err = s.appendEventRow(w, r, received, batch, int32(i)); err != nil {
			return nil, fmt.Errorf("encode events: %w", err)
		}
	}
	return append(w, copyTrailer...), nil
}
