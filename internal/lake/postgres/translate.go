package postgres

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// How a checked statement becomes PostgreSQL SQL
//
// The translator walks DuckDB's parse tree of the statement (the tree the
// statement check accepted) and writes PostgreSQL SQL for each node it
// knows; any other node, function or type answers the caller an
// *engine.StatementError naming what PostgreSQL's Lake cannot run
// (docs/lake.md, "Lake on PostgreSQL"). Names:
//
//   - a Lake column (any case) is lake_events' column, quoted as CloudTrail
//     spells it; a field of a struct column (userIdentity.arn) is read from
//     its jsonb through the column's shape: a string field with ->>, a
//     timestamp field cast to timestamp, a nested struct, map or list kept
//     as json(b) with its shape for the result's rendering;
//   - an event data store (FROM eds_...) is a subquery of lake_events
//     filtered by the store's ID, aliased as the statement names it;
//   - every other identifier (aliases, CTEs, unnest's names) is folded to
//     lower case and quoted, so it matches case-insensitively as in DuckDB.

// query is a translated statement: its SQL, the Trino names of its
// columns ("" keeps PostgreSQL's), the shapes of its columns that are
// nested Lake values (nil: rendered by their PostgreSQL type), and whether
// its select list is a star (columns then named and shaped by name).
type query struct {
	sql    string
	names  []string
	shapes []*shape
	star   bool
}

type translator struct {
	schema *schema
	stores map[string]string // lower-case table name -> store ID
	events string            // lake_events, qualified
	rollup []string          // the rollup's levels' tables, qualified
	fine   string            // the rollup's fine level's table, qualified
	// roll, when set, translates the statement over lake_rollup
	// (rolltranslate.go); nil: over the events.
	roll *rollPlan
	// unnested maps an unnest's column alias to the shape of its elements.
	unnested map[string]*shape
	depth    int
}

// unsupported is the statement's fault: a part PostgreSQL's Lake does not
// translate.
func unsupported(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &engine.StatementError{Msg: "cairn's PostgreSQL Lake cannot run this statement: " + audit.Clip(msg, 96)}
}

func (t *translator) statement(node map[string]any) (*query, error) {
	t.unnested = map[string]*shape{}
	var b strings.Builder
	if err := t.node(&b, node); err != nil {
		return nil, err
	}
	q := &query{sql: b.String()}
	// Names and shapes from the left-most SELECT, as DuckDB's engine
	// names them (render.go there: selectListNames).
	sel := node
	for sel != nil && sel["type"] == "SET_OPERATION_NODE" {
		sel, _ = sel["left"].(map[string]any)
	}
	if sel == nil || sel["type"] != "SELECT_NODE" {
		return q, nil
	}
	list, _ := sel["select_list"].([]any)
	for i, e := range list {
		m, _ := e.(map[string]any)
		alias, _ := m["alias"].(string)
		switch {
		case m["class"] == "STAR":
			q.star, q.names, q.shapes = true, nil, nil
			return q, nil
		case alias != "":
			q.names = append(q.names, alias)
		case m["class"] == "COLUMN_REF":
			names, _ := m["column_names"].([]any)
			n, _ := names[len(names)-1].(string)
			q.names = append(q.names, n)
		default:
			q.names = append(q.names, fmt.Sprintf("_col%d", i))
		}
		_, sh, _ := t.shaped(m)
		q.shapes = append(q.shapes, sh)
	}
	return q, nil
}

func (t *translator) enter() error {
	t.depth++
	if t.depth > 500 {
		return unsupported("nesting too deep")
	}
	return nil
}

// node writes a query node.
func (t *translator) node(b *strings.Builder, v any) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer func() { t.depth-- }()
	n, _ := v.(map[string]any)
	if n == nil {
		return unsupported("an empty query")
	}
	if err := t.with(b, n["cte_map"]); err != nil {
		return err
	}
	switch n["type"] {
	case "SELECT_NODE":
		return t.selectNode(b, n)
	case "SET_OPERATION_NODE":
		op, _ := n["setop_type"].(string)
		all, _ := n["setop_all"].(bool)
		kw := map[string]string{"UNION": "UNION", "EXCEPT": "EXCEPT", "INTERSECT": "INTERSECT", "UNION_BY_NAME": ""}[op]
		if kw == "" {
			return unsupported("%s", strings.ToLower(op))
		}
		if all {
			kw += " ALL"
		}
		var parts []any
		if ch, ok := n["children"].([]any); ok && len(ch) > 0 {
			parts = ch
		} else {
			parts = []any{n["left"], n["right"]}
		}
		for i, p := range parts {
			if i > 0 {
				b.WriteString(" " + kw + " ")
			}
			b.WriteByte('(')
			if err := t.node(b, p); err != nil {
				return err
			}
			b.WriteByte(')')
		}
		return t.modifiers(b, n)
	}
	return unsupported("%v", n["type"])
}

