#!/usr/bin/env bash
# bench/lake-rss-offline.sh BIN LABEL (issue 15): offline cairn import --into of $LOGS into a fresh data dir
# (the store created by a server then stopped), --memlog, /usr/bin/time -v. LOGS=dir (required), WORK=dir for the
# results (default /tmp). Run it under a lock to measure: flock /work/measure.lock bench/lake-rss-offline.sh ...
set -euo pipefail
bin=$1; label=$2
logs=${LOGS:?the files to load: bench/gen -n 10000000 -per-file 500 -days 365}
work=${WORK:-/tmp}; out=$work/$label-$(date +%H%M%S)
mkdir -p $out
tmp=$(mktemp -d "$work/tmp.XXXX")
trap 'rm -rf $tmp' EXIT
cat >$tmp/cairn.yaml <<YAML
event_history:
  retention_days: 0
lake:
  import_roots: ["$logs"]
accounts:
  - id: "123837392027"
    users:
      - name: responder
        responder: true
        access_keys:
          - id: AKIABENCH00000000001
            secret: bench-secret
YAML
export AWS_ACCESS_KEY_ID=AKIABENCH00000000001 AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
port=$((40000 + RANDOM % 20000)); url=http://127.0.0.1:$port
$bin serve --data-dir $tmp/dd --config $tmp/cairn.yaml --listen 127.0.0.1:$port --log-level warn 2>$out/serve.log &
srv=$!
until curl -sf $url/healthz >/dev/null; do sleep 0.2; done
arn=$(aws cloudtrail create-event-data-store --endpoint-url $url --name offload --retention-period 3653 --query EventDataStoreArn --output text)
kill $srv; wait $srv || true
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee $out/summary
/usr/bin/time -v -o $out/time $bin import --into "$arn" --data-dir $tmp/dd --config $tmp/cairn.yaml --no-progress --output text --memlog $out/memlog "$logs" >$out/import.out 2>&1 || true
awk -v l=$label -F': ' '/Maximum resident/{r=$2} /Elapsed/{w=$2} /User time/{u=$2} /System time/{s=$2} END{printf "%s: peak RSS %.0f MiB, wall %s, user %s + sys %s CPU-s\n", l, r/1024, w, u, s}' $out/time | tee -a $out/summary
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $out/summary
tail -3 $out/import.out
