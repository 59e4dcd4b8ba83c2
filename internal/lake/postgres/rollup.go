package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The rollup: Lake's group-bys without reading the events
//
// PostgreSQL stores lake_events row by row (1.5 kB of heap an event), so a
// GROUP BY over a store reads every event's bytes and aggregates one row
// at a time: 22–53x the embedded engine's columnar scan at 200k events
// (docs/benchmarks.md). lake_rollup holds, for each store, hour of
// eventTime and combination of the rolled-up columns (rollupDims), the
// number of events and their least and greatest eventTime. PostgreSQL
// keeps it itself: statement-level triggers with transition tables on
// lake_events (every INSERT and COPY adds its rows' counts, every DELETE
// and UPDATE takes its rows' counts back), so whatever writes lake_events
// (this engine, or a node of an older cairn during a rolling upgrade) it
// stays exactly the GROUP BY of the events, in the same transaction.
//
// A statement whose answer the rollup determines (one store, aggregates
// COUNT, MIN/MAX and their kin over the rolled-up columns, conditions on
// them and on eventTime against constants: see rollupPlan) is translated
// over the rollup instead of the events (translate.go, the translator's
// roll mode); any other statement runs over the events as before. A
// condition on eventTime is exact by buckets: an hour that holds none of
// the conditions' constants lies wholly inside or wholly outside each
// condition, so its rollup rows are taken or left as a whole; within the
// hours that hold a constant (at most two a condition), so are the fine
// level's ten-minute buckets (fineLevel), and the ten minutes that hold
// one are read from lake_events through the (eds_id, eventTime) index and
// grouped the same way.
//
// Levels. When events spread over days (as trails deliver them) few share
// an hour and a combination, and the hourly rollup nears one row an event
// (0.45 over 31 days at 200k events). So the rollup has coarser levels
// beside the hourly one (rollupLevels): the same rows by day and by month,
// kept by triggers of their own that fire after the hourly ones. A
// statement reads the coarsest level its date_trunc calls allow; with
// conditions on eventTime, the buckets of that level that hold none of
// the conditions' times, then within the buckets that hold one the next
// level's buckets that hold none, down to the hours, then the fine
// level's, and the events of the ten minutes that hold one (rollSource).

// rollupVersion names the rollup's layout; a database whose lake_meta
// holds another (or none) has its rollup rebuilt from lake_events at Open.
// Version 1 was the hourly level alone (lake_rollup and its triggers,
// which version 2 keeps as they were, so that a node of version 1 keeps
// reading and writing it during a rolling upgrade; one that starts
// rebuilds version 1's part only, which leaves the coarser levels exact).
const rollupVersion = 2

// rollupLevel is a level of the rollup: its buckets' unit (of date_trunc
// and interval) and its table.
type rollupLevel struct{ unit, table string }

// rollupLevels, finest first. The hourly level is lake_rollup (version
// 1's); each coarser level's least and greatest eventTime are read again
// from the level below it when events are taken back.
var rollupLevels = []rollupLevel{{"hour", "lake_rollup"}, {"day", "lake_rollup_day"}, {"month", "lake_rollup_month"}}

// unitLevel is the coarsest level whose buckets date_trunc by unit
// keeps whole: hour 0, day and week 1, month and coarser 2, anything else
// -1.
func unitLevel(unit string) int {
	switch strings.ToLower(unit) {
	case "hour":
		return 0
	case "day", "week":
		return 1
	case "month", "quarter", "year", "decade", "century", "millennium":
		return 2
	}
	return -1
}

// fineLevel is the rollup's level finer than the hour: the same rows by
// ten minutes, kept by triggers of its own from the events (as the hourly
// level is) and read only at a statement's edges: within an hour that
// holds a time of the statement's conditions, its buckets that hold none,
// and the events of the ones that hold one (rollSource). It is versioned
// apart from the other levels (lake_meta's fine_version), so that a node
// without it (rollup version 2) neither rebuilds nor drops it: its
// triggers keep it exact whatever node writes.
var fineLevel = rollupLevel{fineUnit, "lake_rollup_fine"}

// fineUnit is fineLevel's unit: its buckets are the hour's six of ten
// minutes (bucketOf), and its span interval '10 minutes'.
const fineUnit = "10 minutes"

