package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// How a value becomes the text of a result cell
//
// CloudTrail Lake answers every cell as a string, rendered as Trino renders
// a value cast to VARCHAR: a timestamp as 'YYYY-MM-DD HH:MM:SS.mmm', a date
// as 'YYYY-MM-DD', a ROW (struct) as {name=value, ...} with its field names
// in lower case and in the schema's order, a MAP as {key=value, ...} in its
// keys' order, an ARRAY as [value, ...], a NULL inside them as null, and a
// string inside them as itself, unquoted. (A userIdentity cell from Lake:
// "{type=AssumedRole, principalid=..., accountid=..., username=null,
// sessioncontext={attributes={creationdate=2023-06-07 23:59:12.000,
// mfaauthenticated=true}, ...}, ...}"; docs/lake.md, "Values", has the
// sources.) The Go driver hands over nested values as Go maps, which lose
// a struct's field order, so the value is rendered with its column's type
// (the driver's DuckDB type name, parsed by parseType).

// valueType is a DuckDB type as far as rendering needs it.
type valueType struct {
	// name is the base type's name (VARCHAR, TIMESTAMP, DATE, STRUCT, MAP,
	// LIST, JSON, DECIMAL(4,2)...).
	name   string
	fields []structField // STRUCT
	elem   *valueType    // LIST (and fixed-size ARRAY)
	key    *valueType    // MAP
	val    *valueType    // MAP
}

type structField struct {
	name string
	typ  *valueType
}

// parseType parses a type name as the driver spells it (VARCHAR,
// STRUCT("a" VARCHAR, "b" INTEGER[]), MAP(VARCHAR, VARCHAR), ...). A name it
// cannot read gives a type with that name and no structure (values are then
// rendered from their Go shape).
func parseType(s string) *valueType {
	p := typeParser{s: s}
	t := p.typ()
	if p.err || p.i != len(s) {
		return &valueType{name: s}
	}
	return t
}

type typeParser struct {
	s   string
	i   int
	err bool
}

func (p *typeParser) eat(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *typeParser) typ() *valueType {
	var t *valueType
	switch {
	case p.eat("STRUCT("):
		t = &valueType{name: "STRUCT"}
		for !p.err && !p.eat(")") {
			if len(t.fields) > 0 && !p.eat(", ") {
				p.err = true
				return t
			}
			name := p.fieldName()
			if !p.eat(" ") {
				p.err = true
				return t
			}
			t.fields = append(t.fields, structField{name: name, typ: p.typ()})
		}
	case p.eat("MAP("):
		t = &valueType{name: "MAP"}
		t.key = p.typ()
		if !p.eat(", ") {
			p.err = true
			return t
		}
		t.val = p.typ()
		if !p.eat(")") {
			p.err = true
		}
	default:
		j := p.i
		depth := 0
		for j < len(p.s) {
			c := p.s[j]
			if c == '(' {
				depth++
			} else if c == ')' {
				if depth == 0 {
					break
				}
				depth--
			} else if depth == 0 && (c == ',' || c == '[') {
				break
			}
			j++
		}
		if j == p.i {
			p.err = true
			return &valueType{}
		}
		t = &valueType{name: p.s[p.i:j]}
		p.i = j
	}
	for !p.err && p.eat("[") {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			p.err = true
			break
		}
		p.i += j + 1
		t = &valueType{name: "LIST", elem: t}
	}
	return t
}

// fieldName reads a STRUCT field's name: "quoted" (with "" for ") or bare.
func (p *typeParser) fieldName() string {
	if !p.eat(`"`) {
		j := strings.IndexByte(p.s[p.i:], ' ')
		if j < 0 {
			p.err = true
			return ""
		}
		n := p.s[p.i : p.i+j]
		p.i += j
		return n
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		if c == '"' {
			if p.i < len(p.s) && p.s[p.i] == '"' {
				b.WriteByte('"')
				p.i++
				continue
			}
			return b.String()
		}
		b.WriteByte(c)
	}
	p.err = true
	return b.String()
}

const (
	timestampLayout = "2006-01-02 15:04:05.000"
	dateLayout      = "2006-01-02"
	timeLayout      = "15:04:05.000"
)

// render returns a result cell's text for v, a non-NULL value of type t
// (nil: unknown).
func render(v any, t *valueType) string {
	var b strings.Builder
	renderTo(&b, v, t)
	return b.String()
}