// with writes a WITH clause (a cte_map), if any.
func (t *translator) with(b *strings.Builder, v any) error {
	m, _ := v.(map[string]any)
	list, _ := m["map"].([]any)
	if len(list) == 0 {
		return nil
	}
	var parts []string
	recursive := false
	for _, e := range list {
		e, _ := e.(map[string]any)
		name, _ := e["key"].(string)
		val, _ := e["value"].(map[string]any)
		q, _ := val["query"].(map[string]any)
		node, _ := q["node"].(map[string]any)
		var s strings.Builder
		s.WriteString(userIdent(name))
		if aliases, _ := val["aliases"].([]any); len(aliases) > 0 {
			var as []string
			for _, a := range aliases {
				as = append(as, userIdent(fmt.Sprint(a)))
			}
			s.WriteString(" (" + strings.Join(as, ", ") + ")")
		}
		s.WriteString(" AS (")
		if node != nil && node["type"] == "RECURSIVE_CTE_NODE" {
			recursive = true
			all, _ := node["union_all"].(bool)
			if err := t.node(&s, node["left"]); err != nil {
				return err
			}
			if all {
				s.WriteString(" UNION ALL ")
			} else {
				s.WriteString(" UNION ")
			}
			if err := t.node(&s, node["right"]); err != nil {
				return err
			}
		} else if err := t.node(&s, node); err != nil {
			return err
		}
		s.WriteByte(')')
		parts = append(parts, s.String())
	}
	b.WriteString("WITH ")
	if recursive {
		b.WriteString("RECURSIVE ")
	}
	b.WriteString(strings.Join(parts, ", ") + " ")
	return nil
}

func (t *translator) selectNode(b *strings.Builder, n map[string]any) error {
	// FROM first: the names an unnest gives its elements are known to the
	// select list then.
	var fromSQL strings.Builder
	if from, _ := n["from_table"].(map[string]any); from != nil && from["type"] != "EMPTY" {
		fromSQL.WriteString(" FROM ")
		if err := t.table(&fromSQL, from); err != nil {
			return err
		}
	}
	b.WriteString("SELECT ")
	mods, _ := n["modifiers"].([]any)
	for _, m := range mods {
		m, _ := m.(map[string]any)
		if m["type"] == "DISTINCT_MODIFIER" {
			if on, _ := m["distinct_on_targets"].([]any); len(on) > 0 {
				return unsupported("DISTINCT ON")
			}
			b.WriteString("DISTINCT ")
		}
	}
	list, _ := n["select_list"].([]any)
	for i, e := range list {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := t.expr(b, e); err != nil {
			return err
		}
		if m, _ := e.(map[string]any); m != nil {
			if a, _ := m["alias"].(string); a != "" {
				b.WriteString(" AS " + userIdent(a))
			}
		}
	}
	b.WriteString(fromSQL.String())
	if t.roll != nil {
		// The conditions on eventTime are the rollup source's
		// (rollSource).
		for i, c := range t.roll.rest {
			if i == 0 {
				b.WriteString(" WHERE ")
			} else {
				b.WriteString(" AND ")
			}
			b.WriteByte('(')
			if err := t.expr(b, c); err != nil {
				return err
			}
			b.WriteByte(')')
		}
	} else if w := n["where_clause"]; w != nil {
		b.WriteString(" WHERE ")
		if err := t.expr(b, w); err != nil {
			return err
		}
	}
	if g, _ := n["group_expressions"].([]any); len(g) > 0 {
		if sets, _ := n["group_sets"].([]any); len(sets) > 1 {
			return unsupported("GROUPING SETS")
		}
		b.WriteString(" GROUP BY ")
		for i, e := range g {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := t.expr(b, e); err != nil {
				return err
			}
		}
	} else if h, _ := n["aggregate_handling"].(string); h == "FORCE_AGGREGATES" {
		return unsupported("GROUP BY ALL")
	}
	if h := n["having"]; h != nil {
		b.WriteString(" HAVING ")
		if err := t.expr(b, h); err != nil {
			return err
		}
	}
	if n["qualify"] != nil {
		return unsupported("QUALIFY")
	}
	if n["sample"] != nil {
		return unsupported("USING SAMPLE")
	}
	if err := t.modifiers(b, n); err != nil {
		return err
	}
	if t.roll != nil && t.roll.aggregates == 0 {
		// Neither GROUP BY, aggregate nor DISTINCT: the statement's rows
		// are the events'.
		distinct := false
		for _, m := range mods {
			if m, _ := m.(map[string]any); m["type"] == "DISTINCT_MODIFIER" {
				distinct = true
			}
		}
		if g, _ := n["group_expressions"].([]any); len(g) == 0 && !distinct {
			return errNoRollup
		}
	}
	return nil
}

