package postgres

import (
	"strings"
)

// A function call of the statement (after Lake's rewrite, so in the
// DuckDB engine's names: lake_element_at for element_at...) becomes the
// PostgreSQL of fnTable: a built-in of the same meaning, or a function of
// the schema lake (lake.sql) with Trino's semantics. A function missing
// here, even one the statement check allows, is refused (unsupported).

// fnKind is how a call is written.
type fnKind int

const (
	fnCall      fnKind = iota // name(args)
	fnExtract                 // CAST(extract(field FROM x) AS bigint)
	fnAggregate               // name([DISTINCT] args) [FILTER (WHERE ...)]
	fnTemplate                // tmpl with %0, %1... the arguments
)

type fnSpec struct {
	kind fnKind
	name string // fnCall, fnAggregate: PostgreSQL's function; fnExtract: the field
	tmpl string // fnTemplate
	// min, max are the accepted numbers of arguments (max -1: any).
	min, max int
	// text casts the first argument to text (JSON functions over a json
	// value or a string).
	text bool
}

var fnTable = map[string]fnSpec{
	// Operators. LIKE has no escape character (Trino's and DuckDB's
	// default; PostgreSQL's is the backslash). Dividing by zero is NULL, as on the DuckDB engine
	// (Trino fails the query).
	"+": {kind: fnTemplate, tmpl: "(%0 + %1)", min: 2, max: 2}, "-": {kind: fnTemplate, tmpl: "(%0 - %1)", min: 2, max: 2},
	"*": {kind: fnTemplate, tmpl: "(%0 * %1)", min: 2, max: 2}, "/": {kind: fnTemplate, tmpl: "(%0 / nullif(%1, 0))", min: 2, max: 2},
	"%": {kind: fnTemplate, tmpl: "(%0 % nullif(%1, 0))", min: 2, max: 2}, "||": {kind: fnTemplate, tmpl: "(%0 || %1)", min: 2, max: 2},
	"~~": {kind: fnTemplate, tmpl: "(%0 LIKE %1 ESCAPE '')", min: 2, max: 2}, "!~~": {kind: fnTemplate, tmpl: "(%0 NOT LIKE %1 ESCAPE '')", min: 2, max: 2},
	"~~*": {kind: fnTemplate, tmpl: "(%0 ILIKE %1 ESCAPE '')", min: 2, max: 2}, "!~~*": {kind: fnTemplate, tmpl: "(%0 NOT ILIKE %1 ESCAPE '')", min: 2, max: 2},
	// Strings.
	"lower": {name: "lower", min: 1, max: 1}, "upper": {name: "upper", min: 1, max: 1}, "lcase": {name: "lower", min: 1, max: 1},
	"ucase": {name: "upper", min: 1, max: 1}, "length": {kind: fnTemplate, tmpl: "CAST(length(%0) AS bigint)", min: 1, max: 1},
	"concat": {name: "concat", min: 1, max: -1}, "trim": {name: "btrim", min: 1, max: 2}, "ltrim": {name: "ltrim", min: 1, max: 2},
	"rtrim": {name: "rtrim", min: 1, max: 2}, "substr": {name: "substr", min: 2, max: 3}, "substring": {name: "substr", min: 2, max: 3},
	"strpos":     {kind: fnTemplate, tmpl: "CAST(strpos(%0, %1) AS bigint)", min: 2, max: 2},
	"split_part": {name: "split_part", min: 3, max: 3}, "replace": {name: "replace", min: 3, max: 3},
	"lake_replace": {kind: fnTemplate, tmpl: "replace(%0, %1, '')", min: 2, max: 2},
	"lpad":         {name: "lpad", min: 3, max: 3}, "rpad": {name: "rpad", min: 3, max: 3}, "reverse": {name: "reverse", min: 1, max: 1},
	"starts_with": {name: "starts_with", min: 2, max: 2}, "printf": {name: "format", min: 1, max: -1},
	"regexp_matches":      {kind: fnTemplate, tmpl: "(%0 ~ %1)", min: 2, max: 2},
	"lake_regexp_extract": {name: "lake.regexp_extract", min: 2, max: 3},
	"regexp_replace":      {name: "regexp_replace", min: 3, max: 3},
	"md5":                 {name: "md5", min: 1, max: 1},
	"sha256":              {kind: fnTemplate, tmpl: "encode(sha256(convert_to(%0, 'UTF8')), 'hex')", min: 1, max: 1},
	"nullif":              {name: "nullif", min: 2, max: 2}, "coalesce": {name: "coalesce", min: 1, max: -1},
	"greatest": {name: "greatest", min: 1, max: -1}, "least": {name: "least", min: 1, max: -1},
	// Numbers.
	"abs": {name: "abs", min: 1, max: 1}, "round": {name: "round", min: 1, max: 2}, "ceil": {name: "ceil", min: 1, max: 1},
	"ceiling": {name: "ceil", min: 1, max: 1}, "floor": {name: "floor", min: 1, max: 1}, "sqrt": {name: "sqrt", min: 1, max: 1},
	"power": {name: "power", min: 2, max: 2}, "pow": {name: "power", min: 2, max: 2}, "ln": {name: "ln", min: 1, max: 1},
	"exp": {name: "exp", min: 1, max: 1}, "sign": {name: "sign", min: 1, max: 1}, "mod": {name: "mod", min: 2, max: 2},
	// Dates and times.
	"date_trunc":                  {name: "date_trunc", min: 2, max: 2},
	"year":                        {kind: fnExtract, name: "year", min: 1, max: 1},
	"quarter":                     {kind: fnExtract, name: "quarter", min: 1, max: 1},
	"month":                       {kind: fnExtract, name: "month", min: 1, max: 1},
	"day":                         {kind: fnExtract, name: "day", min: 1, max: 1},
	"dayofmonth":                  {kind: fnExtract, name: "day", min: 1, max: 1},
	"dayofyear":                   {kind: fnExtract, name: "doy", min: 1, max: 1},
	"isodow":                      {kind: fnExtract, name: "isodow", min: 1, max: 1},
	"week":                        {kind: fnExtract, name: "week", min: 1, max: 1},
	"weekofyear":                  {kind: fnExtract, name: "week", min: 1, max: 1},
	"isoyear":                     {kind: fnExtract, name: "isoyear", min: 1, max: 1},
	"hour":                        {kind: fnExtract, name: "hour", min: 1, max: 1},
	"minute":                      {kind: fnExtract, name: "minute", min: 1, max: 1},
	"second":                      {kind: fnTemplate, tmpl: "CAST(floor(extract(second FROM %0)) AS bigint)", min: 1, max: 1},
	"lake_millisecond":            {kind: fnTemplate, tmpl: "(CAST(floor(extract(milliseconds FROM %0)) AS bigint) % 1000)", min: 1, max: 1},
	"lake_date":                   {kind: fnTemplate, tmpl: "CAST(%0 AS date)", min: 1, max: 1},
	"lake_date_add":               {name: "lake.date_add", min: 3, max: 3},
	"date_sub":                    {name: "lake.date_diff", min: 3, max: 3},
	"lake_from_iso8601_timestamp": {kind: fnTemplate, tmpl: "CAST(%0 AS timestamptz)", min: 1, max: 1},
	"lake_from_iso8601_date":      {kind: fnTemplate, tmpl: "CAST(%0 AS date)", min: 1, max: 1},
	"to_timestamp":                {name: "to_timestamp", min: 1, max: 1},
	"epoch":                       {kind: fnTemplate, tmpl: "CAST(extract(epoch FROM %0) AS double precision)", min: 1, max: 1},
	"last_day":                    {name: "lake.last_day", min: 1, max: 1},
	// Maps and arrays.
	"lake_element_at":     {name: "lake.element_at", min: 2, max: 2},
	"lake_cardinality":    {name: "lake.cardinality", min: 1, max: 1},
	"map_keys":            {name: "lake.map_keys", min: 1, max: 1},
	"map_values":          {name: "lake.map_values", min: 1, max: 1},
	"contains":            {name: "lake.contains", min: 2, max: 2},
	"list_contains":       {name: "lake.contains", min: 2, max: 2},
	"array_contains":      {name: "lake.contains", min: 2, max: 2},
	"lake_array_distinct": {name: "lake.array_distinct", min: 1, max: 1},
	"lake_array_max":      {name: "lake.array_max", min: 1, max: 1},
	"lake_array_min":      {name: "lake.array_min", min: 1, max: 1},
	"lake_slice":          {name: "lake.slice", min: 3, max: 3},
	"array_to_string":     {name: "array_to_string", min: 2, max: 2},
	"generate_series":     {kind: fnTemplate, tmpl: "ARRAY(SELECT generate_series(%0, %1))", min: 2, max: 2},
	// JSON.
	"json_extract":             {name: "lake.json_extract", min: 2, max: 2, text: true},
	"lake_json_extract_scalar": {name: "lake.json_extract_scalar", min: 2, max: 2, text: true},
	"lake_json_parse":          {kind: fnTemplate, tmpl: "CAST(%0 AS json)", min: 1, max: 1},
	"lake_json_format":         {name: "lake.json_format", min: 1, max: 1, text: true},
	"lake_is_json_scalar":      {name: "lake.is_json_scalar", min: 1, max: 1, text: true},
	"lake_json_array_contains": {name: "lake.json_array_contains", min: 2, max: 2, text: true},
	"lake_json_array_get":      {name: "lake.json_array_get", min: 2, max: 2, text: true},
	"lake_json_array_length":   {name: "lake.json_array_length", min: 1, max: 1, text: true},
	// Aggregates.
	"count": {kind: fnAggregate, name: "count", min: 1, max: 1}, "count_star": {kind: fnAggregate, name: "count", min: 0, max: 0},
	"sum": {kind: fnAggregate, name: "sum", min: 1, max: 1}, "min": {kind: fnAggregate, name: "min", min: 1, max: 1},
	"max": {kind: fnAggregate, name: "max", min: 1, max: 1}, "avg": {kind: fnAggregate, name: "avg", min: 1, max: 1},
	"mean": {kind: fnAggregate, name: "avg", min: 1, max: 1},
	// Trino's arbitrary (DuckDB's: the first value met) is any value of
	// the group; PostgreSQL 15 has no any_value: the least one.
	"arbitrary": {kind: fnAggregate, name: "min", min: 1, max: 1},
	"any_value": {kind: fnAggregate, name: "min", min: 1, max: 1},
	"array_agg": {kind: fnAggregate, name: "array_agg", min: 1, max: 1}, "list": {kind: fnAggregate, name: "array_agg", min: 1, max: 1},
	"string_agg": {kind: fnAggregate, name: "string_agg", min: 2, max: 2},
	"bool_and":   {kind: fnAggregate, name: "bool_and", min: 1, max: 1}, "bool_or": {kind: fnAggregate, name: "bool_or", min: 1, max: 1},
	"approx_count_distinct": {kind: fnAggregate, name: "count", min: 1, max: 1},
	"stddev":                {kind: fnAggregate, name: "stddev_samp", min: 1, max: 1},
	"stddev_samp":           {kind: fnAggregate, name: "stddev_samp", min: 1, max: 1},
	"stddev_pop":            {kind: fnAggregate, name: "stddev_pop", min: 1, max: 1},
}