// fineVersion names fineLevel's layout in lake_meta (fine_version).
const fineVersion = 1

// bucketOf is the SQL of the bucket of unit (a level's) that holds the
// timestamp x.
func bucketOf(unit, x string) string {
	if unit == fineUnit {
		// Not date_bin, whose buckets before its origin PostgreSQL 15
		// rounds toward the origin.
		return "(date_trunc('hour', " + x + ") + interval " + literal(fineUnit) + " * floor(extract(minute FROM " + x + ") / 10))"
	}
	return "date_trunc(" + literal(unit) + ", " + x + ")"
}

// spanOf is the SQL interval of a bucket of unit.
func spanOf(unit string) string {
	if unit == fineUnit {
		return "interval " + literal(fineUnit)
	}
	return "interval " + literal("1 "+unit)
}

// rollupDim is a rolled-up column: a Lake column (field "" ) or a text
// field of a struct column.
type rollupDim struct {
	column string // Lake's name of the column
	field  string // a field of a struct column, or ""
	typ    string // PostgreSQL type in lake_rollup
}

// rollupDims are the columns group-bys and filters use most, and few
// enough distinct combinations an hour that the rollup stays small:
// userIdentity.arn sets the number of rows; the others mostly follow from
// it and from eventName.
var rollupDims = []rollupDim{
	{column: "eventSource", typ: "text"},
	{column: "eventName", typ: "text"},
	{column: "awsRegion", typ: "text"},
	{column: "recipientAccountId", typ: "text"},
	{column: "errorCode", typ: "text"},
	{column: "eventCategory", typ: "text"},
	{column: "eventType", typ: "text"},
	{column: "readOnly", typ: "boolean"},
	{column: "managementEvent", typ: "boolean"},
	{column: "userIdentity", field: "type", typ: "text"},
	{column: "userIdentity", field: "arn", typ: "text"},
	{column: "userIdentity", field: "accountId", typ: "text"},
	{column: "userIdentity", field: "principalId", typ: "text"},
	{column: "userIdentity", field: "userName", typ: "text"},
}

// name is the dimension's column in lake_rollup: the Lake column's name,
// or "userIdentity.arn" for a field. Mixed case, so no identifier of a
// statement (folded to lower case, userIdent) can name it by chance.
func (d rollupDim) name() string {
	if d.field == "" {
		return d.column
	}
	return d.column + "." + d.field
}

// expr is the dimension's value over a row of lake_events, as the
// translator reads the same column or field (columnRef, step).
func (d rollupDim) expr() string {
	if d.field == "" {
		return ident(d.column)
	}
	return "(" + ident(d.column) + " ->> " + literal(d.field) + ")"
}

// findDim returns the dimension of a Lake column (field "" ) or field,
// matched case-insensitively as names are.
func findDim(column, field string) (rollupDim, bool) {
	for _, d := range rollupDims {
		if strings.EqualFold(d.column, column) && strings.EqualFold(d.field, field) {
			return d, true
		}
	}
	return rollupDim{}, false
}

// The rollup's own columns besides the dimensions: mixed case, out of a
// statement's reach as the dimensions' names.
const (
	rollBucket = `"_Bucket"` // date_trunc('hour', eventTime)
	rollN      = `"_N"`      // events
	rollMinT   = `"_MinT"`   // least eventTime
	rollMaxT   = `"_MaxT"`   // greatest eventTime
)

// rollupKey is the SQL of a rollup row's key from the bucket b and the
// dimensions' values (SQL expressions in rollupDims' order): a digest of
// their JSON array, which tells NULL from the empty string and stays short whatever the
// values' length (a B-tree entry cannot exceed a third of a page).
func rollupKey(b string, dims []string) string {
	return "sha256(convert_to(jsonb_build_array(" + b + ", " + strings.Join(dims, ", ") + ")::text, 'UTF8'))"
}

