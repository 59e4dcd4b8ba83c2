#!/usr/bin/env bash
# Lookup and append benchmark of the PostgreSQL store (internal/store/postgres):
# loads CAIRN_BENCH_EVENTS real-shaped events (one account and region, 90
# days, batches of 10,000, three "needle" records with unique values), then
# prints p50/p99 latency of each lookup kind, the append rate and the bytes
# on disk per event.
#
# Usage: CAIRN_BENCH_EVENTS=1000000 bench/lookup-postgres.sh      (default 1,000,000)
#        CAIRN_BENCH_EVENTS=10000000 CAIRN_BENCH_ITER=300 bench/lookup-postgres.sh
#        CAIRN_BENCH_POSTGRES=URL uses (and keeps) that database: loaded only when empty.
# Needs shared/testdata/real and a PostgreSQL server (scripts/postgres.sh; CAIRN_TEST_POSTGRES).
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_BENCH_EVENTS=${CAIRN_BENCH_EVENTS:-1000000}
iter=${CAIRN_BENCH_ITER:-200}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "loading $CAIRN_BENCH_EVENTS events, then $iter lookups of each kind (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
go test -run '^$' -bench '^BenchmarkLookup$' -benchtime="${iter}x" -timeout 6h -v ./internal/store/postgres/ >"$out" 2>&1 || {
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
