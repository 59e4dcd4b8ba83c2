#!/usr/bin/env bash
# `cairn import --endpoint-url` against the offline import, same files, same
# run (issue 15: through a server within 1.5x of offline).
#
#   1. `cairn import` offline into a fresh data dir (the DuckDB store);
#   2. `cairn serve` on another fresh data dir (its generated responder key),
#      then `cairn import --endpoint-url` of the same files into it: the wall
#      time until every record is acknowledged (durable in the journal), and
#      until the server's store holds them all (its journal's pending
#      records at 0, read from /metrics), the client's CPU and the server's
#      CPU from its start to then, and the bytes each wrote to disk
#      (the offline import's file system outputs, the server's write_bytes
#      from its start to then: store, log and journal), and the server's
#      peak RSS (VmHWM) by then.
# Each line gives the rate and the time as a multiple of the offline import.
#
# Usage: bench/import-server.sh DATA_DIR      (files made by bench/gen, e.g.
#        /work/data/import-1m-year: PER_FILE=500 DAYS=365 bench/import.sh)
#   CAIRN_BIN=path     the cairn binary (default: built from this tree)
#   OFFLINE_BIN=path   the binary of the offline import (default CAIRN_BIN)
#   LOCK=file          hold `flock file` for the measurements only
#   PROFILE=prefix     CPU profiles: prefix.serve (the server's run, with
#                      --cpuprofile) and prefix.client, with their top entries
#   TRACE=file         a runtime trace of the server's run (go tool trace;
#                      -pprof=sync: which stage waits on which)
#   MEMLOG=file        the server's --memlog (its memory by part every 5 s,
#                      Go heap profiles beside it every 15 s)
#   OFFLINE=0          skip the offline import (ratios then not printed)
#   WORK=dir           keep the data dirs there (default: a temporary dir)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bench/import-server.sh DATA_DIR}
work=${WORK:-$(mktemp -d)}
[ -n "${WORK:-}" ] || trap 'rm -rf "$work"' EXIT
mkdir -p "$work"
bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then
	bin=$work/cairn
	nice -n 19 go build -o "$bin" ./cmd/cairn
