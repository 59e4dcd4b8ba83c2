package lake

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// Sync reads the feed after Lake's position once, up to the end, storing
// each record in the stores that select it. A store gets the events
// appended while it ingests; the store's retention decides, by eventTime,
// which are kept.
func (l *Lake) Sync(ctx context.Context, feed Feed) (int, error) {
	if err := l.enter(); err != nil {
		return 0, err
	}
	defer l.work.Done()
	pos, err := l.eng.Position(ctx)
	if err != nil {
		return 0, err
	}
	if !l.opts.Shared {
		pos = max(pos, l.skipped.Load())
	}
	total := 0
	if h, ok := feed.(headFeed); ok {
		// No store ingests: nothing stored so far can be any store's (a
		// store gets what is stored after it is created or restarted), so
		// skip it unread. The head is read before the stores are looked
		// at: a record at or before it was stored before a store created
		// after the look.
		head, err := h.LastSeq(ctx)
		if err != nil {
			return 0, err
		}
		if head > pos && !l.anyIngesting() {
			// The position skipped to is kept in memory, and written
			// only every skipWriteEvery: a transaction each tick was
			// 1.7% of a server's CPU under lookups (issue 19). A store
			// started meanwhile takes nothing before its FromSeq, so a
			// crash that loses the position costs a re-read, never a
			// record stored before the store started. In shared mode
			// another node may read the feed next: it is written.
			now := l.opts.Now()
			if last := l.skipWrote.Load(); l.opts.Shared || now.Sub(time.Unix(0, last)) >= skipWriteEvery {
				if err := l.eng.Insert(ctx, nil, head); err != nil {
					return 0, err
				}
				l.skipWrote.Store(now.UnixNano())
			}
			l.skip(head)
			pos = head
		}
	}
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
		var rows []engine.Row
		for i := range batch {
			r := &batch[i].Record
			for _, s := range l.stores {
				if batch[i].Seq > s.FromSeq && s.selects(r) && !r.Time.Before(s.oldestKept(now)) {
					rows = append(rows, engine.Row{Store: s.ID, Raw: r.Raw})
				}
			}
		}
		l.mu.Unlock()
		pos = batch[len(batch)-1].Seq
		if err := l.eng.Insert(ctx, rows, pos); err != nil {
			return total, err
		}
		l.wrote(ctx)
		total += len(rows)
	}
}

// headFeed is a Feed that tells its last sequence number; Sync skips, on
// such a feed, what no store can take.
type headFeed interface {
	LastSeq(ctx context.Context) (int64, error)
}

// skipWriteEvery is how often, at most, Sync writes the position it
// skipped to while no store ingests.
const skipWriteEvery = time.Minute

// skip raises the position Sync skipped to (kept in memory) to pos.
func (l *Lake) skip(pos int64) {
	for {
		old := l.skipped.Load()
		if pos <= old || l.skipped.CompareAndSwap(old, pos) {
			return
		}
	}
}

// feedHead is the feed's last sequence number (Options.Feed's), the
// FromSeq of a store that starts ingesting now; 0 when the feed does not
// tell it (the store then takes what follows Lake's position).
func (l *Lake) feedHead(ctx context.Context) (int64, error) {
	h, ok := l.opts.Feed.(headFeed)
	if !ok {
		return 0, nil
	}
	head, err := h.LastSeq(ctx)
	if err != nil {
		return 0, &audit.Error{Code: audit.CodeServiceUnavailable, Err: fmt.Errorf("lake: the feed's last sequence number: %w", err),
			Message: "cairn cannot read the event store's position. Retry later."}
	}
	return head, nil
}

// anyIngesting reports whether a store takes events from the feed.
func (l *Lake) anyIngesting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.stores {
		if (s.Status == StatusEnabled || s.Status == StatusCreated) && !s.custom() {
			return true
		}
	}
	return false
}

// Run is the Lake's worker: until ctx ends (or Close), it syncs from
// Options.Feed every Options.IngestInterval, checkpoints the engine when
// writes pause, and removes events past their store's retention (and
// stores past their pending deletion) hourly. When ctx ends it refuses new
// work (ServiceUnavailable), stops the running queries and imports, and
// returns nil once every goroutine of the Lake (Run's loop, query runners,
// imports, calls in progress) has returned; Close then closes the engine
// with nothing running on it. It returns an error at once when the Lake is
// already stopped.
func (l *Lake) Run(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	l.loop(ctx)
	l.work.Done()
	l.stopWork()
	return nil
}

