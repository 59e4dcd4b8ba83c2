package lake

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/duckdb"
	"github.com/cairn-audit/cairn/internal/lake/postgres"
)

// TestPostgresCheckBindsOnlyOwnStores is the hostile-tenant suite on the
// PostgreSQL engine: every relation of PostgreSQL's catalog (pg_catalog,
// information_schema, Lake's own tables, a canary table) and every
// function PostgreSQL has that the Lake allow-list does not name (files,
// large objects, settings, sleeps, signals...) is refused by the statement
// check, however it is named; and the statements that run never answer
// another account's rows or the canaries.
func TestPostgresCheckBindsOnlyOwnStores(t *testing.T) {
	h := newHostileOn(t, "postgres")
	ctx := context.Background()
	pool := h.l.eng.(*postgres.DB).Pool()
	own := h.idA
	refused := map[string]string{}
	add := func(code string, stmts ...string) {
		for _, s := range stmts {
			refused[s] = code
		}
	}
	rows, err := pool.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f', 'S')`)
	if err != nil {
		t.Fatal(err)
	}
	nrel := 0
	for rows.Next() {
		var sch, rel string
		if err := rows.Scan(&sch, &rel); err != nil {
			t.Fatal(err)
		}
		nrel++
		add("InvalidQueryStatement",
			`SELECT * FROM `+own+`, "`+sch+`"."`+rel+`"`,
			`SELECT * FROM `+own+` WHERE eventName IN (SELECT * FROM "`+rel+`")`)
	}
	rows.Close()
	if nrel < 100 {
		t.Fatalf("%d relations in PostgreSQL's catalog; the query is wrong", nrel)
	}
	prestoNames := map[string]bool{}
	for f := range h.l.eng.Functions() {
		prestoNames[f] = true
	}
	rows, err = pool.Query(ctx, `SELECT DISTINCT proname FROM pg_proc`)
	if err != nil {
		t.Fatal(err)
	}
	nfn := 0
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		// On the allow-list (or a Trino name Lake maps to one): translated
		// to PostgreSQL's own or refused by the translation. interval('x')
		// is DuckDB's interval literal.
		if duckdb.Pure(f) || prestoNames[f] || f == "interval" || !isSQLName(f) {
			continue
		}
		nfn++
		add("InvalidQueryStatement", `SELECT `+f+`('x') FROM `+own)
	}
	rows.Close()
	for _, f := range []string{"pg_read_file", "pg_ls_dir", "lo_import", "pg_sleep", "set_config", "current_setting", "pg_terminate_backend", "dblink", "txid_current", "nextval", "query_to_xml"} {
		add("InvalidQueryStatement", `SELECT `+f+`('x') FROM `+own, `SELECT pg_catalog.`+f+`('x') FROM `+own)
	}
	add("InvalidQueryStatement", `SELECT * FROM lake_events`, `SELECT * FROM public.lake_events`, `SELECT * FROM `+own+`, lake.element_at`,
		`SELECT lake.element_at(requestParameters, 'x') FROM `+own, `SELECT eventName FROM `+own+`; SELECT * FROM lake_meta`,
		`SELECT * FROM `+tableName(h.idB), `SELECT * FROM "`+tableName(h.idB)+`"`, `SELECT * FROM "t_`+h.secret+`"`,
		// The shared mode's tables in the same database: every account's
		// queries and results, the shared state and the leases.
		`SELECT * FROM lake_queries`, `SELECT cells FROM public.lake_results`, `SELECT * FROM `+own+` JOIN lake_results ON true`,
		`SELECT * FROM shared_state`, `SELECT * FROM leases`,
		// The rollup of every store's events, and its triggers' functions.
		`SELECT * FROM lake_rollup`, `SELECT "_N" FROM public.lake_rollup`, `SELECT lake_rollup_add() FROM `+own,
		`SELECT * FROM lake_rollup_day`, `SELECT "_N" FROM public.lake_rollup_month`, `SELECT lake_rollup_wider_remove() FROM `+own)
	add("EventDataStoreNotFound", `SELECT * FROM `+h.idB, `SELECT * FROM `+h.arnB)
	t.Logf("%d hostile statements (%d relations, %d functions of PostgreSQL)", len(refused), nrel, nfn)
	for stmt, want := range refused {
		_, _, err := h.l.Prepare(ctx, acctA, stmt)
		var ae *audit.Error
		if !errors.As(err, &ae) || string(ae.Code) != want {
			t.Errorf("Prepare(%q) = %v; want %s", stmt, err, want)
		}
	}
	// What runs sees A's rows only, and a part the translation does not
	// know is the statement's error (never run as written).
	for _, stmt := range []string{
		`SELECT eventName, count(*) AS n FROM ` + own + ` GROUP BY eventName ORDER BY n DESC`,
		`SELECT * FROM ` + h.arnA,
		`WITH events AS (SELECT * FROM ` + own + `) SELECT count(*) FROM events`,
		`WITH lake_events AS (SELECT * FROM ` + own + `) SELECT * FROM lake_events`,
		`WITH pg_class AS (SELECT eventName FROM ` + own + `) SELECT * FROM pg_class UNION ALL SELECT * FROM (SELECT * FROM pg_class) x`,
		`WITH RECURSIVE lake_meta(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM lake_meta WHERE n < 3) SELECT * FROM ` + own + `, lake_meta`,
		`SELECT eventName FROM ` + own + ` UNION SELECT eventName FROM ` + h.idA2 + ` EXCEPT SELECT 'none'`,
		`SELECT a.eventName FROM ` + own + ` a JOIN ` + h.idA2 + ` b ON a.awsRegion = b.awsRegion`,
		`SELECT r.arn FROM ` + own + ` CROSS JOIN UNNEST(resources) AS t(r) UNION ALL SELECT eventName FROM ` + own,
		`SELECT element_at(requestParameters, 'bucketName'), json_extract_scalar(eventJson, '$.eventName'), userIdentity.arn, eventJson
			FROM ` + own + ` WHERE eventTime > '2000-01-01 00:00:00' AND eventName LIKE 'G%'`,
		`SELECT count(*) FROM ` + own + ` WHERE lower(eventName) IN (SELECT lower(eventName) FROM ` + h.idA2 + `)`,
	} {
		if n := h.assertClean(t, stmt); n == 0 {
			t.Errorf("Query(%q) answered no rows", stmt)
		}
	}
	for _, stmt := range []string{
		`SELECT list_transform([1], x -> x + 1) FROM ` + own,
		`SELECT {'a': 1} FROM ` + own,
		`SELECT * FROM ` + own + ` JOIN ` + h.idA2 + ` USING (eventID)`,
	} {
		_, err := h.l.Query(ctx, acctA, stmt)
		var ae *audit.Error
		if !errors.As(err, &ae) || ae.Code != audit.CodeInvalidQueryStatement || !strings.Contains(ae.Message, "PostgreSQL Lake cannot run") {
			t.Errorf("Query(%q) = %v; want InvalidQueryStatement naming what PostgreSQL's Lake cannot run", stmt, err)
		}
	}
}

// isSQLName reports whether f can be written unquoted as a function name.
func isSQLName(f string) bool {
	if f == "" || f[0] >= '0' && f[0] <= '9' {
		return false
	}
	for _, c := range f {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