// modifiers writes ORDER BY, LIMIT and OFFSET.
func (t *translator) modifiers(b *strings.Builder, n map[string]any) error {
	mods, _ := n["modifiers"].([]any)
	for _, m := range mods {
		m, _ := m.(map[string]any)
		switch m["type"] {
		case "DISTINCT_MODIFIER":
		case "ORDER_MODIFIER":
			if err := t.orders(b, m, " ORDER BY "); err != nil {
				return err
			}
		case "LIMIT_MODIFIER":
			if l := m["limit"]; l != nil {
				b.WriteString(" LIMIT ")
				if err := t.expr(b, l); err != nil {
					return err
				}
			}
			if o := m["offset"]; o != nil {
				b.WriteString(" OFFSET ")
				if err := t.expr(b, o); err != nil {
					return err
				}
			}
		default:
			return unsupported("%v", m["type"])
		}
	}
	return nil
}

func (t *translator) orders(b *strings.Builder, m map[string]any, kw string) error {
	orders, _ := m["orders"].([]any)
	if len(orders) == 0 {
		return nil
	}
	b.WriteString(kw)
	for i, o := range orders {
		o, _ := o.(map[string]any)
		if i > 0 {
			b.WriteString(", ")
		}
		if err := t.expr(b, o["expression"]); err != nil {
			return err
		}
		dir, _ := o["type"].(string)
		desc := dir == "DESCENDING"
		if desc {
			b.WriteString(" DESC")
		}
		// DuckDB's default puts NULLs last in both directions
		// (PostgreSQL's puts them first when descending).
		switch o["null_order"] {
		case "NULLS_FIRST", "NULLS FIRST":
			b.WriteString(" NULLS FIRST")
		default:
			b.WriteString(" NULLS LAST")
		}
	}
	return nil
}

