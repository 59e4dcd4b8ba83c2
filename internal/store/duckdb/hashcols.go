package duckdb

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// The hash columns hold token(key, value) of the attributes whose strings
// are costly to compare row by row: akid_hash and user_hash the access key
// and user name (NULL when the record has none), res_hashes the resource
// types, names and ARNs. A lookup filters on the hash first and on the
// string second, so DuckDB compares strings only where the hash matched;
// see docs/store.md for the measurements.

// valueHashes returns the hash columns of r, as the Appender takes them.
func valueHashes(r *audit.Record) (akid, user, res any) {
	if r.AccessKeyID != "" {
		akid = token(audit.AttrAccessKeyID, r.AccessKeyID)
	}
	if r.Username != "" {
		user = token(audit.AttrUsername, r.Username)
	}
	// Types, names, then ARNs, as ensureLayout computes them.
	var hs []any
	for _, x := range r.Resources {
		if x.Type != "" {
			hs = append(hs, token(audit.AttrResourceType, x.Type))
		}
	}
	for _, x := range r.Resources {
		if x.Name != "" {
			hs = append(hs, token(audit.AttrResourceName, x.Name))
		}
	}
	for _, x := range r.Resources {
		if x.ARN != "" {
			hs = append(hs, token(audit.AttrResourceName, x.ARN))
		}
	}
	if hs != nil {
		res = hs
	}
	return akid, user, res
}

// tokenUDF is token as a DuckDB function, cairn_token(key, value), for
// filling the hash columns of a store written before they existed.
type tokenUDF struct{}

func (tokenUDF) Config() duckdb.ScalarFuncConfig {
	v, _ := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	u, _ := duckdb.NewTypeInfo(duckdb.TYPE_UBIGINT)
	return duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{v, v}, ResultTypeInfo: u}
}

func (tokenUDF) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(values []driver.Value) (any, error) {
		k, _ := values[0].(string)
		v, _ := values[1].(string)
		if v == "" {
			return nil, nil
		}
		return token(audit.AttributeKey(k), v), nil
	}}
}

// frameUDF is cairn_frame(raw, event_name, event_source, read_only,
// username, access_key_id, resource_types, resource_names, resource_arns):
// the record frame of a row stored by a version whose raw column held the
// JSON alone.
type frameUDF struct{ c *codec }

func (frameUDF) Config() duckdb.ScalarFuncConfig {
	blob, _ := duckdb.NewTypeInfo(duckdb.TYPE_BLOB)
	v, _ := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	u8, _ := duckdb.NewTypeInfo(duckdb.TYPE_UTINYINT)
	list, _ := duckdb.NewListInfo(v)
	return duckdb.ScalarFuncConfig{
		InputTypeInfos:      []duckdb.TypeInfo{blob, v, v, u8, v, v, list, list, list},
		ResultTypeInfo:      blob,
		SpecialNullHandling: true, // NULL columns are empty values
	}
}

func (f frameUDF) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(values []driver.Value) (any, error) {
		old, _ := values[0].([]byte)
		raw, err := f.c.decompress(old)
		if err != nil {
			return nil, err
		}
		str := func(v driver.Value) string { s, _ := v.(string); return s }
		ro, _ := values[3].(uint8)
		r := audit.Record{EventName: str(values[1]), EventSource: str(values[2]), ReadOnly: audit.Tri(ro),
			Username: str(values[4]), AccessKeyID: str(values[5])}
		types, _ := values[6].([]any)
		names, _ := values[7].([]any)
		arns, _ := values[8].([]any)
		for i := range types {
			x := audit.Resource{Type: str(types[i])}
			if i < len(names) {
				x.Name = str(names[i])
			}
			if i < len(arns) {
				x.ARN = str(arns[i])
			}
			r.Resources = append(r.Resources, x)
		}
		r.Raw = raw
		return f.c.compress(nil, frameContent(nil, &r)), nil
	}}
}

// columns are the columns of events in the order Append writes them.
var columns = []string{"account", "region", "category", "event_time", "event_id", "key_hash", "event_name",
	"event_source", "read_only", "record", "seq", "akid_hash", "user_hash", "res_hashes", "received",
	"blk_id", "blk_off", "blk_len"}

// refCols are the columns of the integer block references (refColumns),
// added at Open to a store written before them (ensureLayout), NULL in
// its rows.
var refCols = []string{"blk_id BIGINT", "blk_off INTEGER", "blk_len INTEGER"}

// droppedColumns are the string columns of earlier versions that no lookup
// reads: lookups filter on the hash columns, and the bucket index is built
// from them too (indexColumns). A store that has them loses them at Open
// (ensureLayout).
var droppedColumns = []string{"username", "access_key_id", "resource_types", "resource_names", "resource_arns"}

// layoutHook, when set (by tests), runs before each statement of a layout
// migration; an error from it aborts the migration as a crash would.
var layoutHook func(stmt string) error

