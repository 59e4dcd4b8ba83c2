package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lease"
)

// State is the audit.StateStore of every node on the database: the
// shared_state table (migration 5). It shares the store's connections and
// is valid until the store is closed.
type State struct{ s *Store }

// State returns the shared state kept beside Event History.
func (s *Store) State() *State { return &State{s: s} }

var _ audit.StateStore = (*State)(nil)

func checkKey(key string) error {
	if !audit.ValidStateKey(key) {
		return fmt.Errorf("postgres: state key %q: %w", key, audit.ErrStateKey)
	}
	return nil
}

// Get returns key's value and version; absent is (nil, 0, nil).
func (st *State) Get(ctx context.Context, key string) ([]byte, int64, error) {
	if err := checkKey(key); err != nil {
		return nil, 0, err
	}
	var b []byte
	var v int64
	err := st.s.pool.QueryRow(ctx, `SELECT value, version FROM shared_state WHERE key = $1`, key).Scan(&b, &v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("postgres: get state %s: %w", key, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, v, nil
}

// Version returns key's version (0: absent): one index lookup, no value.
func (st *State) Version(ctx context.Context, key string) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	var v int64
	err := st.s.pool.QueryRow(ctx, `SELECT version FROM shared_state WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: state version %s: %w", key, err)
	}
	return v, nil
}

// Put stores value if key's version is still version (0: absent), in one
// statement: the row's lock orders concurrent writers of a key, and the
// loser matches no row. With a lease.Fence in ctx the statement follows
// CheckFence in one transaction (fenced).
func (st *State) Put(ctx context.Context, key string, value []byte, version int64) (int64, error) {
	if err := checkKey(key); err != nil {
		return 0, err
	}
	if len(value) > audit.MaxStateValue {
		return 0, fmt.Errorf("postgres: state %s: %d bytes: %w", key, len(value), audit.ErrStateKey)
	}
	if value == nil {
		value = []byte{}
	}
	var v int64
	err := st.fenced(ctx, func(q querier) error {
		if version == 0 {
			return q.QueryRow(ctx, `INSERT INTO shared_state (key, value, version)
				VALUES ($1, $2, nextval('shared_state_version')) ON CONFLICT (key) DO NOTHING RETURNING version`, key, value).Scan(&v)
		}
		return q.QueryRow(ctx, `UPDATE shared_state SET value = $2, version = nextval('shared_state_version')
			WHERE key = $1 AND version = $3 RETURNING version`, key, value, version).Scan(&v)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: state %s: %w", key, audit.ErrStateConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: put state %s: %w", key, err)
	}
	return v, nil
}

// querier is what a write of state runs its statement on: the pool, or
// the transaction of a fenced write.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// fenced runs write, one statement: on the pool when ctx carries no
// lease.Fence (one statement, as it always was), else in a transaction
// whose first statement is CheckFence, so that a job that lost its lease
// (the delivery, a digest chain, Insights, detection) writes nothing once
// another node holds it; its error then wraps lease.ErrFenced.
func (st *State) fenced(ctx context.Context, write func(q querier) error) error {
	if _, ok := lease.FenceFrom(ctx); !ok {
		return write(st.s.pool)
	}
	return pgx.BeginFunc(ctx, st.s.pool, func(tx pgx.Tx) error {
		if err := CheckFence(ctx, tx); err != nil {
			return err
		}
		return write(tx)
	})
}

// Delete removes key if its version is still version (fenced as Put).
func (st *State) Delete(ctx context.Context, key string, version int64) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if version == 0 {
		v, err := st.Version(ctx, key)
		if err != nil {
			return err
		}
		if v != 0 {
			return fmt.Errorf("postgres: state %s: %w", key, audit.ErrStateConflict)
		}
		return nil
	}
	err := st.fenced(ctx, func(q querier) error {
		tag, err := q.Exec(ctx, `DELETE FROM shared_state WHERE key = $1 AND version = $2`, key, version)
		if err == nil && tag.RowsAffected() == 0 {
			err = audit.ErrStateConflict
		}
		return err
	})
	if errors.Is(err, audit.ErrStateConflict) {
		return fmt.Errorf("postgres: state %s: %w", key, err)
	}
	if err != nil {
		return fmt.Errorf("postgres: delete state %s: %w", key, err)
	}
	return nil
}

// List returns the keys beginning with prefix, sorted byte by byte.
func (st *State) List(ctx context.Context, prefix string) ([]audit.StateEntry, error) {
	rows, err := st.s.pool.Query(ctx, `SELECT key, value, version FROM shared_state
		WHERE starts_with(key, $1) ORDER BY key`, prefix)
	if err != nil {
		return nil, fmt.Errorf("postgres: list state %q: %w", prefix, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (audit.StateEntry, error) {
		var e audit.StateEntry
		err := r.Scan(&e.Key, &e.Value, &e.Version)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list state %q: %w", prefix, err)
	}
	return out, nil
}