func renderTo(b *strings.Builder, v any, t *valueType) {
	if v == nil {
		b.WriteString("null")
		return
	}
	name := ""
	if t != nil {
		name = t.name
	}
	switch x := v.(type) {
	case time.Time:
		x = x.UTC()
		switch name {
		case "DATE":
			b.WriteString(x.Format(dateLayout))
		case "TIME":
			b.WriteString(x.Format(timeLayout))
		case "TIMESTAMPTZ":
			// Trino's timestamp with time zone; cairn's session zone is UTC.
			b.WriteString(x.Format(timestampLayout) + " UTC")
		default:
			b.WriteString(x.Format(timestampLayout))
		}
		return
	case string:
		if name == "JSON" {
			// The driver decodes a JSON value; a JSON string is rendered as
			// JSON text, quoted.
			writeJSON(b, x)
			return
		}
		b.WriteString(x)
		return
	case []byte:
		b.Write(x)
		return
	case map[string]any:
		if name == "JSON" {
			writeJSON(b, x)
			return
		}
		renderStruct(b, x, t)
		return
	case duckdb.OrderedMap:
		renderMap(b, x.Keys(), x.Values(), t)
		return
	case *duckdb.OrderedMap:
		renderMap(b, x.Keys(), x.Values(), t)
		return
	case map[any]any:
		keys := make([]any, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		vals := make([]any, len(keys))
		for i, k := range keys {
			vals[i] = x[k]
		}
		renderMap(b, keys, vals, t)
		return
	case []any:
		if name == "JSON" {
			writeJSON(b, x)
			return
		}
		var elem *valueType
		if t != nil {
			elem = t.elem
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			renderTo(b, e, elem)
		}
		b.WriteByte(']')
		return
	case float64:
		if name == "JSON" {
			writeJSON(b, x)
			return
		}
		b.WriteString(engine.JavaDouble(x, 64))
		return
	case float32:
		b.WriteString(engine.JavaDouble(float64(x), 32))
		return
	case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int:
		if name == "JSON" {
			writeJSON(b, x)
			return
		}
		fmt.Fprint(b, x)
		return
	case fmt.Stringer:
		b.WriteString(x.String())
		return
	}
	fmt.Fprint(b, v)
}

// renderStruct writes a STRUCT as {name=value, ...}: fields in the type's
// order (else by name), names in lower case as Trino's identifiers are.
func renderStruct(b *strings.Builder, m map[string]any, t *valueType) {
	b.WriteByte('{')
	if t != nil && t.name == "STRUCT" && len(t.fields) == len(m) {
		for i, f := range t.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.ToLower(f.name))
			b.WriteByte('=')
			renderTo(b, m[f.name], f.typ)
		}
	} else {
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
		for i, k := range names {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.ToLower(k))
			b.WriteByte('=')
			renderTo(b, m[k], nil)
		}
	}
	b.WriteByte('}')
}

// renderMap writes a MAP as {key=value, ...} in the keys' order.
func renderMap(b *strings.Builder, keys, vals []any, t *valueType) {
	var kt, vt *valueType
	if t != nil {
		kt, vt = t.key, t.val
	}
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		renderTo(b, k, kt)
		b.WriteByte('=')
		renderTo(b, vals[i], vt)
	}
	b.WriteByte('}')
}

func writeJSON(b *strings.Builder, v any) {
	j, err := json.Marshal(v)
	if err != nil {
		fmt.Fprint(b, v)
		return
	}
	b.Write(j)
}

// selectListNames reads the names Trino gives the statement's columns
// (applyNames): for each expression of the (left-most) select list, "" to
// keep DuckDB's name (an alias), a column or field reference's last name as
// the statement spells it, or _colN, N its
// 0-based position (any other expression without an alias: AWS's sample
// "Find all CloudTrail Lake queries" answers _col0 and _col1 for its two
// element_at calls; DuckDB names such a column after its text, which would
// show cairn's macros). It returns nil when the list has a star.
func selectListNames(ctx context.Context, conn *sql.Conn, stmt string) ([]string, error) {
	var js string
	if err := conn.QueryRowContext(ctx, `SELECT json_serialize_sql(?::VARCHAR)::VARCHAR`, stmt).Scan(&js); err != nil {
		return nil, err
	}
	var tree struct {
		Statements []struct {
			Node map[string]any
		}
	}
	if err := json.Unmarshal([]byte(js), &tree); err != nil || len(tree.Statements) != 1 {
		return nil, fmt.Errorf("unreadable statement")
	}
	node := tree.Statements[0].Node
	for node != nil && node["type"] == "SET_OPERATION_NODE" {
		node, _ = node["left"].(map[string]any)
	}
	if node == nil || node["type"] != "SELECT_NODE" {
		return nil, nil
	}
	list, _ := node["select_list"].([]any)
	out := make([]string, len(list))
	for i, e := range list {
		m, _ := e.(map[string]any)
		alias, _ := m["alias"].(string)
		switch {
		case m == nil || m["class"] == "STAR":
			return nil, nil
		case alias != "":
		case m["class"] == "COLUMN_REF":
			// As the statement spells it (Lake's sample answers
			// "principalid" for userIdentity.principalid; DuckDB would
			// answer the column's own spelling, eventID for eventId).
			if names, _ := m["column_names"].([]any); len(names) > 0 {
				out[i], _ = names[len(names)-1].(string)
			}
		default:
			out[i] = fmt.Sprintf("_col%d", i)
		}
	}
	return out, nil
}

// applyNames gives cols the names of selectListNames where it has one (and
// its length is the result's).
func applyNames(trino, cols []string) []string {
	if len(trino) != len(cols) {
		return cols
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c
		if trino[i] != "" {
			out[i] = trino[i]
		}
	}
	return out
}
