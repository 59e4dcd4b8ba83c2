#!/usr/bin/env bash
# CloudTrail Lake benchmark (internal/lake), in one run so the figures share
# the machine's load:
#   - load: CloudTrail .json.gz files read by cairn's importer into a Lake
#     event data store (Lake's load: Go reads each record's top level,
#     DuckDB's Appender and from_json build the columns): events/s (wall)
#     and events per CPU-second, bytes on disk per event;
#   - queries: GROUP BY eventName, GROUP BY eventSource and the top 10
#     userIdentity.arn, through Lake (rewrite, check, sandboxed run) and
#     asked of DuckDB's read_json over the same .json.gz files (the peer,
#     through duckdb-go; also through the `duckdb` CLI when it is
#     installed). The benchmark first checks both answer the same;
#   - PutAuditEvents: calls of 100 events signed with SigV4 from 4
#     concurrent clients to a server on loopback: events/s acknowledged
#     (each durable and queryable when its call answers).
# The data set repeats the real records of shared/testdata/real with fresh
# eventIDs, 2,000 records per gzipped file in the S3 layout (bench/gen).
#
# Usage: bench/lake.sh [EVENTS]        (default 1000000; docs/benchmarks.md
#                                       also has 10000000)
#   DATA=dir   keep the generated files in dir and reuse them next time
#              (a folder with a .records-EVENTS marker is reused as is)
#   ITER=n     runs of each query (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
iter=${ITER:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=${DATA:-$work/data}
if [ ! -f "$data/.records-$n" ]; then
	rm -rf "$data"
	go run ./bench/gen -n "$n" -out "$data" -src ../shared/testdata/real >&2
	touch "$data/.records-$n"
fi
echo "Lake: $n events from $data (load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores)"
out=$work/bench.txt
CAIRN_LAKE_BENCH_DATA=$data go test -run '^$' -bench '^BenchmarkLake$' -benchtime "${iter}x" -timeout 6h ./internal/lake/ >"$out" 2>&1 || {
	cat "$out" >&2
	exit 1
}
echo
grep -o 'LOAD .*' "$out" | tr ' ' '\n' | sed -n 's/=/: /p'
echo
printf "%-26s %12s %16s %8s\n" query lake-ms read_json-ms ratio
awk '/^BenchmarkLake\// {
	split($1, p, "/"); sub(/-[0-9]+$/, "", p[3]); ms[p[2] "/" p[3]] = $3 / 1e6; if (!(p[3] in seen)) { seen[p[3]] = 1; order[++k] = p[3] }
} END {
	for (i = 1; i <= k; i++) { q = order[i]; l = ms["lake/" q]; d = ms["duckdb-read_json/" q]
		printf "%-26s %12.1f %16.1f %7.0fx\n", q, l, d, (l > 0 ? d / l : 0) }
}' "$out"

if command -v duckdb >/dev/null; then
	echo
	echo "duckdb CLI $(duckdb --version | cut -d' ' -f1), read_json over the same files:"
	recs="(SELECT unnest(Records) AS r FROM read_json('$data/**/*.json.gz', columns = {Records: 'STRUCT(eventName VARCHAR, eventSource VARCHAR, userIdentity STRUCT(arn VARCHAR))[]'}, maximum_object_size = 268435456))"
	for q in "groupby-eventName|SELECT r.eventName, COUNT(*) AS n FROM $recs GROUP BY 1 ORDER BY n DESC" \
		"groupby-eventSource|SELECT r.eventSource, COUNT(*) AS n FROM $recs GROUP BY 1 ORDER BY n DESC" \
		"top10-userIdentity.arn|SELECT r.userIdentity.arn, COUNT(*) AS n FROM $recs WHERE r.userIdentity.arn IS NOT NULL GROUP BY 1 ORDER BY n DESC LIMIT 10"; do
		t0=$(date +%s.%N)
		duckdb -c "${q#*|}" >/dev/null
		printf "%-26s %16.1f ms\n" "${q%%|*}" "$(echo "($(date +%s.%N) - $t0) * 1000" | bc)"
	done
fi

echo
go test -run '^$' -bench '^BenchmarkPutAuditEvents$' -benchtime 300x -timeout 1h ./internal/lake/ >"$out" 2>&1 || {
	cat "$out" >&2
	exit 1
}
awk '/^BenchmarkPutAuditEvents/ { for (i = 1; i <= NF; i++) if ($i == "events/s") printf "PutAuditEvents (100 events/call, 4 clients, SigV4): %s events/s, %.1f ms/call\n", $(i-1), $3 / 1e6 }' "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
