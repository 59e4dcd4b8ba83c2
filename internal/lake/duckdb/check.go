package duckdb

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
)

// What a Lake statement may bind
//
// Check accepts a statement only when everything in it is on an
// allow-list, so a name DuckDB's catalog holds (system tables and views,
// Lake's own tables, another account's store) is unreachable whatever it is
// called and wherever it sits:
//
//   - query nodes: SELECT, set operations, and a recursive CTE's body;
//   - table references: a base table that is one of the caller's stores
//     (as rewrite names them) or a CTE in scope where it is referenced,
//     joins, subqueries (lateral included), VALUES lists, no FROM, and the
//     pure table functions unnest, range and generate_series;
//   - expressions of the classes in exprClasses, casts to built-in types,
//     and functions of allowedFunctions (operators included).
//
// Scope follows DuckDB's binder: a CTE is visible in the body of the query
// node whose WITH defines it, in the CTEs defined after it in that WITH, and
// in everything nested there; a CTE body does not see itself nor later CTEs
// of its WITH (DuckDB then binds the name to the catalog), except the
// recursive part of a WITH RECURSIVE CTE, which sees its own name. A CTE of
// a subquery is not visible outside that subquery.

// tableFunctions are the table functions a FROM may call: they only
// compute from their arguments.
var tableFunctions = map[string]bool{"unnest": true, "range": true, "generate_series": true}

// exprClasses are the expression classes (json_serialize_sql's "class") a
// statement may contain. PARAMETER is not one: cairn runs no saved queries.
var exprClasses = map[string]bool{
	"BETWEEN": true, "CASE": true, "CAST": true, "COLLATE": true, "COLUMN_REF": true, "COMPARISON": true,
	"CONJUNCTION": true, "CONSTANT": true, "FUNCTION": true, "LAMBDA": true, "LAMBDA_REF": true,
	"OPERATOR": true, "POSITIONAL_REFERENCE": true, "STAR": true, "SUBQUERY": true, "WINDOW": true,
}

// allowedFunctions are the functions a statement may call: DuckDB's scalar,
// aggregate and window functions and built-in macros that compute only from
// their arguments (names checked against duckdb_functions() by
// TestAllowedFunctionsExist), and Lake's macros. Left out on purpose:
// anything reading the catalog, settings, the session or the environment
// (current_setting, getenv, version, current_database, current_schema(s),
// current_query, stats, nextval, currval, getvariable, json_serialize_plan,
// get_block_size, the pg_catalog macros...), anything with side effects
// (write_log, setseed, sleep_ms, error), and internal helpers.
var allowedFunctions = func() map[string]bool {
	m := map[string]bool{}
	for _, f := range strings.Fields(allowedFunctionNames) {
		m[f] = true
	}
	for _, f := range prestoFunctions {
		m[f] = true
	}
	return m
}()