// loop is Run's loop; it returns when ctx ends or Close begins.
func (l *Lake) loop(ctx context.Context) {
	var lastSweep time.Time
	l.ticking(ctx, func(ctx context.Context) error {
		l.feedTick(ctx)
		l.idleCheckpoint(ctx)
		if now := l.opts.Now(); !l.opts.Shared && now.Sub(lastSweep) >= time.Hour {
			if err := l.Sweep(ctx); err != nil && ctx.Err() == nil {
				l.log.Error("lake: retention", "err", err)
			}
			lastSweep = now
		}
		return nil
	})
}

// feedTick is Run's reading of Options.Feed at a tick (Sync), unless the
// feed yields to a load (feedYields). In shared mode RunFeed reads it,
// under a lease.
func (l *Lake) feedTick(ctx context.Context) {
	if l.opts.Feed == nil || l.opts.Shared || l.feedYields(ctx) {
		return
	}
	if _, err := l.Sync(ctx, l.opts.Feed); err != nil && ctx.Err() == nil {
		l.log.Error("lake: ingest", "err", err)
	}
	l.fedAt.Store(l.opts.Now().UnixNano())
}

// feedMaxYield is how long, at most, Run's loop leaves the feed unread
// while a load's transactions are in progress (feedYields), unless every
// record waiting goes to a store being loaded.
const feedMaxYield = 30 * time.Second

// feedHoldScan is how many of the feed's records, at most, feedYields
// reads to find out whether every record waiting goes to a store being
// loaded: past it the feed is read (its transactions are then large).
const feedHoldScan = 2 * 61440

// feedYields reports whether Run's loop skips the feed this tick: a load's
// transaction is in progress and the feed was read less than feedMaxYield
// ago, or every record waiting in it goes to a store being loaded
// (feedWaitsForLoads). Until session 22 the feed's insert held the
// engine's write lock alone and made a load's two appenders take turns
// (session 21: StartImport of 1M at ~0.45x DuckDB's own load). It now runs
// beside the load's transactions, but a small transaction committed beside
// a load's costs the load more than the insert itself: StartImport of 500k
// without the yield was slower in each of four pairs alternated with it
// (18.5-33.9k against 21.7-36.5k events/s, 49-87 against 45-73 µs of CPU
// an event; docs/benchmarks.md, session 22), as session 19 had found; and
// DuckDB keeps each such commit as a row group of its own (~78 MiB, the
// load's next row group merged after it), spilled and read again by the
// checkpoint after the load (session 31: 1.4-3.3 GB of temporary files
// through a 10M StartImport, the server's RSS 1,224 MiB in that
// checkpoint). So the feed waits for the whole load while what it would
// store is the loaded stores' own (the load's caller's recorded calls,
// such as its GetImport polls); another store's record is stored within
// feedMaxYield, with everything before it. Session 32 (issue 15,
// docs/lake.md, "The feed waits for a load"; four pairs at 10M): the
// server's peak the same (1,067-1,086 MiB against 1,044-1,103), temporary
// files 0 against 322-864 MiB, faster in three pairs of four. The feed's
// records wait in Event History meanwhile (durable there; Lake's position
// is not moved), and the first read after the load takes them all, in
// order, once each.
func (l *Lake) feedYields(ctx context.Context) bool {
	if l.loading.Load() == 0 {
		return false
	}
	if l.opts.Now().Sub(time.Unix(0, l.fedAt.Load())) < feedMaxYield {
		return true
	}
	hold, err := l.feedWaitsForLoads(ctx)
	if err != nil || !hold {
		return false // read (Sync logs the error if it recurs)
	}
	l.fedAt.Store(l.opts.Now().UnixNano()) // look again in feedMaxYield
	return true
}

