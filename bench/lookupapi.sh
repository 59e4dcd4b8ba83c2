#!/usr/bin/env bash
# LookupEvents end to end (issue 19): BenchmarkLookupAPI (cmd/cairn) drives
# `cairn serve` with aws-sdk-go-v2 (SigV4) on a data dir filled by `cairn
# import` from .json.gz files of 500 records in the S3 layout (bench/gen),
# and on one filled live (ImportRecords through a running server), each served
# once until the catch-up over its records is over (kept so). It prints
# p50/p99, the server's and the SDK client's CPU a request and the bytes of
# the page (the response's Content-Length) per lookup kind, then as many
# lookups again by the same client reading each page to its last byte
# without decoding it ("wire": p50, p99, the client's CPU a request), and
# as many again from a loopback server answering with that kind's page as
# cairn sent it, stored once ("canned": the SDK client's own floor for the
# page, whatever the server does),
# then the same with 8 clients at once (requests/s, the clients' own CPU a
# request, RSS), then each kind's first lookups after a restart.
#
# Usage: bench/lookupapi.sh                      (1M records over 31 days, both stores)
#        CAIRN_BENCH_API_EVENTS=10000000 bench/lookupapi.sh
#        CAIRN_BENCH_API_STORES=imported ...     (or live; default "imported live")
#        CAIRN_BENCH_API_KEEP=DIR ...            keeps the filled data dirs in DIR and
#            reuses them (default /tmp/cairn-lookupapi); each run serves a copy
#        CAIRN_BENCH_API_DAYS=n                  the records' times over n days (default 31)
#        CAIRN_BENCH_API_SEAL=1                  `cairn compact` after the fill: the complete days
#            sealed (docs/store.md, "The sealed tier"); kept apart from the unsealed stores
#        CAIRN_BENCH_API_WIRE=0                  without the "wire" and "canned" passes
#        CAIRN_BENCH_ITER=n                      lookups per kind (default 200; 8 clients
#            send 10n, the restart rounds are n/4)
#        CAIRN_BENCH_BIN=path                    a test binary of cmd/cairn (go test -c)
#            instead of building one
#        CAIRN_BENCH_API_RESTARTS=n              restarts the server n times in the restart pass
#            (default 1; p50/p99 over all their rounds, each restart's own in its RESTART lines)
#        CAIRN_BENCH_API_RESTART_SECONDS=s       each restart's rounds go on until s seconds after
#            the server answered (default 0: n/4 rounds); with it, the server first runs the
#            same rounds for n x s seconds before its restarts ("steady rounds")
#        CAIRN_BENCH_API_MEMORY_LIMIT=512MB      event_history.memory_limit of the served store
#        CAIRN_BENCH_API_THREADS=n               event_history.threads of the served store (DuckDB threads)
#        CAIRN_BENCH_API_SERVE_LOG=file          keeps the server's log there (every start appends)
#        CAIRN_BENCH_API_LOG_LEVEL=debug         the server's log level (debug: each commit's
#            wait and duration, "duckdb: commit")
#        CAIRN_BENCH_LOCK=file                   take this flock(1) lock for the measurement
#            only (building, filling and copying run at nice 19 without it)
# Needs shared/testdata/real beside the repository (the record shapes).
set -euo pipefail
cd "$(dirname "$0")/.."
export CAIRN_BENCH_API_EVENTS=${CAIRN_BENCH_API_EVENTS:-1000000}
export CAIRN_BENCH_API_DAYS=${CAIRN_BENCH_API_DAYS:-31}
export CAIRN_BENCH_API_KEEP=${CAIRN_BENCH_API_KEEP:-/tmp/cairn-lookupapi}
iter=${CAIRN_BENCH_ITER:-200}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${CAIRN_BENCH_BIN:-}
if [ -z "$bin" ]; then
	bin=$tmp/cairn.test
	nice -n 19 go test -c -o "$bin" ./cmd/cairn/
