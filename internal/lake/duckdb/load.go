package duckdb

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// How a record becomes a row of events
//
// Go reads each record's top level once (jsontext, no reflection): scalar
// fields become their text (a string unquoted, a number or boolean as
// written), readOnly and managementEvent booleans, eventTime a TIMESTAMP;
// each nested field is kept as its JSON text. The rows go to DuckDB through
// a query Appender whose INSERT turns the nested texts into Lake's STRUCT,
// LIST and MAP columns with from_json, each over its own small object, in
// vectorized batches. Parsing a whole record with one from_json over every
// field (the previous design) was 10-50x slower.

// kind is how a top-level field is stored.
type kind int

const (
	kText kind = iota // VARCHAR: a string as itself, another scalar as written, an object or array as JSON text
	kBool             // BOOLEAN: true/false (or "true"/"false")
	kTime             // TIMESTAMP (UTC)
	kJSON             // from_json(text, shape): only a JSON object (or array, for resources) is kept
)

// column is one column of events, in table order.
type column struct {
	name  string
	kind  kind
	shape string // from_json structure of a kJSON column
	array bool   // a kJSON column whose value is an array
}

const mapShape = `"MAP(VARCHAR, VARCHAR)"`

// columns are Lake's columns, named as CloudTrail spells the fields (DuckDB
// matches JSON keys case-sensitively, and column and field references in
// queries case-insensitively, so useridentity.arn and userIdentity.arn both
// work). eds_id comes first and eventJson (the record unchanged) last.
var columns = []column{
	{name: "eventVersion"},
	{name: "userIdentity", kind: kJSON, shape: `{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR","accessKeyId":"VARCHAR","userName":"VARCHAR",
   "sessionContext":{"attributes":{"creationDate":"TIMESTAMP","mfaAuthenticated":"VARCHAR"},
     "sessionIssuer":{"type":"VARCHAR","principalId":"VARCHAR","arn":"VARCHAR","accountId":"VARCHAR","userName":"VARCHAR"},
     "webIdFederationData":{"federatedProvider":"VARCHAR","attributes":"MAP(VARCHAR, VARCHAR)"},
     "sourceIdentity":"VARCHAR","ec2RoleDelivery":"VARCHAR","ec2IssuedInVPC":"VARCHAR"},
   "invokedBy":"VARCHAR","identityProvider":"VARCHAR","credentialId":"VARCHAR",
   "onBehalfOf":{"userId":"VARCHAR","identityStoreArn":"VARCHAR"},
   "inScopeOf":{"sourceArn":"VARCHAR","sourceAccount":"VARCHAR","issuerType":"VARCHAR","credentialsIssuedTo":"VARCHAR"},
   "details":"MAP(VARCHAR, VARCHAR)"}`},
	{name: "eventTime", kind: kTime},
	{name: "eventSource"},
	{name: "eventName"},
	{name: "awsRegion"},
	{name: "sourceIPAddress"},
	{name: "userAgent"},
	{name: "errorCode"},
	{name: "errorMessage"},
	{name: "requestParameters", kind: kJSON, shape: mapShape},
	{name: "responseElements", kind: kJSON, shape: mapShape},
	{name: "additionalEventData", kind: kJSON, shape: mapShape},
	{name: "requestID"},
	{name: "eventID"},
	{name: "readOnly", kind: kBool},
	{name: "resources", kind: kJSON, array: true, shape: `[{"accountId":"VARCHAR","type":"VARCHAR","ARN":"VARCHAR","arnPrefix":"VARCHAR"}]`},
	{name: "eventType"},
	{name: "apiVersion"},
	{name: "managementEvent", kind: kBool},
	{name: "recipientAccountId"},
	{name: "sharedEventID"},
	{name: "annotation"},
	{name: "vpcEndpointId"},
	{name: "vpcEndpointAccountId"},
	{name: "serviceEventDetails", kind: kJSON, shape: mapShape},
	{name: "addendum", kind: kJSON, shape: mapShape},
	{name: "edgeDeviceDetails", kind: kJSON, shape: mapShape},
	{name: "insightDetails", kind: kJSON, shape: mapShape},
	{name: "eventCategory"},
	{name: "tlsDetails", kind: kJSON, shape: `{"tlsVersion":"VARCHAR","cipherSuite":"VARCHAR","clientProvidedHostHeader":"VARCHAR"}`},
	{name: "sessionCredentialFromConsole"},
	{name: "metadata", kind: kJSON, shape: `{"ingestionTime":"VARCHAR","channelARN":"VARCHAR"}`},
	// eventData: a custom event's (channels) and an AWS Config
	// configuration item's fields in one STRUCT (a store holds one
	// category; the other's fields are NULL).
	{name: "eventData", kind: kJSON, shape: `{"version":"VARCHAR","userIdentity":{"type":"VARCHAR","principalId":"VARCHAR","details":"MAP(VARCHAR, VARCHAR)"},
   "userAgent":"VARCHAR","eventSource":"VARCHAR","eventName":"VARCHAR","eventTime":"VARCHAR","UID":"VARCHAR",
   "requestParameters":"MAP(VARCHAR, VARCHAR)","responseElements":"MAP(VARCHAR, VARCHAR)","errorCode":"VARCHAR","errorMessage":"VARCHAR",
   "sourceIPAddress":"VARCHAR","recipientAccountId":"VARCHAR","additionalEventData":"MAP(VARCHAR, VARCHAR)",
   "configurationItemVersion":"VARCHAR","configurationItemCaptureTime":"VARCHAR","configurationItemStatus":"VARCHAR",
   "configurationStateId":"VARCHAR","accountId":"VARCHAR","resourceType":"VARCHAR","resourceId":"VARCHAR","resourceName":"VARCHAR",
   "ARN":"VARCHAR","awsRegion":"VARCHAR","availabilityZone":"VARCHAR","resourceCreationTime":"VARCHAR",
   "configuration":"MAP(VARCHAR, VARCHAR)","supplementaryConfiguration":"MAP(VARCHAR, VARCHAR)","relatedEvents":"VARCHAR",
   "relationships":[{"name":"VARCHAR","resourceType":"VARCHAR","resourceId":"VARCHAR","resourceName":"VARCHAR"}],
   "tags":"MAP(VARCHAR, VARCHAR)"}`},
}

