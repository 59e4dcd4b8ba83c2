#!/usr/bin/env bash
# Insights benchmarks: the detector's cost per event on a week of realistic
# traffic and on 10,000 series, the cost of reading what it needs from a
# stored record, and the memory a series takes. There is no peer to run side
# by side: AWS's detector is not available to run.
#
# Usage: bench/insights.sh [BENCHTIME]     (default 2000000x)
set -euo pipefail
cd "$(dirname "$0")/.."
bt=${1:-2000000x}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench . -benchtime "$bt" -benchmem ./internal/insights/ | grep -E '^(Benchmark|ok|FAIL)'
go test -run 'TestMemoryPerSeries' -v -count=1 ./internal/insights/ | grep -E 'memory per series|ok|FAIL'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
