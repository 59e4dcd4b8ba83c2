package postgres

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/duckdb"
)

// shape is the type of a Lake column or of a part of it, as far as storing,
// reading and rendering it needs: the same structure the DuckDB engine's
// columns have (duckdb.Columns).
type shape struct {
	kind   shapeKind
	fields []field // kStruct, in the schema's order
	elem   *shape  // kList
}

type shapeKind int

const (
	kText shapeKind = iota
	kBool
	kTime
	kMap
	kStruct
	kList
)

type field struct {
	name string
	typ  *shape
}

// get returns the field named name (ASCII case-insensitively, as DuckDB
// resolves field names).
func (s *shape) get(name string) (field, bool) {
	if s == nil || s.kind != kStruct {
		return field{}, false
	}
	for _, f := range s.fields {
		if strings.EqualFold(f.name, name) {
			return f, true
		}
	}
	return field{}, false
}

// lakeColumn is one column of lake_events.
type lakeColumn struct {
	name string
	typ  *shape
}

// schema is Lake's columns in table order (eds_id and eventJson excluded)
// and their index by lower-case name.
type schema struct {
	cols  []lakeColumn
	index map[string]int
}

func newSchema() (*schema, error) {
	s := &schema{index: map[string]int{}}
	for _, c := range duckdb.Columns() {
		t, err := parseShape(c.Type)
		if err != nil {
			return nil, fmt.Errorf("lake/postgres: column %s: %w", c.Name, err)
		}
		s.index[strings.ToLower(c.Name)] = len(s.cols)
		s.cols = append(s.cols, lakeColumn{name: c.Name, typ: t})
	}
	return s, nil
}

func (s *schema) lookup(name string) (lakeColumn, bool) {
	switch strings.ToLower(name) {
	case "eventjson":
		return lakeColumn{name: "eventJson", typ: &shape{kind: kText}}, true
	case "eventjsonchecksum":
		return lakeColumn{name: "eventJsonChecksum", typ: &shape{kind: kText}}, true
	}
	i, ok := s.index[strings.ToLower(name)]
	if !ok {
		return lakeColumn{}, false
	}
	return s.cols[i], true
}

// parseShape reads a column type of duckdb.Columns.
func parseShape(t string) (*shape, error) {
	switch t {
	case "VARCHAR":
		return &shape{kind: kText}, nil
	case "BOOLEAN":
		return &shape{kind: kBool}, nil
	case "TIMESTAMP":
		return &shape{kind: kTime}, nil
	}
	dec := json.NewDecoder(strings.NewReader(t))
	sh, err := readShape(dec)
	if err != nil {
		return nil, err
	}
	return sh, nil
}

func readShape(dec *json.Decoder) (*shape, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case string:
		switch {
		case v == "VARCHAR":
			return &shape{kind: kText}, nil
		case v == "TIMESTAMP":
			return &shape{kind: kTime}, nil
		case strings.HasPrefix(v, "MAP("):
			return &shape{kind: kMap}, nil
		}
		return nil, fmt.Errorf("unknown type %q", v)
	case json.Delim:
		switch v {
		case '{':
			s := &shape{kind: kStruct}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				name, _ := k.(string)
				t, err := readShape(dec)
				if err != nil {
					return nil, err
				}
				s.fields = append(s.fields, field{name: name, typ: t})
			}
			_, err := dec.Token()
			return s, err
		case '[':
			e, err := readShape(dec)
			if err != nil {
				return nil, err
			}
			_, err = dec.Token()
			return &shape{kind: kList, elem: e}, err
		}
	}
	return nil, fmt.Errorf("unreadable type")
}

// normalize writes the JSON value raw as column shape sh stores it (what
// DuckDB's from_json yields): a struct with every field of its shape in
// order (null when missing), a map's values as strings (a nested value as
// its JSON text), a list's elements, a leaf as a string (a timestamp as
// 'YYYY-MM-DD HH:MM:SS.ffffff'). A value of another JSON type than the
// shape's is null. It reports false when raw is not valid JSON.
func normalize(b *bytes.Buffer, raw json.RawMessage, sh *shape) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		b.WriteString("null")
		return
	}
	switch sh.kind {
	case kStruct:
		m, _, ok := object(raw)
		if !ok {
			b.WriteString("null")
			return
		}
		b.WriteByte('{')
		for i, f := range sh.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, f.name)
			b.WriteByte(':')
			v, ok := m[f.name]
			if !ok {
				b.WriteString("null")
				continue
			}
			normalize(b, v, f.typ)
		}
		b.WriteByte('}')
	case kMap:
		m, keys, ok := object(raw)
		if !ok {
			b.WriteString("null")
			return
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			normalize(b, m[k], &shape{kind: kText})
		}
		b.WriteByte('}')
	case kList:
		var l []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &l) != nil {
			b.WriteString("null")
			return
		}
		b.WriteByte('[')
		for i, e := range l {
			if i > 0 {
				b.WriteByte(',')
			}
			normalize(b, e, sh.elem)
		}
		b.WriteByte(']')
	case kTime:
		var s string
		if json.Unmarshal(raw, &s) != nil {
			b.WriteString("null")
			return
		}
		t, ok := parseTime(s)
		if !ok {
			b.WriteString("null")
			return
		}
		writeString(b, t.Format(storedTime))
	default:
		writeString(b, leafText(raw))
	}
}

// leafText is a JSON value as a VARCHAR: a string's text, any other value
// as its compact JSON text.
func leafText(raw json.RawMessage) string {
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	var c bytes.Buffer
	if json.Compact(&c, raw) == nil {
		return c.String()
	}
	return string(raw)
}

// object reads a JSON object's members and their keys in order (a key
// met twice keeps its last value and its first place).
func object(raw json.RawMessage) (map[string]json.RawMessage, []string, bool) {
	if raw[0] != '{' {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, nil, false
	}
	m := map[string]json.RawMessage{}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		name, _ := k.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, false
		}
		if _, seen := m[name]; !seen {
			keys = append(keys, name)
		}
		m[name] = v
	}
	return m, keys, true
}

// writeString writes s as a JSON string; a NUL becomes U+FFFD, as in
// validText: PostgreSQL's jsonb refuses \u0000, and json's operators fail
// on it, so a record holding one would fail its batch or its queries.
func writeString(b *bytes.Buffer, s string) {
	j, _ := json.Marshal(strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD"))
	b.Write(j)
}

// storedTime is how a timestamp inside a nested column is stored (text
// PostgreSQL casts to timestamp).
const storedTime = "2006-01-02 15:04:05.999999"

// parseTime reads a CloudTrail time (RFC 3339, a zone converted to UTC, no
// zone meaning UTC).
func parseTime(s string) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	for _, l := range []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
