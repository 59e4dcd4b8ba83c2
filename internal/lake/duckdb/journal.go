package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/ingest/journal"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// The Lake journal
//
// A DuckDB transaction has a fixed cost whatever it holds: ~15-18 ms of
// CPU for one row (BenchmarkInsertCall; in the profile, memory cleared and
// page-faulted and string segments set up for the transaction's storage
// of each column, then logged and merged into the table). PutAuditEvents paid it
// on every call (or every group of concurrent calls), which capped it at
// ~4.5k events/s. So the small Inserts (at most journalRows rows, no feed
// position) of a database kept in a file are acknowledged once they are in
// a journal (internal/ingest/journal, the ingest pipeline's: CRC-checked
// frames, fsynced before Insert returns), and a writer moves them into
// the table in large transactions: when flushRows rows wait, flushDelay
// after the first of them, or whenever something reads the table (Run,
// EachEventID, Delete, SQL, Close each flush first). So a query started after
// an Insert returned sees its rows, as before: the journal changes the
// cost, not what a query sees.
//
// Each row has a sequence number, and the writer's transaction records
// the last one it inserted in lake_meta ('journal_seq') with the rows. At
// Open, the journal's segments left by a crash are replayed: rows up to
// that number are in the table already and skipped, the others inserted.
// So a crash neither loses an acknowledged row nor inserts one twice.
//
// A journaled row is an audit.Record (the journal's unit) whose Raw is the
// row's record, Account its store's ID and EventID its sequence number;
// Category is set so that the journal derives nothing from Raw.

const (
	// journalRows is the largest Insert that goes through the journal;
	// larger ones (loads: lake.LoadBatch rows) are their own transaction.
	journalRows = 4096
	// flushRows is the number of waiting rows at which the writer starts
	// a transaction: a DuckDB row group (RowGroupSize), and the writer's
	// transaction then takes whole row groups only, which DuckDB writes
	// compressed to the file as they are appended (custom events: 28 µs
	// of CPU a row in transactions of 131,072, 36 µs in transactions of
	// 32,768). Until session 25 it was 131,072 and a transaction took
	// every waiting row: a row group and a part, which DuckDB appended to
	// the table's last row group through its log, and the policy's
	// checkpoint rewrote (issue 15; docs/benchmarks.md). flushBytes starts
	// one sooner, with every waiting row, for records larger than ~1 KB
	// (a custom event's is ~700 bytes; at 64 MB a transaction held
	// ~93k of them).
	flushRows  = RowGroupSize
	flushBytes = 128 << 20
	// flushDelay bounds how long a row waits for the writer when no query
	// asks for it (a query, Delete and Close move the waiting rows first,
	// so no reader sees the delay). It was 2 s: under a steady stream of
	// PutAuditEvents calls (17k events/s at load 9-11) that cut the
	// writer's transactions to 30-100k rows, less than a row group, which
	// DuckDB then wrote to its log and a checkpoint wrote again (issue
	// 15, session 24; docs/benchmarks.md). From 13k events/s a
	// transaction now holds a row group.
	flushDelay = 10 * time.Second
	// maxPending and maxPendingBytes bound the waiting rows: past them,
	// Insert waits for the writer (backpressure, not an unbounded queue).
	maxPending      = 2 * flushRows
	maxPendingBytes = 256 << 20
)

// journalLimits are the writer's thresholds (the constants above; tests
// lower them).
type journalLimits struct {
	flushRows, flushBytes, maxPending, maxPendingBytes int
	flushDelay                                         time.Duration
}

var defaultJournalLimits = journalLimits{flushRows: flushRows, flushBytes: flushBytes,
	maxPending: maxPending, maxPendingBytes: maxPendingBytes, flushDelay: flushDelay}

// journalSeqKey is lake_meta's key of the last journaled row in the table.
const journalSeqKey = "journal_seq"

// segCount is how many rows of a journal segment a batch holds.
type segCount struct {
	seg uint64
	n   int
}

// journalDir is the journal's directory beside the database file.
func journalDir(path string) string { return path + ".journal" }

// journalRecord is row as the journal holds it.
func journalRecord(r engine.Row, seq uint64) audit.Record {
	return audit.Record{Raw: r.Raw, Account: r.Store, EventID: strconv.FormatUint(seq, 10), Category: audit.CategoryOther}
}