// feedWaitsForLoads reports whether every record after Lake's position in
// Options.Feed that a store would take goes to a store into which a load
// is in progress (loadStores), reading at most feedHoldScan records.
func (l *Lake) feedWaitsForLoads(ctx context.Context) (bool, error) {
	l.mu.Lock()
	held := len(l.loadStores) > 0
	l.mu.Unlock()
	if !held {
		return false, nil
	}
	pos, err := l.eng.Position(ctx)
	if err != nil {
		return false, err
	}
	pos = max(pos, l.skipped.Load())
	for read := 0; read < feedHoldScan; {
		batch, err := l.opts.Feed.ReadAppended(ctx, pos, 5000)
		if err != nil {
			return false, err
		}
		if len(batch) == 0 {
			return true, nil
		}
		now := l.opts.Now()
		l.mu.Lock()
		for i := range batch {
			r := &batch[i].Record
			for _, s := range l.stores {
				if l.loadStores[s.ID] == 0 && batch[i].Seq > s.FromSeq && s.selects(r) && !r.Time.Before(s.oldestKept(now)) {
					l.mu.Unlock()
					return false, nil
				}
			}
		}
		l.mu.Unlock()
		pos = batch[len(batch)-1].Seq
		read += len(batch)
	}
	return false, nil
}

// loadBegins and loadEnds count a load (a Sink's) into stores in
// loadStores, and its transaction in loading.
func (l *Lake) loadBegins(stores []string) {
	l.mu.Lock()
	if l.loadStores == nil {
		l.loadStores = map[string]int{}
	}
	for _, s := range stores {
		l.loadStores[s]++
	}
	l.mu.Unlock()
	l.loading.Add(1)
}

func (l *Lake) loadEnds(stores []string) {
	l.loading.Add(-1)
	l.mu.Lock()
	for _, s := range stores {
		if l.loadStores[s]--; l.loadStores[s] <= 0 {
			delete(l.loadStores, s)
		}
	}
	l.mu.Unlock()
}

