package lake

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// Query states (the model's QueryStatus).
const (
	QueryQueued    = "QUEUED"
	QueryRunning   = "RUNNING"
	QueryFinished  = "FINISHED"
	QueryFailed    = "FAILED"
	QueryCancelled = "CANCELLED"
	QueryTimedOut  = "TIMED_OUT"
)

const (
	queryKeep       = 7 * 24 * time.Hour
	maxStatementLen = 10000
)

type query struct {
	ID, Account, SQL string
	stores           []string
	State            string
	ErrorMessage     string
	Created, Ended   time.Time
	// res is a finished query's result (results.go); ended orders the
	// ended queries (the clock may not).
	res     *resultFile
	ended   uint64
	scanned int64
	cancel  context.CancelFunc
	// admitted is closed when the query may run, and slot is set while
	// it holds a running slot (schedule.go).
	admitted chan struct{}
	slot     bool
	// interrupted is set when the query is cancelled for a checkpoint.
	interrupted bool
}

// tableName is the name a store's ID becomes in the statement the engine
// runs.
func tableName(id string) string { return engine.TableName(id) }

// rewrite replaces each event data store reference after FROM or JOIN (an
// ID, as Lake writes it unquoted, or an ARN) with the store's table name,
// resolving it among account's stores. It returns the statement and the IDs
// of the stores it names.
func (l *Lake) rewrite(account, stmt string) (string, []string, error) {
	var b strings.Builder
	var ids []string
	prevWord := ""
	i := 0
	for i < len(stmt) {
		c := stmt[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(stmt) {
				if stmt[j] == c {
					if j+1 < len(stmt) && stmt[j+1] == c {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if j >= len(stmt) {
				return "", nil, audit.Errorf(audit.CodeInvalidQueryStatement, "The query statement has an unterminated quote.")
			}
			b.WriteString(stmt[i : j+1])
			prevWord = ""
			i = j + 1
		case c == '-' && i+1 < len(stmt) && stmt[i+1] == '-':
			j := strings.IndexByte(stmt[i:], '\n')
			if j < 0 {
				j = len(stmt) - i
			}
			b.WriteByte(' ')
			i += j
		case c == '/' && i+1 < len(stmt) && stmt[i+1] == '*':
			j := strings.Index(stmt[i+2:], "*/")
			if j < 0 {
				return "", nil, audit.Errorf(audit.CodeInvalidQueryStatement, "The query statement has an unterminated comment.")
			}
			b.WriteByte(' ')
			i += j + 4
		case isWord(c):
			j := i
			for j < len(stmt) && (isWord(stmt[j]) || (prevWord == "from" || prevWord == "join") && isRef(stmt[j])) {
				j++
			}
			w := stmt[i:j]
			if prevWord == "from" || prevWord == "join" {
				if s := l.resolve(account, w); s != nil {
					b.WriteString(`"` + tableName(s.ID) + `"`)
					ids = append(ids, s.ID)
					prevWord = ""
					i = j
					continue
				}
				if strings.ContainsAny(w, "-:/") {
					return "", nil, audit.Errorf(audit.CodeEventDataStoreNotFound, "The event data store %s was not found.", audit.Clip(w, 128))
				}
			}
			if m, ok := l.eng.Functions()[strings.ToLower(w)]; ok && nextNonSpace(stmt, j) == '(' {
				w = m
			}
			b.WriteString(w)
			prevWord = strings.ToLower(w)
			i = j
		default:
			if !unicode.IsSpace(rune(c)) {
				prevWord = ""
			}
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), ids, nil
}

func nextNonSpace(s string, i int) byte {
	for ; i < len(s); i++ {
		if !unicode.IsSpace(rune(s[i])) {
			return s[i]
		}
	}
	return 0
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

func isRef(c byte) bool { return c == '-' || c == ':' || c == '/' }

// resolve finds account's store by ID or ARN.
func (l *Lake) resolve(account, ref string) *EventDataStore {
	l.mu.Lock()
	defer l.mu.Unlock()
	s, err := l.findStoreLocked(account, ref)
	if err != nil {
		return nil
	}
	return s
}

// Prepare rewrites and checks a Lake statement of account, returning the
// statement the engine runs and the stores it reads.
func (l *Lake) Prepare(ctx context.Context, account, stmt string) (string, []string, error) {
	if err := l.enter(); err != nil {
		return "", nil, err
	}
	defer l.work.Done()
	if strings.TrimSpace(stmt) == "" || len(stmt) > maxStatementLen {
		return "", nil, audit.Errorf(audit.CodeInvalidQueryStatement, "QueryStatement must be 1 to %d characters.", maxStatementLen)
	}
	if !utf8.ValidString(stmt) {
		return "", nil, audit.Errorf(audit.CodeInvalidQueryStatement, "QueryStatement is not valid UTF-8.")
	}
	l.fresh(ctx)
	out, ids, err := l.rewrite(account, stmt)
	if err != nil {
		return "", nil, err
	}
	if len(ids) == 0 {
		return "", nil, audit.Errorf(audit.CodeInvalidQueryStatement, "FROM must name an event data store by its ID.")
	}
	tables := map[string]bool{}
	for _, id := range ids {
		l.mu.Lock()
		s := l.stores[id]
		pending := s == nil || s.Status == StatusPendingDeletion
		l.mu.Unlock()
		if pending {
			return "", nil, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", id)
		}
		tables[tableName(id)] = true
	}
	if err := l.eng.Check(ctx, out, tables); err != nil {
		return "", nil, err
	}
	return out, ids, nil
}

// Result is a finished query's columns and rows (nil = NULL).
type Result struct {
	Columns []string
	Rows    [][]*string
}

// SetColumns and AddRow make a Result an engine.RowSink that keeps the
// rows in memory (cairn query on a data dir).
func (r *Result) SetColumns(cols []string) error { r.Columns = cols; return nil }

// AddRow keeps a row.
func (r *Result) AddRow(row []*string) error { r.Rows = append(r.Rows, row); return nil }

// Query runs a Lake statement of account synchronously (cairn query).
func (l *Lake) Query(ctx context.Context, account, stmt string) (*Result, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.work.Done()
	out, ids, err := l.Prepare(ctx, account, stmt)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.QueryTimeout)
	defer cancel()
	defer context.AfterFunc(l.base, cancel)() // Close ends it
	res := &Result{}
	if _, err := l.eng.Run(ctx, engine.Statement{SQL: out, Stores: ids, MaxBytes: l.opts.MaxResultBytes}, res); err != nil {
		return nil, queryError(err, ids)
	}
	return res, nil
}

// queryError maps the error of a statement's run: the engine's objections
// to the statement (*engine.StatementError) become InvalidQueryStatement
// with its message, the caller's stores' table names given back as their
// IDs; results over the limit and memory exhaustion, InvalidQueryStatement
// with cairn's message. Anything else (the engine's or the file system's
// failures, whose text may name paths and internals) is returned wrapped,
// not an *audit.Error: the client gets InternalFailure, or a failed query a
// message without it, and the log gets the cause.
func queryError(err error, stores []string) error {
	var ae *audit.Error
	var se *engine.StatementError
	switch {
	case errors.As(err, &ae):
		return err
	case errors.Is(err, engine.ErrTooLarge):
		return audit.Errorf(audit.CodeInvalidQueryStatement, "The query results exceed cairn's limit; narrow the query or add a LIMIT.")
	case errors.Is(err, engine.ErrOutOfMemory):
		return audit.Errorf(audit.CodeInvalidQueryStatement, "The query needs more memory than cairn's Lake allows; narrow the query or add a LIMIT.")
	case errors.As(err, &se):
		msg := se.Msg
		for _, id := range stores {
			msg = strings.ReplaceAll(msg, tableName(id), id)
		}
		return audit.Errorf(audit.CodeInvalidQueryStatement, "%s", audit.Clip(msg, 128))
	}
	return fmt.Errorf("lake: query: %w", err)
}

// StartQuery starts running stmt, a Lake statement of p's account, and
// returns its query ID; DescribeQuery and QueryResults follow it. Errors:
// those of Prepare, MaxConcurrentQueries (Options.MaxConcurrentQueries).
func (l *Lake) StartQuery(ctx context.Context, p audit.Principal, statement string) (string, error) {
	acct := p.AccountID
	stmt, ids, err := l.Prepare(ctx, acct, statement)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errClosed()
	}
	if l.running[acct] >= l.opts.MaxConcurrentQueries {
		l.mu.Unlock()
		return "", audit.Errorf(audit.CodeMaxConcurrentQueries, "You are already running the maximum number of concurrent queries (%d).", l.opts.MaxConcurrentQueries)
	}
	qctx, cancel := context.WithTimeout(l.base, l.opts.QueryTimeout)
	q := &query{ID: audit.NewID(), Account: acct, SQL: statement, stores: ids, State: QueryQueued,
		Created: l.opts.Now().UTC(), cancel: cancel, admitted: make(chan struct{})}
	l.queries[q.ID] = q
	l.running[acct]++
	l.pruneLocked()
	l.waiting = append(l.waiting, q)
	l.admitLocked()
	l.work.Add(1) // not closed: checked above, under l.mu
	var rec SharedQuery
	if l.opts.Queries != nil {
		rec = l.sharedRecordLocked(q)
	}
	l.mu.Unlock()
	if l.opts.Queries != nil {
		l.saveShared(rec) // before execute saves it RUNNING
	}
	go l.execute(qctx, cancel, q, stmt)
	return q.ID, nil
}

// pruneLocked forgets queries that ended more than 7 days ago, as AWS
// keeps results for 7 days.
func (l *Lake) pruneLocked() {
	now := l.opts.Now()
	for _, q := range l.queries {
		if !q.Ended.IsZero() && now.Sub(q.Ended) > queryKeep {
			l.forgetLocked(q)
		}
	}
}

// forgetLocked removes a query and its result file: its ID then answers
// QueryIdNotFound, as an expired query's does on AWS.
func (l *Lake) forgetLocked(q *query) {
	delete(l.queries, q.ID)
	if l.opts.Queries != nil {
		l.forget = append(l.forget, q.ID)
	}
	if q.res != nil {
		if err := os.Remove(q.res.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			l.log.Warn("lake: remove query result", "query", q.ID, "err", err)
		}
		q.res = nil
	}
}

// evictLocked forgets account's oldest ended queries while it holds more
// than MaxHeldResults of them or more than MaxHeldResultBytes of result
// files; the newest stays.
func (l *Lake) evictLocked(account string) {
	var ended []*query
	var size int64
	for _, q := range l.queries {
		if q.Account == account && !q.Ended.IsZero() {
			ended = append(ended, q)
			if q.res != nil {
				size += q.res.size
			}
		}
	}
	sort.Slice(ended, func(i, j int) bool { return ended[i].ended < ended[j].ended })
	for len(ended) > 1 && (len(ended) > l.opts.MaxHeldResults || size > l.opts.MaxHeldResultBytes) {
		q := ended[0]
		ended = ended[1:]
		if q.res != nil {
			size -= q.res.size
		}
		l.forgetLocked(q)
		l.metrics.evicted.Inc()
		l.log.Debug("lake: query result evicted", "account", account, "query", q.ID)
	}
}

// execute waits for the scheduler's admission, runs the query into a
// result file and records its outcome.
func (l *Lake) execute(ctx context.Context, cancel context.CancelFunc, q *query, stmt string) {
	defer l.work.Done()
	defer cancel()
	if l.opts.Queries != nil {
		go l.watchCancel(ctx, q)
	}
	var (
		n   int64
		res *resultFile
		err error
	)
	select {
	case <-q.admitted:
		l.mu.Lock()
		if q.State == QueryQueued {
			q.State = QueryRunning
		}
		var rec SharedQuery
		if l.opts.Queries != nil {
			rec = l.sharedRecordLocked(q)
		}
		l.mu.Unlock()
		if l.opts.Queries != nil {
			l.saveShared(rec)
		}
		res, n, err = l.runToFile(ctx, q, stmt)
	case <-ctx.Done():
		err = ctx.Err()
	}
	l.mu.Lock()
	l.release(q)
	l.running[q.Account]--
	ended := l.opts.Now().UTC()
	state, msg := l.endStateLocked(ctx, q, err)
	l.mu.Unlock()
	if l.opts.Queries != nil {
		// The other nodes learn the end first: a client told here that
		// the query finished finds it finished, with its result, on any
		// node.
		state, msg = l.shareEnded(q, state, msg, ended, n, res)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	q.Ended = ended
	l.endSeq++
	q.ended = l.endSeq
	q.scanned = n
	if q.State != QueryCancelled { // cancelled meanwhile: it stays so
		q.State, q.ErrorMessage = state, msg
		if state == QueryFinished {
			q.res, res = res, nil
		}
	}
	if res != nil {
		os.Remove(res.path)
	}
	if _, ok := l.queries[q.ID]; ok {
		l.evictLocked(q.Account)
	} else if q.res != nil { // forgotten while it ran (Close)
		os.Remove(q.res.path)
	}
}

// endStateLocked is the state and error message q ends in, its run having
// returned err (nil: finished); l.mu is held.
func (l *Lake) endStateLocked(ctx context.Context, q *query, err error) (state, msg string) {
	switch {
	case q.State == QueryCancelled:
		return QueryCancelled, q.ErrorMessage
	case q.interrupted:
		return QueryFailed, "The query was interrupted so that cairn could checkpoint its database under concurrent writes; run it again, or narrow it so it ends sooner."
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return QueryTimedOut, "The query ran longer than cairn's time limit."
	case err != nil && ctx.Err() != nil: // Close
		return QueryFailed, "The query was stopped: cairn's Lake is shutting down."
	case err != nil:
		var ae *audit.Error
		if errors.As(queryError(err, q.stores), &ae) {
			l.log.Debug("lake: query failed", "query", q.ID, "err", err)
			return QueryFailed, ae.Message
		}
		// Not the caller's business: the cause goes to the log, with the
		// query ID the caller sees.
		l.log.Error("lake: query failed", "query", q.ID, "account", q.Account, "err", err)
		return QueryFailed, "The query failed because of an error in cairn, not in the statement; the server's log has the cause (query " + q.ID + ")."
	}
	return QueryFinished, ""
}

// runToFile runs a query on a thread of its own with a low CPU priority
// (schedule.go), writing its rows to a result file.
func (l *Lake) runToFile(ctx context.Context, q *query, stmt string) (*resultFile, int64, error) {
	type out struct {
		res *resultFile
		n   int64
		err error
	}
	done := make(chan out, 1)
	go func() {
		lowPriorityThread()
		w := &fileSink{dir: l.resultsDir, id: q.ID}
		n, err := l.eng.Run(ctx, engine.Statement{SQL: stmt, Stores: q.stores, MaxBytes: l.opts.MaxResultBytes}, w)
		if err != nil {
			w.abort()
			done <- out{nil, n, err}
			return
		}
		res, err := w.finish()
		done <- out{res, n, err}
	}()
	o := <-done
	return o.res, o.n, o.err
}

// fileSink is an engine.RowSink writing a result file.
type fileSink struct {
	dir, id string
	w       *resultWriter
}

func (s *fileSink) SetColumns(cols []string) (err error) {
	s.w, err = newResultWriter(s.dir, s.id, cols)
	return err
}

func (s *fileSink) AddRow(row []*string) error { return s.w.add(row) }

func (s *fileSink) finish() (*resultFile, error) {
	if s.w == nil {
		return nil, errors.New("lake: query gave no columns")
	}
	return s.w.finish()
}

func (s *fileSink) abort() {
	if s.w != nil {
		s.w.abort()
	}
}

// QueryRef names a query: its ID and, optionally, the store (ARN or ID)
// the caller names with it, which must be one of its active stores.
type QueryRef struct{ ID, Store string }

// findQueryLocked returns account's query; l.mu is held.
func (l *Lake) findQueryLocked(account string, ref QueryRef) (*query, error) {
	if ref.ID == "" {
		return nil, invalidParam("QueryId is required.")
	}
	q := l.queries[ref.ID]
	if q != nil && !q.Ended.IsZero() && l.opts.Now().Sub(q.Ended) > queryKeep {
		l.forgetLocked(q) // expired
		q = nil
	}
	if q == nil || q.Account != account {
		return nil, audit.Errorf(audit.CodeQueryIdNotFound, "The query ID %s was not found.", audit.Clip(ref.ID, 128))
	}
	if ref.Store != "" {
		s, err := l.findStoreLocked(account, ref.Store)
		if err != nil {
			return nil, err
		}
		if s.Status == StatusPendingDeletion {
			return nil, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
		}
	}
	return q, nil
}

// QueryInfo is a query as DescribeQuery and ListQueries show it.
type QueryInfo struct {
	ID, Statement, State string
	// ErrorMessage says why a query failed, timed out or was
	// interrupted: a message for the caller.
	ErrorMessage string
	Created      time.Time
	// Elapsed is the time since the query was started, to its end if it
	// ended.
	Elapsed time.Duration
	// Matched is the rows of a finished query's result, Scanned the rows
	// its statement gave.
	Matched, Scanned int64
}

// infoLocked is q's QueryInfo; l.mu is held.
func (l *Lake) infoLocked(q *query) QueryInfo {
	end := q.Ended
	if end.IsZero() {
		end = l.opts.Now()
	}
	return QueryInfo{ID: q.ID, Statement: q.SQL, State: q.State, ErrorMessage: q.ErrorMessage, Created: q.Created,
		Elapsed: end.Sub(q.Created), Matched: q.resultRows(), Scanned: q.scanned}
}

// DescribeQuery returns p's query. Errors: InvalidParameter,
// QueryIdNotFound, and the store's (EventDataStoreNotFound,
// InactiveEventDataStore...).
func (l *Lake) DescribeQuery(ctx context.Context, p audit.Principal, ref QueryRef) (QueryInfo, error) {
	l.fresh(ctx)
	l.mu.Lock()
	q, err := l.findQueryLocked(p.AccountID, ref)
	if err == nil {
		defer l.mu.Unlock()
		return l.infoLocked(q), nil
	}
	l.mu.Unlock()
	if !isNotFound(err) || l.opts.Queries == nil {
		return QueryInfo{}, err
	}
	r, err := l.findShared(ctx, p.AccountID, ref) // another node's
	if err != nil {
		return QueryInfo{}, err
	}
	return l.sharedInfo(r), nil
}

// ResultSet is a query's state and, once it finished, its result.
type ResultSet struct {
	ID, State, ErrorMessage string
	// Columns and Rows describe a finished query's result (none before).
	Columns []string
	Rows    int
	res     *resultFile
	// shared reads the result another node saved (SharedQueries).
	shared SharedQueries
}

// Page returns rows [start, end) of the result, fewer if they add up to
// more than a page's bytes (4 MiB; at least one row). Errors:
// QueryIdNotFound when the result was forgotten since QueryResults.
func (r ResultSet) Page(start, end int) ([][]*string, error) {
	if r.shared != nil {
		if start >= end || start >= r.Rows {
			return nil, nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rows, err := r.shared.ResultPage(ctx, r.ID, start, min(end, r.Rows), maxPageBytes)
		if err == nil && len(rows) == 0 {
			// Forgotten since: as if the query had expired before the call.
			return nil, audit.Errorf(audit.CodeQueryIdNotFound, "The query ID %s was not found.", audit.Clip(r.ID, 128))
		}
		return rows, err
	}
	if r.res == nil {
		return nil, nil
	}
	got, err := r.res.page(start, end, maxPageBytes)
	if errors.Is(err, os.ErrNotExist) {
		// Evicted since: as if the query had expired before the call.
		return nil, audit.Errorf(audit.CodeQueryIdNotFound, "The query ID %s was not found.", audit.Clip(r.ID, 128))
	}
	return got, err
}

// QueryResults returns p's query's state and result. Errors: those of
// DescribeQuery.
func (l *Lake) QueryResults(ctx context.Context, p audit.Principal, ref QueryRef) (ResultSet, error) {
	l.fresh(ctx)
	l.mu.Lock()
	q, err := l.findQueryLocked(p.AccountID, ref)
	if err != nil {
		l.mu.Unlock()
		if !isNotFound(err) || l.opts.Queries == nil {
			return ResultSet{}, err
		}
		r, err := l.findShared(ctx, p.AccountID, ref) // another node's
		if err != nil {
			return ResultSet{}, err
		}
		rs := ResultSet{ID: r.ID, State: r.State, ErrorMessage: r.ErrorMessage}
		if r.State == QueryFinished {
			rs.Columns, rs.Rows, rs.shared = r.Columns, int(r.Rows), l.opts.Queries
		}
		return rs, nil
	}
	defer l.mu.Unlock()
	rs := ResultSet{ID: q.ID, State: q.State, ErrorMessage: q.ErrorMessage, res: q.res}
	if q.res != nil {
		rs.Columns, rs.Rows = q.res.columns, q.res.rows
	}
	return rs, nil
}

// resultRows is the number of rows of a finished query's result.
func (q *query) resultRows() int64 {
	if q.res == nil {
		return 0
	}
	return int64(q.res.rows)
}

// CancelQuery cancels p's queued or running query and returns it. Errors:
// those of DescribeQuery, InactiveQuery (a query that ended).
func (l *Lake) CancelQuery(ctx context.Context, p audit.Principal, ref QueryRef) (QueryInfo, error) {
	l.fresh(ctx)
	l.mu.Lock()
	q, err := l.findQueryLocked(p.AccountID, ref)
	if err != nil {
		l.mu.Unlock()
		if !isNotFound(err) || l.opts.Queries == nil {
			return QueryInfo{}, err
		}
		if _, err := l.findShared(ctx, p.AccountID, ref); err != nil { // another node's
			return QueryInfo{}, err
		}
		cctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		defer cancel()
		r, ok, err := l.opts.Queries.CancelQuery(cctx, p.AccountID, ref.ID)
		if err != nil {
			return QueryInfo{}, &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
				Message: "cairn cannot cancel the query in its shared store. Retry later."}
		}
		if !ok {
			return QueryInfo{}, audit.Errorf(audit.CodeInactiveQuery, "The query %s is %s and cannot be cancelled.", r.ID, r.State)
		}
		return l.sharedInfo(r), nil // its node stops it within a second
	}
	defer l.mu.Unlock()
	if q.State != QueryQueued && q.State != QueryRunning {
		return QueryInfo{}, audit.Errorf(audit.CodeInactiveQuery, "The query %s is %s and cannot be cancelled.", q.ID, q.State)
	}
	q.State = QueryCancelled
	q.cancel()
	if l.opts.Queries != nil {
		rec := l.sharedRecordLocked(q)
		go l.saveShared(rec) // its final save follows when it ends
	}
	return l.infoLocked(q), nil
}

// QueriesRequest is what Queries takes: the store (ARN or ID) whose
// queries to list, and filters (nil takes every state or time).
type QueriesRequest struct {
	Store      string
	State      *string
	Start, End *time.Time
}

// Queries returns p's queries of a store, newest first. Errors: the
// store's (EventDataStoreNotFound, InactiveEventDataStore...).
func (l *Lake) Queries(ctx context.Context, p audit.Principal, in QueriesRequest) ([]QueryInfo, error) {
	l.fresh(ctx)
	l.mu.Lock()
	s, err := l.findStoreLocked(p.AccountID, in.Store)
	if err != nil {
		l.mu.Unlock()
		return nil, err
	}
	if s.Status == StatusPendingDeletion {
		l.mu.Unlock()
		return nil, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
	}
	keep := func(state string, created time.Time) bool {
		return !(in.State != nil && state != *in.State ||
			in.Start != nil && created.Before(*in.Start) ||
			in.End != nil && created.After(*in.End))
	}
	var out []QueryInfo
	local := map[string]bool{}
	for _, q := range l.queries {
		if q.Account != p.AccountID || !contains(q.stores, s.ID) {
			continue
		}
		local[q.ID] = true
		if keep(q.State, q.Created) {
			out = append(out, l.infoLocked(q))
		}
	}
	l.mu.Unlock()
	if l.opts.Queries != nil { // and those of the other nodes
		lctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		recs, err := l.opts.Queries.ListQueries(lctx, p.AccountID, s.ID)
		cancel()
		if err != nil {
			return nil, &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
				Message: "cairn cannot read the queries from its shared store. Retry later."}
		}
		for _, r := range recs {
			if local[r.ID] || !r.Ended.IsZero() && l.opts.Now().Sub(r.Ended) > queryKeep || !keep(r.State, r.Created) {
				continue
			}
			out = append(out, l.sharedInfo(r))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Created.After(out[j].Created) || out[i].Created.Equal(out[j].Created) && out[i].ID < out[j].ID
	})
	if out == nil {
		out = []QueryInfo{}
	}
	return out, nil
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
