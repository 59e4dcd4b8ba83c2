#!/usr/bin/env bash
# bench/lake-rss-server.sh BIN LABEL [LAKE_MEMORY_LIMIT] (issue 15): StartImport of the 10M set into a fresh cairn serve
# (cairn import --into --endpoint-url), the server's VmHWM, wall, CPU; --memlog when the binary has it.
# LOGS=dir (required), WORK=dir for the results (default /tmp), NOINGEST=1 creates the store without
# ingestion. Run it under a lock to measure: flock /work/measure.lock bench/lake-rss-server.sh ...
set -euo pipefail
bin=$1; label=$2; mem=${3:-}
logs=${LOGS:?the files to load: bench/gen -n 10000000 -per-file 500 -days 365}
work=${WORK:-/tmp}; out=$work/$label-$(date +%H%M%S)
mkdir -p $out
tmp=$(mktemp -d "$work/tmp.XXXX")
{
echo "event_history:"
echo "  retention_days: 0"
echo "lake:"
echo "  import_roots: [\"$logs\"]"
[ -n "$mem" ] && echo "  memory_limit: $mem"
cat <<YAML
accounts:
  - id: "123837392027"
    users:
      - name: responder
        responder: true
        access_keys:
          - id: AKIABENCH00000000001
            secret: bench-secret
YAML
} >$tmp/cairn.yaml
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
port=$((40000 + RANDOM % 20000)); url=http://127.0.0.1:$port
ml=; $bin serve -h 2>&1 | grep -q -- -memlog && ml="--memlog $out/memlog"
$bin serve --data-dir $tmp/dd --config $tmp/cairn.yaml --listen 127.0.0.1:$port --log-level warn $ml 2>$out/serve.log &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf $tmp' EXIT
until curl -sf $url/healthz >/dev/null; do sleep 0.2; done
arn=$(aws cloudtrail create-event-data-store --endpoint-url $url --name srvload --retention-period 3653 ${NOINGEST:+--no-start-ingestion} --query EventDataStoreArn --output text)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee $out/summary
c0=$(awk '{print $14+$15}' /proc/$srv/stat); t0=$(date +%s.%N)
$bin import --into "$arn" --endpoint-url $url --region us-east-1 "$logs" >$out/import.out 2>&1 || true
t1=$(date +%s.%N); c1=$(awk '{print $14+$15}' /proc/$srv/stat)
hwm=$(awk '/VmHWM/{print $2}' /proc/$srv/status); rss=$(awk '/VmRSS/{print $2}' /proc/$srv/status)
ev=$(grep -o 'events [0-9]*' $out/import.out | awk '{s+=$2} END {print s+0}')
hz=$(getconf CLK_TCK)
awk -v l="$label" -v h=$hwm -v r=$rss -v a=$t0 -v b=$t1 -v c0=$c0 -v c1=$c1 -v hz=$hz -v ev=$ev 'BEGIN{w=b-a; printf "%s: VmHWM %.0f MiB, end RSS %.0f MiB, wall %.1f s, server CPU %.1f s, events read %d, %.0f events read/s\n", l, h/1024, r/1024, w, (c1-c0)/hz, ev, ev/w}' | tee -a $out/summary
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $out/summary
cat $out/import.out | head -3