fi
offline_bin=${OFFLINE_BIN:-$bin}
files=$(find "$data" -name '*.json.gz' | wc -l)
# The lock is held for the measurements only (fd 9), not for the builds.
lock() { if [ -n "${LOCK:-}" ]; then exec 9>>"$LOCK"; flock 9; fi; }
unlock() { if [ -n "${LOCK:-}" ]; then flock -u 9; exec 9>&-; fi; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
now() { date +%s.%N; }
clk=$(getconf CLK_TCK)
cpu_of() { awk -v t="$clk" '{print ($14+$15)/t}' "/proc/$1/stat"; }
written() { awk '$1 == "write_bytes:" {print $2}' "/proc/$1/io"; }
imported() { awk -F'\t' '$1 == "TOTAL" {print $6}' "$1"; }

off_s=0 off_u=0 off_k=0 off_n=0 off_o=0
if [ "${OFFLINE:-1}" != 0 ]; then
	rm -rf "$work/offline"
	lock
	echo "offline import: load before $(load)" >&2
	/usr/bin/time -f '%e %U %S %O' -o "$work/offline.time" \
		"$offline_bin" import --data-dir "$work/offline" --no-progress --output text "$data" >"$work/offline.out" 2>"$work/offline.err"
	echo "offline import: load after $(load)" >&2
	unlock
	read -r off_s off_u off_k off_o <"$work/offline.time"
	off_n=$(imported "$work/offline.out")
	rm -rf "$work/offline"
fi

rm -rf "$work/served"
port=$((20000 + RANDOM % 20000))
ep=http://127.0.0.1:$port
prof=()
[ -z "${PROFILE:-}" ] || prof=(--cpuprofile "$PROFILE.serve")
[ -z "${TRACE:-}" ] || prof+=(--trace "$TRACE")
[ -z "${MEMLOG:-}" ] || prof+=(--memlog "$MEMLOG")
"$bin" serve --data-dir "$work/served" --listen "127.0.0.1:$port" --log-level warn "${prof[@]}" 2>"$work/serve.err" &
spid=$!
stop_server() { kill -INT "$spid" 2>/dev/null && wait "$spid" 2>/dev/null || true; }
trap 'stop_server; [ -n "${WORK:-}" ] || rm -rf "$work"' EXIT
for _ in $(seq 300); do
	curl -fs "$ep/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done
pending() { curl -fs "$ep/metrics" | awk '/^cairn_ingest_journal_pending_records /{print $2}'; }
cprof=()
[ -z "${PROFILE:-}" ] || cprof=(--cpuprofile "$PROFILE.client")
lock
echo "through the server: load before $(load)" >&2
c0=$(cpu_of "$spid")
w0=$(written "$spid")
t0=$(now)
# The journal's records acknowledged and not yet stored, every 0.5 s.
(while sleep 0.5; do pending; done >"$work/pending.log" 2>/dev/null) &
sampler=$!
AWS_SHARED_CREDENTIALS_FILE=$work/served/aws-credentials AWS_DEFAULT_REGION=us-east-1 \
	/usr/bin/time -f '%e %U %S' -o "$work/client.time" \
	"$bin" import --endpoint-url "$ep" --no-progress --output text "${cprof[@]}" "$data" >"$work/client.out" 2>"$work/client.err"
t1=$(now)
while [ "$(pending)" != 0 ]; do sleep 0.05; done
t2=$(now)
c1=$(cpu_of "$spid")
w1=$(written "$spid")
kill "$sampler" 2>/dev/null || true
metrics=$(curl -fs "$ep/metrics")
echo "$metrics" >"$work/metrics.txt"
refused=$(echo "$metrics" | awk '/^cairn_ingest_refused_total/ {s = s " " $0} END {print s}')
# The journal's writes: bytes, fsyncs and the seconds spent in them.
journal=$(echo "$metrics" | awk '
	/^cairn_ingest_journal_bytes_total / {b = $2}
	/^cairn_ingest_journal_fsyncs_total / {n = $2}
	/^cairn_ingest_journal_write_duration_seconds_sum / {s = $2}
	END {if (n > 0) printf "%.0f MB in %d writes and fsyncs, %.1f s in them (%.1f ms each)", b/1e6, n, s, s*1e3/n}')
echo "through the server: load after $(load)" >&2
unlock
# The server's peak RSS from its start to the import's end.
hwm=$(awk '$1 == "VmHWM:" {printf "%.0f MiB", $2/1024}' "/proc/$spid/status")
stop_server
read -r _ cl_u cl_k <"$work/client.time"
srv_n=$(imported "$work/client.out")
awk -v n="$srv_n" -v a="$(echo "$t1 - $t0" | bc)" -v s="$(echo "$t2 - $t0" | bc)" \
	-v sc="$(echo "$c1 - $c0" | bc)" -v cc="$(echo "$cl_u + $cl_k" | bc)" -v off="$off_s" \
	-v offc="$(echo "$off_u + $off_k" | bc)" -v offn="$off_n" -v files="$files" \
	-v offw="$off_o" -v sw="$(echo "$w1 - $w0" | bc)" 'BEGIN {
	printf "%d files\n", files
	if (off > 0) printf "offline import:             %9d records %7.2f s %9.0f records/s  CPU %6.1f s (%.1f us a record)\n", offn, off, offn/off, offc, offc*1e6/offn
	printf "through the server, acked:  %9d records %7.2f s %9.0f records/s", n, a, n/a
	if (off > 0) printf "  %.2fx offline", a/off
	printf "\nthrough the server, stored: %9d records %7.2f s %9.0f records/s", n, s, n/s
	if (off > 0) printf "  %.2fx offline", s/off
	printf "\nserver CPU %.1f s (%.1f us a record), client CPU %.1f s (%.1f us a record)\n", sc, sc*1e6/n, cc, cc*1e6/n
	if (off > 0) printf "written to disk: offline %.0f MB, server %.0f MB\n", offw*512/1e6, sw/1e6
	else printf "written to disk: server %.0f MB\n", sw/1e6
}'
echo "journal: ${journal:-no writes}; server peak RSS (VmHWM) ${hwm:-unknown}"
echo "records acknowledged and not yet stored (0.5 s samples): max $(sort -n "$work/pending.log" | tail -1), mean $(awk '{s+=$1} END {printf "%.0f", s/NR}' "$work/pending.log"); refused calls:${refused:- none}"
if [ -n "${PROFILE:-}" ]; then
	for p in serve client; do
		echo "--- $p profile (top, cumulative) ---"
		go tool pprof -top -cum -nodecount 45 "$bin" "$PROFILE.$p" 2>/dev/null | sed -n '1,55p'
	done
fi
