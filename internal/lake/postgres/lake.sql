-- cairn's Lake functions on PostgreSQL: Trino's (Lake's) semantics where
-- PostgreSQL lacks the function or its namesake differs. Created at Open
-- (CREATE OR REPLACE); translate.go calls them schema-qualified.
CREATE OR REPLACE FUNCTION lake.element_at(m json, k text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT m ->> k $$;
CREATE OR REPLACE FUNCTION lake.element_at(a anyarray, i bigint) RETURNS anyelement LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN i > 0 THEN a[i] WHEN i < 0 THEN a[coalesce(array_length(a, 1), 0) + i + 1] END $$;
CREATE OR REPLACE FUNCTION lake.cardinality(m json) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE json_typeof(m) WHEN 'array' THEN json_array_length(m) WHEN 'object' THEN (SELECT count(*) FROM json_object_keys(m)) END $$;
CREATE OR REPLACE FUNCTION lake.cardinality(m jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE jsonb_typeof(m) WHEN 'array' THEN jsonb_array_length(m) WHEN 'object' THEN (SELECT count(*) FROM jsonb_object_keys(m)) END $$;
CREATE OR REPLACE FUNCTION lake.cardinality(a anyarray) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(cardinality(a), 0)::bigint $$;
CREATE OR REPLACE FUNCTION lake.map_keys(m json) RETURNS text[] LANGUAGE sql IMMUTABLE AS
$$ SELECT array(SELECT k FROM json_each_text(m) WITH ORDINALITY AS e(k, v, n) ORDER BY n) $$;
CREATE OR REPLACE FUNCTION lake.map_values(m json) RETURNS text[] LANGUAGE sql IMMUTABLE AS
$$ SELECT array(SELECT v FROM json_each_text(m) WITH ORDINALITY AS e(k, v, n) ORDER BY n) $$;
CREATE OR REPLACE FUNCTION lake.contains(a anyarray, e anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN e = ANY(a) THEN true WHEN array_position(a, NULL) IS NOT NULL THEN NULL ELSE false END $$;
CREATE OR REPLACE FUNCTION lake.array_distinct(a anyarray) RETURNS anyarray LANGUAGE sql IMMUTABLE AS
$$ SELECT array(SELECT x FROM (SELECT x, min(n) AS n FROM unnest(a) WITH ORDINALITY AS u(x, n) GROUP BY x) d ORDER BY n) $$;
CREATE OR REPLACE FUNCTION lake.array_max(a anyarray) RETURNS anyelement LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN array_position(a, NULL) IS NULL THEN (SELECT max(x) FROM unnest(a) x) END $$;
CREATE OR REPLACE FUNCTION lake.array_min(a anyarray) RETURNS anyelement LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN array_position(a, NULL) IS NULL THEN (SELECT min(x) FROM unnest(a) x) END $$;
CREATE OR REPLACE FUNCTION lake.slice(a anyarray, s bigint, n bigint) RETURNS anyarray LANGUAGE sql IMMUTABLE AS
$$ SELECT coalesce(a[b:b + n - 1], a[1:0]) FROM (SELECT CASE WHEN s > 0 THEN s WHEN -s > coalesce(array_length(a, 1), 0) THEN coalesce(array_length(a, 1), 0) + 1 ELSE coalesce(array_length(a, 1), 0) + s + 1 END AS b) x $$;
CREATE OR REPLACE FUNCTION lake.json_extract(j text, p text) RETURNS json LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_path_query_first(j::jsonb, p::jsonpath)::json $$;
CREATE OR REPLACE FUNCTION lake.json_extract_scalar(j text, p text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(v) IN ('object', 'array') THEN NULL ELSE v #>> '{}' END FROM (SELECT jsonb_path_query_first(j::jsonb, p::jsonpath) AS v) x $$;
CREATE OR REPLACE FUNCTION lake.is_json_scalar(j text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT jsonb_typeof(j::jsonb) NOT IN ('object', 'array') $$;
CREATE OR REPLACE FUNCTION lake.json_array_contains(j text, v text) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(j::jsonb) = 'array' THEN j::jsonb @> jsonb_build_array(v) END $$;
CREATE OR REPLACE FUNCTION lake.json_array_contains(j text, v numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(j::jsonb) = 'array' THEN j::jsonb @> jsonb_build_array(v) END $$;
CREATE OR REPLACE FUNCTION lake.json_array_contains(j text, v boolean) RETURNS boolean LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(j::jsonb) = 'array' THEN j::jsonb @> jsonb_build_array(v) END $$;
CREATE OR REPLACE FUNCTION lake.json_array_get(j text, i bigint) RETURNS json LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(j::jsonb) = 'array' AND i >= -jsonb_array_length(j::jsonb) THEN (j::jsonb -> i::int)::json END $$;
CREATE OR REPLACE FUNCTION lake.json_array_length(j text) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN jsonb_typeof(j::jsonb) = 'array' THEN jsonb_array_length(j::jsonb) END $$;
CREATE OR REPLACE FUNCTION lake.regexp_extract(s text, p text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT (regexp_match(s, '(' || p || ')'))[1] $$;
CREATE OR REPLACE FUNCTION lake.regexp_extract(s text, p text, g bigint) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE WHEN g = 0 THEN (regexp_match(s, '(' || p || ')'))[1] ELSE (regexp_match(s, p))[g] END $$;
CREATE OR REPLACE FUNCTION lake.date_add(u text, n bigint, t timestamp) RETURNS timestamp LANGUAGE sql IMMUTABLE AS
$$ SELECT t + (n || ' ' || u)::interval $$;
CREATE OR REPLACE FUNCTION lake.date_diff(u text, a timestamp, b timestamp) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE lower(u)
  WHEN 'millisecond' THEN floor(extract(epoch FROM b - a) * 1000)
  WHEN 'second' THEN trunc(extract(epoch FROM b - a))
  WHEN 'minute' THEN trunc(extract(epoch FROM b - a) / 60)
  WHEN 'hour' THEN trunc(extract(epoch FROM b - a) / 3600)
  WHEN 'day' THEN trunc(extract(epoch FROM b - a) / 86400)
  WHEN 'week' THEN trunc(extract(epoch FROM b - a) / 604800)
  WHEN 'month' THEN extract(year FROM age(b, a)) * 12 + extract(month FROM age(b, a))
  WHEN 'quarter' THEN trunc((extract(year FROM age(b, a)) * 12 + extract(month FROM age(b, a))) / 3)
  WHEN 'year' THEN extract(year FROM age(b, a)) END::bigint $$;
CREATE OR REPLACE FUNCTION lake.replace(s text, a text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT replace(s, a, '') $$;
CREATE OR REPLACE FUNCTION lake.last_day(t timestamp) RETURNS date LANGUAGE sql IMMUTABLE AS
$$ SELECT (date_trunc('month', t) + interval '1 month' - interval '1 day')::date $$;
-- json_format: the JSON text without the whitespace between tokens (strings
-- kept as they are), as Trino and DuckDB write it.
CREATE OR REPLACE FUNCTION lake.json_format(j text) RETURNS text LANGUAGE sql IMMUTABLE AS
$$ SELECT regexp_replace(j, '("(?:[^"\\]|\\.)*")|\s+', '\1', 'g') $$;
