#!/usr/bin/env bash
# Import benchmark: cairn import (into a fresh data dir, DuckDB store) beside
# DuckDB's read_json and jq over the same .json.gz files, in the same run.
# Usage: bench/import.sh [RECORDS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/cairn" ./cmd/cairn
go run ./bench/gen -n "$n" -out "$work/data" -src ../shared/testdata/real
gz_mb=$(du -sm "$work/data" | cut -f1)
printf 'accounts:\n  - id: "123456789012"\n    users:\n      - name: b\n        access_keys:\n          - id: AKIABENCH00000000001\n            secret: s\nevent_history:\n  retention_days: 0\n' >"$work/cairn.yaml"

t0=$(date +%s.%N)
"$work/cairn" import --data-dir "$work/dd" --config "$work/cairn.yaml" --no-progress --output json "$work/data" >"$work/report.json"
t1=$(date +%s.%N)
cairn_s=$(echo "$t1 - $t0" | bc)
imported=$(jq .Imported "$work/report.json")

go run ./bench/duckread "$work/data/**/*.json.gz" | tee "$work/duck.txt"
duck_rate=$(grep -o '[0-9]* records/s' "$work/duck.txt" | cut -d' ' -f1)

t0=$(date +%s.%N)
jq_n=$(find "$work/data" -name '*.json.gz' -print0 | xargs -0 zcat | jq -c '.Records[]' | wc -l)
t1=$(date +%s.%N)
jq_s=$(echo "$t1 - $t0" | bc)

store_mb=$(du -sm "$work/dd/events.duckdb" | cut -f1)
echo
echo "records: $n  (.json.gz: ${gz_mb} MB)"
printf '%-28s %12s %10s\n' tool records/s MB/s
printf '%-28s %12.0f %10.1f\n' "cairn import (into store)" "$(echo "$imported / $cairn_s" | bc -l)" "$(echo "$gz_mb / $cairn_s" | bc -l)"
printf '%-28s %12.0f\n' "duckdb read_json (count)" "$duck_rate"
printf '%-28s %12.0f %10.1f\n' "jq -c '.Records[]'" "$(echo "$jq_n / $jq_s" | bc -l)" "$(echo "$gz_mb / $jq_s" | bc -l)"
echo "cairn store: ${store_mb} MB on disk ($(echo "scale=2; $store_mb / $gz_mb" | bc)x the .json.gz)"