// table writes a FROM item.
func (t *translator) table(b *strings.Builder, v any) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer func() { t.depth-- }()
	n, _ := v.(map[string]any)
	alias, _ := n["alias"].(string)
	if t.roll != nil {
		name, _ := n["table_name"].(string)
		if n["type"] != "BASE_TABLE" || t.stores[strings.ToLower(name)] != t.roll.store {
			return errNoRollup
		}
		if alias == "" {
			alias = name
		}
		return t.rollSource(b, alias)
	}
	switch n["type"] {
	case "BASE_TABLE":
		name, _ := n["table_name"].(string)
		if a, _ := n["column_name_alias"].([]any); len(a) > 0 {
			return unsupported("column aliases of a table")
		}
		if alias == "" {
			alias = name
		}
		if id, ok := t.stores[strings.ToLower(name)]; ok {
			b.WriteString("(SELECT ")
			for _, c := range t.schema.cols {
				b.WriteString(ident(c.name) + ", ")
			}
			b.WriteString(`"eventJson", encode(sha256(convert_to("eventJson", 'UTF8')), 'hex') AS "eventJsonChecksum" FROM ` + t.events + " WHERE eds_id = " + literal(id) + ") AS " + userIdent(alias))
			return nil
		}
		b.WriteString(userIdent(name))
		if alias != name {
			b.WriteString(" AS " + userIdent(alias))
		}
		return nil
	case "JOIN":
		if err := t.table(b, n["left"]); err != nil {
			return err
		}
		jt, _ := n["join_type"].(string)
		rt, _ := n["ref_type"].(string)
		if using, _ := n["using_columns"].([]any); len(using) > 0 {
			return unsupported("JOIN USING")
		}
		right, _ := n["right"].(map[string]any)
		lateral := ""
		if right["type"] == "TABLE_FUNCTION" || right["type"] == "SUBQUERY" {
			lateral = "LATERAL "
		}
		switch {
		case rt == "CROSS":
			b.WriteString(" CROSS JOIN " + lateral)
		case rt == "REGULAR" && (jt == "INNER" || jt == "LEFT" || jt == "RIGHT" || jt == "OUTER"):
			kw := map[string]string{"INNER": " JOIN ", "LEFT": " LEFT JOIN ", "RIGHT": " RIGHT JOIN ", "OUTER": " FULL JOIN "}[jt]
			b.WriteString(kw + lateral)
		default:
			return unsupported("%s %s join", strings.ToLower(rt), strings.ToLower(jt))
		}
		if err := t.table(b, right); err != nil {
			return err
		}
		if c := n["condition"]; c != nil {
			b.WriteString(" ON ")
			if err := t.expr(b, c); err != nil {
				return err
			}
		} else if rt != "CROSS" {
			b.WriteString(" ON true")
		}
		return nil
	case "SUBQUERY":
		sub, _ := n["subquery"].(map[string]any)
		b.WriteByte('(')
		if err := t.node(b, sub["node"]); err != nil {
			return err
		}
		b.WriteByte(')')
		if alias == "" {
			alias = "subquery"
		}
		b.WriteString(" AS " + userIdent(alias))
		return t.columnAliases(b, n)
	case "TABLE_FUNCTION":
		fn, _ := n["function"].(map[string]any)
		name, _ := fn["function_name"].(string)
		args, _ := fn["children"].([]any)
		if strings.ToLower(name) != "unnest" || len(args) != 1 {
			return unsupported("the table function %s", name)
		}
		if n["with_ordinality"] == "WITH_ORDINALITY" {
			return unsupported("WITH ORDINALITY")
		}
		arg, _ := args[0].(map[string]any)
		var elem *shape
		if arg["class"] == "COLUMN_REF" {
			if _, sh, err := t.columnRef(arg); err == nil && sh != nil && sh.kind == kList {
				elem = sh.elem
			}
		}
		if alias == "" {
			alias = "unnest"
		}
		if elem != nil {
			b.WriteString("jsonb_array_elements(")
		} else {
			b.WriteString("unnest(")
		}
		if err := t.expr(b, arg); err != nil {
			return err
		}
		b.WriteString(") AS " + userIdent(alias))
		if a, _ := n["column_name_alias"].([]any); len(a) == 1 && elem != nil {
			t.unnested[strings.ToLower(fmt.Sprint(a[0]))] = elem
		}
		return t.columnAliases(b, n)
	case "EXPRESSION_LIST":
		rows, _ := n["values"].([]any)
		b.WriteString("(VALUES ")
		for i, r := range rows {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('(')
			cells, _ := r.([]any)
			for j, c := range cells {
				if j > 0 {
					b.WriteString(", ")
				}
				if err := t.expr(b, c); err != nil {
					return err
				}
			}
			b.WriteByte(')')
		}
		if alias == "" {
			alias = "valueslist"
		}
		b.WriteString(") AS " + userIdent(alias))
		return t.columnAliases(b, n)
	}
	return unsupported("%v in FROM", n["type"])
}

func (t *translator) columnAliases(b *strings.Builder, n map[string]any) error {
	a, _ := n["column_name_alias"].([]any)
	if len(a) == 0 {
		return nil
	}
	var as []string
	for _, x := range a {
		as = append(as, userIdent(fmt.Sprint(x)))
	}
	b.WriteString(" (" + strings.Join(as, ", ") + ")")
	return nil
}

// userIdent is an identifier of the statement's own (alias, CTE, column
// of a CTE): folded to lower case, quoted.
func userIdent(s string) string { return ident(strings.ToLower(s)) }

