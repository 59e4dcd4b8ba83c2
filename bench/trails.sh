#!/usr/bin/env bash
# Trail benchmarks (internal/trail):
# - BenchmarkSelect: the real records through 100 trails with many selectors
#   (and through one trail of each kind alone)
#   (basic with 250 data resources, advanced with 5x4 field selectors,
#   default), "spread" over the records' accounts and "one-account" (every
#   trail evaluates every selector: the worst case);
# - BenchmarkDeliver: records delivered by 10 logging trails as gzipped log
#   files (klauspost gzip) to a local bucket, each file written atomically
#   and fsynced.
#
# Usage: bench/trails.sh            (CAIRN_BENCH_RECORDS=100000 for delivery)
# Needs shared/testdata/real beside the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${CAIRN_BENCH_RECORDS:-100000}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench '^BenchmarkSelect$' -benchtime 2s ./internal/trail/ | grep '^Benchmark'
go test -run '^$' -bench '^BenchmarkDeliver$' -benchtime "${n}x" ./internal/trail/ | grep '^Benchmark' |
	awk '{ print; printf "  => %.0f records/s delivered by each of 10 trails (%.1f us per record and trail)\n", 1e9/$3*10/10, $3/10/1000 }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
