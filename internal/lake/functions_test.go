package lake

import (
	"context"
	"testing"
)

// null stands for a NULL result cell in trinoCases.
const null = "\x00NULL"

// trinoCases are Lake SQL expressions and the value Trino gives them, as a
// Lake result cell renders it (docs/lake.md, "Values"). Every function of
// AWS's list of functions supported by CloudTrail Lake
// (docs/lake-functions.md) has at least one case; the expected values are
// those of Trino's documentation (https://trino.io/docs/current/functions/
// array.html, map.html, json.html, datetime.html, regexp.html,
// aggregate.html), many of them its own examples.
var trinoCases = []struct{ expr, want string }{
	// Maps and arrays (array.html, map.html).
	{`element_at(requestParameters, 'bucketName')`, "GetObject"},
	{`element_at(requestParameters, 'missing')`, null},
	{`element_at(ARRAY['a', 'b', 'c'], 2)`, "b"},
	{`element_at(ARRAY['a', 'b', 'c'], -1)`, "c"},
	{`element_at(ARRAY['a'], 5)`, null},
	{`cardinality(ARRAY[1, 2, 3])`, "3"},
	{`cardinality(requestParameters)`, "1"},
	{`cardinality(ARRAY[])`, "0"},
	{`map_keys(requestParameters)`, "[bucketName]"},
	{`map_values(requestParameters)`, "[GetObject]"},
	{`contains(ARRAY[1, 2, 3], 2)`, "true"},
	{`contains(ARRAY['a'], 'b')`, "false"},
	{`array_distinct(ARRAY[3, 1, 3, 2, 1])`, "[3, 1, 2]"},
	{`array_max(ARRAY[1, 5, 3])`, "5"},
	{`array_min(ARRAY[4, 2, 8])`, "2"},
	{`array_max(ARRAY[1, NULL])`, null},
	{`array_min(ARRAY['b', 'a'])`, "a"},
	{`slice(ARRAY[1, 2, 3, 4], 2, 2)`, "[2, 3]"},
	{`slice(ARRAY[1, 2, 3, 4], -2, 2)`, "[3, 4]"},
	{`slice(ARRAY[1, 2, 3, 4], 3, 5)`, "[3, 4]"},
	{`slice(ARRAY[1, 2, 3, 4], -5, 2)`, "[]"},
	// JSON (json.html).
	{`json_parse('[1, 2]')`, "[1,2]"},
	{`json_format(json_parse('{"a": 1}'))`, `{"a":1}`},
	{`is_json_scalar('1')`, "true"},
	{`is_json_scalar('[1, 2, 3]')`, "false"},
	{`json_extract('{"a": {"b": 1}}', '$.a')`, `{"b":1}`},
	{`json_extract_scalar('[1, 2, 3]', '$[2]')`, "3"},
	{`json_extract_scalar('{"a": {"b": 1}}', '$.a')`, null},
	{`json_extract_scalar('{"a": "x"}', '$.a')`, "x"},
	{`json_array_contains('[1, 2, 3]', 2)`, "true"},
	{`json_array_contains('["a", "b"]', 'b')`, "true"},
	{`json_array_contains('["a", "b"]', 'c')`, "false"},
	{`json_array_get('["a", [3, 9], "c"]', 0)`, `"a"`},
	{`json_array_get('["a", [3, 9], "c"]', 1)`, "[3,9]"},
	{`json_array_get('["a", [3, 9], "c"]', -1)`, `"c"`},
	{`json_array_get('["c", [3, 9], "a"]', -10)`, null},
	{`json_array_get('["a", [3, 9], "c"]', 10)`, null},
	{`json_array_length('[1, 2, 3]')`, "3"},
	{`json_array_length('{"a": 1}')`, null},
	// Dates and times (datetime.html). 2024-01-07 is a Sunday; 2021-01-03
	// is the Sunday of ISO week 53 of 2020.
	{`date(TIMESTAMP '2024-01-07 10:11:12.345')`, "2024-01-07"},
	{`date('2024-01-07')`, "2024-01-07"},
	{`date_trunc('hour', TIMESTAMP '2024-01-07 10:11:12.345')`, "2024-01-07 10:00:00.000"},
	{`date_trunc('month', TIMESTAMP '2024-01-07 10:11:12.345')`, "2024-01-01 00:00:00.000"},
	{`day(TIMESTAMP '2024-01-07 10:11:12.345')`, "7"},
	{`day_of_month(TIMESTAMP '2024-01-07 10:11:12.345')`, "7"},
	{`day_of_week(TIMESTAMP '2024-01-07 10:11:12.345')`, "7"},
	{`dow(TIMESTAMP '2024-01-08 10:11:12.345')`, "1"},
	{`day_of_year(TIMESTAMP '2024-02-01 00:00:00')`, "32"},
	{`doy(TIMESTAMP '2024-12-31 00:00:00')`, "366"},
	{`hour(TIMESTAMP '2024-01-07 10:11:12.345')`, "10"},
	{`minute(TIMESTAMP '2024-01-07 10:11:12.345')`, "11"},
	{`second(TIMESTAMP '2024-01-07 10:11:12.345')`, "12"},
	{`millisecond(TIMESTAMP '2024-01-07 10:11:12.345')`, "345"},
	{`millisecond(eventTime)`, "0"},
	{`month(TIMESTAMP '2024-01-07 10:11:12.345')`, "1"},
	{`quarter(TIMESTAMP '2024-08-07 10:11:12.345')`, "3"},
	{`week(TIMESTAMP '2021-01-03 00:00:00')`, "53"},
	{`week_of_year(TIMESTAMP '2024-01-07 10:11:12.345')`, "1"},
	{`year(TIMESTAMP '2021-01-03 00:00:00')`, "2021"},
	{`year_of_week(TIMESTAMP '2021-01-03 00:00:00')`, "2020"},
	{`yow(TIMESTAMP '2024-01-07 10:11:12.345')`, "2024"},
	{`date_add('day', 3, TIMESTAMP '2024-01-07 10:11:12.345')`, "2024-01-10 10:11:12.345"},
	{`date_add('month', 1, TIMESTAMP '2024-01-31 00:00:00')`, "2024-02-29 00:00:00.000"},
	{`date_add('hour', -2, eventTime)`, "2024-01-02 01:04:05.000"},
	{`date_diff('day', TIMESTAMP '2024-01-01 23:00:00', TIMESTAMP '2024-01-02 01:00:00')`, "0"},
	{`date_diff('hour', TIMESTAMP '2024-01-01 23:00:00', TIMESTAMP '2024-01-02 01:00:00')`, "2"},
	{`from_iso8601_timestamp('2024-01-02T03:04:05Z')`, "2024-01-02 03:04:05.000 UTC"},
	{`from_iso8601_timestamp('2024-01-02T03:04:05.678+02:00')`, "2024-01-02 01:04:05.678 UTC"},
	{`from_iso8601_date('2024-01-02')`, "2024-01-02"},
	{`eventTime`, "2024-01-02 03:04:05.000"},
	{`to_unixtime(eventTime)`, "1.704164645E9"},
	{`last_day_of_month(TIMESTAMP '2024-02-07 10:11:12')`, "2024-02-29"},
	// Other array and string functions cairn maps (array.html,
	// string.html, conversion.html).
	{`array_join(ARRAY['a', 'b'], ',')`, "a,b"},
	{`transform(ARRAY[1, 2], x -> x + 1)`, "[2, 3]"},
	{`sequence(1, 3)`, "[1, 2, 3]"},
	{`format('%s-%d', 'a', 7)`, "a-7"},
	{`replace('abcb', 'b')`, "ac"},
	{`replace('abc', 'b', 'x')`, "axc"},
	// Regular expressions (regexp.html).
	{`regexp_like('1a 2b 14m', '\d+b')`, "true"},
	{`regexp_like('1a 2b 14m', '^\d+b$')`, "false"},
	{`regexp_extract('1a 2b 14m', '\d+')`, "1"},
	{`regexp_extract('1a 2b 14m', '(\d+)([a-z]+)', 2)`, "a"},
	{`regexp_extract('abc', '\d')`, null},
	// Doubles render as Trino casts them to VARCHAR.
	{`CAST(9 AS DOUBLE)`, "9.0"},
	{`CAST(0.25 AS DOUBLE)`, "0.25"},
	{`CAST(12345678 AS DOUBLE)`, "1.2345678E7"},
}