// columnRef returns the SQL of a column reference and the shape of its
// value when it is (part of) a nested Lake column.
func (t *translator) columnRef(n map[string]any) (string, *shape, error) {
	raw, _ := n["column_names"].([]any)
	names := make([]string, len(raw))
	for i, r := range raw {
		names[i], _ = r.(string)
	}
	if len(names) == 0 {
		return "", nil, unsupported("an empty column reference")
	}
	if t.roll != nil {
		s, err := t.rollColumn(names)
		return s, nil, err
	}
	var base string
	var sh *shape
	var path []string
	if el, ok := t.unnested[strings.ToLower(names[0])]; ok {
		base, sh, path = userIdent(names[0]), el, names[1:]
	} else if el, ok := t.unnested[strings.ToLower(names[min(1, len(names)-1)])]; ok && len(names) >= 2 {
		base, sh, path = userIdent(names[0])+"."+userIdent(names[1]), el, names[2:]
	} else if c, ok := t.schema.lookup(names[0]); ok {
		base, sh, path = ident(c.name), c.typ, names[1:]
	} else if len(names) >= 2 {
		if c, ok := t.schema.lookup(names[1]); ok {
			base, sh, path = userIdent(names[0])+"."+ident(c.name), c.typ, names[2:]
		}
	}
	if base == "" {
		var q []string
		for _, x := range names {
			q = append(q, userIdent(x))
		}
		return strings.Join(q, "."), nil, nil
	}
	if len(path) == 0 {
		if sh.kind == kStruct || sh.kind == kList || sh.kind == kMap {
			return base, sh, nil
		}
		return base, nil, nil
	}
	expr := base
	for i, p := range path {
		var err error
		expr, sh, err = step(expr, sh, p, i == len(path)-1)
		if err != nil {
			return "", nil, unsupported("the field %s", strings.Join(names, "."))
		}
	}
	if sh.kind == kText || sh.kind == kTime {
		sh = nil
	}
	return expr, sh, nil
}

// step reads field name of a value of shape sh (expr's SQL): when last,
// as the field's own type (a string with ->>, a timestamp cast, a nested
// value as json(b) with a JSON null as NULL), else as jsonb to read further.
func step(expr string, sh *shape, name string, last bool) (string, *shape, error) {
	f, ok := sh.get(name)
	if !ok {
		return "", nil, fmt.Errorf("no field %s", name)
	}
	switch {
	case !last:
		expr = "(" + expr + " -> " + literal(f.name) + ")"
	case f.typ.kind == kText:
		expr = "(" + expr + " ->> " + literal(f.name) + ")"
	case f.typ.kind == kTime:
		expr = "((" + expr + " ->> " + literal(f.name) + ")::timestamp)"
	case f.typ.kind == kMap:
		expr = "(nullif(" + expr + " -> " + literal(f.name) + ", 'null'::jsonb)::json)"
	default:
		expr = "nullif(" + expr + " -> " + literal(f.name) + ", 'null'::jsonb)"
	}
	return expr, f.typ, nil
}

// shaped returns the SQL and the shape of an expression whose value is
// (part of) a nested Lake value: a column reference, a list's element
// (x[i]) or a struct's field (x.f after a subscript); nil shape otherwise.
func (t *translator) shaped(n map[string]any) (string, *shape, error) {
	switch {
	case n["class"] == "COLUMN_REF":
		return t.columnRef(n)
	case n["type"] == "ARRAY_EXTRACT" || n["type"] == "STRUCT_EXTRACT":
		ch, _ := n["children"].([]any)
		if len(ch) != 2 {
			return "", nil, nil
		}
		inner, _ := ch[0].(map[string]any)
		base, sh, err := t.shaped(inner)
		if err != nil || sh == nil {
			return "", nil, err
		}
		if n["type"] == "STRUCT_EXTRACT" {
			c, _ := ch[1].(map[string]any)
			v, _ := c["value"].(map[string]any)
			name, _ := v["value"].(string)
			if sh.kind != kStruct || name == "" {
				return "", nil, unsupported("the field %s", name)
			}
			expr, fsh, err := step(base, sh, name, true)
			if err != nil {
				return "", nil, unsupported("the field %s", name)
			}
			if fsh.kind == kText || fsh.kind == kTime {
				fsh = nil
			}
			return expr, fsh, nil
		}
		if sh.kind != kList {
			return "", nil, nil
		}
		var idx strings.Builder
		if err := t.expr(&idx, ch[1]); err != nil {
			return "", nil, err
		}
		i := idx.String()
		// Trino's (and DuckDB's) subscript is 1-based, a negative one
		// counts from the end; jsonb's is 0-based.
		expr := "nullif(" + base + " -> CAST(CASE WHEN " + i + " > 0 THEN " + i + " - 1 ELSE " + i + " END AS int), 'null'::jsonb)"
		el := sh.elem
		if el.kind == kText {
			expr = "(" + expr + " #>> '{}')"
			el = nil
		}
		return expr, el, nil
	}
	return "", nil, nil
}