// columnIndex maps a JSON key to its column's index in columns.
var columnIndex = func() map[string]int {
	m := make(map[string]int, len(columns))
	for i, c := range columns {
		m[c.name] = i
	}
	return m
}()

// Positions of the appended row: eds_id, the columns, eventJson.
const (
	posEDS  = 0
	posJSON = 1 // + len(columns)
)

// appendedTypes are the DuckDB types of the appended rows: the nested
// columns arrive as VARCHAR (their JSON text).
func appendedTypes() ([]duckdb.TypeInfo, []string, error) { return appendedTypesOf(allColumns) }

// allColumns are the indexes of every column, in table order.
var allColumns = func() []int {
	c := make([]int, len(columns))
	for i := range c {
		c[i] = i
	}
	return c
}()

// appendedTypesOf are the types of appended rows of eds_id, the columns
// cols (indexes into columns, in table order) and eventJson.
func appendedTypesOf(cols []int) ([]duckdb.TypeInfo, []string, error) {
	names := []string{"eds_id"}
	kinds := []duckdb.Type{duckdb.TYPE_VARCHAR}
	for _, i := range cols {
		c := columns[i]
		names = append(names, c.name)
		switch c.kind {
		case kBool:
			kinds = append(kinds, duckdb.TYPE_BOOLEAN)
		case kTime:
			kinds = append(kinds, duckdb.TYPE_TIMESTAMP)
		default:
			kinds = append(kinds, duckdb.TYPE_VARCHAR)
		}
	}
	names = append(names, "eventJson")
	kinds = append(kinds, duckdb.TYPE_VARCHAR)
	types := make([]duckdb.TypeInfo, len(kinds))
	for i, k := range kinds {
		t, err := duckdb.NewTypeInfo(k)
		if err != nil {
			return nil, nil, err
		}
		types[i] = t
	}
	return types, names, nil
}

// conversion is the SELECT list turning appended rows (or a row of typed
// NULLs) into events rows.
func conversion() string { return conversionOf(allColumns) }

