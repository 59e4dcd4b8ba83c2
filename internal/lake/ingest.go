package lake

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
)

// row is one event bound for one store.
type row struct {
	eds string
	raw []byte
}

// position returns the last feed sequence number Lake handled.
func (l *Lake) position(ctx context.Context) (int64, error) {
	var p int64
	err := l.db.QueryRowContext(ctx, `SELECT v FROM lake_meta WHERE k = 'feed_position'`).Scan(&p)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	return p, err
}

// Sync reads the feed after Lake's position once, up to the end, storing
// each record in the stores that select it. A store gets the events
// appended while it ingests; the store's retention decides, by eventTime,
// which are kept.
func (l *Lake) Sync(ctx context.Context, feed Feed) (int, error) {
	pos, err := l.position(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for {
		batch, err := feed.ReadAppended(ctx, pos, 5000)
		if err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		now := l.opts.Now()
		l.mu.Lock()
		var rows []row
		for i := range batch {
			r := &batch[i].Record
			for _, s := range l.stores {
				if s.selects(r) && !r.Time.Before(now.AddDate(0, 0, -s.RetentionPeriod)) {
					rows = append(rows, row{eds: s.ID, raw: r.Raw})
				}
			}
		}
		l.mu.Unlock()
		pos = batch[len(batch)-1].Seq
		if err := l.insert(ctx, rows, pos); err != nil {
			return total, err
		}
		l.wrote(ctx)
		total += len(rows)
	}
}

// Run syncs from feed every interval until ctx ends, and removes events
// past their store's retention (and stores past their pending deletion)
// hourly.
func (l *Lake) Run(ctx context.Context, feed Feed, interval time.Duration) {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastSweep time.Time
	for {
		if _, err := l.Sync(ctx, feed); err != nil && ctx.Err() == nil {
			l.log.Error("lake: ingest", "err", err)
		}
		l.idleCheckpoint(ctx)
		if now := l.opts.Now(); now.Sub(lastSweep) >= time.Hour {
			if err := l.Sweep(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("lake: retention", "err", err)
			}
			lastSweep = now
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep removes events older than their store's retention and the stores
// whose pending deletion ended.
func (l *Lake) Sweep(ctx context.Context) error {
	now := l.opts.Now().UTC()
	l.mu.Lock()
	type cut struct {
		id     string
		before time.Time
		gone   bool
	}
	var cuts []cut
	for _, s := range l.stores {
		gone := s.Status == StatusPendingDeletion && now.Sub(s.Deleted) >= pendingDeletion
		cuts = append(cuts, cut{s.ID, now.AddDate(0, 0, -s.RetentionPeriod), gone})
		if gone {
			delete(l.stores, s.ID)
		}
	}
	err := l.saveLocked()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for _, c := range cuts {
		q := `DELETE FROM events WHERE eds_id = ? AND eventTime < ?`
		args := []any{c.id, c.before}
		if c.gone {
			q, args = `DELETE FROM events WHERE eds_id = ?`, []any{c.id}
		}
		if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
			return err
		}
		l.commits.Add(1)
		l.wroteSinceTick.Store(true)
	}
	return nil
}

// Sink is an importer sink that stores records in event data stores of
// one account, regardless of their selectors (Lake imports take trail logs
// of any account the owner holds). A record already in a store (same
// eventID) is a duplicate and is not stored again.
type Sink struct {
	l      *Lake
	stores []string
	seen   map[string]map[string]bool
}

// NewSink returns a Sink into the stores (IDs or ARNs) of account.
func (l *Lake) NewSink(ctx context.Context, account string, stores []string) (*Sink, error) {
	if len(stores) == 0 {
		return nil, invalidParam("Destinations must name at least one event data store.")
	}
	k := &Sink{l: l, seen: map[string]map[string]bool{}}
	for _, ref := range stores {
		l.mu.Lock()
		s, err := l.findStoreLocked(callerOf(account), ref)
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if s.Status == StatusPendingDeletion {
			return nil, audit.Errorf("InactiveEventDataStore", "The event data store %s is pending deletion.", s.ID)
		}
		if s.custom() {
			return nil, audit.Errorf("InvalidEventDataStoreCategory", "Imports go into event data stores of CloudTrail events; %s holds ActivityAuditLog events.", s.ID)
		}
		if k.seen[s.ID] != nil {
			continue
		}
		ids, err := l.eventIDs(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		k.stores = append(k.stores, s.ID)
		k.seen[s.ID] = ids
	}
	return k, nil
}

// Append stores the records new to each store. Inserted and Duplicates
// count records (a record new to any store is Inserted).
func (k *Sink) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	var rows []row
	var res audit.AppendResult
	added := map[string][]string{}
	for _, r := range recs {
		isNew := false
		for _, s := range k.stores {
			key := r.Account + "/" + r.EventID
			if k.seen[s][key] || k.seen[s][r.EventID] && r.Account == "" {
				continue
			}
			k.seen[s][key] = true
			added[s] = append(added[s], key)
			rows = append(rows, row{eds: s, raw: r.Raw})
			isNew = true
		}
		if isNew {
			res.Inserted++
		} else {
			res.Duplicates++
		}
	}
	if err := k.l.insert(ctx, rows, 0); err != nil {
		for s, keys := range added {
			for _, key := range keys {
				delete(k.seen[s], key)
			}
		}
		return audit.AppendResult{}, err
	}
	k.l.wrote(ctx)
	return res, nil
}

func (l *Lake) eventIDs(ctx context.Context, eds string) (map[string]bool, error) {
	rs, err := l.db.QueryContext(ctx, `SELECT coalesce(recipientAccountId, userIdentity.accountId, '') || '/' || eventID FROM events WHERE eds_id = ? AND eventID IS NOT NULL`, eds)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	m := map[string]bool{}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			return nil, err
		}
		m[id] = true
	}
	return m, rs.Err()
}

// page slices n items by a NextToken (an offset) and a MaxResults.
func page(n int, token *string, max *int, def int) (start, end int, next *string, err error) {
	if token != nil {
		v, e := strconv.Atoi(*token)
		if e != nil || v < 0 || v > n || strconv.Itoa(v) != *token {
			return 0, 0, nil, audit.Errorf(audit.CodeInvalidNextToken, "The NextToken is not valid.")
		}
		start = v
	}
	lim := def
	if max != nil {
		lim = *max
	}
	end = min(n, start+lim)
	if end < n {
		s := strconv.Itoa(end)
		next = &s
	}
	return start, end, next, nil
}
