package postgres

import (
	"errors"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// An append's events rows are made by a goroutine while the server takes
// the batch's keys, and handed to pgx's CopyFrom as they are made (a
// pgx.CopyFromSource that waits for them), so that the client's work and
// the server's overlap (docs/scale.md, "The client beside the server").
// pgx encodes the binary COPY: its CopyFrom encodes each row in a
// goroutine of its own into a pipe while the connection sends, and
// copies a row's values into its buffer before it asks for the next row,
// so the bytes a row's values point at can be reused once the next row is
// asked for (copyFrom.buildCopyBuf, pgx v5.13).

// chunkRows is the number of events rows the goroutine hands over at a
// time: pgx starts on the first while the rest are made.
const chunkRows = 256

// A rowChunk is chunkRows events rows (or fewer, the last): their values,
// columns wide, and the bytes the values point at (the rows' strings,
// S2 blocks and binary fields, one after the other).
type rowChunk struct {
	vals  []any
	arena []byte
	n     int
}

// chunkArena is an arena's usual capacity: a chunk of real-shaped rows
// fits it (a record's S2 block is about 400 bytes, its fields 100).
const chunkArena = 512 << 10

// chunks keeps the chunks between appends: fresh arenas would be zeroed
// and faulted in by the kernel at every batch.
var chunks = sync.Pool{New: func() any {
	return &rowChunk{vals: make([]any, chunkRows*len(columns)), arena: make([]byte, 0, chunkArena)}
}}

func getChunk() *rowChunk {
	c := chunks.Get().(*rowChunk)
	c.arena, c.n = c.arena[:0], 0
	return c
}

func putChunk(c *rowChunk) {
	if cap(c.arena) > 8*chunkArena {
		return // grown by large records: let it go
	}
	clear(c.vals) // the boxed values can be collected
	chunks.Put(c)
}

// bytesOf appends v to the chunk's arena and returns the copy, capacity
// clipped: a later append cannot write into it.
func (c *rowChunk) bytesOf(v string) []byte {
	at := len(c.arena)
	c.arena = append(c.arena, v...)
	return c.arena[at:len(c.arena):len(c.arena)]
}

// nullableOf is bytesOf, nil (NULL) when v is empty.
func (c *rowChunk) nullableOf(v string) []byte {
	if v == "" {
		return nil
	}
	return c.bytesOf(v)
}

// addRow adds the events row of r at place ord under batch and received
// (the values row gives, boxed once: received and batch), its bytes in
// the arena.
func (s *Store) addRow(c *rowChunk, r *audit.Record, received, batch any, ord int32) error {
	v := c.vals[c.n*len(columns) : (c.n+1)*len(columns)]
	// raw: the S2 block, compressed straight into the arena.
	n := s2.MaxEncodedLen(len(r.Raw))
	if n < 0 {
		return errors.New("a record too large to compress")
	}
	c.arena = slices.Grow(c.arena, n)
	at := len(c.arena)
	block := s.s2d.Encode(c.arena[at:at+n], r.Raw)
	if len(block) > 0 && &block[0] != &c.arena[at : at+n][0] {
		copy(c.arena[at:at+n], block) // not in place (Encode's contract allows it)
	}
	c.arena = c.arena[:at+len(block)]
	raw := c.arena[at:len(c.arena):len(c.arena)]
	// fields: the binary encoding of the record without its text.
	noRaw := *r
	noRaw.Raw = nil
	at = len(c.arena)
	c.arena = audit.AppendBinary(c.arena, &noRaw)
	fields := c.arena[at:len(c.arena):len(c.arena)]
	v[0], v[1], v[2], v[3] = c.bytesOf(r.Account), c.bytesOf(r.Region), int16(r.Category), r.Time.Unix()
	v[4], v[5], v[6] = c.bytesOf(r.EventID), c.bytesOf(r.EventName), c.bytesOf(r.EventSource)
	v[7], v[8], v[9] = c.nullableOf(r.Username), c.nullableOf(r.AccessKeyID), int16(r.ReadOnly)
	v[10], v[11], v[12] = received, batch, ord
	v[13], v[14], v[15] = raw, fields, codecS2
	c.n++
	return nil
}

// A rowStream is a pgx.CopyFromSource of a batch's events rows (record i
// at place i), made by a goroutine as the COPY reads them; the goroutine
// makes that batch's postings rows next. Close stops the goroutine and
// waits for it.
type rowStream struct {
	data chan *rowChunk // the rows' chunks, in order; closed at their end
	quit chan struct{}  // closed by Close: stop making rows
	done chan struct{}  // closed when the goroutine has returned

	cur *rowChunk // the chunk being read
	at  int       // the row of cur that Values gives
	err error     // the goroutine's, once data is closed

	// Set by the goroutine before done is closed.
	postings [][]any
	failed   error
}

// streamRows starts making the events rows of recs under batch and
// received, then their postings.
func (s *Store) streamRows(recs []*audit.Record, batch, received int64) *rowStream {
	st := &rowStream{data: make(chan *rowChunk, 8), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(st.done)
		ended := false
		defer func() {
			if !ended {
				close(st.data)
			}
		}()
		send := func(c *rowChunk) bool {
			select {
			case st.data <- c:
				return true
			case <-st.quit:
				putChunk(c)
				return false
			}
		}
		rec, bat := any(received), any(batch)
		c := getChunk()
		for i, r := range recs {
			if err := s.addRow(c, r, rec, bat, int32(i)); err != nil {
				st.failed = err
				putChunk(c)
				return
			}
			if c.n == chunkRows || len(c.arena) >= chunkArena-chunkArena/8 {
				if !send(c) {
					return
				}
				c = getChunk()
			}
		}
		if c.n > 0 {
			if !send(c) {
				return
			}
		} else {
			putChunk(c)
		}
		ended = true
		close(st.data)
		// The postings while the server takes the last rows.
		st.postings = postings(recs, batch, received)
	}()
	return st
}

// Next waits for the next row; false after the last (or if a row could
// not be made: Err says).
func (st *rowStream) Next() bool {
	if st.cur != nil {
		st.at++
		if st.at < st.cur.n {
			return true
		}
		// pgx has encoded every row of cur: its bytes can be reused.
		putChunk(st.cur)
		st.cur = nil
	}
	c, ok := <-st.data
	if !ok {
		// failed is set before data is closed (and not after): the
		// COPY ends without waiting for the postings being made.
		st.err = st.failed
		return false
	}
	st.cur, st.at = c, 0
	return true
}

// Values gives the current row's values, valid until Next is called.
func (st *rowStream) Values() ([]any, error) {
	return st.cur.vals[st.at*len(columns) : (st.at+1)*len(columns)], nil
}

func (st *rowStream) Err() error { return st.err }

// Postings waits for the goroutine and returns the batch's postings rows.
func (st *rowStream) Postings() ([][]any, error) {
	<-st.done
	if st.failed != nil {
		return nil, st.failed
	}
	return st.postings, nil
}

// Close stops the goroutine, waits for it and gives its chunks back.
func (st *rowStream) Close() {
	select {
	case <-st.quit:
		return // closed already
	default:
	}
	close(st.quit)
	<-st.done
	for c := range st.data {
		putChunk(c)
	}
	if st.cur != nil {
		putChunk(st.cur)
		st.cur = nil
	}
}

// keyRows is a pgx.CopyFromSource of a batch's event_keys rows, the i-th
// key with place i, in the order given by order; one row of values,
// reused.
type keyRows struct {
	accts, ids [][]byte
	order      []int
	at         int
	row        []any
}

func newKeyRows(accts, ids [][]byte, order []int, received, batch int64) *keyRows {
	return &keyRows{accts: accts, ids: ids, order: order, at: -1, row: []any{nil, nil, received, batch, nil}}
}

func (k *keyRows) Next() bool {
	k.at++
	return k.at < len(k.order)
}

func (k *keyRows) Values() ([]any, error) {
	i := k.order[k.at]
	k.row[0], k.row[1], k.row[4] = k.ids[i], k.accts[i], int32(i)
	return k.row, nil
}

func (k *keyRows) Err() error { return nil }

var keyColumns = []string{"event_id", "account", "received", "batch", "ord"}

var (
	eventsTable   = pgx.Identifier{"events"}
	keysTable     = pgx.Identifier{"event_keys"}
	postingsTable = pgx.Identifier{"event_postings"}
)
