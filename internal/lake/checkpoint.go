package lake

import (
	"context"
)

// Checkpoints keep lake.duckdb's write-ahead log short, so a restart after
// a crash replays little of it. DuckDB's own trigger (checkpoint_threshold,
// 512MB here: a smaller one made long loads 2-3x as costly) counts bytes,
// but replaying the log costs ~4-5 ms per transaction whatever its size:
// 1,300 one-event PutAuditEvents calls (6.8 MB of log) took 5.3 s to
// replay. So Lake also checkpoints after CheckpointCommits transactions,
// after CheckpointWALBytes of log, when writes pause (Run's tick), and on
// Close. The engine checkpoints under its write lock: no write waits on it for
// longer than the checkpoint itself.
//
// Writes run side by side, a checkpoint alone: it waits for the write
// transactions in progress, and no write starts while it waits. A load's
// transactions take seconds each, so a checkpoint requested during one
// would hold off the load's next transaction (its two appenders would take
// turns). So while a load's transaction is in progress the policy's
// checkpoint waits (up to twice its bounds: maxBlockedCommits, twice
// CheckpointWALBytes) and the idle one is not tried; the first commit or
// tick after the load checkpoints. The writes beside a load (the journal's
// writer; the feed past feedMaxYield) do not wait for it.
//
// A running query can block checkpoints ("Cannot CHECKPOINT: there are other
// write transactions active"), and while it runs each small write
// transaction costs ~700 KB of log instead of ~5 KB (400 PutAuditEvents
// calls during one long query: a 260 MB log). So when a checkpoint fails,
// the scheduler admits no new query until one succeeds (the running ones
// drain), and when the log holds maxBlockedCommits() transactions the
// running queries are interrupted (FAILED, saying so): a restart never
// replays more than that, whatever a tenant runs.

// maxBlockedCommits is the number of transactions after which running
// queries are interrupted so the database can checkpoint.
func (l *Lake) maxBlockedCommits() int64 { return 2 * int64(l.opts.CheckpointCommits) }

// wrote notes the engine's Insert transactions not yet counted (none when
// the caller's Insert shared a transaction a concurrent caller counted
// already) and checkpoints when the log has reached the policy's bounds.
func (l *Lake) wrote(ctx context.Context) {
	if l.count() {
		l.policyCheckpoint(context.WithoutCancel(ctx))
	}
}

// wroteBehind is wrote for a caller that does not wait for the checkpoint:
// PutAuditEvents, whose events are durable in the engine's journal when
// its Insert returns, and whose transactions (the journal's writer's) the
// checkpoint follows. Each call used to wait for it (seconds after a
// writer's transaction of ~100k events, while no call was answered), and
// each of the concurrent calls that saw the bound ran one of its own
// after the first, their counts of the transactions taken off the total
// as often (it went below zero). The checkpoint runs in its own goroutine
// (Close waits for it), one at a time: calls meanwhile start none.
func (l *Lake) wroteBehind(ctx context.Context) {
	if !l.count() || !l.ckptBehind.CompareAndSwap(false, true) {
		return
	}
	l.work.Add(1) // the caller's work is not done: Close has not begun waiting
	go func() {
		defer l.work.Done()
		defer l.ckptBehind.Store(false)
		l.policyCheckpoint(context.WithoutCancel(ctx))
	}()
}

// count adds the engine's transactions not yet counted to commits and
// reports whether the policy's bounds ask for a checkpoint (due).
func (l *Lake) count() bool {
	if l.dir == "" {
		return false
	}
	for t := l.eng.Inserts(); ; {
		seen := l.inserts.Load()
		if t <= seen {
			break
		}
		if l.inserts.CompareAndSwap(seen, t) {
			l.commits.Add(t - seen)
			break
		}
	}
	l.wroteSinceTick.Store(true)
	return l.due()
}

// due reports whether the policy's bounds ask for a checkpoint: the
// transactions or the log since the last one, and while a load's
// transaction is in progress, twice those.
func (l *Lake) due() bool {
	n, logSize := l.commits.Load(), l.eng.LogSize()
	if n < int64(l.opts.CheckpointCommits) && logSize < l.opts.CheckpointWALBytes {
		return false
	}
	if l.loading.Load() > 0 && n < l.maxBlockedCommits() && logSize < 2*l.opts.CheckpointWALBytes {
		return false // after the load's transaction in progress
	}
	return true
}

// policyCheckpoint checkpoints if the policy's bounds still ask for it
// once the checkpoints before it are done (one of them may have emptied
// the log this one was asked for).
func (l *Lake) policyCheckpoint(ctx context.Context) {
	l.ckptMu.Lock()
	if !l.due() {
		l.ckptMu.Unlock()
		return
	}
	n, err := l.checkpointLocked(ctx)
	l.ckptMu.Unlock()
	if err != nil {
		l.checkpointBlocked(err, n)
	}
}

// checkpointBlocked holds admissions after a failed checkpoint and, past
// maxBlockedCommits transactions, interrupts the running queries.
func (l *Lake) checkpointBlocked(err error, commits int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.metrics.checkpoints.WithLabelValues("blocked").Inc()
	if !l.ckptBlocked {
		l.log.Warn("lake: checkpoint waits for running queries; admitting none until it is done", "err", err)
	}
	l.ckptBlocked = true
	if commits < l.maxBlockedCommits() {
		return
	}
	for _, q := range l.queries {
		if q.slot && !q.interrupted {
			q.interrupted = true
			q.cancel()
			l.metrics.interrupted.Inc()
			l.log.Warn("lake: query interrupted for a checkpoint", "account", q.Account, "query", q.ID, "transactions", commits)
		}
	}
}

// idleCheckpoint checkpoints when transactions were committed since the
// last checkpoint but none since the previous call (Run's tick), and no
// load's transaction is in progress: a load's transactions take seconds
// each, and a checkpoint waiting for one would hold off the load's next.
// The load's own commits check the policy's bounds (wrote), and the first
// tick after it checkpoints.
func (l *Lake) idleCheckpoint(ctx context.Context) {
	if l.dir == "" || l.loading.Load() > 0 || l.wroteSinceTick.Swap(false) || l.commits.Load() == 0 {
		return
	}
	if err := l.checkpoint(ctx); err != nil && ctx.Err() == nil {
		l.checkpointBlocked(err, l.commits.Load())
	}
}

// Checkpoint writes the write-ahead log's changes into lake.duckdb and
// empties the log.
func (l *Lake) Checkpoint(ctx context.Context) error {
	if err := l.enter(); err != nil {
		return err
	}
	defer l.work.Done()
	return l.checkpoint(ctx)
}

// checkpoint is Checkpoint, for callers that entered (or Close).
func (l *Lake) checkpoint(ctx context.Context) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	_, err := l.checkpointLocked(ctx)
	return err
}

// checkpointLocked checkpoints; the caller holds ckptMu. n is the commits
// counted when it began.
func (l *Lake) checkpointLocked(ctx context.Context) (n int64, err error) {
	n = l.commits.Load()
	if err := l.eng.Checkpoint(ctx); err != nil {
		return n, err
	}
	l.commits.Add(-n)
	l.metrics.checkpoints.WithLabelValues("ok").Inc()
	l.mu.Lock()
	if l.ckptBlocked {
		l.ckptBlocked = false
		l.admitLocked()
	}
	l.mu.Unlock()
	return n, nil
}