// ensureLayout gives a store written by an earlier version the columns of
// this one, in Append's order: the table is copied, in its stored order
// (the zone maps of event_time stay as good), with the hash columns and
// the record frames (from the raw frames of before) computed, in one
// transaction, so a crash leaves the old table whole.
func (s *Store) ensureLayout(ctx context.Context) error {
	rows, err := s.wconn.QueryContext(ctx, `SELECT column_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = current_schema() AND table_name = 'events'
		ORDER BY column_index`)
	if err != nil {
		return fmt.Errorf("duckdb: read schema: %w", err)
	}
	var have []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return fmt.Errorf("duckdb: read schema: %w", err)
		}
		have = append(have, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("duckdb: read schema: %w", err)
	}
	if slices.Equal(have, columns) {
		return nil
	}
	// The layouts of the versions before: this one's columns, in this
	// order, perhaps without the reference columns (added, NULL in every
	// row, which then reads its record column as before), and the string
	// columns no lookup reads. DROP COLUMN and ADD COLUMN rewrite no other
	// column, all of them in one transaction.
	kept := slices.DeleteFunc(slices.Clone(have), func(c string) bool { return slices.Contains(droppedColumns, c) })
	noRefs := columns[:len(columns)-len(refCols)]
	if slices.Equal(kept, columns) || slices.Equal(kept, noRefs) {
		stmts := []string{`BEGIN TRANSACTION`}
		for _, c := range have {
			if slices.Contains(droppedColumns, c) {
				stmts = append(stmts, `ALTER TABLE events DROP COLUMN `+c)
			}
		}
		if slices.Equal(kept, noRefs) {
			for _, c := range refCols {
				stmts = append(stmts, `ALTER TABLE events ADD COLUMN `+c)
			}
		}
		stmts = append(stmts, `COMMIT`)
		if err := s.runLayout(ctx, stmts); err != nil {
			return fmt.Errorf("duckdb: drop the string columns, add the reference columns: %w", err)
		}
		s.log.Info("duckdb: the columns of this version (once)", "dropped", len(have)-len(kept), "added", len(columns)-len(kept))
		return s.checkpointLayout(ctx)
	}
	// The rewrite below copies the columns it knows and computes the
	// others from the first layout's (raw and the strings): a column it
	// knows neither way is a later version's, whose rows it would copy
	// without it (a cairn before the integer references did so, leaving
	// every block's row an empty frame): refused, the file untouched.
	for _, c := range have {
		if !slices.Contains(columns, c) && !slices.Contains(droppedColumns, c) && c != "raw" {
			return fmt.Errorf("duckdb: the store's events table has the column %s, which this version does not know: it was written by a later cairn; open it with that version (this one leaves the file as it is)", c)
		}
	}
	computed := map[string]string{
		"record": `cairn_frame(raw, event_name, event_source, read_only, username, access_key_id,
			resource_types, resource_names, resource_arns)`,
		"akid_hash": fmt.Sprintf(`cairn_token('%s', access_key_id)`, audit.AttrAccessKeyID),
		"user_hash": fmt.Sprintf(`cairn_token('%s', username)`, audit.AttrUsername),
		"res_hashes": fmt.Sprintf(`nullif(list_filter(list_concat(
			list_transform(coalesce(resource_types, []), x -> cairn_token('%s', x)),
			list_transform(coalesce(resource_names, []), x -> cairn_token('%[2]s', x)),
			list_transform(coalesce(resource_arns, []), x -> cairn_token('%[2]s', x))), h -> h IS NOT NULL), [])`,
			audit.AttrResourceType, audit.AttrResourceName),
	}
	computed["blk_id"] = `NULL::BIGINT`
	computed["blk_off"] = `NULL::INTEGER`
	computed["blk_len"] = `NULL::INTEGER`
	var sel []string
	for _, c := range columns {
		if e, ok := computed[c]; ok && !slices.Contains(have, c) {
			sel = append(sel, e+" AS "+c)
		} else {
			sel = append(sel, c)
		}
	}
	var n int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return fmt.Errorf("duckdb: count events: %w", err)
	}
	s.log.Warn("duckdb: rewriting the stored records with this version's columns (once)", "records", n)
	t0 := time.Now()
	if err := duckdb.RegisterScalarUDF(s.wconn, "cairn_token", tokenUDF{}); err != nil {
		return fmt.Errorf("duckdb: register cairn_token: %w", err)
	}
	if err := duckdb.RegisterScalarUDF(s.wconn, "cairn_frame", frameUDF{s.codec}); err != nil {
		return fmt.Errorf("duckdb: register cairn_frame: %w", err)
	}
	stmts := []string{
		`BEGIN TRANSACTION`,
		`DROP TABLE IF EXISTS events_next`,
		`CREATE TABLE events_next ` + eventsColumns,
		`INSERT INTO events_next SELECT ` + strings.Join(sel, ", ") + ` FROM events`,
		`DROP TABLE events`,
		`ALTER TABLE events_next RENAME TO events`,
		`COMMIT`,
	}
	if err := s.runLayout(ctx, stmts); err != nil {
		return fmt.Errorf("duckdb: rewrite events: %w", err)
	}
	s.log.Info("duckdb: stored records rewritten", "records", n, "took", time.Since(t0).Round(time.Millisecond))
	return s.checkpointLayout(ctx)
}

// runLayout runs the statements of a layout migration (one transaction)
// on the writer's connection, rolling back on the first error.
func (s *Store) runLayout(ctx context.Context, stmts []string) error {
	for _, q := range stmts {
		var err error
		if layoutHook != nil {
			err = layoutHook(q)
		}
		if err == nil {
			_, err = s.wconn.ExecContext(ctx, q)
		}
		if err != nil {
			_, _ = s.wconn.ExecContext(context.Background(), `ROLLBACK`)
			return err
		}
	}
	return nil
}

// checkpointLayout checkpoints after a layout migration, so that the old
// columns' blocks are free for the next appends.
func (s *Store) checkpointLayout(ctx context.Context) error {
	if err := s.checkpoint(ctx); err != nil {
		return fmt.Errorf("duckdb: checkpoint: %w", err)
	}
	return nil
}