// rollupGroup is the SQL that groups the rows of lake_events in from
// (a table or transition table, filtered by where) as rollup rows of
// buckets of unit: eds_id, k, the bucket, the dimensions, n, the least
// and greatest eventTime.
func rollupGroup(from, where, unit string) string {
	var exprs, names []string
	for i, d := range rollupDims {
		exprs = append(exprs, d.expr()+" AS d"+fmt.Sprint(i))
		names = append(names, "d"+fmt.Sprint(i))
	}
	var groupBy []string
	for i := range len(rollupDims) + 2 {
		groupBy = append(groupBy, fmt.Sprint(i+1))
	}
	if where != "" {
		where = " WHERE " + where
	}
	return `SELECT eds_id, ` + rollupKey("b", names) + ` AS k, b, ` + strings.Join(names, ", ") + `, n, lo, hi FROM (SELECT eds_id, ` + bucketOf(unit, `"eventTime"`) + ` AS b, ` +
		strings.Join(exprs, ", ") + `, count(*) AS n, min("eventTime") AS lo, max("eventTime") AS hi FROM ` + from + where +
		` GROUP BY ` + strings.Join(groupBy, ", ") + `) g`
}

// rollupColumns lists lake_rollup's columns in rollupGroup's order.
func rollupColumns() string {
	cols := []string{"eds_id", "k", rollBucket}
	for _, d := range rollupDims {
		cols = append(cols, ident(d.name()))
	}
	return strings.Join(append(cols, rollN, rollMinT, rollMaxT), ", ")
}

// rollupDDL creates lake_rollup and the triggers that keep it. The
// triggers' functions run with the search_path of their creation (the
// schema of lake_events), whatever the writer's.
func rollupDDL() string { return eventsLevelDDL(rollupLevels[0], "lake_rollup", "") }

// fineDDL creates fineLevel's table, its buckets' index and the triggers
// that keep it from the events. Its functions first take lake_rollup's
// lock of their kind (an adder ROW EXCLUSIVE, a remover SHARE ROW
// EXCLUSIVE, as the hourly level's statements take it), so writers and
// removers meet on lake_rollup first, whatever order their triggers fire
// in, and a remover's re-read of the times sees every event counted.
func fineDDL() string {
	return eventsLevelDDL(fineLevel, "lake_rollup_fine", `LOCK TABLE lake_rollup IN ROW EXCLUSIVE MODE;
  `) + `CREATE INDEX ` + fineLevel.table + `_bucket ON ` + fineLevel.table + ` (eds_id, ` + rollBucket + `);
`
}

