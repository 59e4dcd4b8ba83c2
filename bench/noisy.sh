#!/usr/bin/env bash
# Noisy-neighbour benchmark (issue 11): one account's LookupEvents latency
# through a real `cairn serve`, alone and while a second account floods
# ImportRecords from many connections and runs Lake cross joins. Prints the
# quiet account's p50/p95/p99 and failures, and how many of the noisy
# account's calls were accepted or throttled, plus the server's peak RSS.
#
# Usage: bench/noisy.sh      (CAIRN_NOISY_IMPORTERS=100, CAIRN_NOISY_JOINS=10,
#                             CAIRN_NOISY_SECONDS=30; CAIRN_BIN=path runs that
#                             cairn binary instead of building this tree's,
#                             e.g. an earlier commit's for a before/after)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
if [ -n "${CAIRN_BIN:-}" ]; then cp "$CAIRN_BIN" "$work/cairn"; else go build -o "$work/cairn" ./cmd/cairn; fi
go build -o "$work/noisy" ./bench/cmd/noisy
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/cairn.yaml" <<YAML
event_history:
  retention_days: 0
accounts:
  - id: "111111111111"
    users:
      - name: noisy
        access_keys:
          - {id: AKIANOISY00000000001, secret: noisy-secret}
  - id: "222222222222"
    users:
      - name: quiet
        access_keys:
          - {id: AKIAQUIET00000000001, secret: quiet-secret}
YAML
"$work/cairn" serve --listen "127.0.0.1:$port" --data-dir "$work/data" --config "$work/cairn.yaml" --log-level warn >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$work/noisy" -endpoint "http://127.0.0.1:$port" -noisy-key AKIANOISY00000000001:noisy-secret \
	-quiet-key AKIAQUIET00000000001:quiet-secret -importers "${CAIRN_NOISY_IMPORTERS:-100}" \
	-joins "${CAIRN_NOISY_JOINS:-10}" -duration "${CAIRN_NOISY_SECONDS:-30}s"
echo "server peak RSS: $(awk '/VmHWM/ {printf "%.0f MB", $2/1024}' /proc/$pid/status)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
