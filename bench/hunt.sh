#!/usr/bin/env bash
# Retro hunt benchmark: `cairn hunt` offline over a data dir, with 100 Sigma
# rules and the three built-in Go hunts: --builtin (the 34 built-in rules and
# the Go hunts) plus a folder of 66 more rules, the built-in ones copied again
# (as BenchmarkRetroHunt repeats them). Prints events read, findings, wall
# seconds, CPU seconds (user + system, getrusage through /usr/bin/time),
# CPU µs/event and events/s.
#
# Usage: bench/hunt.sh DATA_DIR
#   RULES=n          Sigma rules in all (default 100; at least the 34 built-in)
#   CAIRN_BIN=path   use this cairn binary (default: built from the tree, at nice 19)
#   LOCK=file        hold this lock (flock) while measuring, so that other
#                    measurements on a shared machine do not overlap it
#   PROFILE=file     write the hunt's CPU profile there (--cpuprofile)
#                    and print its top entries
#   HUNT_ARGS="..."  more arguments for cairn hunt (e.g. --start-time)
#   FINDINGS=file    keep the findings (--output json) there, to compare runs
# A DuckDB data dir of N real-shaped events (one account and region, 89 days):
#   CAIRN_BENCH_EVENTS=N CAIRN_BENCH_DATA_DIR=DIR \
#     go test -run '^$' -bench 'ConsoleEventsPage/none' -benchtime 1x ./cmd/cairn/
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?usage: bench/hunt.sh DATA_DIR}
rules=${RULES:-100}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then
	bin=$work/cairn
	nice -n 19 go build -o "$bin" ./cmd/cairn
fi
builtin=internal/sigma/builtin/rules
nbuiltin=$(ls "$builtin"/*.yml | wc -l)
mkdir "$work/rules"
extra=$((rules - nbuiltin))
i=0
while [ "$i" -lt "$extra" ]; do
	for f in "$builtin"/*.yml; do
		[ "$i" -lt "$extra" ] || break
		cp "$f" "$work/rules/copy$i-$(basename "$f")"
		i=$((i + 1))
	done
done
args=(hunt --data-dir "$data" --builtin --output json)
[ "$extra" -gt 0 ] && args+=(--rules "$work/rules")
# shellcheck disable=SC2206
args+=(${HUNT_ARGS:-})
lock=()
[ -n "${LOCK:-}" ] && lock=(flock "$LOCK")
[ -n "${PROFILE:-}" ] && args+=(--cpuprofile "$PROFILE")
echo "cairn hunt: $rules Sigma rules ($nbuiltin built-in + $extra copies) and the built-in Go hunts over $data" >&2
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores" >&2
"${lock[@]}" /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
	"$bin" "${args[@]}" >"$work/findings.json" 2>"$work/stderr" || {
	cat "$work/stderr" >&2
	exit 1
}
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
read -r wall user sys maxrss <"$work/time"
events=$(grep -o 'in [0-9]* records read' "$work/stderr" | grep -o '[0-9]*' || true)
findings=$(wc -l <"$work/findings.json")
[ -n "${FINDINGS:-}" ] && cp "$work/findings.json" "$FINDINGS"
awk -v e="${events:-0}" -v f="$findings" -v w="$wall" -v u="$user" -v s="$sys" -v m="$maxrss" 'BEGIN {
	cpu = u + s
	printf "events:        %d\n", e
	printf "findings:      %d\n", f
	printf "wall:          %.1f s\n", w
	printf "cpu:           %.1f s (user %.1f, system %.1f)\n", cpu, u, s
	if (e > 0) {
		printf "cpu µs/event:  %.2f\n", cpu * 1e6 / e
		printf "events/s:      %.0f (wall)\n", e / w
		printf "10M events:    %.0f s wall at this rate\n", 1e7 * w / e
	}
	printf "max RSS:       %.0f MB\n", m / 1024
}'
if [ -n "${PROFILE:-}" ]; then
	go tool pprof -top -nodecount=30 "$bin" "$PROFILE" 2>/dev/null | sed -n '4,40p'
fi
