#!/usr/bin/env bash
# Lookup and append benchmark of Event History's store: the embedded DuckDB
# store (internal/store/duckdb), or with STORE=postgres the PostgreSQL store
# (internal/store/postgres; the same cases, storetest.BenchLookups). It loads CAIRN_BENCH_EVENTS real-shaped events (one account and region, 90
# days, batches of 10,000, three "needle" records with unique values), then
# prints p50/p99 latency of each lookup kind, the append rate and the bytes
# on disk per event.
#
# Usage: CAIRN_BENCH_EVENTS=1000000 bench/lookup.sh      (default 1,000,000)
#        CAIRN_BENCH_EVENTS=10000000 CAIRN_BENCH_ITER=300 bench/lookup.sh
#        CAIRN_BENCH_KEEP=DIR ... keeps the loaded store in DIR/events-N-rg0 and
#        reuses it next time (10M events take about 9 minutes to load; the
#        append rate is only measured when the store is loaded).
#        STORE=postgres ... the PostgreSQL store; CAIRN_BENCH_POSTGRES=URL uses (and
#        keeps) that database, loaded only when empty; else a server is found or
#        started as the tests do (scripts/postgres.sh; CAIRN_TEST_POSTGRES).
# Needs shared/testdata/real beside the repository (the record shapes).
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_BENCH_EVENTS=${CAIRN_BENCH_EVENTS:-1000000}
iter=${CAIRN_BENCH_ITER:-200}
case ${STORE:=duckdb} in
duckdb | postgres) ;;
*) echo "bench/lookup.sh: STORE is duckdb or postgres, not $STORE" >&2; exit 2 ;;
esac
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "$STORE: loading $CAIRN_BENCH_EVENTS events, then $iter lookups of each kind (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
go test -run '^$' -bench '^BenchmarkLookup$' -benchtime="${iter}x" -timeout 6h -v "./internal/store/$STORE/" >"$out" 2>&1 || {
	cat "$out" >&2
	exit 1
}
echo
grep -o 'LOAD .*' "$out" | tr ' ' '\n' | sed -n 's/=/: /p'
echo
printf "%-30s %9s %9s %11s\n" lookup p50-ms p99-ms cpu-ms/op
awk '/^BenchmarkLookup\/.*p50-ms/ {
	split($1, n, "/"); p50 = ""; p99 = ""; cpu = ""
	for (i = 1; i <= NF; i++) { if ($i == "p50-ms") p50 = $(i-1); if ($i == "p99-ms") p99 = $(i-1); if ($i == "cpu-ms/op") cpu = $(i-1) }
	printf "%-30s %9s %9s %11s\n", n[2], p50, p99, cpu
}' "$out"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
