#!/usr/bin/env bash
# Integrity validation benchmarks (internal/trail's digests):
# - BenchmarkDigestSign: one hourly digest over 12 log files, signed
#   (RSA-2048, SHA256withRSA) and gzipped;
# - BenchmarkHashLog: SHA-256 of a 1,000-record log file;
# - BenchmarkValidate: validation of 6 hourly digests over 72 log files of
#   1,000 records in a local bucket;
# - side by side with the peer: the same 6 digests and 72 log files in
#   moto_server's S3, validated by `aws cloudtrail validate-logs` (AWS CLI v1)
#   and by `cairn validate-logs`, both reading S3 through AWS_ENDPOINT_URL_S3
#   and public keys through cairn's ListPublicKeys.
#
# Usage: bench/digest.sh     (needs moto_server, aws, python3 with boto3)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench '^Benchmark(DigestSign|HashLog|Validate)$' -benchtime 3s ./internal/trail/ | grep '^Benchmark'

work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
go build -o "$work/cairn" ./cmd/cairn
mkdir -p "$work/data"
CAIRN_BENCH_DIGEST_DIR="$work/data" go test -count=1 -run '^TestWriteBenchData$' ./internal/trail/ >/dev/null
start=$(cat "$work/data/start-time")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
moto_port=$(port)
moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
pids+=($!)
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$moto_port" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
for _ in $(seq 100); do curl -fs "$AWS_ENDPOINT_URL_S3/moto-api/" >/dev/null && break; sleep 0.1; done
# Upload the bucket with each digest's signature metadata.
python3 - "$work/data/bucket" <<'PY'
import boto3, json, os, sys
root = sys.argv[1]
s3 = boto3.client("s3")
s3.create_bucket(Bucket="audit-logs")
for d, _, files in os.walk(root):
    for f in files:
        if f.endswith(".metadata.json"):
            continue
        p = os.path.join(d, f)
        meta = {}
        if os.path.exists(p + ".metadata.json"):
            meta = json.load(open(p + ".metadata.json"))
        s3.put_object(Bucket="audit-logs", Key=os.path.relpath(p, root), Body=open(p, "rb").read(), Metadata=meta)
PY

cairn_port=$(port)
cat >"$work/data/cairn.yaml" <<YAML
accounts:
  - id: "111122223333"
    users:
      - name: bench
        access_keys:
          - {id: $AWS_ACCESS_KEY_ID, secret: $AWS_SECRET_ACCESS_KEY}
YAML
"$work/cairn" serve --listen "127.0.0.1:$cairn_port" --data-dir "$work/data" --config "$work/data/cairn.yaml" >"$work/serve.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$cairn_port/healthz" >/dev/null && break; sleep 0.1; done

args=(--trail-arn arn:aws:cloudtrail:us-east-1:111122223333:trail/main --start-time "$start"
	--s3-bucket audit-logs --endpoint-url "http://127.0.0.1:$cairn_port")
timeit() { local t0 t1; t0=$(date +%s.%N); "$@" >"$work/out.txt" 2>&1 || { cat "$work/out.txt"; exit 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
aws_s=$(timeit aws cloudtrail validate-logs "${args[@]}")
grep -q "72/72 log files valid" "$work/out.txt" || { cat "$work/out.txt"; exit 1; }
cairn_s=$(timeit "$work/cairn" validate-logs "${args[@]}")
grep -q "72/72 log files valid" "$work/out.txt" || { cat "$work/out.txt"; exit 1; }
local_s=$(timeit "$work/cairn" validate-logs "${args[@]}" --local-dir "$work/data/bucket")
echo "validate-logs, 6 digests + 72 log files (47 MB uncompressed) in moto_server S3:"
echo "  aws cloudtrail validate-logs: ${aws_s}s"
echo "  cairn validate-logs:          ${cairn_s}s  (ratio aws/cairn: $(echo "scale=2; $aws_s / $cairn_s" | bc))"
echo "  cairn validate-logs --local-dir: ${local_s}s"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