const allowedFunctionNames = `
abs acos acosh add age ago asin asinh atan atan2 atanh cbrt ceil ceiling cos cosh cot degrees divide even exp
factorial fdiv fmod gamma gcd greatest greatest_common_divisor isfinite isinf isnan lcm least
least_common_multiple lgamma ln log log10 log2 mod multiply nextafter pi pow power radians random round
round_even roundbankers sign signbit sin sinh sqrt subtract tan tanh trunc xor bit_count bit_length
bit_position get_bit set_bit bitstring to_base to_binary from_binary

ascii bar base64 chr concat concat_ws contains damerau_levenshtein decode editdist3 encode ends_with format
format_bytes formatReadableDecimalSize formatReadableSize from_base64 from_hex hamming hash hex ilike_escape
instr jaccard jaro_similarity jaro_winkler_similarity lcase left left_grapheme len length length_grapheme
char_length character_length levenshtein like_escape lower lpad ltrim md5 md5_number md5_number_lower
md5_number_upper mismatches nfc_normalize not_ilike_escape not_like_escape octet_length ord
parse_dirname parse_dirpath parse_filename parse_path position prefix printf regexp_escape regexp_extract
regexp_extract_all regexp_full_match regexp_matches regexp_replace regexp_split_to_array repeat replace
reverse right right_grapheme rpad rtrim sha1 sha256 split split_part starts_with str_split str_split_regex
string_split string_split_regex string_to_array strip_accents strlen strpos substr substring
substring_grapheme suffix to_base64 to_hex translate trim ucase unbin unhex unicode upper url_decode
url_encode nullif uuid gen_random_uuid uuid_extract_timestamp uuid_extract_version

century date_add date_diff date_part date_sub date_trunc datediff datepart datesub datetrunc day dayname
dayofmonth dayofweek dayofyear days_in_month decade epoch epoch_ms epoch_ns epoch_us era hour isodow isoyear
julian last_day make_date make_time make_timestamp make_timestamp_ms make_timestamp_ns make_timestamptz
microsecond millennium millisecond minute month monthname nanosecond normalized_interval quarter second
strftime strptime time_bucket timezone timezone_hour timezone_minute to_centuries to_days to_decades
to_hours to_microseconds to_millennia to_milliseconds to_minutes to_months to_quarters to_seconds
to_timestamp to_weeks to_years try_strptime week weekday weekofyear year yearweek current_date
current_localtime current_localtimestamp get_current_time get_current_timestamp now today
transaction_timestamp

aggregate apply array_aggr array_aggregate array_append array_apply array_cat array_concat
array_contains array_cosine_distance array_cosine_similarity array_cross_product array_distance
array_distinct array_dot_product array_extract array_filter array_grade_up array_has array_has_all
array_has_any array_indexof array_inner_product array_intersect array_length
array_negative_dot_product array_negative_inner_product array_pop_back array_pop_front array_position
array_prepend array_push_back array_push_front array_reduce array_resize array_reverse
array_reverse_sort array_select array_slice array_sort array_to_json array_to_string array_transform
array_unique array_value array_where array_zip cardinality element_at filter flatten generate_series
generate_subscripts grade_up list_aggr list_aggregate list_any_value list_append list_apply
list_approx_count_distinct list_avg list_bit_and list_bit_or list_bit_xor list_bool_and list_bool_or
list_cat list_concat list_contains list_cosine_distance list_cosine_similarity list_count list_distance
list_distinct list_dot_product list_element list_entropy list_extract list_filter list_first
list_grade_up list_has list_has_all list_has_any list_histogram list_indexof list_inner_product
list_intersect list_kurtosis list_kurtosis_pop list_last list_mad list_max list_median list_min
list_mode list_negative_dot_product list_negative_inner_product list_pack list_position list_prepend
list_product list_reduce list_resize list_reverse list_reverse_sort list_select list_sem list_skewness
list_slice list_sort list_stddev_pop list_stddev_samp list_string_agg list_sum list_transform
list_unique list_value list_var_pop list_var_samp list_where list_zip range reduce unnest
regexp_split_to_table map map_concat map_contains map_contains_entry map_contains_value map_entries
map_extract map_extract_value map_from_entries map_keys map_values row struct_concat struct_contains
struct_extract struct_extract_at struct_has struct_indexof struct_insert struct_keys struct_pack
struct_position struct_update struct_values union_extract union_tag union_value typeof

json json_array json_array_length json_contains json_exists json_extract json_extract_path
json_extract_path_text json_extract_string json_group_array json_group_object json_group_structure
json_keys json_merge_patch json_object json_pretty json_quote json_structure json_transform
json_transform_strict json_type json_valid json_value from_json from_json_strict row_to_json to_json

any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null
arg_max_nulls_last arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg avg bit_and bit_or
bit_xor bitstring_agg bool_and bool_or corr count count_if count_star countif covar_pop covar_samp
cume_dist dense_rank entropy favg fill first first_value fsum geomean geometric_mean group_concat
histogram histogram_exact kahan_sum kurtosis kurtosis_pop lag last last_value lead list listagg mad max
max_by mean median min min_by mode nth_value ntile percent_rank product quantile quantile_cont
quantile_disc rank rank_dense regr_avgx regr_avgy regr_count regr_intercept regr_r2 regr_slope regr_sxx
regr_sxy regr_syy reservoir_quantile row_number sem skewness stddev stddev_pop stddev_samp string_agg
sum sum_no_overflow sumkahan var_pop var_samp variance wavg weighted_avg
`

// sqlValueFunctions are the names DuckDB's binder calls as functions when
// no column has them (current_date and the like are allowed).
var sqlValueFunctions = map[string]bool{"current_catalog": true, "current_schema": true, "current_role": true,
	"current_user": true, "session_user": true, "user": true}

// isOperator reports whether a function name is an operator's (+, ||,
// ~~, ->>, ...): DuckDB's operators are built-in scalar functions named by
// symbols only.
func isOperator(name string) bool {
	if name == "!__postfix" {
		return true
	}
	if name == "" {
		return false
	}
	for _, c := range name {
		if !strings.ContainsRune("!%&*+-/<=>@^|~#", c) {
			return false
		}
	}
	return true
}

