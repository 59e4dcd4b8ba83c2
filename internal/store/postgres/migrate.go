package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema's versions, applied in order, each once, each
// in its own transaction. Never edit a shipped migration: add one.
//
// Every value a record carries (account, eventID, attributes) is bytea:
// records are hostile input and may hold NUL or invalid UTF-8, which text
// cannot carry, and bytea compares byte by byte, the order of
// strings.Compare that audit.Newer and the cursor use (text would follow
// the database's collation).
var migrations = []string{
	// 1: Event History.
	`
CREATE TABLE store_meta (
	id       int PRIMARY KEY CHECK (id = 1),
	last_seq bigint NOT NULL          -- the last sequence number handed out
);
INSERT INTO store_meta VALUES (1, 0);

-- One row per stored record: the idempotency check across nodes and
-- partitions (a partitioned table cannot hold a unique key without its
-- partition column). Retention deletes its rows with the partitions.
CREATE TABLE event_keys (
	account  bytea  NOT NULL,
	event_id bytea  NOT NULL,
	received bigint NOT NULL,          -- Unix microseconds
	PRIMARY KEY (account, event_id)
);
CREATE INDEX event_keys_received ON event_keys (received);

-- Partitioned by when cairn received a record (Unix microseconds, one
-- partition a UTC day): retention drops whole partitions. The
-- distribution column for Citus is account (docs/scale.md).
CREATE TABLE events (
	account        bytea    NOT NULL,
	region         bytea    NOT NULL,
	category       smallint NOT NULL,
	event_time     bigint   NOT NULL,  -- Unix seconds
	event_id       bytea    NOT NULL,
	event_name     bytea    NOT NULL,
	event_source   bytea    NOT NULL,
	username       bytea,              -- NULL when empty
	access_key_id  bytea,              -- NULL when empty
	read_only      smallint NOT NULL,  -- audit.Tri
	resource_types bytea[],            -- non-empty types
	resource_names bytea[],            -- non-empty names and ARNs
	received       bigint   NOT NULL,
	seq            bigint   NOT NULL,
	raw            bytea    NOT NULL,  -- the record, byte for byte
	fields         bytea    NOT NULL   -- audit.AppendBinary's fields of the record
) PARTITION BY RANGE (received);
ALTER TABLE events ALTER COLUMN raw SET STORAGE EXTERNAL;

CREATE INDEX events_newest ON events (account, region, category, event_time DESC, event_id DESC);
CREATE INDEX events_every_account ON events (region, category, event_time DESC, event_id DESC, account DESC);
CREATE INDEX events_event_name ON events (account, region, category, event_name, event_time DESC, event_id DESC);
CREATE INDEX events_event_source ON events (account, region, category, event_source, event_time DESC, event_id DESC);
CREATE INDEX events_username ON events (account, region, category, username, event_time DESC, event_id DESC) WHERE username IS NOT NULL;
CREATE INDEX events_access_key ON events (account, region, category, access_key_id, event_time DESC, event_id DESC) WHERE access_key_id IS NOT NULL;
CREATE INDEX events_event_id ON events (account, event_id);
CREATE INDEX events_seq ON events (seq);
CREATE INDEX events_resource_types ON events USING gin (resource_types);
CREATE INDEX events_resource_names ON events USING gin (resource_names);
`,
	// 2: a responder's lookups across every account and region. The
	// indexes of version 1 lead with account and region, so a lookup by
	// attribute over all of them walked the time index filtering rows
	// (533 ms p50 at 1M). These lead with the attribute value, then
	// category and time newest first, then account: the order of an
	// every-account page, read from the index top down; a given account
	// or region is a filter on the few rows the value has. EventId's
	// index turns around for the same reason: (event_id, account) serves
	// a lookup with or without its account.
	`
DROP INDEX events_event_id;
CREATE INDEX events_event_id ON events (event_id, account);
CREATE INDEX events_any_event_name ON events (event_name, category, event_time DESC, event_id DESC, account DESC);
CREATE INDEX events_any_event_source ON events (event_source, category, event_time DESC, event_id DESC, account DESC);
CREATE INDEX events_any_username ON events (username, category, event_time DESC, event_id DESC, account DESC) WHERE username IS NOT NULL;
CREATE INDEX events_any_access_key ON events (access_key_id, category, event_time DESC, event_id DESC, account DESC) WHERE access_key_id IS NOT NULL;
`,
	// 3: resources in a side table. GIN indexes on the arrays found a
	// resource's rows but not newest first: a common ResourceName walked
	// the time index testing arrays (36 ms p50, 253 ms p99 at 1M). One row
	// per record and distinct (kind, value), indexed like the other
	// attributes (per account and region, and leading with the value for
	// a responder), partitioned like events so retention drops both.
	// Lookups join back to events on (event_id, account, received). The
	// arrays, their GIN indexes and their columns go: a node still
	// running version 2's code fails its appends (not acknowledged, so
	// retried elsewhere) instead of writing records the side table lacks.
	`
CREATE TABLE event_resources (
	account    bytea    NOT NULL,
	region     bytea    NOT NULL,
	category   smallint NOT NULL,
	kind       smallint NOT NULL,  -- 1 resource type, 2 resource name or ARN
	value      bytea    NOT NULL,
	event_time bigint   NOT NULL,
	event_id   bytea    NOT NULL,
	received   bigint   NOT NULL
) PARTITION BY RANGE (received);
DO $$
DECLARE p record;
BEGIN
	FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events\_p%'
	LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF event_resources %s', 'event_resources_' || substr(p.relname, 8), p.bound);
	END LOOP;
END $$;
INSERT INTO event_resources
	SELECT DISTINCT account, region, category, 1, v, event_time, event_id, received FROM events, unnest(resource_types) AS v
	UNION
	SELECT DISTINCT account, region, category, 2, v, event_time, event_id, received FROM events, unnest(resource_names) AS v;
CREATE INDEX event_resources_newest ON event_resources (account, region, category, kind, value, event_time DESC, event_id DESC);
CREATE INDEX event_resources_any ON event_resources (kind, value, category, event_time DESC, event_id DESC, account DESC);
DROP INDEX events_resource_types;
DROP INDEX events_resource_names;
ALTER TABLE events DROP COLUMN resource_types, DROP COLUMN resource_names;
`,
	// 4: the record compressed by cairn. raw was kept as is, and TOAST
	// compresses only rows over its fixed 2 kB threshold, which most
	// records are under: 1,374 bytes of JSON a record. New rows hold a
	// zstd frame of the record (raw_codec 1); rows written before stay as
	// they are (0). The record is still kept byte for byte: the frame
	// decodes to it.
	`
ALTER TABLE events ADD COLUMN raw_codec smallint NOT NULL DEFAULT 0;
`,
	// 5: the state every node shares (audit.StateStore: the trails
	// registry, the NextToken key, console sessions...). Versions come
	// from one sequence, so a key deleted and created again never shows
	// a version a reader saw before. Keys are ValidStateKey's ASCII.
	`
CREATE SEQUENCE shared_state_version;
CREATE TABLE shared_state (
	key     text   PRIMARY KEY COLLATE "C",
	value   bytea  NOT NULL,
	version bigint NOT NULL
);
`,
	// 6: leases, for the work that must have one writer when several
	// nodes share the database (leases.go, internal/lease). One row a
	// lease, kept when released so that its token only grows; times are
	// the database's, so nodes' clocks need not agree.
	`
CREATE TABLE leases (
	name     text        PRIMARY KEY,
	holder   text        NOT NULL,  -- the node id
	token    bigint      NOT NULL,  -- the fencing token: +1 at every acquisition
	expires  timestamptz NOT NULL,
	acquired timestamptz NOT NULL
);
`,
	// 7: the indexes in ascending order. Version 1 made them newest
	// first (event_time DESC, event_id DESC), and records arrive roughly
	// oldest first: each one's entries went to the left end of its
	// key range, where B-tree splits pages 50/50 (its split at the
	// fillfactor, and the fast path for the rightmost page, serve
	// ascending inserts only). Half-empty pages, a page split every few
	// inserts and 4 kB of WAL for each split: 1.2 kB of WAL a record went
	// to splits (pg_waldump, docs/scale.md). A lookup reads the same
	// ascending index backward (Index Scan Backward), newest first as
	// before. Rebuilding takes as long as the indexes' size.
	`
DROP INDEX events_newest, events_every_account, events_event_name, events_event_source, events_username,
	events_access_key, events_any_event_name, events_any_event_source, events_any_username, events_any_access_key,
	event_resources_newest, event_resources_any;
CREATE INDEX events_newest ON events (account, region, category, event_time, event_id);
CREATE INDEX events_every_account ON events (region, category, event_time, event_id, account);
CREATE INDEX events_event_name ON events (account, region, category, event_name, event_time, event_id);
CREATE INDEX events_event_source ON events (account, region, category, event_source, event_time, event_id);
CREATE INDEX events_username ON events (account, region, category, username, event_time, event_id) WHERE username IS NOT NULL;
CREATE INDEX events_access_key ON events (account, region, category, access_key_id, event_time, event_id) WHERE access_key_id IS NOT NULL;
CREATE INDEX events_any_event_name ON events (event_name, category, event_time, event_id, account);
CREATE INDEX events_any_event_source ON events (event_source, category, event_time, event_id, account);
CREATE INDEX events_any_username ON events (username, category, event_time, event_id, account) WHERE username IS NOT NULL;
CREATE INDEX events_any_access_key ON events (access_key_id, category, event_time, event_id, account) WHERE access_key_id IS NOT NULL;
CREATE INDEX event_resources_newest ON event_resources (account, region, category, kind, value, event_time, event_id);
CREATE INDEX event_resources_any ON event_resources (kind, value, category, event_time, event_id, account);
`,
	// 8: appends that do not wait for one another. Up to version 7 an
	// append took store_meta's row lock first and held it to its commit,
	// so appends from every node ran one at a time: the second node
	// added a fifth. Now an append writes its rows under a batch number
	// of its own (a sequence: no lock), each row with its place in the
	// batch (ord), and only at the end takes the lock for the one
	// statement that hands the batch its range of sequence numbers
	// (event_batches: seq_hi, its first is seq_hi - n + 1) and commits.
	// Ranges still commit in their order, so the feed never shows a
	// gap filled later; a record's sequence number is its batch's first
	// plus its ord. Rows written before keep their seq (up to
	// store_meta.legacy_seq, read as before); new rows must have a batch
	// (the constraint, not checked on the old rows, refuses the appends
	// of a node still on version 7: upgrade every node together).
	`
ALTER TABLE store_meta ADD COLUMN legacy_seq bigint NOT NULL DEFAULT 0;
UPDATE store_meta SET legacy_seq = last_seq;
CREATE SEQUENCE event_batch_ids;
CREATE TABLE event_batches (
	seq_hi   bigint PRIMARY KEY,  -- the batch's last sequence number
	n        int    NOT NULL,     -- its records: seq_hi - n + 1 .. seq_hi
	batch    bigint NOT NULL,     -- events.batch
	received bigint NOT NULL      -- events.received of all its rows (its partition)
);
CREATE INDEX event_batches_received ON event_batches (received);
ALTER TABLE events ALTER COLUMN seq DROP NOT NULL, ADD COLUMN batch bigint, ADD COLUMN ord int;
ALTER TABLE events ADD CONSTRAINT events_batched CHECK (batch IS NOT NULL AND ord IS NOT NULL AND seq IS NULL) NOT VALID;
DROP INDEX events_seq;
CREATE INDEX events_seq ON events (seq) WHERE seq IS NOT NULL;
CREATE INDEX events_batch ON events (batch, ord) WHERE batch IS NOT NULL;
`,
	// 9: postings per batch. Up to version 8 every record had an entry
	// in eight attribute indexes and a row (or more) in event_resources
	// with two more: 57 of the 74 µs of server CPU an append cost a
	// record (docs/benchmarks.md). Now an append writes one posting per
	// distinct (account, region, category, kind, value) of its batch:
	// the batch, its records' places in it (ords) and their eventTimes
	// (times, in the same order), their first and last eventTime. A
	// lookup by attribute reads a value's postings newest first by t_max
	// and fetches the records it needs through events_batch (Lookup).
	// Partitioned like events, so retention drops both. Rows written
	// before version 8 (numbered by seq) get a batch of their own, the
	// negated received of their append (sequence batches are positive),
	// so that postings find them the same way; they keep their seq for
	// the feed. The postings are built from the rows, then the attribute
	// indexes and event_resources go. A node still on version 8 fails its
	// appends (event_resources is gone): upgrade every node together.
	`
CREATE TABLE event_postings (
	account  bytea    NOT NULL,
	region   bytea    NOT NULL,
	category smallint NOT NULL,
	kind     smallint NOT NULL,  -- 1 resource type, 2 resource name or ARN, 3 eventName, 4 eventSource, 5 username, 6 accessKeyId
	value    bytea    NOT NULL,
	batch    bigint   NOT NULL,  -- events.batch
	received bigint   NOT NULL,  -- events.received of the batch (its partition)
	t_min    bigint   NOT NULL,  -- the first and last eventTime of times
	t_max    bigint   NOT NULL,
	ords     int[]    NOT NULL,  -- the records' places in the batch (events.ord), ascending
	times    bigint[] NOT NULL   -- their eventTimes, in the order of ords
) PARTITION BY RANGE (received);
DO $$
DECLARE p record;
BEGIN
	FOR p IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'events'::regclass AND c.relname LIKE 'events\_p%'
	LOOP
		EXECUTE format('CREATE TABLE %I PARTITION OF event_postings %s', 'event_postings_' || substr(p.relname, 8), p.bound);
	END LOOP;
END $$;
ALTER TABLE events DROP CONSTRAINT events_batched;
UPDATE events e SET batch = -e.received, ord = x.o
	FROM (SELECT received, seq, (row_number() OVER (PARTITION BY received ORDER BY seq) - 1)::int AS o
		FROM events WHERE seq IS NOT NULL) x
	WHERE e.seq IS NOT NULL AND e.seq = x.seq AND e.received = x.received;
ALTER TABLE events ADD CONSTRAINT events_batched CHECK (batch IS NOT NULL AND ord IS NOT NULL AND (seq IS NULL OR batch < 0)) NOT VALID;
INSERT INTO event_postings (account, region, category, kind, value, batch, received, t_min, t_max, ords, times)
	SELECT account, region, category, kind, value, batch, received, min(event_time), max(event_time),
		array_agg(ord ORDER BY ord), array_agg(event_time ORDER BY ord)
	FROM (
		SELECT account, region, category, 3::smallint AS kind, event_name AS value, batch, received, ord, event_time FROM events
		UNION ALL
		SELECT account, region, category, 4::smallint, event_source, batch, received, ord, event_time FROM events
		UNION ALL
		SELECT account, region, category, 5::smallint, username, batch, received, ord, event_time FROM events WHERE username IS NOT NULL
		UNION ALL
		SELECT account, region, category, 6::smallint, access_key_id, batch, received, ord, event_time FROM events WHERE access_key_id IS NOT NULL
		UNION ALL
		SELECT r.account, r.region, r.category, r.kind, r.value, e.batch, e.received, e.ord, e.event_time
		FROM event_resources r JOIN events e ON e.event_id = r.event_id AND e.account = r.account AND e.received = r.received
	) v
	GROUP BY account, region, category, kind, value, batch, received;
CREATE INDEX event_postings_newest ON event_postings (account, region, category, kind, value, t_max, batch);
CREATE INDEX event_postings_any ON event_postings (kind, value, category, t_max, batch, account);
DROP TABLE event_resources;
DROP INDEX events_event_name, events_event_source, events_username, events_access_key,
	events_any_event_name, events_any_event_source, events_any_username, events_any_access_key;
`,
	// 10: each posting holds its records' ReadOnly (audit.Tri, one byte
	// a place, in the order of ords), so that a lookup of a value and
	// ReadOnly leaves out the records of the other ReadOnly before it
	// fetches any: a combination that matches few of the value's records
	// (ReadOnly=false of an EventSource read almost only) fetched every
	// one of them to test it, one index probe each (0.4-1.5 s at 1M).
	// Postings written before stay NULL: their records are tested when
	// fetched, as before (no rewrite of the postings at the upgrade).
	// A node still on version 9 writes postings without it, which
	// lookups read the same way: nodes may be upgraded one at a time.
	`
ALTER TABLE event_postings ADD COLUMN read_only bytea;
`,
	// 11: one eventID B-tree instead of two. Up to version 10 every
	// append inserted each record's eventID into two B-trees keyed by
	// it: event_keys' primary key (account, event_id), the duplicates'
	// check across nodes and partitions, and events_event_id (event_id,
	// account), EventId's lookups. The eventID is random, so each of
	// those inserts lands on any leaf of an index as large as the store:
	// half of an append's server time was buffer misses in them
	// (docs/scale.md). Now event_keys is keyed (event_id, account) and
	// holds where its record is (batch, ord, received: the row through
	// events_batch), so that it serves EventId's lookups, with or
	// without the account, and events_event_id goes. The table is
	// rebuilt from events (one row a stored record, as before), its
	// index built once, sorted. A node still on version 10 fails its
	// appends (event_keys' batch and ord are NOT NULL) and its EventId
	// lookups find nothing to use: upgrade every node together.
	`
CREATE TABLE event_keys_v11 (
	event_id bytea  NOT NULL,
	account  bytea  NOT NULL,
	received bigint NOT NULL,  -- Unix microseconds: the partition of the row, and retention's
	batch    bigint NOT NULL,  -- the row: events (batch, ord) in partition received
	ord      int    NOT NULL
);
INSERT INTO event_keys_v11 (event_id, account, received, batch, ord)
	SELECT event_id, account, received, batch, ord FROM events;
DROP TABLE event_keys;
ALTER TABLE event_keys_v11 RENAME TO event_keys;
ALTER TABLE event_keys ADD CONSTRAINT event_keys_pkey PRIMARY KEY (event_id, account);
CREATE INDEX event_keys_received ON event_keys (received);
DROP INDEX events_event_id;
`,
}

// migrateLock is the advisory lock that keeps two nodes from migrating at
// once.
const migrateLock = 0x636169726e // "cairn"

// Migrate brings the schema of the database dsn names (its first
// search_path schema) to the newest version and returns the versions it
// applied. It is what Open runs first, and what `cairn migrate` runs.
func Migrate(ctx context.Context, dsn string) ([]int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())
	return migrate(ctx, conn)
}

func migrate(ctx context.Context, conn *pgx.Conn) ([]int, error) {
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(migrateLock)); err != nil {
		return nil, fmt.Errorf("postgres: lock for migrations: %w", err)
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrateLock)) //nolint:errcheck // the session ends soon after
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	var have int
	if err := conn.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return nil, fmt.Errorf("postgres: read schema version: %w", err)
	}
	if have > len(migrations) {
		return nil, fmt.Errorf("postgres: the database's schema is version %d, newer than this cairn's %d", have, len(migrations))
	}
	var applied []int
	for v := have + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("postgres: migration %d: %w", v, err)
		}
		applied = append(applied, v)
	}
	return applied, nil
}
