package lake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/engine"
	"github.com/cairn-audit/cairn/internal/lake/postgres"
	"github.com/cairn-audit/cairn/internal/testwait"
)

// hostile is a Lake with two accounts' stores and canaries: account B's
// rows, a row of lake_meta and a table of Lake's database whose name and
// content are a secret no statement can know.
type hostile struct {
	l                  *Lake
	idA, idB, idA2     string
	arnA, arnB, secret string
}

const acctA, acctB = "111111111111", "222222222222"

func newHostile(t testing.TB) *hostile {
	t.Helper()
	l, err := openTest(t.TempDir(), Options{MaxResultBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return seedHostile(t, l)
}

// newHostileOn is newHostile on an engine of kind (engines).
func newHostileOn(t testing.TB, kind string) *hostile {
	t.Helper()
	if kind == "duckdb" {
		return newHostile(t)
	}
	return seedHostile(t, openLakeOn(t, kind, Options{MaxResultBytes: 1 << 20}))
}

func seedHostile(t testing.TB, l *Lake) *hostile {
	t.Helper()
	h := &hostile{l: l, idA: "aaaaaaaa-0000-4000-8000-00000000000a", idA2: "aaaaaaaa-0000-4000-8000-0000000000a2",
		idB: "bbbbbbbb-0000-4000-8000-00000000000b", secret: "S" + strings.ReplaceAll(audit.NewID(), "-", "")}
	for _, s := range []*EventDataStore{{ID: h.idA, Account: acctA, Name: "a"}, {ID: h.idA2, Account: acctA, Name: "a2"}, {ID: h.idB, Account: acctB, Name: "b"}} {
		s.Region, s.Status, s.RetentionPeriod = "us-east-1", StatusEnabled, 3653
		l.stores[s.ID] = s
	}
	h.arnA, h.arnB = l.stores[h.idA].ARN(), l.stores[h.idB].ARN()
	rec := func(acct, name string) []byte {
		return []byte(`{"eventVersion":"1.08","userIdentity":{"type":"IAMUser","accountId":"` + acct + `","arn":"arn:aws:iam::` + acct + `:user/` + name +
			`"},"eventTime":"2024-01-02T03:04:05Z","eventSource":"s3.amazonaws.com","eventName":"` + name + `","awsRegion":"us-east-1","userAgent":"` + name +
			`","requestParameters":{"bucketName":"` + name + `"},"eventID":"` + audit.NewID() + `","readOnly":true,"recipientAccountId":"` + acct + `","eventCategory":"Management"}`)
	}
	ctx := context.Background()
	if err := l.eng.Insert(ctx, []engine.Row{{Store: h.idA, Raw: rec(acctA, "GetObject")}, {Store: h.idA, Raw: rec(acctA, "PutObject")}, {Store: h.idA2, Raw: rec(acctA, "ListBuckets")},
		{Store: h.idB, Raw: rec(acctB, h.secret)}}, 0); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO lake_meta VALUES ('` + h.secret + `', 7)`,
		`CREATE TABLE "t_` + h.secret + `" AS SELECT '` + h.secret + `' AS s`,
	} {
		if pg, ok := l.eng.(*postgres.DB); ok {
			if _, err := pg.Pool().Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, err := sqlDB(l).ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// catalogNames lists, from the running DuckDB, every table and view of
// every schema (DuckDB's own catalog views included) and every table
// function and table macro: what a statement must never reach.
func catalogNames(t testing.TB, l *Lake) (relations [][2]string, tableFuncs []string) {
	t.Helper()
	ctx := context.Background()
	rs, err := sqlDB(l).QueryContext(ctx, `SELECT DISTINCT schema_name, table_name FROM duckdb_tables()
		UNION SELECT DISTINCT schema_name, view_name FROM duckdb_views() ORDER BY ALL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var s, n string
		if err := rs.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		relations = append(relations, [2]string{s, n})
	}
	fs, err := sqlDB(l).QueryContext(ctx, `SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_type IN ('table', 'table_macro') ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	for fs.Next() {
		var n string
		if err := fs.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tableFuncs = append(tableFuncs, n)
	}
	if len(relations) < 20 || len(tableFuncs) < 20 {
		t.Fatalf("catalog: %d relations, %d table functions; DuckDB's catalog views are missing", len(relations), len(tableFuncs))
	}
	return relations, tableFuncs
}

// shadowVariants are statements of account A that try to bind name
// (already quoted or not) without a CTE of that name in scope.
func shadowVariants(own, name string) []string {
	return []string{
		`SELECT * FROM ` + own + `, ` + name,
		`SELECT * FROM ` + own + ` own_, (WITH ` + name + ` AS (SELECT 1) SELECT * FROM ` + name + `) s0, (SELECT * FROM ` + name + `) x`,
		`SELECT * FROM ` + own + ` own_, (WITH ` + name + ` AS (SELECT 1) SELECT 1) s0, ` + name,
		`WITH ` + name + ` AS (SELECT * FROM ` + name + `) SELECT * FROM ` + name + `, ` + own,
		`WITH a AS (SELECT * FROM ` + name + `), ` + name + ` AS (SELECT 1) SELECT * FROM a, ` + own,
		`WITH RECURSIVE ` + name + ` AS (SELECT * FROM ` + name + ` UNION ALL SELECT 1) SELECT * FROM ` + own,
		`WITH RECURSIVE ` + name + ` AS (SELECT * FROM ` + name + `) SELECT * FROM ` + name + `, ` + own,
		`SELECT eventName FROM ` + own + ` UNION ALL (WITH ` + name + ` AS (SELECT 'x') SELECT * FROM ` + name + `) UNION ALL SELECT * FROM ` + name,
		`(WITH ` + name + ` AS (SELECT 'x') SELECT * FROM ` + name + `) EXCEPT SELECT * FROM ` + name + ` INTERSECT SELECT eventName FROM ` + own,
		`SELECT (SELECT count(*) FROM ` + name + `) FROM ` + own,
		`SELECT (WITH x AS (SELECT 1) SELECT count(*) FROM ` + name + `) FROM ` + own,
		`SELECT * FROM ` + own + ` WHERE EXISTS (SELECT 1 FROM ` + name + `)`,
		`SELECT * FROM ` + own + ` WHERE eventName IN (SELECT * FROM ` + name + `)`,
		`SELECT eventName FROM ` + own + ` GROUP BY eventName HAVING count(*) < (SELECT count(*) FROM ` + name + `)`,
		`SELECT * FROM ` + own + ` ORDER BY (SELECT 1 FROM ` + name + ` LIMIT 1)`,
		`SELECT * FROM ` + own + ` LIMIT (SELECT count(*) FROM ` + name + `)`,
		`SELECT * FROM ` + own + `, LATERAL (SELECT * FROM ` + name + `) l`,
		`SELECT * FROM ` + own + ` JOIN ` + name + ` ON true`,
		`SELECT * FROM ` + own + ` LEFT JOIN (SELECT * FROM (SELECT * FROM ` + name + `)) x ON true`,
		`SELECT * FROM ` + own + ` a JOIN ` + own + ` b ON a.eventID = (SELECT max(1) FROM ` + name + `)`,
		`SELECT list_transform([1], x -> (SELECT count(*) FROM ` + name + `)) FROM ` + own,
		`SELECT count(*) FILTER (WHERE EXISTS (SELECT 1 FROM ` + name + `)) FROM ` + own,
		`SELECT row_number() OVER (ORDER BY (SELECT 1 FROM ` + name + `)) FROM ` + own,
		`WITH own_ AS (SELECT * FROM ` + own + `) SELECT * FROM own_ WHERE eventName IN (WITH y AS (SELECT 1) SELECT * FROM ` + name + `)`,
		`WITH x AS (SELECT 1), y AS (WITH ` + name + ` AS (SELECT 1) SELECT 1) SELECT * FROM ` + own + `, ` + name,
		`FROM ` + name + ` SELECT 1 UNION SELECT 1 FROM ` + own,
		`SELECT * FROM ` + own + ` WHERE (SELECT 1 FROM (VALUES (1)) v(x), ` + name + `) = 1`,
		// UNNEST unnests the statement's own values only: a subquery or a
		// lateral reference inside it binds nothing the statement could
		// not bind elsewhere.
		`SELECT t.r FROM ` + own + ` CROSS JOIN UNNEST((SELECT list(1) FROM ` + name + `)) AS t(r)`,
		`SELECT t.r FROM ` + own + ` CROSS JOIN UNNEST(resources) AS t(r) WHERE EXISTS (SELECT 1 FROM ` + name + `)`,
		`SELECT t.r FROM ` + own + ` e, UNNEST(e.resources) AS t(r), UNNEST((SELECT [1] FROM ` + name + ` LIMIT 1)) AS u(x)`,
		`SELECT r FROM ` + own + ` CROSS JOIN UNNEST(list_transform(resources, x -> (SELECT count(*) FROM ` + name + `))) AS t(r)`,
		`SELECT * FROM UNNEST((SELECT list(eventName) FROM ` + name + `)) AS t(r), ` + own,
		`SELECT * FROM ` + own + ` CROSS JOIN UNNEST(resources) AS t(r) JOIN ` + name + ` ON true`,
		`SELECT * FROM ` + own + ` CROSS JOIN LATERAL (SELECT * FROM UNNEST(resources) u(r), ` + name + `) l`,
	}
}

// TestCheckBindsOnlyOwnStoresAndCTEs is the hostile-tenant suite of Lake
// SQL: each statement must be refused with InvalidQueryStatement (or
// EventDataStoreNotFound for another account's store by ID or ARN, as
// AWS), and nothing that runs may answer another account's rows or
// anything of Lake's database.
func TestCheckBindsOnlyOwnStoresAndCTEs(t *testing.T) {
	h := newHostile(t)
	ctx := context.Background()
	relations, tableFuncs := catalogNames(t, h.l)
	own := h.idA

	refused := map[string]string{} // statement -> wanted code
	add := func(code string, stmts ...string) {
		for _, s := range stmts {
			refused[s] = code
		}
	}
	names := map[string]bool{"events": true, "lake_meta": true, tableName(h.idB): true, tableName(h.idA2) + "x": true}
	for _, r := range relations {
		names[r[1]] = true
		add("InvalidQueryStatement",
			`SELECT * FROM `+own+`, `+r[0]+`.`+r[1],
			`SELECT * FROM `+own+`, "`+r[0]+`"."`+r[1]+`"`,
			`SELECT * FROM `+own+`, memory.`+r[0]+`.`+r[1],
			`SELECT * FROM `+own+`, system.`+r[0]+`.`+r[1],
			`WITH x AS (SELECT 1) SELECT * FROM `+own+`, x WHERE 1 IN (SELECT 1 FROM `+r[0]+`.`+r[1]+`)`)
	}
	for n := range names {
		quoted := `"` + strings.ReplaceAll(n, `"`, `""`) + `"`
		for _, name := range []string{n, quoted, strings.ToUpper(quoted)} {
			add("InvalidQueryStatement", shadowVariants(own, name)...)
		}
	}
	for _, f := range tableFuncs {
		if duckdb.Pure(f) {
			continue // pure (unnest, range...): TestAllowedFunctionsExist
		}
		add("InvalidQueryStatement",
			`SELECT * FROM `+own+`, `+f+`()`,
			`SELECT * FROM `+own+`, `+f+`('x')`,
			`SELECT * FROM `+own+` WHERE 1 IN (SELECT 1 FROM `+f+`())`,
			`SELECT `+f+`() FROM `+own,
			`WITH `+f+` AS (SELECT 1) SELECT * FROM `+own+`, `+f+`()`)
	}
	// Functions that read settings, the session, the catalog or files.
	for _, call := range []string{
		`current_setting('memory_limit')`, `CURRENT_SETTING('memory_limit')`, `getenv('HOME')`, `version()`,
		`current_database()`, `current_catalog()`, `current_schema()`, `current_schemas(true)`, `current_query()`,
		`current_user`, `current_schema`, `current_catalog`, `user`, `session_user`, `current_role`, `stats(eventTime)`, `pg_get_viewdef(1)`, `format_type(1, 1)`, `get_block_size('memory')`,
		`json_serialize_plan('SELECT * FROM events')`, `json_serialize_sql('SELECT 1')`, `nextval('s')`,
		`getvariable('x')`, `write_log('x')`, `sleep_ms(1)`, `setseed(0.5)`, `main.version()`, `memory.main.lower('x')`, `system.main.version()`,
		`pg_catalog.current_database()`, `read_text('/etc/passwd')`, `glob('/*')`, `query('SELECT 1')`,
		`txid_current()`, `current_connection_id()`, `in_search_path('main', 'main')`, `error('x')`,
		`CAST(eventName AS mytype)`, `eventName::main.json`, `lower(CAST(1 AS events))`,
		`(SELECT current_setting('threads'))`, `list_transform([1], x -> getenv('HOME'))`,
	} {
		add("InvalidQueryStatement", `SELECT `+call+` FROM `+own, `SELECT * FROM `+own+` WHERE `+call+` IS NOT NULL`)
	}
	add("InvalidQueryStatement",
		`SHOW TABLES`, `SHOW ALL TABLES`, `SHOW events`, `DESCRIBE events`, `DESCRIBE `+own, `SUMMARIZE events`,
		`SUMMARIZE SELECT * FROM `+own, `PIVOT events ON eventName USING count(*)`, `TABLE events`,
		`SELECT * FROM `+own+` PIVOT (count(*) FOR eventName IN ('a'))`,
		`SELECT * FROM `+own+` UNPIVOT (v FOR k IN (eventName, eventSource))`,
		`SELECT * FROM '/etc/passwd'`, `SELECT * FROM `+own+`, 'x.csv'`, `SELECT * FROM `+own+` AT (VERSION => 1)`,
		`PRAGMA show_tables`, `CALL duckdb_tables()`, `SET threads = 1`, `RESET threads`, `EXPLAIN SELECT * FROM `+own,
		`SELECT * FROM `+own+`; SELECT * FROM events`, `COPY events TO '/tmp/x'`, `EXPORT DATABASE '/tmp/x'`,
		`ATTACH ':memory:' AS m`, `USE memory`, `CHECKPOINT`, `INSTALL httpfs`, `LOAD json`,
		`SELECT * FROM `+tableName(h.idB),
		`SELECT * FROM "`+tableName(h.idB)+`"`,
		`SELECT * FROM `+own+` UNION ALL SELECT * FROM `+tableName(h.idB),
		`SELECT * FROM "`+h.idB+`"`,
		`SELECT * FROM `+own+` WHERE eventName IN (SELECT eventName FROM "`+h.idB+`")`,
		`WITH RECURSIVE t(n) USING KEY (n) AS (SELECT 1 UNION SELECT n + 1 FROM recurring.t WHERE n < 3) SELECT * FROM t, `+own,
		`SELECT $1 FROM `+own,
	)
	add("EventDataStoreNotFound",
		`SELECT * FROM `+h.idB, `SELECT * FROM `+h.arnB, `SELECT * FROM `+own+` JOIN `+h.idB+` USING (eventID)`,
		`SELECT * FROM `+own+` WHERE eventName IN (SELECT eventName FROM `+h.arnB+`)`,
		`SELECT * FROM `+own+` UNION SELECT * FROM `+h.idB)

	t.Logf("%d hostile statements (%d catalog relations, %d table functions)", len(refused), len(relations), len(tableFuncs))
	for stmt, want := range refused {
		_, _, err := h.l.Prepare(ctx, acctA, stmt)
		var ae *audit.Error
		if !errors.As(err, &ae) || string(ae.Code) != want {
			t.Errorf("Prepare(%q) = %v; want %s", stmt, err, want)
			if err == nil {
				h.assertClean(t, stmt)
			}
		}
	}

	// What Lake allows: the caller's stores, CTEs in scope (shadowing a
	// catalog name included), recursion, set operations, subqueries, the
	// pure functions. These must run and see A's rows only.
	for _, stmt := range []string{
		`SELECT eventName, count(*) AS n FROM ` + own + ` GROUP BY eventName ORDER BY n DESC`,
		`SELECT * FROM ` + h.arnA,
		`WITH events AS (SELECT * FROM ` + own + `) SELECT count(*) FROM events`,
		`WITH "duckdb_tables" AS (SELECT * FROM ` + own + `) SELECT * FROM duckdb_tables`,
		`WITH a AS (SELECT * FROM ` + own + `), lake_meta AS (SELECT * FROM a) SELECT * FROM lake_meta`,
		`WITH sqlite_master AS (SELECT eventName FROM ` + own + `) SELECT * FROM sqlite_master UNION ALL SELECT * FROM (SELECT * FROM sqlite_master)`,
		`WITH RECURSIVE events(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM events WHERE n < 3) SELECT * FROM ` + own + `, events`,
		`WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM (SELECT * FROM t) WHERE n < 3) SELECT n FROM ` + own + `, t`,
		`WITH x AS (SELECT * FROM ` + own + `) SELECT (SELECT count(*) FROM x), (WITH y AS (SELECT * FROM x) SELECT max(eventName) FROM y) FROM x`,
		`SELECT eventName FROM ` + own + ` UNION SELECT eventName FROM ` + h.idA2 + ` EXCEPT SELECT 'none'`,
		`SELECT a.eventName FROM ` + own + ` a JOIN ` + h.idA2 + ` b ON a.awsRegion = b.awsRegion, LATERAL (SELECT a.eventName AS e) l`,
		`SELECT u.r FROM ` + own + ` CROSS JOIN UNNEST([1, 2]) AS u(r)`,
		`SELECT r.arn FROM ` + own + ` CROSS JOIN UNNEST(resources) AS t(r) UNION ALL SELECT eventName FROM ` + own,
		`SELECT count(*) FROM ` + own + ` e CROSS JOIN UNNEST(map_keys(e.requestParameters)) AS k(key) WHERE k.key = 'bucketName'`,
		`SELECT unnest(map_keys(requestParameters)) FROM ` + own,
		`SELECT * FROM ` + own + `, (VALUES (1), (2)) v(x)`,
		`SELECT main.lower(eventName), [1, 2][1], {'a': 1}, current_date FROM ` + own,
		`SELECT element_at(requestParameters, 'bucketName'), json_extract_scalar(eventJson, '$.eventName'), userIdentity.arn,
			date_trunc('day', eventTime), regexp_extract(eventName, 'Get(.*)', 1), split_part(eventName, 'O', 1),
			CAST(eventTime AS VARCHAR), eventJson::JSON, approx_count_distinct(eventName) OVER (), row_number() OVER (ORDER BY eventTime)
			FROM ` + own + ` WHERE eventTime > '2000-01-01 00:00:00' AND eventName LIKE 'G%'`,
		`SELECT count(*) FROM ` + own + ` WHERE lower(eventName) IN (SELECT lower(eventName) FROM ` + h.idA2 + `)`,
	} {
		if _, _, err := h.l.Prepare(ctx, acctA, stmt); err != nil {
			t.Errorf("Prepare(%q) = %v; want it accepted", stmt, err)
			continue
		}
		if n := h.assertClean(t, stmt); n == 0 {
			t.Errorf("Query(%q) answered no rows", stmt)
		}
	}
}

// assertClean runs stmt as account A and fails if any cell holds account
// B's data or the canaries; it returns the rows answered.
func (h *hostile) assertClean(t *testing.T, stmt string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(testwait.Context(t))
	defer cancel()
	res, err := h.l.Query(ctx, acctA, stmt)
	if err != nil {
		t.Errorf("Query(%q) = %v", stmt, err)
		return 0
	}
	for _, r := range res.Rows {
		for _, c := range r {
			if c != nil && (strings.Contains(*c, h.secret) || strings.Contains(*c, acctB)) {
				t.Errorf("Query(%q) of account A answered another account's or Lake's data: %q", stmt, *c)
			}
		}
	}
	return len(res.Rows)
}

// TestQueryAPIBindsOnlyOwnStores sends hostile statements of account A
// through StartQuery (aws-sdk-go-v2): each is refused with the model's
// exception, and the statements that run never answer account B's rows or
// Lake's own tables.
func TestQueryAPIBindsOnlyOwnStores(t *testing.T) {
	e := newEnv(t)
	h := seedHostile(t, e.lake)
	a := e.client("AKIAAAAAAAAAAAAAAAAA")
	ctx := context.Background()
	relations, tableFuncs := catalogNames(t, e.lake)
	own := h.idA
	refused := map[string]string{}
	for _, r := range append(relations, [2]string{"main", "events"}, [2]string{"main", "lake_meta"}, [2]string{"main", tableName(h.idB)}) {
		for _, name := range []string{r[1], `"` + r[1] + `"`} {
			v := shadowVariants(own, name)
			for _, i := range []int{0, 1, 3, 7, 9, 12, 16} {
				refused[v[i]] = "InvalidQueryStatementException"
			}
		}
		refused[`SELECT * FROM `+own+`, `+r[0]+`.`+r[1]] = "InvalidQueryStatementException"
	}
	for _, f := range tableFuncs {
		if !duckdb.Pure(f) {
			refused[`SELECT * FROM `+own+`, `+f+`()`] = "InvalidQueryStatementException"
		}
	}
	for _, s := range []string{`SHOW TABLES`, `DESCRIBE events`, `SUMMARIZE events`, `SELECT current_setting('threads') FROM ` + own,
		`SELECT version() FROM ` + own, `SELECT current_schema FROM ` + own, `SELECT stats(eventTime) FROM ` + own,
		`SELECT * FROM "` + tableName(h.idB) + `"`, `SELECT * FROM ` + own + `, read_text('/etc/passwd')`} {
		refused[s] = "InvalidQueryStatementException"
	}
	refused[`SELECT * FROM `+h.idB] = "EventDataStoreNotFoundException"
	refused[`SELECT * FROM `+h.arnB] = "EventDataStoreNotFoundException"
	refused[`SELECT * FROM `+own+` UNION ALL SELECT * FROM `+h.idB] = "EventDataStoreNotFoundException"
	for stmt, want := range refused {
		q, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)})
		if code(err) != want {
			t.Errorf("StartQuery(%q) = %v; want %s", stmt, err, want)
			if err == nil {
				h.assertResults(t, a, *q.QueryId, stmt)
			}
		}
	}
	for _, stmt := range []string{
		`SELECT eventName, userIdentity.arn FROM ` + own,
		`WITH events AS (SELECT * FROM ` + own + `) SELECT * FROM events`,
		`WITH duckdb_tables AS (SELECT eventName FROM ` + own + `) SELECT * FROM duckdb_tables UNION ALL SELECT * FROM (SELECT * FROM duckdb_tables)`,
	} {
		q, err := a.StartQuery(ctx, &cloudtrail.StartQueryInput{QueryStatement: aws.String(stmt)})
		if err != nil {
			t.Fatalf("StartQuery(%q) = %v", stmt, err)
		}
		if n := h.assertResults(t, a, *q.QueryId, stmt); n == 0 {
			t.Errorf("%q answered no rows", stmt)
		}
	}
}

// assertResults waits for query id and fails if any of its result cells
// holds account B's data or a canary; it returns the rows answered.
func (h *hostile) assertResults(t *testing.T, c *cloudtrail.Client, id, stmt string) int {
	t.Helper()
	waitQuery(t, c, id)
	r, err := c.GetQueryResults(context.Background(), &cloudtrail.GetQueryResultsInput{QueryId: &id})
	if err != nil {
		t.Errorf("GetQueryResults(%q) = %v", stmt, err)
		return 0
	}
	for _, row := range r.QueryResultRows {
		for _, cell := range row {
			for _, v := range cell {
				if strings.Contains(v, h.secret) || strings.Contains(v, acctB) {
					t.Errorf("%q of account A answered another account's or Lake's data: %q", stmt, v)
				}
			}
		}
	}
	return len(r.QueryResultRows)
}