// Check parses stmt with DuckDB and accepts one SELECT whose every part is
// allowed (see the comment at the top of this file): it binds only the
// tables in tables (the caller's stores as rewrite names them) and CTEs in
// scope.
func (d *DB) Check(ctx context.Context, stmt string, tables map[string]bool) error {
	var js string
	if err := d.db.QueryRowContext(ctx, `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`, stmt).Scan(&js); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if se := statementError(err); se != nil {
			return audit.Errorf(audit.CodeInvalidQueryStatement, "%s", audit.Clip(se.Msg, 128))
		}
		// The database's failure, not the statement's: returned for the
		// edge to log with the request ID (InternalFailure).
		return fmt.Errorf("lake: check: %w", err)
	}
	var tree struct {
		Error        bool
		ErrorMessage string `json:"error_message"`
		Statements   []map[string]any
	}
	if err := json.Unmarshal([]byte(js), &tree); err != nil {
		return fmt.Errorf("lake: parse tree: %w", err)
	}
	if tree.Error {
		msg := tree.ErrorMessage
		if strings.Contains(msg, "Only SELECT") {
			return audit.Errorf(audit.CodeInvalidQueryStatement, "Only SELECT statements are allowed.")
		}
		// DuckDB's parser message names only the caller's statement (as
		// rewritten: its own stores' table names) and is kept, its stores
		// given back as their IDs.
		for t := range tables {
			msg = strings.ReplaceAll(msg, t, strings.ReplaceAll(strings.TrimPrefix(t, "eds_"), "_", "-"))
		}
		return audit.Errorf(audit.CodeInvalidQueryStatement, "The query statement is not valid: %s", audit.Clip(msg, 128))
	}
	if len(tree.Statements) != 1 {
		return audit.Errorf(audit.CodeInvalidQueryStatement, "A query has exactly one SELECT statement.")
	}
	node, ok := tree.Statements[0]["node"].(map[string]any)
	if !ok || node["type"] != "SELECT_NODE" && node["type"] != "SET_OPERATION_NODE" {
		return audit.Errorf(audit.CodeInvalidQueryStatement, "Only SELECT statements are allowed.")
	}
	c := checker{tables: map[string]bool{}}
	for t := range tables {
		c.tables[asciiLower(t)] = true
	}
	return c.query(node, nil, 0)
}

// asciiLower folds A-Z only, as DuckDB compares identifiers (a CTE named
// "É" does not shadow a table "é"; Unicode folding would think it did).
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// scope is the CTE names visible at a point of the statement, innermost
// last (a linked list: each query node adds its own without copying).
type scope struct {
	name string
	up   *scope
}

func (s *scope) has(name string) bool {
	for ; s != nil; s = s.up {
		if s.name == name {
			return true
		}
	}
	return false
}

type checker struct {
	tables map[string]bool
}

// maxDepth bounds the parse tree's nesting (DuckDB's parser has its own
// limit; this one keeps the walk's stack small whatever that is).
const maxDepth = 1000

func invalid(format string, args ...any) error {
	return audit.Errorf(audit.CodeInvalidQueryStatement, format, args...)
}

// query checks a query node with the CTEs of sc visible.
func (c *checker) query(v any, sc *scope, depth int) error {
	if depth > maxDepth {
		return invalid("The query statement is nested too deeply.")
	}
	n, ok := v.(map[string]any)
	if !ok {
		return invalid("The query statement is not valid.")
	}
	t, _ := n["type"].(string)
	// Every node's own WITH first: its CTEs are visible in the node and in
	// the CTEs after them.
	sc, err := c.ctes(n["cte_map"], sc, depth)
	if err != nil {
		return err
	}
	switch t {
	case "SELECT_NODE":
		if err := c.table(n["from_table"], sc, depth+1); err != nil {
			return err
		}
		return c.exprFields(n, sc, depth, "type", "cte_map", "from_table")
	case "SET_OPERATION_NODE":
		if err := c.query(n["left"], sc, depth+1); err != nil {
			return err
		}
		if err := c.query(n["right"], sc, depth+1); err != nil {
			return err
		}
		if ch, ok := n["children"]; ok && ch != nil {
			// Newer serializations list the operands.
			list, _ := ch.([]any)
			for _, q := range list {
				if err := c.query(q, sc, depth+1); err != nil {
					return err
				}
			}
		}
		return c.exprFields(n, sc, depth, "type", "cte_map", "left", "right", "children")
	}
	return invalid("The query statement is not valid: %s is not allowed.", audit.Clip(t, 128))
}