// conversionOf is conversion for appended rows of the columns cols only
// (with eds_id and eventJson); an INSERT ... BY NAME leaves the others
// NULL.
func conversionOf(cols []int) string {
	var b strings.Builder
	b.WriteString("eds_id")
	for _, i := range cols {
		c := columns[i]
		b.WriteString(", ")
		if c.kind == kJSON {
			// try: a value DuckDB's JSON reader refuses (a lone UTF-16
			// surrogate escape, which Go's decoders accept) makes this
			// column NULL (eventJson keeps it) instead of failing the batch.
			fmt.Fprintf(&b, "try(from_json(%q, %s)) AS %q", c.name, quote(c.shape), c.name)
		} else {
			fmt.Fprintf(&b, "%q", c.name)
		}
	}
	b.WriteString(", eventJson")
	return b.String()
}

// insertFromAppended is the query Appender's statement.
func insertFromAppended() string {
	return `INSERT INTO main.events BY NAME SELECT ` + conversion() + ` FROM appended_data`
}

// eventsDDL creates the events table with exactly the types conversion
// yields.
func eventsDDL() string {
	var b strings.Builder
	b.WriteString("NULL::VARCHAR AS eds_id")
	for _, c := range columns {
		t := "VARCHAR"
		switch c.kind {
		case kBool:
			t = "BOOLEAN"
		case kTime:
			t = "TIMESTAMP"
		}
		fmt.Fprintf(&b, ", NULL::%s AS %q", t, c.name)
	}
	b.WriteString(", NULL::VARCHAR AS eventJson")
	return `CREATE TABLE IF NOT EXISTS main.events AS SELECT ` + conversion() + ` FROM (SELECT ` + b.String() + `) appended_data LIMIT 0`
}

// recordRow reads raw's top level into the values of one appended row
// (eds_id excluded: vals[0] is left to the caller). A record that is not a
// JSON object keeps only eventJson. dec is reused between calls.
//
// The values are slices of raw wherever the text is raw's own (eventJson,
// a nested field, a string without escapes, another scalar): the Appender
// copies them into its vectors, so making each a Go string first copied
// every record twice (and gave the GC ~1.5 KB a record to collect).
func recordRow(dec *jsontext.Decoder, raw []byte, vals []driver.Value) {
	for i := range vals {
		vals[i] = nil
	}
	vals[posJSON+len(columns)] = validBytes(raw)
	// A bytes.Buffer's bytes are parsed where they are: a bytes.Reader's
	// were first copied into the decoder's own buffer, grown as it read.
	dec.Reset(bytes.NewBuffer(raw), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return
		}
		i, ok := columnIndex[name.String()]
		if !ok {
			if dec.SkipValue() != nil {
				return
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return
		}
		// The decoder's Value is its own buffer's; the same bytes in raw
		// end at the input offset.
		end := int(dec.InputOffset())
		if start := end - len(v); start >= 0 && end <= len(raw) && bytes.Equal(raw[start:end], v) {
			v = jsontext.Value(raw[start:end:end])
		} else {
			v = bytes.Clone(v)
		}
		vals[posJSON+i] = fieldValue(columns[i], v)
	}
}

// fieldValue is the appended value of column c for the JSON value v (nil:
// NULL). The value may share v's bytes.
func fieldValue(c column, v jsontext.Value) driver.Value {
	k := v.Kind()
	if k == 'n' {
		return nil
	}
	switch c.kind {
	case kJSON:
		if k == '{' && !c.array || k == '[' && c.array {
			return validBytes(v)
		}
		return nil
	case kBool:
		s := string(v)
		if k == '"' {
			s = string(unquote(v))
		}
		if s == "true" || s == "false" {
			return s == "true"
		}
		return nil
	case kTime:
		if k != '"' {
			return nil
		}
		if t, ok := parseEventTime(string(unquote(v))); ok {
			return t
		}
		return nil
	default:
		if k == '"' {
			return unquote(v)
		}
		return validBytes(v)
	}
}

// parseEventTime reads eventTime as CloudTrail writes it (2024-01-02T03:04:05Z,
// with or without fractions; a zone offset is converted to UTC; no zone is
// UTC).
func parseEventTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", s); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// unquote returns the JSON string v's text, made valid UTF-8: v's own
// bytes between the quotes when they are valid UTF-8 without escapes.
func unquote(v jsontext.Value) []byte {
	if len(v) >= 2 {
		if in := v[1 : len(v)-1 : len(v)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
			return in
		}
	}
	b, err := jsontext.AppendUnquote(nil, v)
	if err != nil && len(b) == 0 {
		return []byte{}
	}
	return validBytes(b)
}