// eventsLevelDDL creates the table of a level kept from the events (l:
// the hourly level or fineLevel) and the triggers that keep it, named
// name_insert, name_delete and name_update (functions name_add,
// name_remove, name_update); addLock, when set, is the first statement of
// the adding function.
func eventsLevelDDL(l rollupLevel, name, addLock string) string {
	var dims []string
	for _, d := range rollupDims {
		dims = append(dims, ident(d.name())+" "+d.typ)
	}
	// The keys of a transition table's rows, as rollup rows' keys.
	oldKeys := func(from string) string {
		var exprs []string
		for _, d := range rollupDims {
			exprs = append(exprs, d.expr())
		}
		return `SELECT eds_id, ` + rollupKey(bucketOf(l.unit, `"eventTime"`), exprs) + ` AS k FROM ` + from
	}
	var eventDims []string
	for _, d := range rollupDims {
		eventDims = append(eventDims, d.expr())
	}
	add := addLock + `INSERT INTO ` + l.table + ` AS r (` + rollupColumns() + `) ` + rollupGroup("new_rows", "", l.unit) + ` ORDER BY 1, 2
    ON CONFLICT (eds_id, k) DO UPDATE SET ` + rollN + ` = r.` + rollN + ` + excluded.` + rollN + `,
      ` + rollMinT + ` = least(r.` + rollMinT + `, excluded.` + rollMinT + `), ` + rollMaxT + ` = greatest(r.` + rollMaxT + `, excluded.` + rollMaxT + `);`
	// Taking rows back: their counts subtracted, rows left empty
	// removed, and the least and greatest eventTime of the rows that keep
	// events read again from lake_events (a bucket's range of the index).
	// The lock makes the writers that add to the rollup wait (and
	// the ones adding now finish first), so the re-read sees every event
	// the rollup counts.
	remove := `LOCK TABLE lake_rollup IN SHARE ROW EXCLUSIVE MODE;
  UPDATE ` + l.table + ` r SET ` + rollN + ` = r.` + rollN + ` - d.n FROM (SELECT eds_id, k, count(*) AS n FROM (` + oldKeys("old_rows") + `) o GROUP BY 1, 2) d
    WHERE r.eds_id = d.eds_id AND r.k = d.k;
  DELETE FROM ` + l.table + ` r USING (SELECT DISTINCT eds_id, k FROM (` + oldKeys("old_rows") + `) o) d
    WHERE r.eds_id = d.eds_id AND r.k = d.k AND r.` + rollN + ` <= 0;
  UPDATE ` + l.table + ` r SET (` + rollMinT + `, ` + rollMaxT + `) = (SELECT min(e."eventTime"), max(e."eventTime") FROM lake_events e
      WHERE e.eds_id = r.eds_id AND e."eventTime" >= r.` + rollBucket + ` AND e."eventTime" < r.` + rollBucket + ` + ` + spanOf(l.unit) + `
      AND ` + rollupKey(bucketOf(l.unit, `e."eventTime"`), qualify("e", eventDims)) + ` = r.k)
    FROM (SELECT DISTINCT eds_id, k FROM (` + oldKeys("old_rows") + `) o) d
    WHERE r.eds_id = d.eds_id AND r.k = d.k AND r.` + rollBucket + ` IS NOT NULL;`
	return `CREATE TABLE ` + l.table + ` (eds_id text NOT NULL, k bytea NOT NULL, ` + rollBucket + ` timestamp, ` + strings.Join(dims, ", ") +
		`, ` + rollN + ` bigint NOT NULL, ` + rollMinT + ` timestamp, ` + rollMaxT + ` timestamp, PRIMARY KEY (eds_id, k)) WITH (fillfactor = 70);
CREATE OR REPLACE FUNCTION ` + name + `_add() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + add + `
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION ` + name + `_remove() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + remove + `
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION ` + name + `_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + remove + `
  ` + add + `
  RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER ` + name + `_insert AFTER INSERT ON lake_events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + name + `_add();
CREATE OR REPLACE TRIGGER ` + name + `_delete AFTER DELETE ON lake_events REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + name + `_remove();
CREATE OR REPLACE TRIGGER ` + name + `_update AFTER UPDATE ON lake_events REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ` + name + `_update();
`
}

// qualify prefixes the column references of dimension expressions (as
// rollupDim.expr writes them) with alias.
func qualify(alias string, exprs []string) []string {
	out := make([]string, len(exprs))
	for i, e := range exprs {
		if strings.HasPrefix(e, "(") {
			out[i] = "(" + alias + "." + e[1:]
		} else {
			out[i] = alias + "." + e
		}
	}
	return out
}

// widerDDL creates the coarser levels' tables (rollupLevels[1:]), the
// index of each level's buckets (which a statement's conditions on
// eventTime and the re-reading of a coarser level's times read), and the
// triggers that keep the coarser levels. Their names sort after the
// hourly level's (lake_rollup_wider_*), so PostgreSQL fires them after
// (triggers of one event fire in the order of their names): a coarser
// level's times are read again from the level below once it is exact.
// Adding rows: one grouped INSERT ... ON CONFLICT a level, in key order as
// the hourly one. Taking rows back: counts subtracted, empty rows removed,
// and the least and greatest eventTime of the rows of the buckets that
// lost events read again from the level below, grouped as this level's
// rows, in one pass over those buckets; the hourly level's remove trigger
// has taken lake_rollup's SHARE ROW EXCLUSIVE lock before, so no writer
// adds meanwhile (the lock is taken again here, which costs nothing, in
// case the hourly trigger is gone).
func widerDDL() string {
	var dims, exprs []string
	for _, d := range rollupDims {
		dims = append(dims, ident(d.name())+" "+d.typ)
		exprs = append(exprs, d.expr())
	}
	var ddl, add, remove strings.Builder
	remove.WriteString(`LOCK TABLE lake_rollup IN SHARE ROW EXCLUSIVE MODE;
`)
	for i, l := range rollupLevels {
		if i == 0 {
			ddl.WriteString(`CREATE INDEX IF NOT EXISTS ` + l.table + `_bucket ON ` + l.table + ` (eds_id, ` + rollBucket + `);
`)
			continue
		}
		below := rollupLevels[i-1]
		unit := literal(l.unit)
		ddl.WriteString(`CREATE TABLE ` + l.table + ` (eds_id text NOT NULL, k bytea NOT NULL, ` + rollBucket + ` timestamp, ` + strings.Join(dims, ", ") +
			`, ` + rollN + ` bigint NOT NULL, ` + rollMinT + ` timestamp, ` + rollMaxT + ` timestamp, PRIMARY KEY (eds_id, k)) WITH (fillfactor = 70);
CREATE INDEX ` + l.table + `_bucket ON ` + l.table + ` (eds_id, ` + rollBucket + `);
`)
		add.WriteString(`INSERT INTO ` + l.table + ` AS r (` + rollupColumns() + `) ` + rollupGroup("new_rows", "", l.unit) + ` ORDER BY 1, 2
    ON CONFLICT (eds_id, k) DO UPDATE SET ` + rollN + ` = r.` + rollN + ` + excluded.` + rollN + `,
      ` + rollMinT + ` = least(r.` + rollMinT + `, excluded.` + rollMinT + `), ` + rollMaxT + ` = greatest(r.` + rollMaxT + `, excluded.` + rollMaxT + `);
  `)
		oldKeys := `SELECT eds_id, ` + rollupKey(`date_trunc(`+unit+`, "eventTime")`, exprs) + ` AS k FROM old_rows`
		var belowDims []string
		for _, d := range rollupDims {
			belowDims = append(belowDims, "f."+ident(d.name()))
		}
		remove.WriteString(`UPDATE ` + l.table + ` r SET ` + rollN + ` = r.` + rollN + ` - d.n FROM (SELECT eds_id, k, count(*) AS n FROM (` + oldKeys + `) o GROUP BY 1, 2) d
    WHERE r.eds_id = d.eds_id AND r.k = d.k;
  DELETE FROM ` + l.table + ` r USING (SELECT DISTINCT eds_id, k FROM (` + oldKeys + `) o) d
    WHERE r.eds_id = d.eds_id AND r.k = d.k AND r.` + rollN + ` <= 0;
  UPDATE ` + l.table + ` r SET (` + rollMinT + `, ` + rollMaxT + `) = (s.lo, s.hi)
    FROM (SELECT f.eds_id, ` + rollupKey(`date_trunc(`+unit+`, f.`+rollBucket+`)`, belowDims) + ` AS k, min(f.` + rollMinT + `) AS lo, max(f.` + rollMaxT + `) AS hi
      FROM (SELECT DISTINCT eds_id, date_trunc(` + unit + `, "eventTime") AS b FROM old_rows WHERE "eventTime" IS NOT NULL) a
      JOIN ` + below.table + ` f ON f.eds_id = a.eds_id AND f.` + rollBucket + ` >= a.b AND f.` + rollBucket + ` < a.b + interval ` + literal("1 "+l.unit) + `
      GROUP BY 1, 2) s
    WHERE r.eds_id = s.eds_id AND r.k = s.k AND (r.` + rollMinT + `, r.` + rollMaxT + `) IS DISTINCT FROM (s.lo, s.hi);
  `)
	}
	return ddl.String() + `CREATE OR REPLACE FUNCTION lake_rollup_wider_add() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + add.String() + `RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION lake_rollup_wider_remove() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + remove.String() + `RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION lake_rollup_wider_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  ` + remove.String() + add.String() + `RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER lake_rollup_wider_insert AFTER INSERT ON lake_events REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lake_rollup_wider_add();
CREATE OR REPLACE TRIGGER lake_rollup_wider_delete AFTER DELETE ON lake_events REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION lake_rollup_wider_remove();
CREATE OR REPLACE TRIGGER lake_rollup_wider_update AFTER UPDATE ON lake_events REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION lake_rollup_wider_update();
`
}

// widerFill fills a coarser level (rollupLevels[i], i > 0) from the one
// below it.
func widerFill(i int) string {
	l, below := rollupLevels[i], rollupLevels[i-1]
	var dims []string
	for _, d := range rollupDims {
		dims = append(dims, ident(d.name()))
	}
	b := `date_trunc(` + literal(l.unit) + `, ` + rollBucket + `)`
	return `INSERT INTO ` + l.table + ` (` + rollupColumns() + `) SELECT eds_id, ` + rollupKey(b, dims) + `, ` + b + `, ` + strings.Join(dims, ", ") +
		`, sum(` + rollN + `), min(` + rollMinT + `), max(` + rollMaxT + `) FROM ` + below.table + ` GROUP BY eds_id, ` + b + `, ` + strings.Join(dims, ", ") + `;
`
}

// migrateRollup (in migrate's transaction, under its advisory lock)
// creates the rollup's levels and their triggers when lake_meta does not
// hold rollupVersion, and fills them from lake_events (the hourly level)
// and each from the one below, locking lake_events against writers
// meanwhile (SHARE: they wait, and their events come in through the
// triggers once it commits).
func migrateRollup(ctx context.Context, tx pgx.Tx) error {
	var v int64
	err := tx.QueryRow(ctx, `SELECT v FROM lake_meta WHERE k = 'rollup_version'`).Scan(&v)
	if err == nil && v == rollupVersion {
		return nil
	}
	if err != nil && err != pgx.ErrNoRows {
		return fmt.Errorf("lake/postgres: rollup version: %w", err)
	}
	var drop, fill strings.Builder
	for _, kind := range []string{"insert", "delete", "update"} {
		drop.WriteString(`DROP TRIGGER IF EXISTS lake_rollup_` + kind + ` ON lake_events;
DROP TRIGGER IF EXISTS lake_rollup_wider_` + kind + ` ON lake_events;
`)
	}
	for i, l := range rollupLevels {
		drop.WriteString(`DROP TABLE IF EXISTS ` + l.table + `;
`)
		if i == 0 {
			fill.WriteString(`INSERT INTO lake_rollup (` + rollupColumns() + `) ` + rollupGroup("lake_events", "", "hour") + `;
`)
		} else {
			fill.WriteString(widerFill(i))
		}
		fill.WriteString(`ANALYZE ` + l.table + `;
`)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE lake_events IN SHARE MODE;
`+drop.String()+rollupDDL()+widerDDL()+fill.String()+`
INSERT INTO lake_meta VALUES ('rollup_version', `+fmt.Sprint(rollupVersion)+`) ON CONFLICT (k) DO UPDATE SET v = excluded.v;`); err != nil {
		return fmt.Errorf("lake/postgres: rollup: %w", err)
	}
	return nil
}