// ctes checks the CTEs of a WITH (a cte_map) in order, each seeing the
// ones before it and sc, and returns sc with all of them.
func (c *checker) ctes(v any, sc *scope, depth int) (*scope, error) {
	if v == nil {
		return sc, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalid("The query statement is not valid.")
	}
	list, _ := m["map"].([]any)
	for _, e := range list {
		e, ok := e.(map[string]any)
		if !ok {
			return nil, invalid("The query statement is not valid.")
		}
		name, _ := e["key"].(string)
		val, _ := e["value"].(map[string]any)
		q, _ := val["query"].(map[string]any)
		if name == "" || q == nil {
			return nil, invalid("The query statement is not valid.")
		}
		name = asciiLower(name)
		node, _ := q["node"].(map[string]any)
		if node != nil && node["type"] == "RECURSIVE_CTE_NODE" {
			if err := c.recursive(node, name, sc, depth+1); err != nil {
				return nil, err
			}
		} else if err := c.query(node, sc, depth+1); err != nil {
			return nil, err
		}
		if err := c.exprFields(val, sc, depth, "query"); err != nil {
			return nil, err
		}
		sc = &scope{name: name, up: sc}
	}
	return sc, nil
}

// recursive checks the body of WITH RECURSIVE name: its anchor (left) sees
// sc, its recursive part (right) sees name too.
func (c *checker) recursive(n map[string]any, name string, sc *scope, depth int) error {
	if cte, _ := n["cte_name"].(string); asciiLower(cte) != name {
		return invalid("The query statement is not valid.")
	}
	sc, err := c.ctes(n["cte_map"], sc, depth)
	if err != nil {
		return err
	}
	if err := c.query(n["left"], sc, depth+1); err != nil {
		return err
	}
	if err := c.query(n["right"], &scope{name: name, up: sc}, depth+1); err != nil {
		return err
	}
	return c.exprFields(n, sc, depth, "type", "cte_map", "cte_name", "left", "right")
}

// table checks a table reference (a FROM clause's item).
func (c *checker) table(v any, sc *scope, depth int) error {
	if depth > maxDepth {
		return invalid("The query statement is nested too deeply.")
	}
	n, ok := v.(map[string]any)
	if !ok {
		return invalid("The query statement is not valid.")
	}
	t, _ := n["type"].(string)
	switch t {
	case "EMPTY":
		return nil
	case "BASE_TABLE":
		name, _ := n["table_name"].(string)
		schema, _ := n["schema_name"].(string)
		catalog, _ := n["catalog_name"].(string)
		lname := asciiLower(name)
		if schema != "" || catalog != "" || n["at_clause"] != nil || !sc.has(lname) && !c.tables[lname] {
			return invalid("FROM must name event data stores of your account; %s is not one.", audit.Clip(name, 128))
		}
		return c.exprFields(n, sc, depth, "type", "table_name", "schema_name", "catalog_name", "at_clause")
	case "JOIN":
		if err := c.table(n["left"], sc, depth+1); err != nil {
			return err
		}
		if err := c.table(n["right"], sc, depth+1); err != nil {
			return err
		}
		return c.exprFields(n, sc, depth, "type", "left", "right")
	case "SUBQUERY":
		sub, _ := n["subquery"].(map[string]any)
		if sub == nil {
			return invalid("The query statement is not valid.")
		}
		if err := c.query(sub["node"], sc, depth+1); err != nil {
			return err
		}
		return c.exprFields(n, sc, depth, "type", "subquery")
	case "EXPRESSION_LIST":
		return c.exprFields(n, sc, depth, "type")
	case "TABLE_FUNCTION":
		fn, _ := n["function"].(map[string]any)
		name, _ := fn["function_name"].(string)
		if fn == nil || fn["class"] != "FUNCTION" || !tableFunctions[asciiLower(name)] {
			return invalid("Table functions are not allowed in queries; FROM names event data stores.")
		}
		return c.exprFields(n, sc, depth, "type")
	}
	return invalid("The query statement is not valid: %s is not allowed in FROM.", audit.Clip(strings.ToLower(t), 128))
}

