package duckdb

import "testing"

// TestAllowedFunctionsExist keeps the allow-list honest: every name is a
// function of this DuckDB (or Lake's macro), none of them is a table
// function, and none is one that reads the catalog, settings or session.
func TestAllowedFunctionsExist(t *testing.T) {
	d, err := Open("", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	known := map[string]bool{}
	rs, err := d.db.Query(`SELECT DISTINCT function_name, function_type FROM duckdb_functions() WHERE function_type IN ('scalar', 'aggregate', 'macro', 'table')`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var n, typ string
		if err := rs.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		if typ != "table" || tableFunctions[n] {
			known[n] = true
		}
	}
	rs.Close()
	for f := range allowedFunctions {
		if !known[f] {
			t.Errorf("allowed function %s is not a scalar, aggregate or macro of DuckDB", f)
		}
	}
	for _, f := range []string{"current_setting", "getenv", "version", "current_database", "current_schema", "current_schemas",
		"current_query", "stats", "nextval", "currval", "getvariable", "json_serialize_plan", "get_block_size", "pg_get_viewdef",
		"write_log", "sleep_ms", "query", "query_table", "read_text", "glob", "duckdb_tables", "format_type", "current_catalog"} {
		if allowedFunctions[f] {
			t.Errorf("%s is allowed", f)
		}
	}
	for _, op := range []string{"+", "||", "~~", "->>", "!__postfix"} {
		if !isOperator(op) {
			t.Errorf("isOperator(%q) = false", op)
		}
	}
	for _, f := range []string{"", "version", "+a", "getenv"} {
		if isOperator(f) {
			t.Errorf("isOperator(%q) = true", f)
		}
	}
}
