package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/lease"
)

// Leases returns the lease table of the store's database (lease.Table),
// on the store's connections: the nodes sharing the database agree
// through it on who runs the work that must have one writer.
func (s *Store) Leases() lease.Table { return leases{s} }

type leases struct{ s *Store }

// Acquire implements lease.Table: one statement, so that of nodes racing
// for a free lease exactly one gets it. Expiry is judged on the
// database's clock.
func (l leases) Acquire(ctx context.Context, name, holder string, ttl time.Duration) (int64, bool, error) {
	var token int64
	err := l.s.pool.QueryRow(ctx, `INSERT INTO leases AS l (name, holder, token, expires, acquired)
		VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond', clock_timestamp())
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = l.token + 1,
			expires = EXCLUDED.expires, acquired = EXCLUDED.acquired
		WHERE l.expires <= clock_timestamp()
		RETURNING token`, name, holder, ttl.Microseconds()).Scan(&token)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: acquire lease %s: %w", name, err)
	}
	return token, true, nil
}

// Renew implements lease.Table.
func (l leases) Renew(ctx context.Context, f lease.Fence, ttl time.Duration) (bool, error) {
	tag, err := l.s.pool.Exec(ctx, `UPDATE leases SET expires = clock_timestamp() + $4 * interval '1 microsecond'
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()`,
		f.Lease, f.Holder, f.Token, ttl.Microseconds())
	if err != nil {
		return false, fmt.Errorf("postgres: renew lease %s: %w", f.Lease, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Release implements lease.Table: the row stays, expired, with its token.
func (l leases) Release(ctx context.Context, f lease.Fence) error {
	_, err := l.s.pool.Exec(ctx, `UPDATE leases SET expires = clock_timestamp()
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires > clock_timestamp()`, f.Lease, f.Holder, f.Token)
	if err != nil {
		return fmt.Errorf("postgres: release lease %s: %w", f.Lease, err)
	}
	return nil
}

// CheckFence is the fencing check a writer of shared state makes in its
// transaction tx: when ctx carries a lease.Fence (the job writing runs
// under a lease, lease.Holder), the fence must still be its lease's
// current, unexpired holding, else the write is refused with an error
// wrapping lease.ErrFenced. The check locks the lease's row (FOR SHARE)
// until tx ends, so no node acquires the lease between the check and the
// commit: a node that lost its lease cannot overwrite what the new holder
// writes. Without a fence in ctx (one node, tools) it checks nothing.
//
// Call it in every transaction that writes state a leased job owns
// (trail positions, digest chains, Insights state, findings, retention),
// before the writes.
func CheckFence(ctx context.Context, tx pgx.Tx) error {
	f, ok := lease.FenceFrom(ctx)
	if !ok {
		return nil
	}
	var current bool
	err := tx.QueryRow(ctx, `SELECT holder = $2 AND token = $3 AND expires > clock_timestamp()
		FROM leases WHERE name = $1 FOR SHARE`, f.Lease, f.Holder, f.Token).Scan(&current)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		current = false
	case err != nil:
		return fmt.Errorf("postgres: check the fence of lease %s: %w", f.Lease, err)
	}
	if !current {
		return fmt.Errorf("lease %s, token %d of %s: %w", f.Lease, f.Token, f.Holder, lease.ErrFenced)
	}
	return nil
}
