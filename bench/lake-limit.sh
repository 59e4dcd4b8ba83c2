#!/usr/bin/env bash
# bench/lake-limit.sh DATA_DIR BIN LIMIT... (issue 15): what lake.memory_limit costs Lake's queries. Each
# query below runs through `BIN query --data-dir DATA_DIR` (Lake opened in the process, as the config's first
# account, lake.threads as the server's: 1) once at each LIMIT in turn, the limits' order rotated each round; a
# round is one hold of $LOCK when it is set. Prints each run's wall time and peak RSS (/usr/bin/time) and checks
# that every limit gives the same answer.
#   DATA_DIR: a loaded data dir with its cairn.yaml beside it (KEEP=dir bench/lake-rss.sh ... keeps one: DIR/dd,
#             DIR/cairn.yaml); the store is the data dir's only event data store (STORE=id for another).
#   ROUNDS=n (default 2), LOCK=file (e.g. /work/measure.lock), QUERIES="name ..." (default all), WORK=dir
#   (default a temporary folder: the answers and the configs).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bench/lake-limit.sh DATA_DIR BIN LIMIT..." >&2; exit 2; }
dir=$1 bin=$2; shift 2
limits=("$@")
dd=$dir/dd
[ -d "$dd" ] && [ -f "$dir/cairn.yaml" ] || { echo "$dir: want dd/ and cairn.yaml (KEEP=$dir bench/lake-rss.sh)" >&2; exit 2; }
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
# The first store of Lake's registry (lake.json: {"stores":[{"id":...}], ...}).
store=${STORE:-$(find "$dd" -name lake.json -exec cat {} + | tr -d ' \n\t' | sed -n 's/^.*"stores":\[{"id":"\([0-9a-f-]\{36\}\)".*$/\1/p' | head -1)}
[ -n "$store" ] || { echo "no event data store found under $dd: set STORE=id" >&2; exit 2; }
for l in "${limits[@]}"; do
	# The kept config with lake.memory_limit set to $l (the lake: section's other keys kept).
	awk -v l="$l" '/^lake:/ {print; print "  memory_limit: " l; lake = 1; next} /^[^ ]/ {lake = 0} lake && /^  memory_limit:/ {next} {print}' \
		"$dir/cairn.yaml" >"$work/cairn-$l.yaml"
done
# name|SQL ({T}: the store). The first four are the benchmarks' group-bys (bench/lake.sh, BenchmarkEngines); the
# last four hold every event in a hash table or a sort: at 10M they need more than the limit (DuckDB spills).
queries=(
	"groupby-eventName|SELECT eventName, COUNT(*) AS n FROM {T} GROUP BY eventName ORDER BY n DESC, eventName"
	"top10-userIdentity.arn|SELECT userIdentity.arn, COUNT(*) AS n FROM {T} WHERE userIdentity.arn IS NOT NULL GROUP BY userIdentity.arn ORDER BY n DESC, 1 LIMIT 10"
	"top10-sourceIP-eventName|SELECT sourceIPAddress, eventName, COUNT(*) AS n FROM {T} GROUP BY sourceIPAddress, eventName ORDER BY n DESC, 1, 2 LIMIT 10"
	"range-groupby-eventName|SELECT eventName, COUNT(*) AS n FROM {T} WHERE eventTime >= '2024-10-15 13:25:00' AND eventTime < '2025-02-14 08:10:00' GROUP BY eventName ORDER BY n DESC, eventName"
	"count-distinct-eventID|SELECT COUNT(DISTINCT eventID) FROM {T}"
	"groupby-eventID-top10|SELECT eventID, COUNT(*) AS n FROM {T} GROUP BY eventID ORDER BY n DESC, eventID LIMIT 10"
	"self-join-eventID|SELECT COUNT(*) FROM {T} a JOIN {T} b ON a.eventID = b.eventID"
	"sort-all-offset-5M|SELECT eventID, eventTime FROM {T} ORDER BY eventTime, eventID LIMIT 20 OFFSET 5000000"
)
echo "store $store, limits ${limits[*]}, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-5s %-26s %-7s %9s %10s %s\n" round query limit wall-s peak-MiB answer
for r in $(seq 1 "${ROUNDS:-2}"); do
	n=${#limits[@]}
	order=()
	for i in $(seq 0 $((n - 1))); do order+=("${limits[$(((i + r - 1) % n))]}"); done
	round() {
		for q in "${queries[@]}"; do
			name=${q%%|*} sql=${q#*|}
			[ -n "${QUERIES:-}" ] && [[ " $QUERIES " != *" $name "* ]] && continue
			for l in "${order[@]}"; do
				out=$work/$name-$l-$r
				/usr/bin/time -f '%e %M' -o "$out.time" "$bin" query --data-dir "$dd" --config "$work/cairn-$l.yaml" --output csv \
					"${sql//\{T\}/$store}" >"$out.csv" 2>"$out.err" || echo "FAILED: $(head -c 300 "$out.err")" >>"$out.csv"
				read -r wall kb <"$out.time"
				printf "%-5s %-26s %-7s %9.2f %10.0f %s\n" "$r" "$name" "$l" "$wall" "$((kb / 1024))" "$(md5sum <"$out.csv" | cut -c1-8)"
			done
		done
	}
	if [ -n "${LOCK:-}" ]; then
		exec 9>"$LOCK"
		flock 9
		round
		flock -u 9
		exec 9>&-
	else
		round
	fi
done
# Every limit's answer the same (a failed query's is its error).
for q in "${queries[@]}"; do
	name=${q%%|*}
	[ -n "${QUERIES:-}" ] && [[ " $QUERIES " != *" $name "* ]] && continue
	[ "$(md5sum "$work/$name"-*.csv | cut -d' ' -f1 | sort -u | wc -l)" = 1 ] ||
		echo "$name: the answers differ between runs (see $work/$name-*.csv)"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
