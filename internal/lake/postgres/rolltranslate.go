package postgres

import (
	"errors"
	"fmt"
	"strings"
)

// errNoRollup ends a translation over the rollup: the statement asks what
// the rollup does not know, and runs over the events instead.
var errNoRollup = errors.New("lake/postgres: not answerable from the rollup")

// rollPlan is a statement's translation over lake_rollup (the
// translator's roll mode): its one store, the FROM item's name, the
// WHERE's conditions on eventTime (timeConds, each against constants)
// and its other conditions (rest), what eventTime reads as where the
// translation meets it (timeCol: "" refuses it), and how many aggregates
// the statement has.
type rollPlan struct {
	store      string
	alias      string
	timeConds  []map[string]any
	rest       []any
	timeCol    string
	aggregates int
	// level is the rollup's level the statement reads (rollupLevels;
	// the coarsest unless a translation before found a date_trunc
	// finer than it); need is the coarsest level the translation's
	// date_trunc calls allow.
	level, need int
	// used are the dimensions the translation read (rollColumn); only,
	// when not nil, the ones a translation before found it reads: the
	// events of the edges' hours are grouped by those alone (rollSource),
	// the others NULL.
	used, only map[string]bool
}

// planRollup returns the plan of a statement the rollup may answer, or
// nil: a single SELECT (no CTE, no set operation) of one event data store
// without column aliases. Whether it does is decided by translating it in
// roll mode, which refuses (errNoRollup) anything else: a column outside
// rollupDims (eventTime only as the argument of min/max, in date_trunc by
// an hour or coarser, or compared with a constant in a top-level AND of
// the WHERE), an aggregate other than count, min, max (and their kin) or
// with FILTER or ORDER BY, a subquery, a window, a star, a join, or a
// statement that does not aggregate (no GROUP BY, aggregate or DISTINCT:
// its rows' multiplicity is the events').
func planRollup(tree map[string]any, stores map[string]string) *rollPlan {
	if tree["type"] != "SELECT_NODE" {
		return nil
	}
	if m, _ := tree["cte_map"].(map[string]any); m != nil {
		if l, _ := m["map"].([]any); len(l) > 0 {
			return nil
		}
	}
	from, _ := tree["from_table"].(map[string]any)
	if from == nil || from["type"] != "BASE_TABLE" {
		return nil
	}
	if a, _ := from["column_name_alias"].([]any); len(a) > 0 {
		return nil
	}
	if s, _ := from["schema_name"].(string); s != "" {
		return nil
	}
	if c, _ := from["catalog_name"].(string); c != "" {
		return nil
	}
	name, _ := from["table_name"].(string)
	id, ok := stores[strings.ToLower(name)]
	if !ok {
		return nil
	}
	alias, _ := from["alias"].(string)
	if alias == "" {
		alias = name
	}
	top := len(rollupLevels) - 1
	p := &rollPlan{store: id, alias: alias, level: top, need: top, used: map[string]bool{}}
	if w := tree["where_clause"]; w != nil {
		for _, c := range conjuncts(w) {
			if m, _ := c.(map[string]any); m != nil && p.isTimeCond(m) {
				p.timeConds = append(p.timeConds, m)
			} else {
				p.rest = append(p.rest, c)
			}
		}
	}
	return p
}

// conjuncts flattens a tree of ANDs.
func conjuncts(v any) []any {
	m, _ := v.(map[string]any)
	if m != nil && m["class"] == "CONJUNCTION" && m["type"] == "CONJUNCTION_AND" {
		var out []any
		ch, _ := m["children"].([]any)
		for _, c := range ch {
			out = append(out, conjuncts(c)...)
		}
		return out
	}
	return []any{v}
}

// isTimeRef tells whether n is a reference to the store's eventTime.
func (p *rollPlan) isTimeRef(v any) bool {
	n, _ := v.(map[string]any)
	if n == nil || n["class"] != "COLUMN_REF" {
		return false
	}
	names, _ := n["column_names"].([]any)
	switch len(names) {
	case 1:
		s, _ := names[0].(string)
		return strings.EqualFold(s, "eventTime")
	case 2:
		a, _ := names[0].(string)
		s, _ := names[1].(string)
		return strings.EqualFold(a, p.alias) && strings.EqualFold(s, "eventTime")
	}
	return false
}

// isTimeConst tells whether n is a time the statement writes: a string
// constant, or one cast to a timestamp or a date.
func isTimeConst(v any) bool {
	n, _ := v.(map[string]any)
	if n == nil {
		return false
	}
	if n["class"] == "CAST" {
		if try, _ := n["try_cast"].(bool); try {
			return false
		}
		ct, _ := n["cast_type"].(map[string]any)
		switch ct["id"] {
		case "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_TZ", "DATE":
		default:
			return false
		}
		n, _ = n["child"].(map[string]any)
		if n == nil {
			return false
		}
	}
	if n["class"] != "CONSTANT" {
		return false
	}
	val, _ := n["value"].(map[string]any)
	typ, _ := val["type"].(map[string]any)
	null, _ := val["is_null"].(bool)
	return !null && typ["id"] == "VARCHAR"
}

