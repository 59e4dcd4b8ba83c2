#!/usr/bin/env bash
# RSS of `cairn serve` while N connections at once (default 100) each send
# an 8 MiB body to the ImportRecords target as a caller cairn cannot name
# (issue 11 item 4): anonymous, unknown-key, bad-signature (a known key ID,
# a wrong secret, no X-Amz-Content-Sha256: the server needs the body).
# Prints the server's RSS before, its peak (VmHWM) after each kind, and
# the answers.
#
# Usage: bench/anonymous.sh [N]     CAIRN_BIN=path runs another build.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
bin=${CAIRN_BIN:-}
if [ -z "$bin" ]; then go build -o "$work/cairn" ./cmd/cairn; bin=$work/cairn; fi
go build -o "$work/anonbody" ./bench/cmd/anonbody
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/cairn.yaml" <<YAML
accounts:
  - id: "111111111111"
    users:
      - name: alice
        access_keys:
          - {id: AKIAALICE00000000001, secret: alice-secret-key}
YAML
for kind in anonymous unknown-key bad-signature; do
	rm -rf "$work/data"
	"$bin" serve --listen 127.0.0.1:$port --data-dir "$work/data" --config "$work/cairn.yaml" --log-level error &
	pid=$!
	until curl -sf http://127.0.0.1:$port/healthz >/dev/null; do sleep 0.1; done
	sleep 1
	before=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
	"$work/anonbody" -endpoint http://127.0.0.1:$port -n "$n" -as "$kind"
	peak=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
	printf '%-14s RSS before %4d MiB, peak %4d MiB: +%d MiB\n' "$kind" $((before / 1024)) $((peak / 1024)) $(((peak - before) / 1024))
	kill $pid; wait $pid 2>/dev/null || true; pid=
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