// migrateFine (in migrate's transaction, after migrateRollup) creates
// fineLevel and its triggers when lake_meta does not hold fineVersion,
// and fills it from lake_events, which it locks against writers meanwhile
// as migrateRollup does.
func migrateFine(ctx context.Context, tx pgx.Tx) error {
	var v int64
	err := tx.QueryRow(ctx, `SELECT v FROM lake_meta WHERE k = 'fine_version'`).Scan(&v)
	if err == nil && v == fineVersion {
		return nil
	}
	if err != nil && err != pgx.ErrNoRows {
		return fmt.Errorf("lake/postgres: fine level version: %w", err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE lake_events IN SHARE MODE;
DROP TRIGGER IF EXISTS lake_rollup_fine_insert ON lake_events;
DROP TRIGGER IF EXISTS lake_rollup_fine_delete ON lake_events;
DROP TRIGGER IF EXISTS lake_rollup_fine_update ON lake_events;
DROP TABLE IF EXISTS `+fineLevel.table+`;
`+fineDDL()+`
INSERT INTO `+fineLevel.table+` (`+rollupColumns()+`) `+rollupGroup("lake_events", "", fineLevel.unit)+`;
ANALYZE `+fineLevel.table+`;
INSERT INTO lake_meta VALUES ('fine_version', `+fmt.Sprint(fineVersion)+`) ON CONFLICT (k) DO UPDATE SET v = excluded.v;`); err != nil {
		return fmt.Errorf("lake/postgres: fine level: %w", err)
	}
	return nil
}