// aggregateCases run over account A's store of the hostile fixture
// (GetObject and PutObject) in one row.
var aggregateCases = []struct{ expr, want string }{
	{`count(*)`, "2"},
	{`sum(length(eventName))`, "18"},
	{`min(eventName)`, "GetObject"},
	{`max(eventName)`, "PutObject"},
	{`avg(length(eventName))`, "9.0"},
	{`approx_distinct(eventName)`, "2"},
	{`count(DISTINCT eventName)`, "2"},
}

// TestTrinoFunctions runs each function of AWS's supported list (and the
// other Trino functions cairn maps) through a Lake statement and checks
// Trino's value.
func TestTrinoFunctions(t *testing.T) {
	for _, kind := range engines {
		t.Run(kind, func(t *testing.T) { testTrinoFunctions(t, kind) })
	}
}

func testTrinoFunctions(t *testing.T, kind string) {
	h := newHostileOn(t, kind)
	ctx := context.Background()
	check := func(stmt, want string) {
		t.Helper()
		res, err := h.l.Query(ctx, acctA, stmt)
		if err != nil {
			t.Errorf("%s: %v", stmt, err)
			return
		}
		if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
			t.Errorf("%s: %d rows; want 1 row of 1 column", stmt, len(res.Rows))
			return
		}
		got := null
		if c := res.Rows[0][0]; c != nil {
			got = *c
		}
		if got != want {
			t.Errorf("%s = %q; want %q", stmt, got, want)
		}
	}
	for _, c := range trinoCases {
		if kind == "postgres" && pgDifferences["function "+c.expr] != "" {
			continue // docs/lake.md, "Lake on PostgreSQL"
		}
		check(`SELECT `+c.expr+` FROM `+h.idA+` WHERE eventName = 'GetObject'`, c.want)
	}
	for _, c := range aggregateCases {
		if kind == "postgres" && pgDifferences["aggregate "+c.expr] != "" {
			continue
		}
		check(`SELECT `+c.expr+` FROM `+h.idA, c.want)
	}
}
