package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb/sealed"
)

// sealedSchema is the sealed tier's table: a row per block (sealed.Meta),
// its bytes in the segment files (docs/store.md, "The sealed tier").
// key_xor is the XOR of its records' key_hash, so that the key filter's
// check (the table's count and XOR of key_hash) covers both tiers.
const sealedSchema = `
CREATE TABLE IF NOT EXISTS sealed_blocks (
	id        BIGINT   NOT NULL,
	account   VARCHAR  NOT NULL,
	region    VARCHAR  NOT NULL,
	category  UTINYINT NOT NULL,
	day       BIGINT   NOT NULL,
	tmin      BIGINT   NOT NULL,
	tmax      BIGINT   NOT NULL,
	n         INTEGER  NOT NULL,
	ro_true   INTEGER  NOT NULL,
	ro_false  INTEGER  NOT NULL,
	seq_min   BIGINT   NOT NULL,
	seq_max   BIGINT   NOT NULL,
	recv_min  BIGINT   NOT NULL,
	recv_max  BIGINT   NOT NULL,
	key_xor   UBIGINT  NOT NULL,
	filter    BLOB     NOT NULL,
	id_filter BLOB     NOT NULL,
	seg       UINTEGER NOT NULL,
	off       BIGINT   NOT NULL,
	len       UINTEGER NOT NULL,
	crc       UINTEGER NOT NULL
);
`

// sealedColumns are sealed_blocks' columns in scanMeta's order.
const sealedColumns = `id, account, region, category, day, tmin, tmax, n, ro_true, ro_false, seq_min, seq_max,
	recv_min, recv_max, key_xor, filter, id_filter, seg, off, len, crc`

// sealedRow is a block's row: its Meta and key_xor.
type sealedRow struct {
	m      sealed.Meta
	keyXor uint64
}

// appendSealed appends rows to sealed_blocks of database db ("" for the
// connection's current one) through DuckDB's appender.
func appendSealed(conn *sql.Conn, db string, rows []sealedRow) error {
	if len(rows) == 0 {
		return nil
	}
	return conn.Raw(func(dc any) error {
		c, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		var app *duckdb.Appender
		var err error
		if db == "" {
			app, err = duckdb.NewAppenderFromConn(c, "", "sealed_blocks")
		} else {
			app, err = duckdb.NewAppender(c, db, "main", "sealed_blocks")
		}
		if err != nil {
			return err
		}
		for i := range rows {
			m := &rows[i].m
			if err := app.AppendRow(m.ID, m.Part.Account, m.Part.Region, uint8(m.Part.Category), m.Day, m.TMin, m.TMax,
				int32(m.N), int32(m.ROTrue), int32(m.ROFalse), m.SeqMin, m.SeqMax, m.RecvMin, m.RecvMax, rows[i].keyXor,
				m.Filter.Marshal(), m.IDFilter.Marshal(), m.Loc.Seg, m.Loc.Off, m.Loc.Len, m.Loc.CRC); err != nil {
				return errors.Join(err, app.Close())
			}
		}
		return app.Close()
	})
}

// loadSealed reads every sealed block's Meta, and the count and XOR of
// the sealed records' key_hash.
func loadSealed(ctx context.Context, q queryer) (ms []*sealed.Meta, records int64, keyXor uint64, err error) {
	rows, err := q.QueryContext(ctx, `SELECT `+sealedColumns+` FROM sealed_blocks ORDER BY id`)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("duckdb: read sealed blocks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m           sealed.Meta
			cat         uint8
			n, rt, rf   int32
			kx          uint64
			filter, ids []byte
		)
		if err := rows.Scan(&m.ID, &m.Part.Account, &m.Part.Region, &cat, &m.Day, &m.TMin, &m.TMax, &n, &rt, &rf,
			&m.SeqMin, &m.SeqMax, &m.RecvMin, &m.RecvMax, &kx, &filter, &ids, &m.Loc.Seg, &m.Loc.Off, &m.Loc.Len, &m.Loc.CRC); err != nil {
			return nil, 0, 0, fmt.Errorf("duckdb: read sealed blocks: %w", err)
		}
		m.Part.Category, m.N, m.ROTrue, m.ROFalse = audit.Category(cat), int(n), int(rt), int(rf)
		if m.Filter, err = sealed.UnmarshalBloom(filter); err != nil {
			return nil, 0, 0, fmt.Errorf("duckdb: sealed block %d: %w", m.ID, err)
		}
		if m.IDFilter, err = sealed.UnmarshalBloom(ids); err != nil {
			return nil, 0, 0, fmt.Errorf("duckdb: sealed block %d: %w", m.ID, err)
		}
		if m.N <= 0 || m.TMin > m.TMax || m.SeqMin > m.SeqMax || m.RecvMin > m.RecvMax || m.Loc.Off < 0 {
			return nil, 0, 0, fmt.Errorf("duckdb: sealed block %d: damaged row", m.ID)
		}
		ms = append(ms, &m)
		records += int64(m.N)
		keyXor ^= kx
	}
	if err := rows.Err(); err != nil {
		return nil, 0, 0, fmt.Errorf("duckdb: read sealed blocks: %w", err)
	}
	return ms, records, keyXor, nil
}