// isTimeCond tells whether a condition compares eventTime with times the
// statement writes: =, <>, <, <=, >, >= or BETWEEN. Each such condition is
// constant over an hour that holds none of its times.
func (p *rollPlan) isTimeCond(n map[string]any) bool {
	switch n["class"] {
	case "COMPARISON":
		switch n["type"] {
		case "COMPARE_EQUAL", "COMPARE_NOTEQUAL", "COMPARE_LESSTHAN", "COMPARE_GREATERTHAN",
			"COMPARE_LESSTHANOREQUALTO", "COMPARE_GREATERTHANOREQUALTO":
		default:
			return false
		}
		return p.isTimeRef(n["left"]) && isTimeConst(n["right"]) || isTimeConst(n["left"]) && p.isTimeRef(n["right"])
	case "BETWEEN":
		return p.isTimeRef(n["input"]) && isTimeConst(n["lower"]) && isTimeConst(n["upper"])
	}
	return false
}

// timeBounds are the times a condition of timeConds compares with.
func timeBounds(n map[string]any) []any {
	if n["class"] == "BETWEEN" {
		return []any{n["lower"], n["upper"]}
	}
	if isTimeConst(n["left"]) {
		return []any{n["left"]}
	}
	return []any{n["right"]}
}

// rollSource writes the store as the rollup's rows, named alias: the rows
// of the level p.level. With conditions on eventTime, whose times are
// T: that level's rows of the buckets that hold no time of T, filtered
// by the conditions over the bucket (which each condition answers alike
// for every event of it); within each bucket that holds one, the next
// finer level's rows of the buckets that hold none, so on down to the
// hours, and within the hours that hold one, the fine level's (ten
// minutes) buckets that hold none; and the events of the fine buckets
// that hold one (read through the (eds_id, eventTime) index), filtered
// by the conditions and grouped as the hourly rollup groups them. Each level's rows of a few buckets are
// read through its (eds_id, bucket) index.
func (t *translator) rollSource(b *strings.Builder, alias string) error {
	p := t.roll
	var dims, exprs []string
	for _, d := range rollupDims {
		dims = append(dims, ident(d.name()))
		exprs = append(exprs, d.expr())
	}
	rowsOf := func(table string) string {
		return "SELECT " + strings.Join(dims, ", ") + ", " + rollBucket + ", " + rollN + ", " + rollMinT + ", " + rollMaxT +
			" FROM " + table + " WHERE eds_id = " + literal(p.store)
	}
	rows := func(level int) string { return rowsOf(t.rollup[level]) }
	b.WriteString("(")
	if len(p.timeConds) == 0 {
		b.WriteString(rows(p.level))
		b.WriteString(") AS " + userIdent(alias))
		return nil
	}
	var times []string
	for _, c := range p.timeConds {
		for _, v := range timeBounds(c) {
			var s strings.Builder
			if err := t.expr(&s, v); err != nil {
				return err
			}
			times = append(times, "CAST("+s.String()+" AS timestamp)")
		}
	}
	conds := func(col string) (string, error) {
		p.timeCol = col
		defer func() { p.timeCol = "" }()
		var s strings.Builder
		for _, c := range p.timeConds {
			s.WriteString(" AND ")
			if err := t.expr(&s, c); err != nil {
				return "", err
			}
		}
		return s.String(), nil
	}
	// within are the ranges of the buckets of unit that hold a time of
	// T, as conditions on col.
	within := func(col, unit string) string {
		var ranges []string
		for _, h := range times {
			s := bucketOf(unit, h)
			ranges = append(ranges, "("+col+" >= "+s+" AND "+col+" < "+s+" + "+spanOf(unit)+")")
		}
		return "(" + strings.Join(ranges, " OR ") + ")"
	}
	c, err := conds(rollBucket)
	if err != nil {
		return err
	}
	for level := p.level; level >= 0; level-- {
		unit := rollupLevels[level].unit
		if level < p.level {
			b.WriteString(" UNION ALL ")
		}
		b.WriteString(rows(level))
		if level < p.level {
			b.WriteString(" AND " + within(rollBucket, rollupLevels[level+1].unit))
		}
		for _, h := range times {
			b.WriteString(" AND " + rollBucket + " IS DISTINCT FROM " + bucketOf(unit, h))
		}
		b.WriteString(c)
	}
	// Within the hours that hold a time, the fine level's buckets that
	// hold none.
	b.WriteString(" UNION ALL " + rowsOf(t.fine) + " AND " + within(rollBucket, "hour"))
	for _, h := range times {
		b.WriteString(" AND " + rollBucket + " IS DISTINCT FROM " + bucketOf(fineUnit, h))
	}
	b.WriteString(c)
	// The edges' events (of the fine buckets that hold a time), grouped
	// as the hourly level by the dimensions
	// the statement reads (each of the others, a JSON field read from
	// every event's userIdentity, is NULL: the statement's groups and
	// counts are the same).
	var sel, groupBy []string
	for i, d := range rollupDims {
		if p.only != nil && !p.only[d.name()] {
			sel = append(sel, "NULL")
			continue
		}
		sel = append(sel, exprs[i])
		groupBy = append(groupBy, fmt.Sprint(i+1))
	}
	groupBy = append(groupBy, fmt.Sprint(len(rollupDims)+1))
	b.WriteString(` UNION ALL SELECT ` + strings.Join(sel, ", ") + `, date_trunc('hour', "eventTime"), count(*), min("eventTime"), max("eventTime") FROM ` +
		t.events + " WHERE eds_id = " + literal(p.store) + " AND " + within(`"eventTime"`, fineUnit))
	if c, err = conds(`"eventTime"`); err != nil {
		return err
	}
	b.WriteString(c)
	b.WriteString(" GROUP BY " + strings.Join(groupBy, ", "))
	b.WriteString(") AS " + userIdent(alias))
	return nil
}

