#!/usr/bin/env bash
# Lake load rate (issue 15: at least 100k events/s), both ways a user loads
# CloudTrail logs into an event data store, on the same generated files
# (bench/gen: the real records repeated with fresh eventIDs):
#   StartImport          cairn import --into ID --endpoint-url (the server
#                        loads; the client polls GetImport); the server's
#                        CPU time is read from /proc
#   import --into        cairn import --into ID --data-dir, no server
# and, in the same run, the peer: DuckDB itself loading the same files into
# a table of Lake's schema (bench/duckread -lake: the same columns and
# types, eventJson zstd, one INSERT … SELECT from read_json, each record
# parsed once by from_json, checkpointed; DuckDB's default threads, one a
# core), the same with one thread, and without eventJson (read_json's
# reader straight into Lake's types: the engine's ceiling for this schema).
# Prints events/s (wall) and µs of CPU an event for each, and cairn's
# rates as multiples of the peer's.
#
# Usage: bench/lake-load.sh [EVENTS]    (default 200000)
#   MEASURE="flock /work/measure.lock"  runs each measured command under it
#   (builds and data generation run before, at nice 19)
#   CAIRN=path  measure this cairn binary instead of building one
#   LOGS=dir    load a copy of these files (bench/gen's, of EVENTS records)
#   instead of generating them
#   PEER=0      skip the DuckDB peer (to alternate cairn builds)
#   OFFLINE=0   skip import --into without a server
#   PUT=N       PutAuditEvents calls (of 100 events, 4 clients) at N events/s
#   beside StartImport (bench/cmd/putaudit; a busy channel during a load);
#   the server's CPU then includes them (PUT=0, the default: none)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200000}
measure=${MEASURE:-}
tmp=$(mktemp -d)
srv=
put=
trap '[ -n "$put" ] && kill $put 2>/dev/null; [ -n "$srv" ] && kill $srv 2>/dev/null && wait $srv 2>/dev/null; rm -rf "$tmp"' EXIT
if [ -n "${CAIRN:-}" ]; then cp "$CAIRN" "$tmp/cairn"; else nice -n 19 go build -o "$tmp/cairn" ./cmd/cairn; fi
peer=${PEER:-1}
[ "$peer" = 0 ] || nice -n 19 go build -o "$tmp/duckread" ./bench/duckread
[ "${PUT:-0}" = 0 ] || nice -n 19 go build -o "$tmp/putaudit" ./bench/cmd/putaudit
if [ -n "${LOGS:-}" ]; then cp -r "$LOGS" "$tmp/logs"; else nice -n 19 go run ./bench/gen -n "$n" -out "$tmp/logs" >/dev/null; fi
. bench/lakebench.sh
lakebench_config "$tmp/cairn.yaml" "$tmp/logs"
"$tmp/cairn" serve --data-dir "$tmp/dd" --config "$tmp/cairn.yaml" --listen "127.0.0.1:$port" --log-level warn 2>"$tmp/serve.log" &
srv=$!
until curl -sf "$url/healthz" >/dev/null; do sleep 0.2; done
eds() { aws cloudtrail create-event-data-store --endpoint-url "$url" --name "$1" --retention-period 3653 \
  --query EventDataStoreArn --output text; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, clock ticks
hz=$(getconf CLK_TCK)
events() { grep -o 'events [0-9]*' | awk '{s += $2} END {print s + 0}'; }
# measured CMD...: runs CMD under $measure, writing the time it started
# (once the lock is held, so that waiting for it is not timed) to $tmp/t0.
measured() { $measure bash -c 'date +%s.%N >"$0"; exec "$@"' "$tmp/t0" "$@"; }
report() { # name events seconds cpu-seconds
  awk -v name="$1" -v n="$2" -v s="$3" -v c="$4" 'BEGIN {
    printf "%-14s %9d events %7.2f s %9.0f events/s %6.1f µs of CPU an event\n", name, n, s, (s > 0 ? n / s : 0), (n > 0 ? c * 1e6 / n : 0) }'
}
echo "Lake load: $n events ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"