// expr writes an expression.
func (t *translator) expr(b *strings.Builder, v any) error {
	if err := t.enter(); err != nil {
		return err
	}
	defer func() { t.depth-- }()
	n, _ := v.(map[string]any)
	if n == nil {
		return unsupported("an empty expression")
	}
	cls, _ := n["class"].(string)
	typ, _ := n["type"].(string)
	if t.roll != nil && (cls == "STAR" || cls == "SUBQUERY" || cls == "WINDOW" || cls == "LAMBDA") {
		return errNoRollup
	}
	switch cls {
	case "COLUMN_REF":
		s, _, err := t.columnRef(n)
		if err != nil {
			return err
		}
		b.WriteString(s)
		return nil
	case "CONSTANT":
		return constant(b, n["value"])
	case "STAR":
		if rel, _ := n["relation_name"].(string); rel != "" {
			b.WriteString(userIdent(rel) + ".*")
		} else {
			b.WriteString("*")
		}
		if ex, _ := n["exclude_list"].([]any); len(ex) > 0 {
			return unsupported("* EXCLUDE")
		}
		if rp, _ := n["replace_list"].([]any); len(rp) > 0 {
			return unsupported("* REPLACE")
		}
		if c, _ := n["columns"].(bool); c {
			return unsupported("COLUMNS(...)")
		}
		return nil
	case "COMPARISON":
		ops := map[string]string{"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_GREATERTHAN": ">",
			"COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHANOREQUALTO": ">=", "COMPARE_DISTINCT_FROM": "IS DISTINCT FROM",
			"COMPARE_NOT_DISTINCT_FROM": "IS NOT DISTINCT FROM"}
		op, ok := ops[typ]
		if !ok {
			return unsupported("the comparison %s", typ)
		}
		return t.binary(b, n["left"], op, n["right"])
	case "CONJUNCTION":
		op := map[string]string{"CONJUNCTION_AND": " AND ", "CONJUNCTION_OR": " OR "}[typ]
		if op == "" {
			return unsupported("%s", typ)
		}
		ch, _ := n["children"].([]any)
		b.WriteByte('(')
		for i, c := range ch {
			if i > 0 {
				b.WriteString(op)
			}
			if err := t.expr(b, c); err != nil {
				return err
			}
		}
		b.WriteByte(')')
		return nil
	case "BETWEEN":
		b.WriteByte('(')
		if err := t.expr(b, n["input"]); err != nil {
			return err
		}
		b.WriteString(" BETWEEN ")
		if err := t.expr(b, n["lower"]); err != nil {
			return err
		}
		b.WriteString(" AND ")
		if err := t.expr(b, n["upper"]); err != nil {
			return err
		}
		b.WriteByte(')')
		return nil
	case "CASE":
		b.WriteString("CASE")
		checks, _ := n["case_checks"].([]any)
		for _, c := range checks {
			c, _ := c.(map[string]any)
			b.WriteString(" WHEN ")
			if err := t.expr(b, c["when_expr"]); err != nil {
				return err
			}
			b.WriteString(" THEN ")
			if err := t.expr(b, c["then_expr"]); err != nil {
				return err
			}
		}
		if e := n["else_expr"]; e != nil {
			b.WriteString(" ELSE ")
			if err := t.expr(b, e); err != nil {
				return err
			}
		}
		b.WriteString(" END")
		return nil
	case "CAST":
		pt, err := castType(n["cast_type"])
		if err != nil {
			return err
		}
		if try, _ := n["try_cast"].(bool); try {
			return unsupported("TRY_CAST")
		}
		b.WriteString("CAST(")
		if err := t.expr(b, n["child"]); err != nil {
			return err
		}
		b.WriteString(" AS " + pt + ")")
		return nil
	case "OPERATOR":
		return t.operator(b, n)
	case "FUNCTION":
		return t.function(b, n)
	case "SUBQUERY":
		sub, _ := n["subquery"].(map[string]any)
		st, _ := n["subquery_type"].(string)
		switch st {
		case "SCALAR":
			b.WriteByte('(')
		case "EXISTS":
			b.WriteString("EXISTS (")
		case "NOT_EXISTS":
			b.WriteString("NOT EXISTS (")
		case "ANY":
			op := map[string]string{"COMPARE_EQUAL": "=", "COMPARE_NOTEQUAL": "<>", "COMPARE_LESSTHAN": "<", "COMPARE_GREATERTHAN": ">",
				"COMPARE_LESSTHANOREQUALTO": "<=", "COMPARE_GREATERTHANOREQUALTO": ">="}[fmt.Sprint(n["comparison_type"])]
			if op == "" {
				return unsupported("the subquery comparison %v", n["comparison_type"])
			}
			b.WriteByte('(')
			if err := t.expr(b, n["child"]); err != nil {
				return err
			}
			b.WriteString(" " + op + " ANY (")
			if err := t.node(b, sub["node"]); err != nil {
				return err
			}
			b.WriteString("))")
			return nil
		default:
			return unsupported("a %s subquery", strings.ToLower(st))
		}
		if err := t.node(b, sub["node"]); err != nil {
			return err
		}
		b.WriteByte(')')
		return nil
	case "WINDOW":
		return t.window(b, n)
	}
	return unsupported("%s expressions", strings.ToLower(cls))
}