fi
bin=$(realpath "$bin")
lock=()
[ -n "${CAIRN_BENCH_LOCK:-}" ] && lock=(flock "$CAIRN_BENCH_LOCK")
mkdir -p "$CAIRN_BENCH_API_KEEP"
cd cmd/cairn # bench/gen and the real records are found from here
for store in ${CAIRN_BENCH_API_STORES:-imported live}; do
	live=
	[ "$store" = live ] && live=1
	sealed=
	[ "${CAIRN_BENCH_API_SEAL:-}" = 1 ] && sealed=-sealed
	kept=$CAIRN_BENCH_API_KEEP/$store$sealed-$CAIRN_BENCH_API_EVENTS-days$CAIRN_BENCH_API_DAYS
	if [ ! -e "$kept/complete" ]; then
		echo "filling $kept (nice 19)..." >&2
		CAIRN_BENCH_API_LIVE=$live CAIRN_BENCH_API_FILL_ONLY=1 nice -n 19 "$bin" -test.run '^$' \
			-test.bench '^BenchmarkLookupAPI$' -test.benchtime 1x -test.timeout 6h >"$tmp/fill.out" 2>&1 || {
			cat "$tmp/fill.out" >&2
			exit 1
		}
		grep -oE '(LIVE|SETTLE) .*' "$tmp/fill.out" >"$kept/filled.txt" || true
	fi
	rm -rf "$tmp/data"
	nice -n 19 cp -r "$kept" "$tmp/data"
	out=$tmp/$store.out
	CAIRN_BENCH_API_LIVE=$live CAIRN_BENCH_API_DIR=$tmp/data "${lock[@]}" sh -c \
		'echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"; "$@"; echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"' sh \
		"$bin" -test.run '^$' -test.bench '^BenchmarkLookupAPI$' -test.benchtime "${iter}x" -test.timeout 1h -test.v >"$out" 2>&1 || {
		cat "$out" >&2
		exit 1
	}
	echo
	echo "== $store store: $CAIRN_BENCH_API_EVENTS records over $CAIRN_BENCH_API_DAYS days ($kept)"
	cat "$kept/filled.txt" 2>/dev/null || true
	grep -E '^load average|LOAD|RESTART' "$out" | sed 's/^ *//'
	printf "%-22s %9s %9s %11s %11s %8s %8s %8s %11s %9s %9s %11s %10s %10s\n" lookup p50-ms p99-ms cpu-ms/req client-ms/req page-kB req/s rss-MB peak-rss-MB \
		wire-p50 wire-p99 wire-cli-ms canned-p50 canned-p99
	awk '/^BenchmarkLookupAPI\/.*p50-ms/ && !/restart/ && !/rounds/ {
		split($1, n, "/"); sub(/-[0-9]+$/, "", n[2]); delete v
		for (i = 3; i < NF; i++) v[$(i+1)] = $i
		printf "%-22s %9s %9s %11s %11s %8s %8s %8s %11s %9s %9s %11s %10s %10s\n", n[2], v["p50-ms"], v["p99-ms"], v["cpu-ms/op"], v["client-cpu-ms/op"], v["page-kB"], v["req/s"], v["rss-MB"], v["peak-rss-MB"],
			v["wire-p50-ms"], v["wire-p99-ms"], v["wire-client-cpu-ms/op"], v["canned-p50-ms"], v["canned-p99-ms"]
	}' "$out"
	if grep -q '^BenchmarkLookupAPI/rounds' "$out"; then
		echo "steady rounds (the restart pass's rounds on the server before its restarts, as long):"
		awk '/^BenchmarkLookupAPI\/rounds/ {
			for (i = 3; i < NF; i++) if ($(i+1) ~ /-p50-ms$/) { k = $(i+1); sub(/-p50-ms$/, "", k); p50[k] = $i; order[++n] = k }
			for (i = 3; i < NF; i++) if ($(i+1) ~ /-p99-ms$/) { k = $(i+1); sub(/-p99-ms$/, "", k); p99[k] = $i }
			for (j = 1; j <= n; j++) printf "  %-20s %9s %9s\n", order[j], p50[order[j]], p99[order[j]]
		}' "$out"
	fi
	echo "first lookups after a restart (${CAIRN_BENCH_API_RESTARTS:-1} x $((iter / 4)) rounds or ${CAIRN_BENCH_API_RESTART_SECONDS:-0} s; answering after $(awk '/^BenchmarkLookupAPI\/restart/ { for (i = 3; i < NF; i++) if ($(i+1) == "ready-s") print $i }' "$out") s):"
	awk '/^BenchmarkLookupAPI\/restart/ {
		for (i = 3; i < NF; i++) if ($(i+1) ~ /-p50-ms$/) { k = $(i+1); sub(/-p50-ms$/, "", k); p50[k] = $i; order[++n] = k }
		for (i = 3; i < NF; i++) if ($(i+1) ~ /-p99-ms$/) { k = $(i+1); sub(/-p99-ms$/, "", k); p99[k] = $i }
		for (j = 1; j <= n; j++) printf "  %-20s %9s %9s\n", order[j], p50[order[j]], p99[order[j]]
	}' "$out"
done