// validBytes returns b as text DuckDB accepts: b itself when it is valid
// UTF-8, else a copy with the invalid bytes replaced.
func validBytes(b []byte) []byte {
	if utf8.Valid(b) {
		return b
	}
	return bytes.ToValidUTF8(b, []byte("\uFFFD"))
}

// RowGroupSize is the number of rows in one of DuckDB's row groups (its
// default row_group_size). A transaction of exactly that many rows (or a
// multiple: a load's, lake.LoadBatch) has DuckDB write them to the file as
// whole row groups while they are appended; a transaction just over it
// leaves a partial row group, and the load's checkpoint merges and rewrites
// the partial ones (in a diagnostic at nice 19, session 21: 2.5 s of CPU
// after two transactions of 131,072 real records, 6 ms after two of
// 122,880).
const RowGroupSize = 122880

// appendFlush is the number of appended rows after which the Appender runs
// its INSERT (the rest of the transaction's rows follow in later runs).
// DuckDB's query Appender otherwise collects up to 204,800 rows before it
// runs the INSERT: a load's whole batch (lake.LoadBatch, 131,072 records,
// ~170 MB of JSON) was copied into that collection, then into the table's
// transaction-local storage, in memory freshly allocated (and page-faulted)
// each time.
const appendFlush = 16384

// appendRows appends rows to events through a query Appender on conn, in
// conn's current transaction, reading each record as it goes (the rows of
// an Insert or of the journal's writer, which may be many: their values
// are not all held at once).
func appendRows(conn *sql.Conn, rows []engine.Row) error {
	dec := jsontext.NewDecoder(bytes.NewReader(nil))
	return appendEach(conn, len(rows), func(i int, vals []driver.Value) []driver.Value {
		recordRow(dec, rows[i].Raw, vals)
		vals[posEDS] = rows[i].Store
		return vals
	})
}

// preparedRows are rows read into the values of their appended rows
// (prepareRows), width values a row, ready for a query Appender.
type preparedRows struct {
	vals  []driver.Value
	width int
}

// len is the number of rows.
func (p preparedRows) len() int { return len(p.vals) / p.width }

// slice returns rows i to j.
func (p preparedRows) slice(i, j int) preparedRows {
	return preparedRows{vals: p.vals[i*p.width : j*p.width : j*p.width], width: p.width}
}

// prepareRows reads each row's record (recordRow) into its appended
// values, with no connection or lock: a load's Append waiting for its turn
// reads its rows while another appends to the load's one transaction. The values share the records' bytes (see recordRow):
// rows' Raw must not change until the values are appended.
func prepareRows(rows []engine.Row) preparedRows {
	width := posJSON + len(columns) + 1
	p := preparedRows{vals: make([]driver.Value, len(rows)*width), width: width}
	dec := jsontext.NewDecoder(bytes.NewReader(nil))
	var store driver.Value
	for i, r := range rows {
		vals := p.vals[i*width : (i+1)*width : (i+1)*width]
		recordRow(dec, r.Raw, vals)
		// A batch is mostly one store's: its ID boxed once.
		if s, ok := store.(string); !ok || s != r.Store {
			store = r.Store
		}
		vals[posEDS] = store
	}
	return p
}

// appendPrepared appends prepared rows to events through a query Appender
// on conn, in conn's current transaction.
func appendPrepared(conn *sql.Conn, p preparedRows) error {
	return appendEach(conn, p.len(), func(i int, _ []driver.Value) []driver.Value {
		return p.vals[i*p.width : (i+1)*p.width]
	})
}

