#!/usr/bin/env bash
# An offline import's sealed blocks compressed again by a server (issue 15;
# docs/store.md, "Sealing at import speed, compressed later"):
#   1. `cairn import` offline into a fresh data dir: its wall time and
#      Event History's bytes (events.duckdb, .keys, the segments) against
#      the .json.gz's;
#   2. `cairn serve` over that data dir until cairn_store_sealed_pending_blocks
#      is 0: the time it took (the server paces itself to about a quarter
#      of a core) and Event History's bytes then.
#
# Usage: bench/recompress.sh DIR     (.json.gz files, e.g. made by bench/gen:
#        PER_FILE=500 DAYS=365 bench/import.sh keeps them with DATA=dir)
#   CAIRN_BIN=path   the cairn binary (default: built from this tree)
#   LOCK=file        hold `flock file` for the import and the server's run
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bench/recompress.sh DIR}
work=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && { kill $srv 2>/dev/null; wait $srv 2>/dev/null; }; rm -rf "$work"' EXIT
bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then
	go build -o "$work/cairn" ./cmd/cairn
	bin=$work/cairn
fi
printf 'accounts:\n  - id: "123456789012"\n    users:\n      - name: b\n        access_keys:\n          - id: AKIABENCH00000000001\n            secret: s\nevent_history:\n  retention_days: 0\n' >"$work/cairn.yaml"
gz=$(find "$data" -name '*.json.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
eh() { # Event History's bytes in data dir $1
	find "$1/events.duckdb" "$1/events.duckdb.keys" "$1/events.duckdb.sealed" -type f -printf '%s\n' 2>/dev/null | awk '{s+=$1} END {print s+0}'
}
port=$((20000 + RANDOM % 20000))
exec 9>"${LOCK:-/dev/null}"
[ -n "${LOCK:-}" ] && flock 9
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(date +%s.%N)
"$bin" import --data-dir "$work/dd" --config "$work/cairn.yaml" --no-progress --output json "$data" >"$work/report.json"
t1=$(date +%s.%N)
b1=$(eh "$work/dd")
awk -v s="$(echo "$t1 - $t0" | bc)" -v n="$(jq .Imported "$work/report.json")" -v b="$b1" -v g="$gz" \
	'BEGIN {printf "offline import:  %d records in %.2f s (%.0f/s); Event History %d bytes, %.3fx the .json.gz (%d bytes)\n", n, s, n/s, b, b/g, g}'
"$bin" serve --data-dir "$work/dd" --config "$work/cairn.yaml" --listen 127.0.0.1:$port --log-level warn 2>"$work/serve.log" &
srv=$!
until curl -sf http://127.0.0.1:$port/healthz >/dev/null; do sleep 0.2; done
t2=$(date +%s.%N)
c0=$(awk '{print $14+$15}' /proc/$srv/stat)
while :; do
	p=$(curl -sf http://127.0.0.1:$port/metrics | awk '/^cairn_store_sealed_pending_blocks /{print $2}')
	[ "${p:-0}" = 0 ] && break
	sleep 1
done
t3=$(date +%s.%N)
c1=$(awk '{print $14+$15}' /proc/$srv/stat)
kill $srv
wait $srv || true
srv=
b2=$(eh "$work/dd")
awk -v s="$(echo "$t3 - $t2" | bc)" -v c="$(( (c1 - c0) ))" -v hz="$(getconf CLK_TCK)" -v b="$b2" -v g="$gz" \
	'BEGIN {printf "recompressed by the server: %.1f s, %.1f server CPU-s; Event History %d bytes, %.3fx the .json.gz\n", s, c/hz, b, b/g}'
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