func (t *translator) binary(b *strings.Builder, l any, op string, r any) error {
	b.WriteByte('(')
	if err := t.expr(b, l); err != nil {
		return err
	}
	b.WriteString(" " + op + " ")
	if err := t.expr(b, r); err != nil {
		return err
	}
	b.WriteByte(')')
	return nil
}

func (t *translator) operator(b *strings.Builder, n map[string]any) error {
	typ, _ := n["type"].(string)
	ch, _ := n["children"].([]any)
	switch typ {
	case "OPERATOR_NOT":
		b.WriteString("(NOT ")
		if err := t.expr(b, ch[0]); err != nil {
			return err
		}
		b.WriteByte(')')
		return nil
	case "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL":
		b.WriteByte('(')
		if err := t.expr(b, ch[0]); err != nil {
			return err
		}
		if typ == "OPERATOR_IS_NULL" {
			b.WriteString(" IS NULL)")
		} else {
			b.WriteString(" IS NOT NULL)")
		}
		return nil
	case "COMPARE_IN", "COMPARE_NOT_IN":
		b.WriteByte('(')
		if err := t.expr(b, ch[0]); err != nil {
			return err
		}
		if typ == "COMPARE_IN" {
			b.WriteString(" IN (")
		} else {
			b.WriteString(" NOT IN (")
		}
		for i, c := range ch[1:] {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := t.expr(b, c); err != nil {
				return err
			}
		}
		b.WriteString("))")
		return nil
	case "ARRAY_CONSTRUCTOR":
		return t.function(b, map[string]any{"function_name": "list_value", "children": ch})
	case "OPERATOR_COALESCE":
		return t.call(b, "coalesce", ch)
	case "ARRAY_EXTRACT", "STRUCT_EXTRACT":
		if s, sh, err := t.shaped(n); err != nil {
			return err
		} else if sh != nil || s != "" {
			b.WriteString(s)
			return nil
		}
		if typ == "STRUCT_EXTRACT" {
			return unsupported("a field of this value")
		}
		// x[i] of an array or a map: 1-based, a negative index from the
		// end; a map's subscript is its key.
		return t.call(b, "lake.element_at", ch)
	}
	return unsupported("the operator %s", strings.ToLower(typ))
}

// call writes name(args).
func (t *translator) call(b *strings.Builder, name string, args []any) error {
	b.WriteString(name + "(")
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := t.expr(b, a); err != nil {
			return err
		}
	}
	b.WriteByte(')')
	return nil
}

func constant(b *strings.Builder, v any) error {
	m, _ := v.(map[string]any)
	if null, _ := m["is_null"].(bool); null {
		b.WriteString("NULL")
		return nil
	}
	tm, _ := m["type"].(map[string]any)
	id, _ := tm["id"].(string)
	switch id {
	case "VARCHAR":
		s, _ := m["value"].(string)
		b.WriteString(literal(s))
	case "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER":
		f, ok := m["value"].(float64)
		if !ok {
			return unsupported("a constant of type %s", id)
		}
		b.WriteString(strconv.FormatFloat(f, 'f', -1, 64))
		if id == "HUGEINT" || id == "UBIGINT" {
			b.WriteString("::numeric")
		}
	case "BOOLEAN":
		if x, _ := m["value"].(bool); x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case "DOUBLE", "FLOAT":
		f, ok := m["value"].(float64)
		if !ok {
			return unsupported("a constant of type %s", id)
		}
		b.WriteString(strconv.FormatFloat(f, 'g', -1, 64) + "::float8")
	case "DECIMAL":
		// DuckDB serializes a DECIMAL constant as its unscaled integer.
		info, _ := tm["type_info"].(map[string]any)
		scale, _ := info["scale"].(float64)
		f, ok := m["value"].(float64)
		if !ok {
			return unsupported("a constant of type %s", id)
		}
		s := strconv.FormatFloat(f, 'f', 0, 64)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		sc := int(scale)
		for len(s) <= sc {
			s = "0" + s
		}
		if sc > 0 {
			s = s[:len(s)-sc] + "." + s[len(s)-sc:]
		}
		if neg {
			s = "-" + s
		}
		b.WriteString(s)
	default:
		return unsupported("a constant of type %s", strings.ToLower(id))
	}
	return nil
}