// rollColumn is a column reference in roll mode: a dimension (unqualified
// or qualified by the FROM item's name), eventTime as p.timeCol allows, or
// (not a Lake column) an alias of the statement's, as in general.
func (t *translator) rollColumn(names []string) (string, error) {
	p := t.roll
	if len(names) >= 2 && strings.EqualFold(names[0], p.alias) {
		if _, ok := t.schema.lookup(names[1]); ok {
			names = names[1:]
		}
	}
	if _, ok := t.schema.lookup(names[0]); !ok {
		// Not a Lake column: an alias of the statement's, as in
		// general, but not the FROM item's name (a whole event).
		if len(names) == 1 && !strings.EqualFold(names[0], p.alias) {
			return userIdent(names[0]), nil
		}
		return "", errNoRollup
	}
	switch {
	case len(names) == 1 && strings.EqualFold(names[0], "eventTime"):
		if p.timeCol == "" {
			return "", errNoRollup
		}
		return p.timeCol, nil
	case len(names) == 1:
		if d, ok := findDim(names[0], ""); ok {
			p.used[d.name()] = true
			return ident(d.name()), nil
		}
	case len(names) == 2:
		if d, ok := findDim(names[0], names[1]); ok {
			p.used[d.name()] = true
			return ident(d.name()), nil
		}
	}
	return "", errNoRollup
}

// rollAggregate writes an aggregate in roll mode, or refuses it: count(*)
// and count(x) as sums of the rows' counts, count(DISTINCT x), min and
// max (and arbitrary, any_value: the least value) as they are, of
// eventTime as the rows' least and greatest eventTime.
func (t *translator) rollAggregate(b *strings.Builder, lname string, spec fnSpec, n map[string]any, args []any) error {
	p := t.roll
	p.aggregates++
	if n["filter"] != nil {
		return errNoRollup
	}
	if ob, _ := n["order_bys"].(map[string]any); ob != nil {
		if o, _ := ob["orders"].([]any); len(o) > 0 {
			return errNoRollup
		}
	}
	distinct, _ := n["distinct"].(bool)
	switch lname {
	case "count_star":
		b.WriteString("CAST(coalesce(sum(" + rollN + "), 0) AS bigint)")
		return nil
	case "count", "approx_count_distinct":
		var s strings.Builder
		if err := t.expr(&s, args[0]); err != nil {
			return err
		}
		if distinct || lname == "approx_count_distinct" {
			b.WriteString("count(DISTINCT " + s.String() + ")")
			return nil
		}
		b.WriteString("CAST(coalesce(sum(CASE WHEN (" + s.String() + ") IS NOT NULL THEN " + rollN + " END), 0) AS bigint)")
		return nil
	case "min", "max", "arbitrary", "any_value":
		if len(args) == 1 && p.isTimeRef(args[0]) {
			if spec.name == "min" {
				b.WriteString("min(" + rollMinT + ")")
			} else {
				b.WriteString("max(" + rollMaxT + ")")
			}
			return nil
		}
		var s strings.Builder
		if err := t.expr(&s, args[0]); err != nil {
			return err
		}
		b.WriteString(spec.name + "(" + s.String() + ")")
		return nil
	}
	return errNoRollup
}

// rollDateTrunc writes date_trunc(unit, eventTime) by an hour or coarser
// in roll mode as the same of the rollup's bucket, and lowers the plan's
// need to the coarsest level whose buckets the unit keeps whole; ok is
// false for any other call.
func (t *translator) rollDateTrunc(b *strings.Builder, args []any) (bool, error) {
	if len(args) != 2 || !t.roll.isTimeRef(args[1]) {
		return false, nil
	}
	u, _ := args[0].(map[string]any)
	val, _ := u["value"].(map[string]any)
	typ, _ := val["type"].(map[string]any)
	unit, _ := val["value"].(string)
	if u["class"] != "CONSTANT" || typ["id"] != "VARCHAR" {
		return false, nil
	}
	l := unitLevel(unit)
	if l < 0 {
		return false, nil
	}
	// A level coarser than unit cannot answer it: the statement is
	// translated again at the level it needs (DB.Run).
	t.roll.need = min(t.roll.need, l)
	b.WriteString("date_trunc(" + literal(unit) + ", " + rollBucket + ")")
	return true, nil
}