// openJournal opens the journal of the database at path, inserts the rows
// a crash left in it (those not yet in the table) and starts the writer.
func (d *DB) openJournal(path string) error {
	ctx := context.Background()
	var applied uint64
	var v int64
	err := d.db.QueryRowContext(ctx, `SELECT v FROM lake_meta WHERE k = ?`, journalSeqKey).Scan(&v)
	switch {
	case err == nil:
		applied = uint64(v)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("lake/duckdb: journal position: %w", err)
	}
	j, err := journal.Open(journalDir(path), journal.Options{Preallocate: true})
	if err != nil {
		return fmt.Errorf("lake/duckdb: %w", err)
	}
	last := applied
	d.lim = defaultJournalLimits
	_, err = j.Replay(d.lim.flushRows, func(recs []audit.Record) error {
		var rows []engine.Row
		var max uint64
		for _, rec := range recs {
			seq, err := strconv.ParseUint(rec.EventID, 10, 64)
			if err != nil {
				return fmt.Errorf("journal row with sequence %q: %w", rec.EventID, err)
			}
			last = max2(last, seq)
			if seq <= applied {
				continue
			}
			rows = append(rows, engine.Row{Store: rec.Account, Raw: rec.Raw})
			max = max2(max, seq)
		}
		if len(rows) == 0 {
			return nil
		}
		d.wmu.Lock()
		defer d.wmu.Unlock()
		if err := d.insertLocked(ctx, rows, 0, max); err != nil {
			return err
		}
		applied = max2(applied, max)
		return nil
	})
	if err != nil {
		j.Close()
		return fmt.Errorf("lake/duckdb: replay the journal: %w", err)
	}
	d.jn, d.jappend, d.seq = j, j.Append, last
	d.kick = make(chan struct{}, 1)
	d.stopw = make(chan struct{})
	d.writerDone = make(chan struct{})
	d.room = make(chan struct{})
	go d.writer()
	return nil
}

func max2(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// journalInsert journals the rows of several Insert calls in one append
// (one fsync) and hands them to the writer. The caller leads their group
// (Insert).
func (d *DB) journalInsert(ctx context.Context, parts [][]engine.Row) error {
	// Backpressure: wait while the writer is maxPending rows (or
	// maxPendingBytes) behind.
	for {
		d.pmu.Lock()
		n, bytes, room := len(d.pend), d.pendBytes, d.room
		d.pmu.Unlock()
		if n < d.lim.maxPending && bytes < d.lim.maxPendingBytes {
			break
		}
		d.signal()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-d.stopw:
			return errors.New("lake/duckdb: closed")
		}
	}
	var rows []engine.Row
	for _, p := range parts {
		rows = append(rows, p...)
	}
	// jmu keeps the sequence numbers, the journal's order and the waiting
	// rows' order the same.
	d.jmu.Lock()
	recs := make([]audit.Record, len(rows))
	for i, r := range rows {
		recs[i] = journalRecord(r, d.seq+uint64(i)+1)
	}
	first := d.seq + 1
	seg, _, err := d.jappend(recs)
	// The numbers are used even when the append failed: its rows may be
	// in the journal all the same (a write that went through, a failed
	// sync), and the next rows must not share their numbers, or a replay
	// that inserted these unacknowledged rows would skip the acknowledged
	// ones as applied. So the waiting rows' numbers may have gaps.
	d.seq += uint64(len(rows))
	if err != nil {
		d.jmu.Unlock()
		return fmt.Errorf("lake/duckdb: %w", err)
	}
	d.pmu.Lock()
	if len(d.pend) == 0 {
		d.pendSince = time.Now()
	}
	d.pend = append(d.pend, rows...)
	for i, r := range rows {
		d.pendBytes += len(r.Raw)
		d.pendSeqs = append(d.pendSeqs, first+uint64(i))
	}
	if k := len(d.pendSegs); k > 0 && d.pendSegs[k-1].seg == seg {
		d.pendSegs[k-1].n += len(rows)
	} else {
		d.pendSegs = append(d.pendSegs, segCount{seg, len(rows)})
	}
	n, full := len(d.pend), d.pendBytes >= d.lim.flushBytes
	d.pmu.Unlock()
	d.jmu.Unlock()
	if n >= d.lim.flushRows || full || n == len(rows) {
		d.signal() // a full batch, or the first row: start the deadline
	}
	return nil
}

