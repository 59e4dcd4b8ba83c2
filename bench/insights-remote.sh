#!/usr/bin/env bash
# cairn insights through a server against offline, on a generated corpus
# (bench/gen: the real records repeated with fresh eventIDs; two thirds are
# of account 123837392027 in us-east-1, the account the remote runs sign
# as). Times three runs of the detector with --dry-run (nothing stored, so
# every run does the same work):
#   offline              cairn insights --data-dir
#   remote, in server    cairn insights --endpoint-url (StartInsightsRun, polled)
#   remote, LookupEvents the same with the client of OLD (default: the
#                        commit before the server ran the detector), which
#                        read the history through LookupEvents
#
# Usage: bench/insights-remote.sh [RECORDS] [OLD]   (default 45000 e902cd3)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-45000}
old=${2:-e902cd3}
tmp=$(mktemp -d)
srv=
trap '[ -n "$srv" ] && kill $srv 2>/dev/null && wait $srv 2>/dev/null; rm -rf "$tmp"' EXIT
go build -o "$tmp/cairn" ./cmd/cairn
mkdir "$tmp/old" && git archive "$old" | tar -x -C "$tmp/old"
(cd "$tmp/old" && go build -o "$tmp/cairn-old" ./cmd/cairn)
go run ./bench/gen -n "$n" -out "$tmp/logs" >/dev/null
cat >"$tmp/cairn.yaml" <<YAML
event_history:
  retention_days: 0
accounts:
  - id: "123837392027"
    users:
      - name: responder
        access_keys:
          - id: AKIABENCH00000000001
            secret: bench-secret
YAML
c() { "$tmp/cairn" "$@"; }
c import --data-dir "$tmp/dd" --config "$tmp/cairn.yaml" --no-progress --output text "$tmp/logs" | tail -1 || true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(echo "$(date +%s.%N) - $s" | bc) s"; }
for i in 1 2; do
  echo "offline:              $(t c insights --data-dir "$tmp/dd" --config "$tmp/cairn.yaml" --no-progress --dry-run)"
done
port=$((40000 + RANDOM % 20000))
"$tmp/cairn" serve --data-dir "$tmp/dd" --config "$tmp/cairn.yaml" --listen "127.0.0.1:$port" --log-level warn 2>"$tmp/serve.log" &
srv=$!
until curl -sf "http://127.0.0.1:$port/healthz" >/dev/null; do sleep 0.2; done
sleep 10 # the server's start-up work (the Lake ingesting the store) settles
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 \
  AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
for i in 1 2; do
  echo "remote, in server:    $(t c insights --endpoint-url "http://127.0.0.1:$port" --no-progress --dry-run)"
  echo "remote, LookupEvents: $(t "$tmp/cairn-old" insights --endpoint-url "http://127.0.0.1:$port" --no-progress --dry-run)"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