// exprFields checks the fields of n other than skip as expressions (or
// lists or objects holding expressions).
func (c *checker) exprFields(n map[string]any, sc *scope, depth int, skip ...string) error {
next:
	for k, v := range n {
		for _, s := range skip {
			if k == s {
				continue next
			}
		}
		if err := c.expr(v, sc, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// queryTypes are the "type" values that name query nodes; tableTypes those
// of table references. An expression walk that meets one hands it over.
var (
	queryTypes = map[string]bool{"SELECT_NODE": true, "SET_OPERATION_NODE": true, "RECURSIVE_CTE_NODE": true, "CTE_NODE": true}
	tableTypes = map[string]bool{"BASE_TABLE": true, "JOIN": true, "SUBQUERY": true, "EMPTY": true, "EXPRESSION_LIST": true,
		"TABLE_FUNCTION": true, "PIVOT": true, "SHOW_REF": true, "COLUMN_DATA": true, "DELIM_GET": true}
)

// expr checks everything below v: expressions (by class), function calls,
// casts, and any query node or table reference met on the way (a
// subquery's SELECT, in particular) with the same scope.
func (c *checker) expr(v any, sc *scope, depth int) error {
	if depth > maxDepth {
		return invalid("The query statement is nested too deeply.")
	}
	switch n := v.(type) {
	case []any:
		for _, e := range n {
			if err := c.expr(e, sc, depth+1); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		if _, ok := n["cte_map"]; ok {
			return c.query(n, sc, depth)
		}
		if t, _ := n["type"].(string); queryTypes[t] {
			return c.query(n, sc, depth)
		} else if _, isExpr := n["class"]; !isExpr && tableTypes[t] {
			return c.table(n, sc, depth)
		}
		if cls, ok := n["class"].(string); ok {
			if !exprClasses[cls] {
				return invalid("The query statement is not valid: %s expressions are not allowed.", audit.Clip(strings.ToLower(cls), 128))
			}
			if fn, ok := n["function_name"].(string); ok {
				schema, _ := n["schema"].(string)
				catalog, _ := n["catalog"].(string)
				lf := asciiLower(fn)
				// The parser itself names some builtins main.X ([1, 2] is
				// main.list_value); main holds no other function of the
				// allowed names (a statement cannot create one).
				if schema != "" && schema != "main" || catalog != "" || !allowedFunctions[lf] && !isOperator(lf) {
					return invalid("The function %s is not allowed in queries.", audit.Clip(fn, 128))
				}
			}
			if cls == "COLUMN_REF" {
				// DuckDB binds a bare name that is no column to these
				// functions (its SQL value functions).
				if names, _ := n["column_names"].([]any); len(names) == 1 {
					if name, _ := names[0].(string); sqlValueFunctions[asciiLower(name)] {
						return invalid("The function %s is not allowed in queries.", audit.Clip(name, 128))
					}
				}
			}
			if cls == "SUBQUERY" {
				sub, _ := n["subquery"].(map[string]any)
				if sub == nil {
					return invalid("The query statement is not valid.")
				}
				if err := c.query(sub["node"], sc, depth+1); err != nil {
					return err
				}
				return c.exprFields(n, sc, depth, "subquery")
			}
		}
		if n["type"] == "UNBOUND_TYPE_INFO" {
			name, _ := n["name"].(string)
			schema, _ := n["schema"].(string)
			catalog, _ := n["catalog"].(string)
			if schema != "" || catalog != "" || !strings.EqualFold(name, "json") {
				return invalid("The type %s is not allowed in queries.", audit.Clip(name, 128))
			}
		}
		for _, e := range n {
			if err := c.expr(e, sc, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

// Pure reports whether a statement may call name: a table function or a
// function of the allow-list (the hostile-tenant tests of internal/lake
// probe every other table function of the catalog).
func Pure(name string) bool { return tableFunctions[name] || allowedFunctions[name] }

// Parse returns the parse tree (json_serialize_sql's) of stmt's one
// statement, for an engine that translates the Lake dialect from DuckDB's
// reading of it (internal/lake/postgres): what runs there is what Check
// accepted, with no second parser to disagree with it. Call it on a
// statement Check accepted.
func (d *DB) Parse(ctx context.Context, stmt string) (map[string]any, error) {
	var js string
	if err := d.db.QueryRowContext(ctx, `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`, stmt).Scan(&js); err != nil {
		return nil, err
	}
	var tree struct {
		Error      bool
		Statements []struct {
			Node map[string]any
		}
	}
	if err := json.Unmarshal([]byte(js), &tree); err != nil || tree.Error || len(tree.Statements) != 1 || tree.Statements[0].Node == nil {
		return nil, fmt.Errorf("lake: parse tree: unreadable")
	}
	return tree.Statements[0].Node, nil
}
