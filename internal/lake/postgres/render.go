package postgres

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/lake/engine"
)

// How a value becomes the text of a result cell
//
// As the DuckDB engine renders it (duckdb/render.go: Trino's VARCHAR
// casts): results come in PostgreSQL's text format and are rewritten by
// type: timestamps 'YYYY-MM-DD HH:MM:SS.mmm' (with ' UTC' for a timestamp
// with time zone), doubles as Java prints them, booleans true/false,
// arrays [a, b] with null inside, a nested Lake value with its shape
// (struct fields in the schema's order, lower case; maps {k=v} in the
// record's order), any other JSON as compact JSON text with keys sorted (as
// the DuckDB engine's driver gives it).

// PostgreSQL type OIDs the rendering distinguishes.
const (
	oidBool        = 16
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidTimestamp   = 1114
	oidTimestampTZ = 1184
	oidJSONB       = 3802
	oidNumeric     = 1700
)

// arrayElem maps an array type's OID to its element's.
var arrayElem = map[uint32]uint32{1000: oidBool, 1005: 21, 1007: 23, 1016: 20, 1009: 25, 1015: 1043, 1021: oidFloat4,
	1022: oidFloat8, 1115: oidTimestamp, 1185: oidTimestampTZ, 1182: 1082, 1231: 1700, 199: oidJSON, 3807: oidJSONB}

func renderText(v []byte, oid uint32, sh *shape) string {
	s := string(v)
	switch oid {
	case oidBool:
		if s == "t" {
			return "true"
		}
		return "false"
	case oidFloat8, oidFloat4:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return s
		}
		if oid == oidFloat4 {
			return engine.JavaDouble(f, 32)
		}
		return engine.JavaDouble(f, 64)
	case oidNumeric:
		// PostgreSQL's numeric division keeps 16 digits and more
		// (7.0 / 2 is 3.5000000000000000): trailing zeros are dropped,
		// one kept after the point.
		if strings.Contains(s, ".") {
			s = strings.TrimRight(s, "0")
			if strings.HasSuffix(s, ".") {
				s += "0"
			}
		}
		return s
	case oidTimestamp:
		return pgTime(s, false)
	case oidTimestampTZ:
		return pgTime(s, true)
	case oidJSON, oidJSONB:
		if sh != nil {
			var b strings.Builder
			renderShaped(&b, v, sh)
			return b.String()
		}
		return compactJSON(v)
	}
	if e, ok := arrayElem[oid]; ok {
		elems, ok := parseArray(s)
		if !ok {
			return s
		}
		var b strings.Builder
		b.WriteByte('[')
		for i, x := range elems {
			if i > 0 {
				b.WriteString(", ")
			}
			if x == nil {
				b.WriteString("null")
				continue
			}
			b.WriteString(renderText([]byte(*x), e, nil))
		}
		b.WriteByte(']')
		return b.String()
	}
	return s
}

// pgTime rewrites PostgreSQL's timestamp text (ISO; session zone UTC).
func pgTime(s string, tz bool) string {
	layout := "2006-01-02 15:04:05.999999"
	if tz {
		layout += "-07"
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return s
	}
	out := t.UTC().Format("2006-01-02 15:04:05.000")
	if tz {
		out += " UTC"
	}
	return out
}

// parseArray reads a one-dimensional array's text ({a,"b c",NULL}).
func parseArray(s string) ([]*string, bool) {
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil, false
	}
	body := s[1 : len(s)-1]
	var out []*string
	if body == "" {
		return out, true
	}
	i := 0
	for i <= len(body) {
		if i < len(body) && body[i] == '"' {
			var b strings.Builder
			i++
			for i < len(body) && body[i] != '"' {
				if body[i] == '\\' && i+1 < len(body) {
					i++
				}
				b.WriteByte(body[i])
				i++
			}
			i++ // closing quote
			v := b.String()
			out = append(out, &v)
		} else {
			j := strings.IndexByte(body[i:], ',')
			if j < 0 {
				j = len(body) - i
			}
			v := body[i : i+j]
			if v == "NULL" {
				out = append(out, nil)
			} else {
				if strings.HasPrefix(v, "{") {
					return nil, false // nested arrays
				}
				out = append(out, &v)
			}
			i += j
		}
		if i < len(body) && body[i] != ',' {
			return nil, false
		}
		i++
	}
	return out, true
}

// compactJSON renders a JSON value as the DuckDB engine does (its driver
// decodes JSON and Go's encoder writes it back: compact, keys sorted).
func compactJSON(v []byte) string {
	var x any
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&x); err != nil {
		return string(v)
	}
	j, err := json.Marshal(x)
	if err != nil {
		return string(v)
	}
	return string(j)
}

// renderShaped writes a stored nested value (normalize's JSON) with its
// shape.
func renderShaped(b *strings.Builder, raw json.RawMessage, sh *shape) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == 'n' {
		b.WriteString("null")
		return
	}
	switch sh.kind {
	case kStruct:
		m, _, ok := object(raw)
		if !ok {
			b.WriteString(leafText(raw))
			return
		}
		b.WriteByte('{')
		for i, f := range sh.fields {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strings.ToLower(f.name) + "=")
			renderShaped(b, m[f.name], f.typ)
		}
		b.WriteByte('}')
	case kMap:
		m, keys, ok := object(raw)
		if !ok {
			b.WriteString(leafText(raw))
			return
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=")
			renderShaped(b, m[k], &shape{kind: kText})
		}
		b.WriteByte('}')
	case kList:
		var l []json.RawMessage
		if json.Unmarshal(raw, &l) != nil {
			b.WriteString(leafText(raw))
			return
		}
		b.WriteByte('[')
		for i, e := range l {
			if i > 0 {
				b.WriteString(", ")
			}
			renderShaped(b, e, sh.elem)
		}
		b.WriteByte(']')
	case kTime:
		s := leafText(raw)
		if t, err := time.Parse(storedTime, s); err == nil {
			s = t.Format("2006-01-02 15:04:05.000")
		}
		b.WriteString(s)
	default:
		b.WriteString(leafText(raw))
	}
}
