#!/usr/bin/env bash
# bench/lake-rss.sh server|offline BIN LABEL [LAKE_MEMORY_LIMIT] (issue 15): a Lake load of $LOGS into a fresh
# data dir and its peak memory, wall and CPU.
#   server:  StartImport (cairn import --into --endpoint-url) into a fresh cairn serve: the server's VmHWM as the
#            import returns ("at return") and once the server has settled after it (its CPU idle for SETTLE_IDLE
#            seconds, at most SETTLE_MAX: the load's checkpoint follows the return; "settled", the target's figure),
#            end RSS, wall, server CPU, events read a second; --memlog when the binary has it. NOINGEST=1 creates
#            the store without ingestion.
#   offline: cairn import --into of a store created by a server that is then stopped: /usr/bin/time -v's peak
#            RSS, wall, CPU, and --memlog.
# LOGS=dir (required: bench/gen -n 10000000 -per-file 500 -days 365), WORK=dir for the results (default /tmp),
# KEEP=dir moves the loaded data dir and its config there at the end (a Lake database for the query benchmarks:
# bench/lake-limit.sh).
# Run it under a lock to measure: flock /work/measure.lock bench/lake-rss.sh ...
set -euo pipefail
mode=$1; bin=$2; label=$3; mem=${4:-}
case $mode in server | offline) ;; *) echo "usage: bench/lake-rss.sh server|offline BIN LABEL [LIMIT]" >&2; exit 2 ;; esac
logs=${LOGS:?the files to load: bench/gen -n 10000000 -per-file 500 -days 365}
work=${WORK:-/tmp}; out=$work/$label-$(date +%H%M%S)
mkdir -p $out
tmp=$(mktemp -d "$work/tmp.XXXX")
srv=
trap '[ -n "$srv" ] && { kill $srv 2>/dev/null; wait $srv 2>/dev/null; }; rm -rf $tmp' EXIT
. "$(dirname "$0")/lakebench.sh"
lakebench_config $tmp/cairn.yaml "$logs" "$mem"
ml=
# (not `serve -h | grep -q`: grep's early exit can fail the pipe under pipefail)
if [ $mode = server ]; then case $($bin serve -h 2>&1 || true) in *-memlog*) ml="--memlog $out/memlog" ;; esac; fi
$bin serve --data-dir $tmp/dd --config $tmp/cairn.yaml --listen 127.0.0.1:$port --log-level warn $ml 2>$out/serve.log &
srv=$!
until curl -sf $url/healthz >/dev/null; do sleep 0.2; done
arn=$(aws cloudtrail create-event-data-store --endpoint-url $url --name lakerss --retention-period 3653 ${NOINGEST:+--no-start-ingestion} --query EventDataStoreArn --output text)
if [ $mode = offline ]; then
	kill $srv; wait $srv || true; srv=
fi
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee $out/summary
if [ $mode = offline ]; then
	/usr/bin/time -v -o $out/time $bin import --into "$arn" --data-dir $tmp/dd --config $tmp/cairn.yaml --no-progress --output text --memlog $out/memlog "$logs" >$out/import.out 2>&1 || true
	awk -v l=$label -F': ' '/Maximum resident/{r=$2} /Elapsed/{w=$2} /User time/{u=$2} /System time/{s=$2} END{printf "%s: peak RSS %.0f MiB, wall %s, user %s + sys %s CPU-s\n", l, r/1024, w, u, s}' $out/time | tee -a $out/summary
else
	c0=$(awk '{print $14+$15}' /proc/$srv/stat); t0=$(date +%s.%N)
	$bin import --into "$arn" --endpoint-url $url --region us-east-1 "$logs" >$out/import.out 2>&1 || true
	t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$srv/stat)
	hwm=$(awk '/VmHWM/{print $2}' /proc/$srv/status); rss=$(awk '/VmRSS/{print $2}' /proc/$srv/status)
	ev=$(grep -o 'events [0-9]*' $out/import.out | awk '{s+=$2} END {print s+0}')
	hz=$(getconf CLK_TCK)
	awk -v l="$label" -v h=$hwm -v r=$rss -v a=$t0 -v b=$t1 -v c0=$c0 -v c1=$c1 -v hz=$hz -v ev=$ev 'BEGIN{w=b-a; printf "%s: VmHWM at return %.0f MiB, end RSS %.0f MiB, wall %.1f s, server CPU %.1f s, events read %d, %.0f events read/s\n", l, h/1024, r/1024, w, (c1-c0)/hz, ev, ev/w}' | tee -a $out/summary
	# What follows the import's return (the load's checkpoint, the feed's
	# catch-up and its checkpoint) is the server's too: wait until it has
	# settled, SETTLE_IDLE (5) seconds in a row each under 5% of a core of
	# server CPU, at most SETTLE_MAX (120) seconds, and read VmHWM again. The
	# settled figure is the one issue 15's target is judged by.
	idle=0 waited=0 c=$c1
	while [ $idle -lt ${SETTLE_IDLE:-5} ] && [ $waited -lt ${SETTLE_MAX:-120} ]; do
		sleep 1; waited=$((waited + 1))
		n=$(awk '{print $14+$15}' /proc/$srv/stat)
		if [ $(((n - c) * 100)) -lt $((hz * 5)) ]; then idle=$((idle + 1)); else idle=0; fi
		c=$n
	done
	hwm2=$(awk '/VmHWM/{print $2}' /proc/$srv/status); rss2=$(awk '/VmRSS/{print $2}' /proc/$srv/status)
	awk -v l="$label" -v h=$hwm2 -v r=$rss2 -v w=$waited -v i=$idle -v c0=$c1 -v c1=$c -v hz=$hz 'BEGIN{printf "%s: VmHWM settled %.0f MiB, RSS %.0f MiB, %s after %d s (server CPU %.1f s since the return)\n", l, h/1024, r/1024, (i >= '"${SETTLE_IDLE:-5}"' ? "idle" : "NOT idle"), w, (c1-c0)/hz}' | tee -a $out/summary
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $out/summary
# Lake's bytes (lake.duckdb and its WAL) against the .json.gz's, for the
# share of the records the load took (an offline load refuses the records
# of accounts other than the store's: its TOTAL line's read and imported).
lake=$(find $tmp/dd -maxdepth 1 -name 'lake.duckdb*' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
gz=$(find -L "$logs" -name '*.json.gz' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
read_imported=$(awk -F'\t' '$1 == "TOTAL" {print $5, $6}' $out/import.out)
awk -v l="$label" -v a=$lake -v b=$gz -v ri="$read_imported" 'BEGIN{split(ri, x, " ");
	if (x[1] > 0 && x[2] > 0) printf "%s: lake.duckdb %d bytes, %.1f bytes an event of %d loaded, %.3fx the .json.gz (%d bytes for %d records, prorated)\n", l, a, a/x[2], x[2], a/(b*x[2]/x[1]), b, x[1];
	else printf "%s: lake.duckdb %d bytes (%d bytes of .json.gz)\n", l, a, b}' | tee -a $out/summary
tail -3 $out/import.out
if [ -n "${KEEP:-}" ]; then
	[ -n "$srv" ] && { kill $srv; wait $srv || true; srv=; }
	rm -rf "$KEEP" && mkdir -p "$KEEP" && mv $tmp/dd $tmp/cairn.yaml "$KEEP"/
fi