// castType is a cast's PostgreSQL type.
func castType(v any) (string, error) {
	m, _ := v.(map[string]any)
	id, _ := m["id"].(string)
	switch id {
	case "VARCHAR":
		return "text", nil
	case "INTEGER":
		return "integer", nil
	case "BIGINT":
		return "bigint", nil
	case "SMALLINT":
		return "smallint", nil
	case "DOUBLE":
		return "double precision", nil
	case "FLOAT":
		return "real", nil
	case "BOOLEAN":
		return "boolean", nil
	case "TIMESTAMP":
		return "timestamp", nil
	case "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_TZ":
		return "timestamptz", nil
	case "DATE":
		return "date", nil
	case "DECIMAL":
		info, _ := m["type_info"].(map[string]any)
		w, _ := info["width"].(float64)
		s, _ := info["scale"].(float64)
		return fmt.Sprintf("numeric(%d,%d)", int(w), int(s)), nil
	case "USER":
		info, _ := m["type_info"].(map[string]any)
		if name, _ := info["user_type_name"].(string); strings.EqualFold(name, "json") {
			return "json", nil
		}
	}
	return "", unsupported("a cast to %s", strings.ToLower(id))
}

func (t *translator) window(b *strings.Builder, n map[string]any) error {
	typ, _ := n["type"].(string)
	name, _ := n["function_name"].(string)
	ch, _ := n["children"].([]any)
	fn := map[string]string{"WINDOW_ROW_NUMBER": "row_number", "WINDOW_RANK": "rank", "WINDOW_RANK_DENSE": "dense_rank",
		"WINDOW_PERCENT_RANK": "percent_rank", "WINDOW_CUME_DIST": "cume_dist", "WINDOW_LAG": "lag", "WINDOW_LEAD": "lead",
		"WINDOW_FIRST_VALUE": "first_value", "WINDOW_LAST_VALUE": "last_value", "WINDOW_NTILE": "ntile"}[typ]
	if typ == "WINDOW_AGGREGATE" {
		fn = map[string]string{"count": "count", "count_star": "count", "sum": "sum", "min": "min", "max": "max", "avg": "avg"}[strings.ToLower(name)]
	}
	if fn == "" {
		return unsupported("the window function %s", name)
	}
	if d, _ := n["distinct"].(bool); d {
		return unsupported("DISTINCT in a window")
	}
	if fn == "avg" {
		b.WriteString("CAST(")
	}
	if strings.ToLower(name) == "count_star" {
		b.WriteString("count(*)")
	} else {
		args := ch
		if typ == "WINDOW_LAG" || typ == "WINDOW_LEAD" {
			if o := n["offset_expr"]; o != nil {
				args = append(args, o)
			}
			if d := n["default_expr"]; d != nil {
				args = append(args, d)
			}
		}
		if err := t.call(b, fn, args); err != nil {
			return err
		}
	}
	if fn == "avg" {
		b.WriteString(" AS double precision)")
	}
	b.WriteString(" OVER (")
	parts, _ := n["partitions"].([]any)
	if len(parts) > 0 {
		b.WriteString("PARTITION BY ")
		for i, p := range parts {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := t.expr(b, p); err != nil {
				return err
			}
		}
	}
	if orders, _ := n["orders"].([]any); len(orders) > 0 {
		if err := t.orders(b, map[string]any{"orders": orders}, " ORDER BY "); err != nil {
			return err
		}
	}
	if s, _ := n["start"].(string); s != "" && s != "UNBOUNDED_PRECEDING" {
		return unsupported("window frames")
	}
	if e, _ := n["end"].(string); e != "" && e != "CURRENT_ROW_RANGE" {
		return unsupported("window frames")
	}
	b.WriteByte(')')
	return nil
}

// jsonNumber keeps encoding/json imported for DECIMAL values given as
// strings by other DuckDB versions.
var _ = json.Number("")