// function writes a FUNCTION node.
func (t *translator) function(b *strings.Builder, n map[string]any) error {
	name, _ := n["function_name"].(string)
	lname := strings.ToLower(name)
	args, _ := n["children"].([]any)
	if lname == "list_value" || lname == "array_value" {
		if len(args) == 0 {
			b.WriteString("ARRAY[]::text[]")
			return nil
		}
		b.WriteString("ARRAY[")
		for i, a := range args {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := t.expr(b, a); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	}
	if lname == "-" && len(args) == 1 {
		b.WriteString("(-")
		if err := t.expr(b, args[0]); err != nil {
			return err
		}
		b.WriteByte(')')
		return nil
	}
	if lname == "lake_replace" && len(args) == 3 {
		lname = "replace"
	}
	spec, ok := fnTable[lname]
	if !ok {
		return unsupported("the function %s", name)
	}
	if len(args) < spec.min || spec.max >= 0 && len(args) > spec.max {
		return unsupported("%s with %d arguments", name, len(args))
	}
	if t.roll != nil {
		if spec.kind == fnAggregate {
			return t.rollAggregate(b, lname, spec, n, args)
		}
		if lname == "date_trunc" {
			if ok, err := t.rollDateTrunc(b, args); ok || err != nil {
				return err
			}
		}
	}
	distinct, _ := n["distinct"].(bool)
	if ob, _ := n["order_bys"].(map[string]any); ob != nil {
		if o, _ := ob["orders"].([]any); len(o) > 0 && spec.kind != fnAggregate {
			return unsupported("ORDER BY in %s", name)
		}
	}
	if spec.kind != fnAggregate && (distinct || n["filter"] != nil) {
		return unsupported("DISTINCT or FILTER in %s", name)
	}
	argSQL := make([]string, len(args))
	for i, a := range args {
		var s strings.Builder
		if err := t.expr(&s, a); err != nil {
			return err
		}
		argSQL[i] = s.String()
		if i == 0 && spec.text {
			argSQL[i] = "CAST(" + argSQL[i] + " AS text)"
		}
	}
	switch spec.kind {
	case fnCall:
		b.WriteString(spec.name + "(" + strings.Join(argSQL, ", ") + ")")
	case fnExtract:
		b.WriteString("CAST(extract(" + spec.name + " FROM " + argSQL[0] + ") AS bigint)")
	case fnTemplate:
		b.WriteString(fill(spec.tmpl, argSQL))
	case fnAggregate:
		if lname == "avg" || lname == "mean" {
			b.WriteString("CAST(")
		}
		b.WriteString(spec.name + "(")
		if lname == "approx_count_distinct" {
			distinct = true
		}
		if distinct {
			b.WriteString("DISTINCT ")
		}
		if lname == "count_star" {
			b.WriteString("*")
		}
		b.WriteString(strings.Join(argSQL, ", "))
		if ob, _ := n["order_bys"].(map[string]any); ob != nil {
			if err := t.orders(b, ob, " ORDER BY "); err != nil {
				return err
			}
		}
		b.WriteByte(')')
		if f := n["filter"]; f != nil {
			b.WriteString(" FILTER (WHERE ")
			if err := t.expr(b, f); err != nil {
				return err
			}
			b.WriteByte(')')
		}
		if lname == "avg" || lname == "mean" {
			b.WriteString(" AS double precision)")
		}
	}
	return nil
}

// fill replaces %0, %1... of tmpl with args in one pass (an argument's
// own text, a LIKE pattern's %1 say, is left as it is).
func fill(tmpl string, args []string) string {
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		if tmpl[i] == '%' && i+1 < len(tmpl) && tmpl[i+1] >= '0' && tmpl[i+1] <= '9' {
			b.WriteString(args[tmpl[i+1]-'0'])
			i++
			continue
		}
		b.WriteByte(tmpl[i])
	}
	return b.String()
}