// signal wakes the writer.
func (d *DB) signal() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// writer moves journaled rows into the table: when flushRows (or
// flushBytes) wait, or flushDelay after the first waiting row. A failed
// transaction is retried (capped backoff); the rows stay waiting, and in
// the journal.
func (d *DB) writer() {
	defer close(d.writerDone)
	backoff := 100 * time.Millisecond
	var timer *time.Timer
	for {
		d.pmu.Lock()
		n, bytes, since := len(d.pend), d.pendBytes, d.pendSince
		d.pmu.Unlock()
		var wait time.Duration
		switch {
		case n == 0:
			wait = -1
		case n >= d.lim.flushRows || bytes >= d.lim.flushBytes:
			wait = 0
		default:
			wait = d.lim.flushDelay - time.Since(since)
		}
		if wait > 0 || wait < 0 {
			var tc <-chan time.Time
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				tc = timer.C
			}
			select {
			case <-d.stopw:
				return
			case <-d.kick:
				if timer != nil && !timer.Stop() {
					select {
					case <-timer.C:
					default:
					}
				}
				continue
			case <-tc:
			}
		}
		unit := 0 // every waiting row: past the deadline, or flushBytes
		if n >= d.lim.flushRows && bytes < d.lim.flushBytes {
			unit = d.lim.flushRows // whole row groups
		}
		if err := d.flush(context.Background(), unit); err != nil {
			select {
			case <-d.stopw:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
	}
}

// Flush inserts the journaled rows not yet in the table, in one
// transaction. It returns once every row journaled before the call is in
// the table (or the transaction failed: they then stay journaled and
// waiting). Without a journal it does nothing.
func (d *DB) Flush(ctx context.Context) error { return d.flush(ctx, 0) }

// flush is Flush of the waiting rows in multiples of unit (the first
// ones; unit 0: all).
func (d *DB) flush(ctx context.Context, unit int) error {
	if d.jn == nil {
		return nil
	}
	d.fmu.Lock()
	defer d.fmu.Unlock()
	d.pmu.Lock()
	rows, seqs, taken := d.pend, d.pendSeqs, time.Now()
	segs := append([]segCount(nil), d.pendSegs...)
	d.pmu.Unlock()
	if unit > 0 && len(rows) > unit {
		// segs count the waiting rows from the first.
		n := len(rows) / unit * unit
		rows = rows[:n]
		for i, left := 0, n; i < len(segs); i++ {
			if segs[i].n >= left {
				segs[i].n, segs = left, segs[:i+1]
				break
			}
			left -= segs[i].n
		}
	}
	if len(rows) == 0 {
		return nil
	}
	seq := seqs[len(rows)-1] // the last of the rows taken
	// Beside a load's transactions and the feed's (wmu shared); fmu
	// orders the writes of journal_seq.
	d.wmu.RLock()
	err := d.insertLocked(context.WithoutCancel(ctx), rows, 0, seq)
	d.wmu.RUnlock()
	if err != nil {
		return err
	}
	d.pmu.Lock()
	// Rows journaled meanwhile came after these (and may have added to
	// the last segment's count).
	d.pend = append([]engine.Row(nil), d.pend[len(rows):]...)
	d.pendSeqs = append([]uint64(nil), d.pendSeqs[len(rows):]...)
	if len(d.pend) > 0 {
		// The rows left came after this transaction took its rows: their
		// deadline runs from then, not from the first of the rows taken
		// (already past, so the writer started the next transaction at
		// once, however few rows it had).
		d.pendSince = taken
	}
	for _, r := range rows {
		d.pendBytes -= len(r.Raw)
	}
	for _, s := range segs {
		if d.pendSegs[0].n -= s.n; d.pendSegs[0].n == 0 {
			d.pendSegs = d.pendSegs[1:]
		}
	}
	close(d.room)
	d.room = make(chan struct{})
	d.pmu.Unlock()
	for _, s := range segs {
		d.jn.Done(s.seg, s.n)
	}
	return nil
}

// Backlogged reports whether the journal holds as many rows (or bytes) not
// yet in the table as it allows (maxPending, maxPendingBytes): an Insert
// through the journal would now wait for the writer. A caller that can tell
// its client to come back later (PutAuditEvents: ThrottlingException)
// should do so instead of queueing more; a load's Insert waits. Without a
// journal it is always false.
func (d *DB) Backlogged() bool {
	if d.jn == nil {
		return false
	}
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return len(d.pend) >= d.lim.maxPending || d.pendBytes >= d.lim.maxPendingBytes
}

// Pending returns the number of journaled rows not yet in the table.
func (d *DB) Pending() int {
	d.pmu.Lock()
	defer d.pmu.Unlock()
	return len(d.pend)
}

// closeJournal stops the writer, inserts what waits and closes the
// journal (a segment whose rows are all in the table is deleted).
func (d *DB) closeJournal() error {
	if d.jn == nil {
		return nil
	}
	var err error
	d.closeOnce.Do(func() {
		close(d.stopw)
		<-d.writerDone
		err = d.Flush(context.Background())
		d.jn.Close()
	})
	return err
}

// The journal's rows through a narrow Appender
//
// The journal holds small inserts, which are PutAuditEvents' custom events
// (a load's last batch of at most journalRows rows aside). A custom
// event's record has 9 of Lake's 34 columns (customColumns); through
// appendRows' Appender each row still carried 36 values, 25 of them NULL,
// each NULL one call into DuckDB (its validity mask) and 10 of them a
// try(from_json) over a NULL vector in the INSERT (issue 15, session 25:
// AppendRow and the Appender's flush were ~11 µs of the writer's ~19 µs an
// event, on the one goroutine that caps the table's rate). So the writer
// appends the rows that have no other column through an Appender of those
// columns only, whose INSERT ... BY NAME leaves the others NULL, as the
// full one stored them; the other rows go through appendRows after them.

// customColumns are the columns a custom event's record fills (lake's
// recordBuilder), by index in columns, in table order.
var customColumns = func() []int {
	var out []int
	for i, c := range columns {
		switch c.name {
		case "eventVersion", "eventTime", "awsRegion", "eventID", "eventType", "recipientAccountId",
			"eventCategory", "metadata", "eventData":
			out = append(out, i)
		}
	}
	return out
}()

// customColumn reports by index in columns whether it is one of
// customColumns.
var customColumn = func() []bool {
	in := make([]bool, len(columns))
	for _, i := range customColumns {
		in[i] = true
	}
	return in
}()

// appendJournaled appends rows to events in conn's current transaction as
// appendRows does: those with values in customColumns only through a
// narrow query Appender, then the others through appendRows.
func appendJournaled(conn *sql.Conn, rows []engine.Row) error {
	types, names, err := appendedTypesOf(customColumns)
	if err != nil {
		return err
	}
	insert := `INSERT INTO main.events BY NAME SELECT ` + conversionOf(customColumns) + ` FROM appended_data`
	var wide []engine.Row
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewQueryAppender(dc.(driver.Conn), insert, "appended_data", types, names)
		if err != nil {
			return err
		}
		dec := jsontext.NewDecoder(bytes.NewReader(nil))
		vals := make([]driver.Value, posJSON+len(columns)+1)
		narrow := make([]driver.Value, len(names))
		n := 0
	rows:
		for _, r := range rows {
			recordRow(dec, r.Raw, vals)
			for i, v := range vals[posJSON : posJSON+len(columns)] {
				if v != nil && !customColumn[i] {
					wide = append(wide, r)
					continue rows
				}
			}
			if n > 0 && n%appendFlush == 0 {
				if err := a.Flush(); err != nil {
					a.Close()
					return err
				}
			}
			n++
			narrow[posEDS] = r.Store
			for k, i := range customColumns {
				narrow[posJSON+k] = vals[posJSON+i]
			}
			narrow[len(narrow)-1] = vals[posJSON+len(columns)]
			if err := a.AppendRow(narrow...); err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
	if err != nil || len(wide) == 0 {
		return err
	}
	return appendRows(conn, wide)
}
