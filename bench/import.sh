#!/usr/bin/env bash
# Import benchmark. Over the same generated CloudTrail .json.gz files, in
# one run (so the figures share the machine's load):
#   - gunzip alone (zcat, as many processes as cores): the floor,
#   - cairn's importer into a sink that discards the records (gunzip, split
#     into records, audit.Extract): bench/cmd/importparse,
#   - DuckDB's read_json through the Go driver: bench/duckread,
#   - DuckDB importing them into a table of a file (9 columns + the raw
#     JSON, sorted by time, checkpointed): bench/duckread -import,
#   - jq -c '.Records[]',
#   - and `cairn import` into a fresh data dir (DuckDB store) when CAIRN_BIN
#     names a cairn binary.
# The data set repeats the real records of shared/testdata/real with fresh
# eventIDs, 2,000 records per gzipped file in the S3 layout (bench/gen).
# The last lines give each tool's rate as a multiple of cairn import's.
#
# Usage: bench/import.sh [RECORDS]      (default 1000000)
#   DATA=dir   keep the generated files in dir and reuse them next time
#   PER_FILE=n records per file (default 2000)
#   DAYS=n     spread the records' eventTime over n days, oldest first, as a
#              year of a trail's logs is (default 0: the copies keep the real
#              records' own times, so every batch adds to the same hours)
#   CAIRN_BIN=path/to/cairn   also time a full import into a store
#   JQ=0       skip jq (47 s of a quiet run at 1M: under a measurement lock
#              held for minutes, the time goes to the runs compared)
#   PROFILE=file              with CAIRN_BIN, write the import's CPU profile
#                             there and print its top entries
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
per_file=${PER_FILE:-2000}
days=${DAYS:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
data=${DATA:-$work/data}
if [ ! -f "$data/.records-$n-$per_file-$days" ]; then
	rm -rf "$data"
	go run ./bench/gen -n "$n" -per-file "$per_file" -days "$days" -out "$data" -src ../shared/testdata/real >&2
	touch "$data/.records-$n-$per_file-$days"
fi
go build -o "$work/importparse" ./bench/cmd/importparse
go build -o "$work/duckread" ./bench/duckread
gz_bytes=$(find "$data" -name '*.json.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
cores=$(nproc)

now() { date +%s.%N; }
rows=()
row() { # name records seconds
	rows+=("$(awk -v name="$1" -v n="$2" -v s="$3" -v b="$gz_bytes" \
		'BEGIN {printf "%-34s %10d %8.2f %12.0f %10.1f", name, n, s, n/s, b/1e6/s}')")
}

t0=$(now)
find "$data" -name '*.json.gz' -print0 | xargs -0 -P "$cores" -n 50 zcat >/dev/null
row "gunzip only (zcat x$cores)" "$n" "$(echo "$(now) - $t0" | bc)"

out=$("$work/importparse" "$data" 2>/dev/null)
rec=$(sed 's/.*records=\([0-9]*\).*/\1/' <<<"$out")
sec=$(sed 's/.*seconds=\([0-9.]*\).*/\1/' <<<"$out")
row "cairn importer (discard sink)" "$rec" "$sec"

# "duckdb read_json: N records in S.SSs: R records/s" (its own clock, like importparse's)
duck=$("$work/duckread" "$data/**/*.json.gz")
row "duckdb read_json (unnest Records)" "$(awk '{print $3}' <<<"$duck")" "$(awk '{sub(/s:$/, "", $6); print $6}' <<<"$duck")"

# "duckdb import: N records in S.SSs: R records/s, B bytes"
duckimp=$("$work/duckread" -import "$work/duck.duckdb" "$data/**/*.json.gz")
row "duckdb import (9 cols+raw, sorted)" "$(awk '{print $3}' <<<"$duckimp")" "$(awk '{sub(/s:$/, "", $6); print $6}' <<<"$duckimp")"
duck_bytes=$(awk '{print $9}' <<<"$duckimp")
rm -f "$work/duck.duckdb" "$work/duck.duckdb.wal"

if [ "${JQ:-1}" != 0 ]; then
	t0=$(now)
	jq_n=$(find "$data" -name '*.json.gz' -print0 | xargs -0 zcat | jq -c '.Records[]' | wc -l)
	row "jq -c '.Records[]' (1 process)" "$jq_n" "$(echo "$(now) - $t0" | bc)"
fi

if [ -n "${CAIRN_BIN:-}" ]; then
	printf 'accounts:\n  - id: "123456789012"\n    users:\n      - name: b\n        access_keys:\n          - id: AKIABENCH00000000001\n            secret: s\nevent_history:\n  retention_days: 0\n' >"$work/cairn.yaml"
	prof=()
	if [ -n "${PROFILE:-}" ]; then
		prof=(--cpuprofile "$PROFILE")
	fi
	t0=$(now)
	"$CAIRN_BIN" import "${prof[@]}" --data-dir "$work/dd" --config "$work/cairn.yaml" --no-progress --output json "$data" >"$work/report.json"
	cairn_sec=$(echo "$(now) - $t0" | bc)
	cairn_n=$(jq .Imported "$work/report.json")
	row "cairn import (into the store)" "$cairn_n" "$cairn_sec"
	store_mb=$(du -sm "$work/dd" | cut -f1)
	# Importing again adds nothing.
	t0=$(now)
	"$CAIRN_BIN" import --data-dir "$work/dd" --config "$work/cairn.yaml" --no-progress --output json "$data" >"$work/report2.json"
	row "cairn import again (duplicates)" "$(jq .Duplicates "$work/report2.json")" "$(echo "$(now) - $t0" | bc)"
	if [ "$(jq .Imported "$work/report2.json")" != 0 ]; then
		echo "second import added records" >&2
		exit 1
	fi
fi

echo
echo "$n records in $(find "$data" -name '*.json.gz' | wc -l) files, $(awk -v b="$gz_bytes" 'BEGIN {printf "%.1f", b/1e6}') MB of .json.gz; $cores cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s %8s %12s %10s\n' tool records seconds records/s "MB/s (gz)"
printf '%s\n' "${rows[@]}"
echo "duckdb import's file: $(awk -v d="$duck_bytes" -v b="$gz_bytes" 'BEGIN {printf "%.0f MB (%.2fx the .json.gz)", d/1e6, d/b}')"
if [ -n "${store_mb:-}" ]; then
	echo "cairn data dir: ${store_mb} MB on disk ($(awk -v m="$store_mb" -v b="$gz_bytes" 'BEGIN {printf "%.2f", m*1048576/b}')x the .json.gz)"
	echo "rate as a multiple of cairn import's:"
	for r in "${rows[@]}"; do
		awk -v c="$cairn_n" -v s="$cairn_sec" '{name=substr($0, 1, 34); rate=substr($0, 55, 13)+0; printf "  %s %6.2fx\n", name, rate/(c/s)}' <<<"$r"
	done
fi
if [ -n "${PROFILE:-}" ] && [ -n "${CAIRN_BIN:-}" ]; then
	echo
	go tool pprof -top -nodecount=25 "$CAIRN_BIN" "$PROFILE" 2>/dev/null | sed -n '1,32p'
fi
