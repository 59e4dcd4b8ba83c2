package lake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lease"
)

// The shared mode (Options.Shared): several nodes share the registry (a
// StateStore), the engine's events and the queries (SharedQueries). The
// work that must have one writer runs in the jobs of two leases, which
// cmd/cairn runs with lease.Holder: RunFeed (the feed into the stores and
// retention) and RunImports (imports.go). Queries run on the node that
// StartQuery reached and are kept in SharedQueries, so any node answers
// DescribeQuery, GetQueryResults, ListQueries and CancelQuery.

// SharedQueries keeps queries where every node reads them
// (engine.QueryStore; internal/lake/postgres).
type SharedQueries = engine.QueryStore

// SharedQuery is a query as SharedQueries keeps it.
type SharedQuery = engine.QueryRecord

// sharedTimeout bounds each call to SharedQueries.
const sharedTimeout = 10 * time.Second

// RunFeed is the job of the feed's lease in the shared mode: until ctx
// ends it syncs from Options.Feed every Options.IngestInterval and removes
// events past their store's retention (and stores past their pending
// deletion) hourly; ctx carries the lease's fence, which the engine's
// writes and the registry's saves check. It returns an error wrapping
// lease.ErrFenced when a write was fenced off (another node holds the
// lease), nil when ctx ends.
func (l *Lake) RunFeed(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return nil
	}
	defer l.work.Done()
	var lastSweep time.Time
	return l.ticking(ctx, func(ctx context.Context) error {
		if err := l.refresh(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("lake: feed: the registry could not be read", "err", err)
		} else if l.opts.Feed != nil {
			_, err := l.Sync(ctx, l.opts.Feed)
			if errors.Is(err, lease.ErrFenced) {
				return fmt.Errorf("lake: ingest: %w", err)
			}
			if err != nil && ctx.Err() == nil {
				l.log.Error("lake: ingest", "err", err)
			}
		}
		if now := l.opts.Now(); now.Sub(lastSweep) >= time.Hour && ctx.Err() == nil {
			err := l.Sweep(ctx)
			if errors.Is(err, lease.ErrFenced) {
				return fmt.Errorf("lake: retention: %w", err)
			}
			if err != nil && ctx.Err() == nil {
				l.log.Error("lake: retention", "err", err)
			}
			lastSweep = now
		}
		return nil
	})
}

// sharedRecord is q as SharedQueries keeps it; l.mu is held.
func (l *Lake) sharedRecordLocked(q *query) SharedQuery {
	r := SharedQuery{ID: q.ID, Account: q.Account, Statement: q.SQL, State: q.State, ErrorMessage: q.ErrorMessage,
		Node: l.opts.Node, Stores: q.stores, Created: q.Created, Ended: q.Ended, Scanned: q.scanned}
	if q.res != nil {
		r.Rows, r.Columns = int64(q.res.rows), q.res.columns
	}
	return r
}

// saveShared saves rec; a failure is logged (the query's node still
// answers for it).
func (l *Lake) saveShared(rec SharedQuery) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if err := l.opts.Queries.SaveQuery(ctx, rec); err != nil {
		l.log.Warn("lake: the query's state is not saved for the other nodes", "query", rec.ID, "state", rec.State, "err", err)
	}
}

// watchCancel cancels q, running here, when another node cancels it in
// SharedQueries; it returns when ctx ends.
func (l *Lake) watchCancel(ctx context.Context, q *query) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, sharedTimeout)
		rec, ok, err := l.opts.Queries.LoadQuery(lctx, q.ID)
		cancel()
		if err != nil || !ok || rec.State != QueryCancelled {
			continue
		}
		l.mu.Lock()
		if q.State == QueryQueued || q.State == QueryRunning {
			q.State = QueryCancelled
			q.cancel()
		}
		l.mu.Unlock()
		return
	}
}