arn=$(eds startimport)
if [ "${PUT:-0}" != 0 ]; then
  # Started inside the measured command, once the lock is held.
  beside() { "$tmp/putaudit" -endpoint "$url" -key AKIABENCH00000000001:bench-secret -account 123837392027 -rate "$PUT" >"$tmp/put.txt" 2>&1 & p=$!
    "$@"; kill -TERM $p; wait $p || true; }
  export -f beside; export tmp url PUT
  c0=$(cpu $srv)
  got=$(measured bash -c 'beside "$@"' _ "$tmp/cairn" import --into "$arn" --endpoint-url "$url" "$tmp/logs" | events)
else
  c0=$(cpu $srv)
  got=$(measured "$tmp/cairn" import --into "$arn" --endpoint-url "$url" "$tmp/logs" | events)
fi
t1=$(date +%s.%N); c1=$(cpu $srv); t0=$(cat "$tmp/t0")
report StartImport "$got" "$(echo "$t1 - $t0" | bc)" "$(echo "($c1 - $c0) / $hz" | bc -l)" | tee "$tmp/startimport.txt"
[ "${PUT:-0}" = 0 ] || echo "  beside it, $(cat "$tmp/put.txt")"

arn=$(eds offline)
kill $srv; wait $srv 2>/dev/null || true; srv=
if [ "${OFFLINE:-1}" != 0 ]; then
# Without a server the import is of one account (the config's): the
# generated files' records of other accounts are counted and refused, not
# loaded, and the exit status says so.
measured /usr/bin/time -f '%U %S %M' -o "$tmp/time" "$tmp/cairn" import --into "$arn" --data-dir "$tmp/dd" --config "$tmp/cairn.yaml" \
  --no-progress --output text "$tmp/logs" >"$tmp/offline.txt" 2>&1 || true
t1=$(date +%s.%N); t0=$(cat "$tmp/t0")
read_n=$(grep -o 'of [0-9]* read' "$tmp/offline.txt" | grep -o '[0-9]*' | tail -1)
refused=$(grep -o '[0-9]* records rejected' "$tmp/offline.txt" | grep -o '^[0-9]*' | tail -1)
report "import --into" "$(( ${read_n:-$n} - ${refused:-0} ))" "$(echo "$t1 - $t0" | bc)" "$(tail -1 "$tmp/time" | awk '{print $1 + $2}')" | tee "$tmp/offline-rate.txt"
echo "  (${refused:-0} of ${read_n:-$n} records of other accounts refused, not loaded; peak RSS $(( $(tail -1 "$tmp/time" | awk '{print $3}') / 1024 )) MB)"
fi
rm -rf "$tmp/dd"

if [ "$peer" != 0 ]; then
  # "duckdb lake load: N records in S.SSs: R records/s, C µs of CPU a record, B bytes"
  # (its own clock and CPU, from the INSERT to the end of its CHECKPOINT)
  duck() { # name duckread-flags...
    local name=$1; shift
    rm -f "$tmp/peer.duckdb" "$tmp/peer.duckdb.wal"
    local out
    out=$($measure "$tmp/duckread" -lake "$tmp/peer.duckdb" "$@" "$tmp/logs/**/*.json.gz")
    report "$name" "$(awk '{print $4}' <<<"$out")" "$(awk '{sub(/s:$/, "", $7); print $7}' <<<"$out")" \
      "$(awk '{print $4 * $10 / 1e6}' <<<"$out")" | tee "$tmp/$name.txt"
    echo "  ($(awk '{printf "%.0f bytes an event", $16 / $4}' <<<"$out"))"
  }
  duck "DuckDB"
  duck "DuckDB-1thread" -threads 1
  duck "DuckDB-noJSON" -no-eventjson
  rm -f "$tmp/peer.duckdb" "$tmp/peer.duckdb.wal"
  echo
  rate() { awk '{print $(NF-7)}' "$tmp/$1.txt"; }
  for who in startimport offline-rate; do
    [ -f "$tmp/$who.txt" ] || continue
    for p in DuckDB DuckDB-1thread DuckDB-noJSON; do
      awk -v a="$(rate $who)" -v b="$(rate $p)" -v w="$who" -v p="$p" 'BEGIN {
        printf "%-14s %5.2fx the events/s of %s\n", (w == "startimport" ? "StartImport" : "import --into"), a / b, p }'
    done
  done
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