// ticking runs step at once and then every Options.IngestInterval (a
// second by default) until ctx ends or Close begins (nil), or step returns
// an error (that error).
func (l *Lake) ticking(ctx context.Context, step func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.base, cancel)()
	interval := l.opts.IngestInterval
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := step(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep removes events older than their store's retention and the stores
// whose pending deletion ended.
func (l *Lake) Sweep(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.work.Done()
	now := l.opts.Now().UTC()
	type cut struct {
		id     string
		before time.Time
		gone   bool
	}
	var cuts []cut
	err := l.update(ctx, func() error {
		cuts = cuts[:0]
		for _, s := range l.stores {
			gone := s.Status == StatusPendingDeletion && now.Sub(s.Deleted) >= pendingDeletion
			cuts = append(cuts, cut{s.ID, s.oldestKept(now), gone})
			if gone {
				delete(l.stores, s.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range cuts {
		before := c.before
		if c.gone {
			before = time.Time{}
		}
		if err := l.eng.Delete(ctx, c.id, before); err != nil {
			return err
		}
		l.commits.Add(1)
		l.wroteSinceTick.Store(true)
	}
	return nil
}

// Sink is an importer sink that stores records in event data stores of
// one account, regardless of their selectors. A store takes only records
// of its account (recipientAccountId, else userIdentity.accountId), or,
// for an organization store of the organization's management account,
// of the organization's accounts (see owners): AppendReport refuses the
// others. A record already in a store (same account and eventID) is a
// duplicate and is not stored again. A store's retention period applies:
// the importer drops the records older than every store's (MinTime) and
// counts them Expired; a store never takes a record older than its own.
type Sink struct {
	l       *Lake
	account string
	stores  []string
	owners  map[string]map[string]bool // by store: the accounts whose records it takes
	seen    map[string]*idSet          // by store: the keys of its events and of the records taken
	cutoff  map[string]time.Time       // by store: the oldest eventTime its retention keeps
	// mu guards seen and load during appends (an import's appenders call
	// AppendEachReport concurrently).
	mu sync.Mutex
	// load is the load in progress on an engine that streams loads
	// (engine.Loader), begun by the first append; Finish ends it.
	load engine.Load
	// AnyAccount makes the stores take every account's records: a
	// responder's import (audit.Principal.Responder).
	AnyAccount bool
}

var _ importer.EachReportingSink = (*Sink)(nil)

// MinTime is the oldest eventTime one of the sink's stores keeps
// (importer.Options.MinTime): older records are expired for all of them.
func (k *Sink) MinTime() time.Time {
	var m time.Time
	for _, s := range k.stores {
		if c := k.cutoff[s]; m.IsZero() || c.Before(m) {
			m = c
		}
	}
	return m
}

// NewSink returns a Sink into the stores (IDs or ARNs) of account.
func (l *Lake) NewSink(ctx context.Context, account string, stores []string) (*Sink, error) {
	if err := l.enter(); err != nil {
		return nil, err
	}
	defer l.work.Done()
	if len(stores) == 0 {
		return nil, invalidParam("Destinations must name at least one event data store.")
	}
	k := &Sink{l: l, account: account, owners: map[string]map[string]bool{}, seen: map[string]*idSet{}, cutoff: map[string]time.Time{}}
	now := l.opts.Now()
	for _, ref := range stores {
		l.mu.Lock()
		s, err := l.findStoreLocked(account, ref)
		var owners map[string]bool
		if err == nil {
			owners = l.owners(s)
		}
		l.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if s.Status == StatusPendingDeletion {
			return nil, audit.Errorf(audit.CodeInactiveEventDataStore, "The event data store %s is pending deletion.", s.ID)
		}
		if s.custom() {
			return nil, audit.Errorf(audit.CodeInvalidEventDataStoreCategory, "Imports go into event data stores of CloudTrail events; %s holds ActivityAuditLog events.", s.ID)
		}
		if k.seen[s.ID] != nil {
			continue
		}
		ids := newIDSet()
		if err := l.eng.EachEventID(ctx, s.ID, func(key []byte) { ids.add(ids.keyBytes(key)) }); err != nil {
			return nil, err
		}
		k.stores = append(k.stores, s.ID)
		k.owners[s.ID] = owners
		k.cutoff[s.ID] = s.oldestKept(now)
		k.seen[s.ID] = ids
	}
	return k, nil
}

// owners returns the accounts whose records store s takes: its own, and
// for an organization store of the organization's management account, the
// organization's member accounts (as AWS's organization event data stores
// collect them).
func (l *Lake) owners(s *EventDataStore) map[string]bool {
	m := map[string]bool{s.Account: true}
	if o := l.opts.Organization; o != nil && s.OrganizationEnabled && o.ManagementAccount == s.Account {
		for _, a := range o.Members {
			m[a] = true
		}
	}
	return m
}

// Accounts reports whether some store of the sink takes records of
// account (importer.Options.Accounts).
func (k *Sink) Accounts(account string) bool {
	for _, s := range k.stores {
		if k.AnyAccount || k.owners[s][account] {
			return true
		}
	}
	return false
}

// Refuses reports whether the Sink refuses rec as AppendEachReport would:
// a record of an account none of its stores takes (importer.RefusingSink:
// the importer leaves such records out of a load's batches, so that each
// fills a row group). Records past a store's retention are the importer's
// MinTime and AppendEachReport's.
func (k *Sink) Refuses(rec audit.Record) (importer.Failure, bool) {
	if k.Accounts(rec.Account) {
		return importer.Failure{}, false
	}
	return refusal(0, rec.Account, k.account), true
}

// Append stores the records new to each store (see AppendReport; refused
// records are dropped).
func (k *Sink) Append(ctx context.Context, recs []audit.Record) (audit.AppendResult, error) {
	res, _, err := k.AppendReport(ctx, recs)
	return res, err
}

// AppendReport stores the records new to each store that takes them and
// returns the records no store takes (another account's) as failures.
// Inserted and Duplicates count records (a record new to any store is
// Inserted).
func (k *Sink) AppendReport(ctx context.Context, recs []audit.Record) (audit.AppendResult, []importer.Failure, error) {
	inserted, fails, err := k.AppendEachReport(ctx, recs)
	if err != nil {
		return audit.AppendResult{}, nil, err
	}
	var res audit.AppendResult
	for _, ok := range inserted {
		if ok {
			res.Inserted++
		}
	}
	res.Duplicates = len(recs) - res.Inserted - len(fails)
	return res, fails, nil
}

// AppendEachReport is AppendReport answering for each record
// (importer.EachReportingSink): inserted[i] when recs[i] was new to a
// store, and the refused records (another account's, or older than the
// retention) by their index. The records of all accounts and regions go
// into one transaction, and nothing is stored when it fails; concurrent
// calls (an import's appenders) each commit their own transaction, and a
// record in two of them is stored once.
//
// On an engine that streams loads (engine.Loader: DuckDB), the records go
// into the load's open transactions instead, which commit at whole row
// groups and at Finish: a record answered inserted is in the store once
// its transaction commits. If a commit fails, the call that made it, or
// Finish, fails, and the import with it; what the failed transaction held
// is not stored, and importing the same files again stores it (the
// records of the committed transactions are duplicates then).
func (k *Sink) AppendEachReport(ctx context.Context, recs []audit.Record) ([]bool, []importer.Failure, error) {
	if err := k.l.enter(); err != nil {
		return nil, nil, err
	}
	defer k.l.work.Done()
	var rows []engine.Row
	var fails []importer.Failure
	inserted := make([]bool, len(recs))
	added := map[string][][2]uint64{}
	k.mu.Lock()
	for i, r := range recs {
		isNew, owned, taken := false, false, false
		for _, s := range k.stores {
			if !k.AnyAccount && !k.owners[s][r.Account] {
				continue
			}
			owned = true
			if r.Time.Before(k.cutoff[s]) {
				continue
			}
			taken = true
			seen := k.seen[s]
			key := seen.key(r.Account, r.EventID)
			if !seen.add(key) {
				continue
			}
			added[s] = append(added[s], key)
			rows = append(rows, engine.Row{Store: s, Raw: r.Raw})
			isNew = true
		}
		switch {
		case !owned:
			fails = append(fails, refusal(i, r.Account, k.account))
		case !taken:
			fails = append(fails, importer.Failure{Index: i, Code: "Expired", Message: "The record is older than the event data store's retention period."})
		default:
			inserted[i] = isNew
		}
	}
	load := k.load
	if ld, ok := k.l.eng.(engine.Loader); ok && load == nil && len(rows) > 0 {
		// The load counts as in progress (the checkpoint policy's wait,
		// the feed's yield) from its first transaction to Finish.
		load = ld.BeginLoad()
		k.load = load
		k.l.loadBegins(k.stores)
	}
	k.mu.Unlock()
	var err error
	if load != nil {
		if len(rows) > 0 {
			err = load.Append(ctx, rows)
		}
	} else {
		k.l.loadBegins(k.stores)
		err = k.l.eng.Insert(ctx, rows, 0)
		k.l.loadEnds(k.stores)
	}
	if err != nil {
		k.mu.Lock()
		for s, keys := range added {
			for _, key := range keys {
				k.seen[s].remove(key)
			}
		}
		k.mu.Unlock()
		return nil, nil, err
	}
	if load == nil {
		// A load's commits are counted at Finish: a checkpoint now would
		// wait for the load's own open transactions.
		k.l.wrote(ctx)
	}
	return inserted, fails, nil
}

// Finish ends the sink's load (engine.Loader): it commits the load's open
// transactions, the records of its last, partial row groups. StartImport
// and `cairn import --into` call it once the importer returned, whether or
// not the import failed (a stopped import keeps what it appended). An
// error means those records are not stored; the import has failed. On
// another engine, and after the first call, it does nothing.
func (k *Sink) Finish(ctx context.Context) error {
	k.mu.Lock()
	load := k.load
	k.load = nil
	k.mu.Unlock()
	if load == nil {
		return nil
	}
	err := load.Finish(context.WithoutCancel(ctx))
	k.l.loadEnds(k.stores)
	k.l.wrote(context.WithoutCancel(ctx))
	return err
}

// refusal is the failure of record i, of account owner, in an import of
// account caller.
func refusal(i int, owner, caller string) importer.Failure {
	if owner == "" {
		return importer.Failure{Index: i, Code: "AccountMismatch", Message: "The record names no account (recipientAccountId, userIdentity.accountId); an import takes records of the caller's account only."}
	}
	return importer.Failure{Index: i, Code: "AccountMismatch", Message: "The record belongs to account " + owner + "; an import of account " + caller +
		" takes its own account's records (and its organization's, into an organization event data store of the management account)."}
}

// LoadBatch is the number of records the importer gives Lake's Sink at
// once in a load (StartImport, `cairn import --into`): a sixteenth of a
// DuckDB row group (an eighth, 15,360, until session 28: the batch being
// read and the one being appended were most of Go's live heap during a
// load, ~45-55 MB, which the collector let grow to twice that; at 7,680
// the live heap is ~25-32 MB and Go's resident share of a 10M load ~45 MB
// less, and each Append's INSERT in DuckDB holds half the rows: issue 15,
// docs/lake.md). The DuckDB engine streams a load into transactions of
// exactly one row group (duckdb.RowGroupSize, 122,880 rows; duckdb.Load),
// so that DuckDB writes each to the file as a whole row group while its
// rows are appended, and logs only its location; in transactions of 5,000
// records every row went through the write-ahead log at COMMIT, half of
// the load's CPU (issue 15: 200k events, 13.6-14.0k -> 24.7-26.7k
// events/s, docs/benchmarks.md). Until session 23 a batch was a whole row
// group, held in memory until appended: with LoadAppenders and the batch
// being filled, ~370k records (~700 MB of Go heap). A divisor of the row
// group, so a load of records the store takes splits none at a
// transaction's boundary.
const LoadBatch = 7680

// LoadBatchOf is the records of a load's batch with appenders Appends at
// once (importer.Options.Appenders): LoadBatch with one, half of it (3,840,
// a thirty-second of a row group) with more. With two, the importer holds
// three batches at once (one in DuckDB, one read and waiting for its turn,
// one being filled), and the waiting one its Appender's values too, against
// one batch and the next one's start with one: at 7,680 that was most of
// what two added to Go's heap (session 36: live 70-84 MiB against 37-47,
// mapped 147 against 78), and halved the three hold fewer records than
// LoadBatch and a half. Each batch's INSERT has a fixed cost, and there
// are twice as many (session 28: halving from 15,360 cost 2-7% more user
// CPU). Every value divides a row group, as LoadBatch does.
func LoadBatchOf(appenders int) int {
	if appenders > 1 {
		return LoadBatch / 2
	}
	return LoadBatch
}

// LoadAppenders is the number of a load's batches appended at once
// (importer.Options.Appenders) into Lake's DuckDB engine (Options.
// LoadAppenders, cairn's CAIRN_LOAD_APPENDERS, sets another). The engine
// keeps one transaction open a load and concurrent Appends take turns in
// it (duckdb.Load); one waiting for its turn reads its batch's records
// meanwhile. With two, one batch is read on one core while the other is in
// DuckDB's INSERT or COMMIT on the other (session 35: a load used ~1.15 of
// the 2 cores, its one goroutine doing both in turn): a 10M StartImport
// 14-19% faster, but its server's VmHWM 85-106 MiB higher (Go's heap held
// two batches more and the waiting one's values; issue 15's 954 MiB), so
// one was the default until session 36: with the seen set in 11-byte
// records two peaked at 945 and 948 MiB, and with their batches halved
// (LoadBatchOf) under one's peak (docs/lake.md, "Two Appends, one
// transaction"), so two are the default since. Until session 24 each of two took its own transaction: two row
// groups, filled side by side, were held in DuckDB's memory uncompressed
// (~360 MB each) until they committed together (DuckDB's share of a 1M
// offline load ~760 MB against ~420 MB with one, its RSS 1.24 GB), and a
// load of less than two row groups ended with two partial transactions,
// whose rows go through the write-ahead log and the checkpoint.
const LoadAppenders = 2

// LoadFlushInterval is how long a load's read records wait for a full
// batch (importer.Options.FlushInterval) before a partial one is appended.
// The importer's 1 s cut a load's batches short whenever the reading fell
// behind for a second (a busy machine, both appenders busy): such a
// transaction holds less than a row group, so its rows go through the
// write-ahead log and a checkpoint, which cost a load more than the rest
// of its transaction (issue 15). Since session 23 that holds on PostgreSQL's
// engine only: on DuckDB's a partial batch joins an open transaction
// (duckdb.Load), so the wait only keeps batches whole; it was not changed.
const LoadFlushInterval = 30 * time.Second
