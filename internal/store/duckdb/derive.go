package duckdb

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/audit"
)

// derivedResourcesMigration names the one-time pass that gives records
// stored before LookupEvents derived resources (audit.DeriveResources)
// the resources they would get now.
const derivedResourcesMigration = "derived_resources_v1"

// deriveBatch bounds the records rewritten per step of the migration.
const deriveBatch = 5000

// deriveStoredResources runs derivedResourcesMigration once per store: the
// stored records without resources, of the sources audit.ResourceRules
// cover, are extracted again from their bytes; those that now have
// resources get their resource hashes and frame rewritten. Each
// rewrite empties bucket_index_v1 in its transaction, so loadIndex, which
// runs after, rebuilds the index once, also after a crash in the middle.
// Records appended afterwards are extracted with the rules already.
func (s *Store) deriveStoredResources(ctx context.Context) error {
	if _, err := s.wconn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS store_migrations (name VARCHAR NOT NULL)`); err != nil {
		return fmt.Errorf("duckdb: migrations table: %w", err)
	}
	var done int64
	if err := s.wconn.QueryRowContext(ctx, `SELECT count(*) FROM store_migrations WHERE name = ?`, derivedResourcesMigration).Scan(&done); err != nil {
		return fmt.Errorf("duckdb: read migrations: %w", err)
	}
	if done > 0 {
		return nil
	}
	sources := map[string]bool{}
	var in []string
	for _, r := range audit.ResourceRules() {
		if !sources[r.Source] {
			sources[r.Source] = true
			lit, _ := sqlString(r.Source)
			in = append(in, lit)
		}
	}
	t0 := time.Now()
	var after int64 = -1 << 62
	rewritten := 0
	for {
		n, last, changed, err := s.deriveStep(ctx, strings.Join(in, ", "), after)
		if err != nil {
			return err
		}
		rewritten += changed
		if n < deriveBatch {
			break
		}
		after = last
	}
	if rewritten > 0 {
		s.log.Info("duckdb: derived the resources of stored records (once)", "records", rewritten, "took", time.Since(t0).Round(time.Millisecond))
	}
	if _, err := s.wconn.ExecContext(ctx, `INSERT INTO store_migrations VALUES (?)`, derivedResourcesMigration); err != nil {
		return fmt.Errorf("duckdb: record migration: %w", err)
	}
	return nil
}

// deriveStep rewrites the candidates of one batch after sequence number
// after: it returns how many rows it read, the last one's sequence number
// and how many it rewrote.
func (s *Store) deriveStep(ctx context.Context, sources string, after int64) (n int, last int64, changed int, err error) {
	rows, err := s.wconn.QueryContext(ctx, `SELECT seq, `+refColumns+` FROM events
		WHERE seq > ? AND (res_hashes IS NULL OR len(res_hashes) = 0) AND event_source IN (`+sources+`)
		ORDER BY seq LIMIT `+fmt.Sprint(deriveBatch), after)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
	}
	type update struct {
		seq int64
		r   audit.Record
	}
	var (
		seqs   []int64
		frames [][]byte
	)
	for rows.Next() {
		var (
			seq   int64
			frame []byte
			ref   rowRef
		)
		if err := rows.Scan(append([]any{&seq, &frame}, ref.targets()...)...); err != nil {
			rows.Close()
			return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
		}
		if frame, err = ref.frame(frame); err != nil {
			frame = nil // an unreadable row stays as it is (below)
		}
		n++
		last = seq
		seqs, frames = append(seqs, seq), append(frames, frame)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
	}
	// Rows in record blocks are read from them; a rewritten row gets a
	// frame of its own (and NULL reference columns), and its block keeps
	// the old bytes unreferenced.
	bs, err := s.blocksOf(frames)
	if err != nil {
		return 0, 0, 0, err
	}
	if err := bs.fetch(ctx, s.wconn); err != nil {
		return 0, 0, 0, err
	}
	var ups []update
	for i, frame := range frames {
		content, err := s.contents([][]byte{frame}, bs)
		if err != nil {
			continue // an unreadable row stays as it is
		}
		var stored audit.Record
		if splitFields(content[0], &stored) != nil {
			continue
		}
		r, err := audit.Extract(stored.Raw)
		if err != nil || len(r.Resources) == 0 {
			continue
		}
		stored.Resources = r.Resources
		ups = append(ups, update{seqs[i], stored})
	}
	if len(ups) == 0 {
		return n, last, 0, nil
	}
	stmts := []string{`DROP TABLE IF EXISTS events_derived`,
		`CREATE TABLE events_derived (seq BIGINT, record BLOB, res_hashes UBIGINT[])`}
	for _, q := range stmts {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
		}
	}
	err = s.wconn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		app, err := duckdb.NewAppenderFromConn(conn, "", "events_derived")
		if err != nil {
			return err
		}
		for i := range ups {
			u := &ups[i]
			_, _, res := valueHashes(&u.r)
			frame := s.codec.compress(nil, frameContent(nil, &u.r))
			if err := app.AppendRow(u.seq, frame, res); err != nil {
				return errors.Join(err, app.Close())
			}
		}
		return app.Close()
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
	}
	stmts = []string{`BEGIN TRANSACTION`,
		`UPDATE events SET record = d.record, res_hashes = d.res_hashes, blk_id = NULL, blk_off = NULL, blk_len = NULL FROM events_derived d WHERE events.seq = d.seq`,
		`DELETE FROM bucket_index_v1`, `COMMIT`, `DROP TABLE events_derived`}
	for _, q := range stmts {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			_, _ = s.wconn.ExecContext(context.Background(), `ROLLBACK`)
			return 0, 0, 0, fmt.Errorf("duckdb: derive resources: %w", err)
		}
	}
	return n, last, len(ups), nil
}
