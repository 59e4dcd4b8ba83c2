package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// queriesDDL makes the tables of the queries every node reads
// (engine.QueryStore): lake_queries, one row a query, and lake_results,
// one row a result row (its cells a text array, NULL for a NULL cell).
const queriesDDL = `CREATE TABLE IF NOT EXISTS lake_queries (id text PRIMARY KEY, account text NOT NULL, node text NOT NULL,
  statement text NOT NULL, state text NOT NULL, error text NOT NULL, stores text[] NOT NULL,
  created timestamptz NOT NULL, ended timestamptz, scanned bigint NOT NULL, nrows bigint NOT NULL, columns text[]);
CREATE INDEX IF NOT EXISTS lake_queries_account ON lake_queries (account, created);
CREATE TABLE IF NOT EXISTS lake_results (query_id text NOT NULL, n integer NOT NULL, cells text[] NOT NULL, PRIMARY KEY (query_id, n));`

var _ engine.QueryStore = (*DB)(nil)

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// SaveQuery implements engine.QueryStore: one upsert that leaves a
// CANCELLED query as it is.
func (d *DB) SaveQuery(ctx context.Context, q engine.QueryRecord) error {
	stores := q.Stores
	if stores == nil {
		stores = []string{}
	}
	_, err := d.pool.Exec(ctx, `INSERT INTO lake_queries (id, account, node, statement, state, error, stores, created, ended, scanned, nrows, columns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO UPDATE SET node = excluded.node, state = excluded.state, error = excluded.error, ended = excluded.ended,
			scanned = excluded.scanned, nrows = excluded.nrows, columns = excluded.columns
		WHERE lake_queries.state <> 'CANCELLED'`,
		q.ID, q.Account, q.Node, q.Statement, q.State, q.ErrorMessage, stores, q.Created.UTC(), nullTime(q.Ended), q.Scanned, q.Rows, q.Columns)
	if err != nil {
		return fmt.Errorf("lake/postgres: save query %s: %w", q.ID, err)
	}
	return nil
}

const queryCols = `id, account, node, statement, state, error, stores, created, ended, scanned, nrows, columns`

func scanQuery(r pgx.Row) (engine.QueryRecord, error) {
	var q engine.QueryRecord
	var ended *time.Time
	err := r.Scan(&q.ID, &q.Account, &q.Node, &q.Statement, &q.State, &q.ErrorMessage, &q.Stores, &q.Created, &ended, &q.Scanned, &q.Rows, &q.Columns)
	if ended != nil {
		q.Ended = ended.UTC()
	}
	q.Created = q.Created.UTC()
	return q, err
}

// LoadQuery implements engine.QueryStore.
func (d *DB) LoadQuery(ctx context.Context, id string) (engine.QueryRecord, bool, error) {
	q, err := scanQuery(d.pool.QueryRow(ctx, `SELECT `+queryCols+` FROM lake_queries WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return engine.QueryRecord{}, false, nil
	}
	if err != nil {
		return engine.QueryRecord{}, false, fmt.Errorf("lake/postgres: load query: %w", err)
	}
	return q, true, nil
}

// CancelQuery implements engine.QueryStore.
func (d *DB) CancelQuery(ctx context.Context, account, id string) (engine.QueryRecord, bool, error) {
	q, err := scanQuery(d.pool.QueryRow(ctx, `UPDATE lake_queries SET state = 'CANCELLED'
		WHERE id = $1 AND account = $2 AND state IN ('QUEUED', 'RUNNING') RETURNING `+queryCols, id, account))
	if errors.Is(err, pgx.ErrNoRows) {
		q, ok, err := d.LoadQuery(ctx, id)
		if !ok || q.Account != account {
			return engine.QueryRecord{}, false, err
		}
		return q, false, err
	}
	if err != nil {
		return engine.QueryRecord{}, false, fmt.Errorf("lake/postgres: cancel query: %w", err)
	}
	return q, true, nil
}

// ListQueries implements engine.QueryStore.
func (d *DB) ListQueries(ctx context.Context, account, store string) ([]engine.QueryRecord, error) {
	rows, err := d.pool.Query(ctx, `SELECT `+queryCols+` FROM lake_queries WHERE account = $1 AND $2 = ANY (stores) ORDER BY created DESC, id`, account, store)
	if err != nil {
		return nil, fmt.Errorf("lake/postgres: list queries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (engine.QueryRecord, error) { return scanQuery(r) })
	if err != nil {
		return nil, fmt.Errorf("lake/postgres: list queries: %w", err)
	}
	return out, nil
}

// SaveResult implements engine.QueryStore with COPY.
func (d *DB) SaveResult(ctx context.Context, id string, first int, rows [][]*string) error {
	src := make([][]any, len(rows))
	for i, r := range rows {
		cells := make([]*string, len(r))
		for j, c := range r {
			if c != nil {
				v := validText([]byte(*c))
				cells[j] = &v
			}
		}
		src[i] = []any{id, first + i, cells}
	}
	if _, err := d.pool.CopyFrom(ctx, pgx.Identifier{"lake_results"}, []string{"query_id", "n", "cells"}, pgx.CopyFromRows(src)); err != nil {
		return fmt.Errorf("lake/postgres: save result: %w", err)
	}
	return nil
}

// ResultPage implements engine.QueryStore.
func (d *DB) ResultPage(ctx context.Context, id string, start, end, maxBytes int) ([][]*string, error) {
	rows, err := d.pool.Query(ctx, `SELECT cells FROM lake_results WHERE query_id = $1 AND n >= $2 AND n < $3 ORDER BY n`, id, start, end)
	if err != nil {
		return nil, fmt.Errorf("lake/postgres: result page: %w", err)
	}
	defer rows.Close()
	var out [][]*string
	size := 0
	for rows.Next() {
		var cells []*string
		if err := rows.Scan(&cells); err != nil {
			return nil, fmt.Errorf("lake/postgres: result page: %w", err)
		}
		out = append(out, cells)
		for _, c := range cells {
			if c != nil {
				size += len(*c)
			}
		}
		if size >= maxBytes {
			break
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lake/postgres: result page: %w", err)
	}
	return out, nil
}

// ForgetQueries implements engine.QueryStore.
func (d *DB) ForgetQueries(ctx context.Context, ids []string, endedBefore time.Time) error {
	err := pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM lake_queries WHERE id = ANY ($1) OR ended < $2 RETURNING id)
			DELETE FROM lake_results WHERE query_id IN (SELECT id FROM gone)`, ids, endedBefore.UTC())
		return err
	})
	if err != nil {
		return fmt.Errorf("lake/postgres: forget queries: %w", err)
	}
	return nil
}
