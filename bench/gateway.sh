#!/usr/bin/env bash
# Recording gateway benchmarks (internal/gateway):
# - BenchmarkGateway: the same S3 calls against moto_server directly and
#   through the gateway, side by side: small GetObject (p50 latency, the
#   targets interleaved; "gateway" discards records, "stored" waits for
#   each record's durable write through the ingest pipeline into DuckDB),
#   the same with 8 concurrent clients (records per store commit), and
#   8 MiB PutObject (throughput).
# - A 1 GiB upload (CAIRN_BENCH_UPLOAD_MB) with the AWS CLI through a real
#   `cairn serve` gateway, reporting cairn's peak RSS before and after.
#
# Usage: bench/gateway.sh     Needs moto_server and the AWS CLI on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench '^BenchmarkGateway$' -benchtime 300x ./internal/gateway/ | grep '^Benchmark' | tee /tmp/gw-bench.$$ |
	awk '{print}'
awk '/GetObject-small-2 / {for (i = 1; i < NF; i++) v[$(i+1)] = $i}
     /PutObject-8MiB\/direct/ {pd=$5} /PutObject-8MiB\/gateway/ {pg=$5} /PutObject-8MiB\/stored/ {ps=$5}
     END {printf "  => added p50 latency: %.2f ms (records discarded), %.2f ms (records durably stored); PutObject throughput %.0f%% / %.0f%% of direct\n",
          (v["gateway-p50-us"]-v["direct-p50-us"])/1000, (v["stored-p50-us"]-v["direct-p50-us"])/1000, pg/pd*100, ps/pd*100}' /tmp/gw-bench.$$
rm -f /tmp/gw-bench.$$

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
go build -o "$work/cairn" ./cmd/cairn
mp=$(free); gp=$(free); ap=$(free)
moto_server -H 127.0.0.1 -p "$mp" >"$work/moto.log" 2>&1 & pids+=($!)
cat >"$work/cairn.yaml" <<YAML
accounts:
  - id: "111111111111"
    users:
      - name: bench
        access_keys:
          - {id: AKIABENCH00000000001, secret: bench-secret}
gateway:
  listen: 127.0.0.1:$gp
  upstreams:
    default: http://127.0.0.1:$mp
YAML
"$work/cairn" serve --listen 127.0.0.1:$ap --data-dir "$work/data" --config "$work/cairn.yaml" >"$work/serve.log" 2>&1 & cpid=$!; pids+=($cpid)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$mp/moto-api/" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$ap/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1 AWS_SHARED_CREDENTIALS_FILE=/dev/null
mb=${CAIRN_BENCH_UPLOAD_MB:-1024}
truncate -s "${mb}M" "$work/big.bin"
aws --endpoint-url "http://127.0.0.1:$gp" s3 mb s3://bench-gw >/dev/null
hwm() { awk '/VmHWM/ {print $2}' /proc/$cpid/status; }
before=$(hwm); t0=$(date +%s.%N)
aws --endpoint-url "http://127.0.0.1:$gp" --cli-read-timeout 600 s3 cp "$work/big.bin" s3://bench-gw/big.bin --only-show-errors
t1=$(date +%s.%N); after=$(hwm)
echo "upload of ${mb} MiB through the gateway: $(python3 -c "print(round($t1-$t0,1))") s; cairn peak RSS ${before} kB -> ${after} kB"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
