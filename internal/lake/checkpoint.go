package lake

import (
	"context"
	"os"
	"path/filepath"
)

// Checkpoints keep lake.duckdb's write-ahead log short, so a restart after
// a crash replays little of it. DuckDB's own trigger (checkpoint_threshold,
// 512MB here: a smaller one made long loads 2-3x as costly) counts bytes,
// but replaying the log costs ~4-5 ms per transaction whatever its size:
// 1,300 one-event PutAuditEvents calls (6.8 MB of log) took 5.3 s to
// replay. So Lake also checkpoints after CheckpointCommits transactions,
// after CheckpointWALBytes of log, when writes pause (Run's tick), and on
// Close. A checkpoint takes the write lock: no write waits on it for longer
// than the checkpoint itself, and queries run on.

// wrote notes one committed write transaction and checkpoints when the log
// has reached the policy's bounds.
func (l *Lake) wrote(ctx context.Context) {
	if l.dir == "" {
		return
	}
	n := l.commits.Add(1)
	l.wroteSinceTick.Store(true)
	if n < int64(l.opts.CheckpointCommits) && l.walSize() < l.opts.CheckpointWALBytes {
		return
	}
	if err := l.Checkpoint(context.WithoutCancel(ctx)); err != nil {
		l.log.Warn("lake: checkpoint", "err", err)
	}
}

// idleCheckpoint checkpoints when transactions were committed since the
// last checkpoint but none since the previous call (Run's tick).
func (l *Lake) idleCheckpoint(ctx context.Context) {
	if l.dir == "" || l.wroteSinceTick.Swap(false) || l.commits.Load() == 0 {
		return
	}
	if err := l.Checkpoint(ctx); err != nil && ctx.Err() == nil {
		l.log.Warn("lake: checkpoint", "err", err)
	}
}

// Checkpoint writes the write-ahead log's changes into lake.duckdb and
// empties the log.
func (l *Lake) Checkpoint(ctx context.Context) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	n := l.commits.Load()
	if _, err := l.db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return err
	}
	l.commits.Add(-n)
	return nil
}

// walSize is the size of lake.duckdb's write-ahead log in bytes.
func (l *Lake) walSize() int64 {
	fi, err := os.Stat(filepath.Join(l.dir, DBFile+".wal"))
	if err != nil {
		return 0
	}
	return fi.Size()
}
