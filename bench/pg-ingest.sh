#!/usr/bin/env bash
# Ingest benchmark of the PostgreSQL store from one and from several nodes on
# one database (issue 18: "adding a second node adds throughput"). For each
# node count, BenchmarkAppendNodes opens that many stores (each its own
# connection pool, as a `cairn serve` node has) on a fresh database and has
# them append CAIRN_BENCH_EVENTS real-shaped records together, in batches of
# 10,000, one batch at a time per node; it prints the records/s of all nodes,
# the WAL written and the database's growth per record.
#
# Usage: bench/pg-ingest.sh                          (100,000 events; 1 and 2 nodes)
#        CAIRN_BENCH_EVENTS=1000000 NODES="1 2 3" bench/pg-ingest.sh
#   LOCK=file   hold this lock (flock) while measuring (not while building)
#   DROP=a,b    drop these indexes first (what each costs an append)
# The PostgreSQL server is found as the tests find it (CAIRN_TEST_POSTGRES,
# scripts/postgres.sh). Needs shared/testdata/real beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_BENCH_EVENTS=${CAIRN_BENCH_EVENTS:-100000}
export CAIRN_REQUIRE_POSTGRES=1
export CAIRN_BENCH_DROP_INDEXES=${DROP:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
nice -n 19 go test -c -o "$work/postgres.test" ./internal/store/postgres/
lock=()
[ -n "${LOCK:-}" ] && lock=(flock "$LOCK")
run() {
	for n in ${NODES:-1 2}; do
		echo "nodes=$n events=$CAIRN_BENCH_EVENTS load average: $(cut -d' ' -f1-3 /proc/loadavg)"
		(cd internal/store/postgres && CAIRN_BENCH_NODES=$n "$work/postgres.test" -test.run '^$' \
			-test.bench '^BenchmarkAppendNodes$' -test.benchtime 1x -test.v) | grep -o 'INGEST .*' || return 1
	done
	echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
export -f run
export work NODES
"${lock[@]}" bash -c run