// appendEach appends n rows to events through a query Appender on conn, in
// conn's current transaction: row(i, vals) returns row i's values, in vals
// (one row's, reused) or its own.
func appendEach(conn *sql.Conn, n int, row func(i int, vals []driver.Value) []driver.Value) error {
	types, names, err := appendedTypes()
	if err != nil {
		return err
	}
	return conn.Raw(func(dc any) error {
		a, err := duckdb.NewQueryAppender(dc.(driver.Conn), insertFromAppended(), "appended_data", types, names)
		if err != nil {
			return err
		}
		vals := make([]driver.Value, len(names))
		for i := range n {
			if i > 0 && i%appendFlush == 0 {
				if err := a.Flush(); err != nil {
					a.Close()
					return err
				}
			}
			if err := a.AppendRow(row(i, vals)...); err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
}

// Insert stores rows in one transaction and, when pos > 0, records pos as
// the feed position in the same transaction: a restart neither loses nor
// repeats what the feed delivered.
//
// Every call's transaction runs beside the others' (DuckDB appends
// concurrent transactions' rows without conflict); only a checkpoint and
// Delete wait for them, and calls with a position wait for each other
// (the position's row). A call of more than journalRows rows without a
// position (a load's batch) is its own transaction. Smaller calls without a position made while
// another group commits share one commit (group commit): each joins the pending group, and once the
// commit under way ends one of them leads: it commits the whole group
// and answers every member, which returns as soon as that is done. A call
// returns only once its rows are durable, so nothing is acknowledged
// before it is; concurrent callers (PutAuditEvents on several
// connections) pay one commit and fsync instead of one each. In a
// database kept in a file, the commit of calls of at most journalRows
// rows is the journal's append and fsync, and the writer moves the rows
// into the table later, in large transactions (journal.go); without the
// journal, a group's commit is a transaction. If a group's commit fails,
// each member's rows are tried again alone, so a member's answer depends
// only on its own rows.
func (d *DB) Insert(ctx context.Context, rows []engine.Row, pos int64) error {
	if pos > 0 || len(rows) == 0 {
		// Beside other writes (wmu shared), after the feed's previous
		// insert (posmu).
		d.wmu.RLock()
		defer d.wmu.RUnlock()
		d.posmu.Lock()
		defer d.posmu.Unlock()
		return d.insertLocked(ctx, rows, pos, 0)
	}
	if d.jn != nil && len(rows) <= journalRows {
		return d.journaled.do(ctx, rows, d.journalInsert)
	}
	if len(rows) > journalRows {
		// A load's batch (lake.LoadBatch rows: a DuckDB row group and
		// more) is its own transaction, beside the others' (wmu shared):
		// two transactions fill two row groups at once, on two cores.
		d.wmu.RLock()
		defer d.wmu.RUnlock()
		return d.insertLocked(ctx, rows, 0, 0)
	}
	return d.direct.do(ctx, rows, func(ctx context.Context, parts [][]engine.Row) error {
		var all []engine.Row
		if len(parts) == 1 {
			all = parts[0]
		} else {
			for _, p := range parts {
				all = append(all, p...)
			}
		}
		d.wmu.RLock()
		defer d.wmu.RUnlock()
		return d.insertLocked(ctx, all, 0, 0)
	})
}

// grouper merges concurrent calls into one commit (Insert).
type grouper struct {
	// mu guards pending, the calls waiting while another group commits,
	// which the next of them to lead commits in one go; busy is set while
	// a leader commits, and ready closed when it is done.
	mu      sync.Mutex
	pending *insertGroup
	busy    bool
	ready   chan struct{}
}

// do adds rows to the pending group and returns once the group is
// committed: by another member, or by this call leading it with commit.
// A group whose commit failed is committed again member by member.
func (g0 *grouper) do(ctx context.Context, rows []engine.Row, commit func(context.Context, [][]engine.Row) error) error {
	g0.mu.Lock()
	g := g0.pending
	if g == nil {
		g = &insertGroup{done: make(chan struct{})}
		g0.pending = g
	}
	me := len(g.parts)
	g.parts = append(g.parts, rows)
	for g0.busy {
		ready := g0.ready
		g0.mu.Unlock()
		select {
		case <-ready:
		case <-g.done: // committed by another member
			return g.errs[me]
		}
		g0.mu.Lock()
	}
	// No commit under way: g is done (its leader ended) or still pending.
	select {
	case <-g.done:
		g0.mu.Unlock()
		return g.errs[me]
	default:
	}
	g0.busy, g0.ready, g0.pending = true, make(chan struct{}), nil // later callers form the next group
	parts := g.parts
	g0.mu.Unlock()
	defer func() {
		g0.mu.Lock()
		g0.busy = false
		close(g0.ready)
		g0.mu.Unlock()
	}()
	g.errs = make([]error, len(parts))
	if len(parts) == 1 {
		g.errs[0] = commit(ctx, parts)
	} else {
		// The others' rows do not depend on this caller's context.
		gctx := context.WithoutCancel(ctx)
		if err := commit(gctx, parts); err != nil {
			for i, p := range parts {
				g.errs[i] = commit(gctx, [][]engine.Row{p})
			}
		}
	}
	close(g.done)
	return g.errs[me]
}

// Inserts returns the number of transactions Insert and the journal's
// writer have run.
func (d *DB) Inserts() int64 { return d.inserts.Load() }

// insertGroup is the Insert calls committed together.
type insertGroup struct {
	parts [][]engine.Row
	done  chan struct{} // closed once committed; errs is then set
	errs  []error       // by member
}

// insertLocked is one transaction of rows, recording the feed position
// pos (when > 0) and the journal's last row jseq (when > 0) with them; the
// caller holds wmu (shared), and posmu when pos > 0 or fmu when jseq > 0.
func (d *DB) insertLocked(ctx context.Context, rows []engine.Row, pos int64, jseq uint64) (err error) {
	d.inserts.Add(1)
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The Appender works on the driver connection, so the transaction is
	// the connection's own (BEGIN/COMMIT), not a database/sql Tx.
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(context.WithoutCancel(ctx), `ROLLBACK`)
		}
	}()
	if len(rows) > 0 {
		add := appendRows
		if jseq > 0 {
			add = appendJournaled // the journal's rows: mostly custom events
		}
		if err := add(conn, rows); err != nil {
			return fmt.Errorf("lake/duckdb: insert: %w", err)
		}
	}
	if pos > 0 {
		if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO lake_meta VALUES ('feed_position', ?)`, pos); err != nil {
			return err
		}
	}
	if jseq > 0 {
		if _, err := conn.ExecContext(ctx, `INSERT OR REPLACE INTO lake_meta VALUES (?, ?)`, journalSeqKey, int64(jseq)); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, `COMMIT`)
	return err
}

// Column is one of Lake's columns as another engine needs to store it.
type Column struct {
	// Name is CloudTrail's spelling of the field.
	Name string
	// Type is "VARCHAR", "BOOLEAN", "TIMESTAMP", or a from_json structure
	// (JSON text: an object of field types, a list of one, or
	// "MAP(VARCHAR, VARCHAR)").
	Type string
}

// Columns returns Lake's columns in table order (eds_id and eventJson
// excluded), the schema both engines store.
func Columns() []Column {
	out := make([]Column, len(columns))
	for i, c := range columns {
		t := "VARCHAR"
		switch c.kind {
		case kBool:
			t = "BOOLEAN"
		case kTime:
			t = "TIMESTAMP"
		case kJSON:
			t = c.shape
		}
		out[i] = Column{Name: c.name, Type: t}
	}
	return out
}

// A load streamed into its transactions
//
// A load (lake's Sink: StartImport, `cairn import --into`) comes in small
// batches (lake.LoadBatch), and each is appended to the load's open
// transaction as it comes (one at a time: a load keeps one transaction
// open, so concurrent Appends take turns): a transaction commits at exactly RowGroupSize
// rows (a batch is split at the boundary), so that DuckDB writes its rows
// to the file as one whole row group while they are appended ("optimistic
// writes": no copy in the write-ahead log, no rewrite at the checkpoint),
// and only the load's last transaction (Finish) holds less. An Append that
// must wait for its turn reads its batch's records into the Appender's
// values (prepareRows) meanwhile: with two Appends at once
// (lake.LoadAppenders), one batch is read on one core while the other is
// in DuckDB (its INSERT, and at a row group's end its COMMIT) on the other;
// an Append that has the turn at once reads each record as it appends it,
// as before (its values are not all held at once; session 35). Until session
// 25 a load kept up to n transactions open (BeginLoad(n), one per
// concurrent Append, each filling its own row group): two, filled side by
// side, reached their full row groups together, each held uncompressed in
// DuckDB's memory (~360 MB), and on the 2 cores one was as fast (session
// 24: lake.LoadAppenders 1, 5-27% less CPU at 10M). Until session
// 23 a transaction was one Insert of a whole row group, which the importer
// had to hold in memory first: with two appenders and a batch being
// filled, ~370k records (~700 MB of heap) at once (issue 15).
//
// Each open transaction holds the engine's write lock shared, from its
// BEGIN to its COMMIT, across Append calls. A CHECKPOINT or Delete (the
// lock held alone) waits for them, and no write starts while one waits
// (sync.RWMutex). An Append opens the load's transaction only when the
// load holds none, so it never waits for the lock while holding it. And a
// CHECKPOINT or Delete has every load commit its idle transaction
// before it waits for the lock, and the loads' Appends in progress commit
// theirs rather than leave them idle while it waits (lockAlone): so it
// waits at most for the appends in progress, never for a load's next
// batch to be read (a slow source held a transaction open, and every
// other account's writes queued behind the waiting CHECKPOINT).

// Load is a load in progress (engine.Load): BeginLoad.
type Load struct {
	d *DB
	// slots holds a token while the load's transaction is open (idle or
	// in an Append); idle holds it while no Append uses it.
	slots chan struct{}
	idle  chan *loadTx
	// mu orders commitIdle with put (a transaction put back idle while a
	// CHECKPOINT or Delete waits is committed by one or the other) and
	// Finish after a commitIdle in progress.
	mu sync.Mutex
	// err is the first failure of a commit that lockAlone made for the
	// load (its rows were appended by Appends that returned nil): the
	// load's next Append and Finish return it. Under mu.
	err error
}

// loadTx is one of a load's open transactions: its connection, and the
// rows appended to it.
type loadTx struct {
	conn *sql.Conn
	rows int
}

var _ engine.Loader = (*DB)(nil)

// BeginLoad starts a load: one transaction open at a time, on its own
// connection, filled by the load's Appends in turn.
func (d *DB) BeginLoad() engine.Load {
	ld := &Load{d: d, slots: make(chan struct{}, 1), idle: make(chan *loadTx, 1)}
	d.loadsMu.Lock()
	if d.loads == nil {
		d.loads = map[*Load]struct{}{}
	}
	d.loads[ld] = struct{}{}
	d.loadsMu.Unlock()
	return ld
}

// lockAlone takes wmu alone (CHECKPOINT, Delete), having the streamed
// loads commit their idle transactions first, and their Appends commit
// theirs while it waits (Load.put).
func (d *DB) lockAlone() {
	d.aloneWaiting.Add(1)
	defer d.aloneWaiting.Add(-1)
	d.loadsMu.Lock()
	loads := make([]*Load, 0, len(d.loads))
	for ld := range d.loads {
		loads = append(loads, ld)
	}
	d.loadsMu.Unlock()
	for _, ld := range loads {
		ld.commitIdle()
	}
	d.wmu.Lock()
}

// commitIdle commits the load's transaction if it is idle (lockAlone); a
// failure is the load's (err).
func (ld *Load) commitIdle() {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	for {
		select {
		case tx := <-ld.idle:
			if err := ld.end(context.Background(), tx, true); err != nil && ld.err == nil {
				ld.err = err
			}
		default:
			return
		}
	}
}

// failed returns the failure of a commit lockAlone made for the load.
func (ld *Load) failed() error {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.err
}

// Append appends rows to the load's open transaction (opening one when
// the load holds none; a concurrent Append waits for its turn), committing
// the transaction when it holds RowGroupSize rows and going on in another.
// The rows are in the table once their transaction commits (at a row
// group's end, or Finish). On an error the transaction it appended to is
// rolled back. rows' Raw must not change until Append returns (their
// values share its bytes).
func (ld *Load) Append(ctx context.Context, rows []engine.Row) error {
	if err := ld.failed(); err != nil {
		return err
	}
	var p preparedRows // rows' values, once read while waiting for the turn
	for len(rows) > 0 {
		tx, err := ld.tryTake(ctx)
		if tx == nil && err == nil {
			// Another Append has the turn: this one reads its records
			// meanwhile (on another core), then waits.
			if p.vals == nil {
				p = prepareRows(rows)
			}
			tx, err = ld.take(ctx)
		}
		if err != nil {
			return err
		}
		n := min(len(rows), RowGroupSize-tx.rows)
		if p.vals != nil {
			err = appendPrepared(tx.conn, p.slice(0, n))
			p = p.slice(n, p.len())
		} else {
			err = appendRows(tx.conn, rows[:n])
		}
		if err != nil {
			ld.end(ctx, tx, false)
			return fmt.Errorf("lake/duckdb: load: %w", err)
		}
		tx.rows += n
		rows = rows[n:]
		if tx.rows == RowGroupSize {
			if err := ld.end(ctx, tx, true); err != nil {
				return err
			}
			continue
		}
		if err := ld.put(ctx, tx); err != nil {
			return err
		}
	}
	return nil
}

// Finish commits the load's open transaction (once no Append runs); a
// failure of an earlier commit lockAlone made for the load is returned,
// and the open transaction is then rolled back.
func (ld *Load) Finish(ctx context.Context) error {
	d := ld.d
	d.loadsMu.Lock()
	delete(d.loads, ld)
	d.loadsMu.Unlock()
	// Under mu: after a commitIdle in progress, whose failure is the
	// load's, and none takes a transaction from under it.
	ld.mu.Lock()
	defer ld.mu.Unlock()
	err := ld.err
	for {
		select {
		case tx := <-ld.idle:
			if err != nil {
				ld.end(ctx, tx, false)
			} else {
				err = ld.end(ctx, tx, true)
			}
		default:
			return err
		}
	}
}

// take returns the load's idle transaction, or opens one when the load
// holds none (else it waits for the Append using it).
func (ld *Load) take(ctx context.Context) (*loadTx, error) {
	if tx, err := ld.tryTake(ctx); tx != nil || err != nil {
		return tx, err
	}
	select {
	case tx := <-ld.idle:
		return tx, nil
	case ld.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return ld.openSlot(ctx)
}

// tryTake is take without waiting for another Append's turn: nil (and no
// error) while one holds the load's transaction.
func (ld *Load) tryTake(ctx context.Context) (*loadTx, error) {
	select {
	case tx := <-ld.idle:
		return tx, nil
	default:
	}
	select {
	case tx := <-ld.idle:
		return tx, nil
	case ld.slots <- struct{}{}:
		return ld.openSlot(ctx)
	default:
		return nil, nil
	}
}

// openSlot opens the load's transaction in the slot just taken, releasing
// the slot if it cannot.
func (ld *Load) openSlot(ctx context.Context) (*loadTx, error) {
	tx, err := ld.open(ctx)
	if err != nil {
		<-ld.slots
		return nil, err
	}
	return tx, nil
}

// open begins a transaction, under the write lock (shared) until end. The
// load holds no other (its one slot), so waiting for the lock here holds
// nothing a writer waits for.
func (ld *Load) open(ctx context.Context) (*loadTx, error) {
	d := ld.d
	d.wmu.RLock()
	conn, err := d.db.Conn(ctx)
	if err != nil {
		d.wmu.RUnlock()
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `BEGIN TRANSACTION`); err != nil {
		conn.Close()
		d.wmu.RUnlock()
		return nil, err
	}
	return &loadTx{conn: conn}, nil
}

// put leaves tx open for the load's next Append, unless a CHECKPOINT or
// Delete waits for the write lock (then it commits, and a failure is the
// Append's).
func (ld *Load) put(ctx context.Context, tx *loadTx) error {
	// Under mu: a commitIdle that starts after the check finds tx idle.
	ld.mu.Lock()
	if ld.d.aloneWaiting.Load() == 0 {
		ld.idle <- tx // never blocks: the load's one transaction
		ld.mu.Unlock()
		return nil
	}
	ld.mu.Unlock()
	return ld.end(ctx, tx, true)
}

// end commits tx (or rolls it back) and releases its connection, its
// share of the write lock and its slot.
func (ld *Load) end(ctx context.Context, tx *loadTx, commit bool) error {
	d := ld.d
	defer func() {
		tx.conn.Close()
		d.wmu.RUnlock()
		<-ld.slots
	}()
	// A transaction's end does not depend on the caller's context: a
	// load stopped mid-way commits what it appended (Finish).
	ctx = context.WithoutCancel(ctx)
	if commit {
		d.inserts.Add(1)
		if _, err := tx.conn.ExecContext(ctx, `COMMIT`); err != nil {
			tx.conn.ExecContext(ctx, `ROLLBACK`)
			return fmt.Errorf("lake/duckdb: load: commit: %w", err)
		}
		return nil
	}
	_, err := tx.conn.ExecContext(ctx, `ROLLBACK`)
	return err
}
