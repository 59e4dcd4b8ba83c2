package duckdb

import (
	"testing"
	"time"
)

// TestRender checks cells rendered as Trino casts values to text (Java's
// Double.toString for doubles), from the DuckDB type names the driver
// reports, field names with spaces and quotes included.
func TestRender(t *testing.T) {
	ts := time.Date(2023, 6, 7, 23, 59, 12, 345e6, time.UTC)
	for _, c := range []struct {
		typ  string
		v    any
		want string
	}{
		{"VARCHAR", "a b", "a b"},
		{"TIMESTAMP", ts, "2023-06-07 23:59:12.345"},
		{"DATE", ts, "2023-06-07"},
		{"TIMESTAMPTZ", ts, "2023-06-07 23:59:12.345 UTC"},
		{"DOUBLE", 9.0, "9.0"},
		{"DOUBLE", 0.001, "0.001"},
		{"DOUBLE", 0.0001, "1.0E-4"},
		{"DOUBLE", 1e7, "1.0E7"},
		{"DOUBLE", -2.5e-7, "-2.5E-7"},
		{"BIGINT", int64(7), "7"},
		{"BOOLEAN", true, "true"},
		{"VARCHAR[]", []any{"a", nil, "b"}, "[a, null, b]"},
		{`STRUCT("b" VARCHAR, "A x" TIMESTAMP, "q""t" INTEGER)`, map[string]any{"b": "x", "A x": ts, `q"t`: nil}, `{b=x, a x=2023-06-07 23:59:12.345, q"t=null}`},
		{`STRUCT("l" STRUCT("z" VARCHAR, "a" VARCHAR)[])`, map[string]any{"l": []any{map[string]any{"z": "1", "a": "2"}}}, "{l=[{z=1, a=2}]}"},
		{"JSON", map[string]any{"a": []any{1.0, "x"}}, `{"a":[1,"x"]}`},
		{"JSON", "s", `"s"`},
		{"UNKNOWN(", map[string]any{"b": 1, "a": 2}, "{a=2, b=1}"},
	} {
		if got := render(c.v, parseType(c.typ)); got != c.want {
			t.Errorf("render(%v as %s) = %q; want %q", c.v, c.typ, got, c.want)
		}
	}
}