// shareEnded saves the query q that ended here in state (with msg, at
// ended, having scanned n events), with its result res when it finished,
// for every node to read, before this node shows the end: it returns the
// state and message q ends in (FAILED when its result could not be saved).
func (l *Lake) shareEnded(q *query, state, msg string, ended time.Time, n int64, res *resultFile) (string, string) {
	l.mu.Lock()
	rec := l.sharedRecordLocked(q)
	forget := l.forget
	l.forget = nil
	now := l.opts.Now()
	sweep := now.Sub(l.lastForget) >= time.Hour
	if sweep || len(forget) > 0 {
		l.lastForget = now
	}
	l.mu.Unlock()
	rec.State, rec.ErrorMessage, rec.Ended, rec.Scanned, rec.Rows, rec.Columns = state, msg, ended, n, 0, nil
	// Queries forgotten here, and hourly those of every node that ended
	// more than 7 days ago.
	if sweep || len(forget) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
		if err := l.opts.Queries.ForgetQueries(ctx, forget, l.opts.Now().Add(-queryKeep)); err != nil {
			l.log.Warn("lake: forgetting queries of the shared store", "err", err)
		}
		cancel()
	}
	if state == QueryFinished && res != nil {
		rec.Rows, rec.Columns = int64(res.rows), res.columns
		if err := l.copyResult(rec.ID, res); err != nil {
			l.log.Error("lake: the query's result is not saved for the other nodes", "query", rec.ID, "err", err)
			rec.State, rec.Rows, rec.Columns = QueryFailed, 0, nil
			rec.ErrorMessage = "The query failed because of an error in cairn, not in the statement; the server's log has the cause (query " + rec.ID + ")."
		}
	}
	l.saveShared(rec)
	return rec.State, rec.ErrorMessage
}

// copyResult copies a result file into SharedQueries, a page at a time.
func (l *Lake) copyResult(id string, res *resultFile) error {
	const chunk = 5000
	for start := 0; start < res.rows; {
		rows, err := res.page(start, min(start+chunk, res.rows), 64<<20)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = l.opts.Queries.SaveResult(ctx, id, start, rows)
		cancel()
		if err != nil {
			return err
		}
		start += len(rows)
	}
	return nil
}

// sharedInfo is a query another node runs or ran, as DescribeQuery shows
// it.
func (l *Lake) sharedInfo(r SharedQuery) QueryInfo {
	end := r.Ended
	if end.IsZero() {
		end = l.opts.Now()
	}
	return QueryInfo{ID: r.ID, Statement: r.Statement, State: r.State, ErrorMessage: r.ErrorMessage, Created: r.Created,
		Elapsed: end.Sub(r.Created), Matched: r.Rows, Scanned: r.Scanned}
}

// findShared returns account's query ref from SharedQueries, checking ref's
// store as findQueryLocked does; QueryIdNotFound when it is not there.
func (l *Lake) findShared(ctx context.Context, account string, ref QueryRef) (SharedQuery, error) {
	notFound := audit.Errorf(audit.CodeQueryIdNotFound, "The query ID %s was not found.", audit.Clip(ref.ID, 128))
	if l.opts.Queries == nil {
		return SharedQuery{}, notFound
	}
	lctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	r, ok, err := l.opts.Queries.LoadQuery(lctx, ref.ID)
	if err != nil {
		return SharedQuery{}, &audit.Error{Code: audit.CodeServiceUnavailable, Err: err,
			Message: "cairn cannot read the query from its shared store. Retry later."}
	}
	if !ok || r.Account != account || !r.Ended.IsZero() && l.opts.Now().Sub(r.Ended) > queryKeep {
		return SharedQuery{}, notFound
	}
	if ref.Store != "" {
		l.fresh(ctx)
		l.mu.Lock()
		s, err := l.findStoreLocked(account, ref.Store)
		l.mu.Unlock()
		if err != nil {
			return SharedQuery{}, err
		}
		if s.Status == StatusPendingDeletion {
			return SharedQuery{}, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
		}
	}
	return r, nil
}

// isNotFound reports whether err is QueryIdNotFound.
func isNotFound(err error) bool {
	var ae *audit.Error
	return errors.As(err, &ae) && ae.Code == audit.CodeQueryIdNotFound
}
