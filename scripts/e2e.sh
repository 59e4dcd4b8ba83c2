#!/usr/bin/env bash
# End-to-end: does what the README tells a user to do, with the real AWS CLI
# against a real cairn on a loopback port, and checks the answers.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "e2e: FAIL: $*" >&2; [ -f "$work/serve.log" ] && tail -20 "$work/serve.log" >&2; exit 1; }
pass=0
ok() { pass=$((pass+1)); echo "e2e: ok: $*"; }

# freeport prints a free loopback port below the kernel's ephemeral range,
# which outgoing connections draw from (internal/testaddr says why).
freeport() {
  python3 - <<'PY'
import random, socket
lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
for _ in range(200):
    p = random.randint(10000, lo - 1)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
}

go build -o "$work/cairn" ./cmd/cairn
port=$(freeport)
endpoint=http://127.0.0.1:$port
cd "$work"

start() {
  "$work/cairn" serve --listen 127.0.0.1:$port "$@" >>"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs "$endpoint/healthz" >/dev/null 2>&1 && return; sleep 0.1; done
  fail "server did not start"
}
stop() { kill -TERM $pid; wait $pid || true; }

# 1. Zero-config start: cairn creates an account and a key and says so once.
start
grep -q "AWS_SHARED_CREDENTIALS_FILE" serve.log || fail "serve did not say where the generated key is"
export AWS_SHARED_CREDENTIALS_FILE=$work/cairn-data/aws-credentials AWS_DEFAULT_REGION=us-east-1
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE || true
aws cloudtrail lookup-events --endpoint-url "$endpoint" --max-results 5 >first.json || fail "first lookup-events"
ok "aws cloudtrail lookup-events against a zero-config cairn"

# 2. The second call finds the first (cairn records itself, visible within 1 s).
sleep 1
aws cloudtrail lookup-events --endpoint-url "$endpoint" \
  --lookup-attributes AttributeKey=EventName,AttributeValue=LookupEvents >second.json
n=$(jq '[.Events[] | select(.EventSource=="cloudtrail.amazonaws.com")] | length' second.json)
[ "$n" -ge 1 ] || fail "cairn did not record its own LookupEvents"
jq -e '.Events[0].CloudTrailEvent | fromjson | .readOnly == true and .eventType == "AwsApiCall" and .userIdentity.type == "IAMUser"' second.json >/dev/null \
  || fail "self-recorded event fields"
ok "self-recorded LookupEvents found ($n)"

# 3. Errors are AWS-shaped and the CLI reports them.
if aws cloudtrail lookup-events --endpoint-url "$endpoint" --max-results 51 2>err.txt; then fail "max-results 51 accepted"; fi
grep -q InvalidMaxResultsException err.txt || fail "max-results 51: $(cat err.txt)"
if aws cloudtrail list-dashboards --endpoint-url "$endpoint" 2>err.txt; then fail "list-dashboards silently succeeded"; fi
grep -q "UnsupportedOperationException" err.txt || fail "list-dashboards: $(cat err.txt)"
if AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_ACCESS_KEY_ID=AKIAWRONG0000000000 AWS_SECRET_ACCESS_KEY=x \
   aws cloudtrail lookup-events --endpoint-url "$endpoint" 2>err.txt; then fail "unknown key accepted"; fi
grep -q UnrecognizedClientException err.txt || fail "unknown key: $(cat err.txt)"
ok "AWS-shaped errors (InvalidMaxResults, UnsupportedOperation, UnrecognizedClient)"

# 3b. A trail on the default bucket (a local folder in the data dir). Nothing is delivered before
# the interval (5 min) — the final delivery at shutdown writes the file (checked in 4).
aws cloudtrail create-trail --endpoint-url "$endpoint" --name e2e-trail --s3-bucket-name cairn-logs >trail.json \
  || fail "create-trail"
jq -e '.TrailARN | test("^arn:aws:cloudtrail:us-east-1:[0-9]{12}:trail/e2e-trail$")' trail.json >/dev/null || fail "create-trail: $(cat trail.json)"
if aws cloudtrail create-trail --endpoint-url "$endpoint" --name e2e-trail2 --s3-bucket-name no-such-bucket 2>err.txt; then fail "unknown bucket accepted"; fi
grep -q S3BucketDoesNotExistException err.txt || fail "unknown bucket: $(cat err.txt)"
aws cloudtrail start-logging --endpoint-url "$endpoint" --name e2e-trail || fail "start-logging"
aws cloudtrail get-trail-status --endpoint-url "$endpoint" --name e2e-trail | jq -e '.IsLogging == true' >/dev/null \
  || fail "get-trail-status after start-logging"
aws cloudtrail describe-trails --endpoint-url "$endpoint" | jq -e '.trailList[0].Name == "e2e-trail"' >/dev/null || fail "describe-trails"
aws cloudtrail list-trails --endpoint-url "$endpoint" --output json >/dev/null
ok "create-trail, start-logging, get-trail-status, describe-trails, list-trails"

# 4. Import real CloudTrail logs through the running server, then hunt.
stop
# The trail of 3b: the final delivery at shutdown wrote its log file.
logfiles=$(cd cairn-data/buckets/cairn-logs && find . -name '*.json.gz' | sed 's#^\./##')
[ -n "$logfiles" ] || fail "no log file delivered at shutdown"
echo "$logfiles" | grep -Evq '^AWSLogs/([0-9]{12})/CloudTrail/us-east-1/[0-9]{4}/[0-9]{2}/[0-9]{2}/\1_CloudTrail_us-east-1_[0-9]{8}T[0-9]{4}Z_[A-Za-z0-9]{16}\.json\.gz$' \
  && fail "log file keys not in AWS's layout: $logfiles"
(cd cairn-data/buckets/cairn-logs && for f in $logfiles; do gzip -dc "$f" | jq -c '.Records[]'; done) >delivered.ndjson
jq -se '([.[] | .eventName] | index("ListTrails")) and ([.[] | .eventName] | index("StartLogging")) and (map(select(.eventName == "LookupEvents" and .eventTime < "2020")) | length == 0)' \
  delivered.ndjson >/dev/null || fail "delivered records: $(jq -c .eventName delivered.ndjson | sort | uniq -c)"
ok "trail delivered $(wc -l <delivered.ndjson) records at shutdown as .json.gz under AWS's key"
# 4b. The README's responder recipe, verbatim, on the real logs of 40 accounts handed to a responder:
# the zero-config server again (its generated key is a responder's), the README's import line, then
# the README's lookups; each answer is checked per account against counts computed from the files.
start
export AWS_SHARED_CREDENTIALS_FILE=$work/cairn-data/aws-credentials AWS_DEFAULT_REGION=us-east-1
me=$(awk '/^ *- id:/ {gsub(/"/, "", $3); print $3; exit}' cairn-data/credentials.yaml)
real=$root/../shared/testdata/real
(find "$real" -name '*.json' -exec cat {} +; find "$real" -name '*.json.gz' -exec zcat {} +) |
  jq -c '.Records[]' >handed.ndjson
[ "$(wc -l <handed.ndjson)" -eq 4373 ] || fail "the real test data holds $(wc -l <handed.ndjson) records; want 4373"
grep -q "\"recipientAccountId\":\"$me\"" handed.ndjson && fail "the generated account $me is one of the data's"
# README: go run ./cmd/cairn import --endpoint-url http://127.0.0.1:4579 ../shared/testdata/real/
"$work/cairn" import --endpoint-url "$endpoint" --output json --no-progress "$real/" >import.json 2>import.err ||
  fail "import of the real logs exited $?: $(cat import.json; head -20 import.err)"
jq -e '.Imported == 4373 and .Rejected == 0' import.json >/dev/null || fail "import report $(cat import.json)"
# again, naming only the data dir: import finds the server that holds it
"$work/cairn" import --data-dir cairn-data --output json --no-progress "$real/" >import2.json || fail "re-import: $(cat import2.json)"
jq -e '.Imported == 0 and .Duplicates == 4373' import2.json >/dev/null || fail "re-import report $(cat import2.json)"
ok "the README's import line: all 4373 real records of 40 accounts through the server (0 refused), idempotently (again through the server found from the data dir)"

# counts FILE: "account count" lines of the records in a lookup's JSON output (cairn's own calls left out).
counts() { jq -r --arg me "$me" '.Events[].CloudTrailEvent | fromjson | select((.recipientAccountId // .userIdentity.accountId) != $me)
  | (.recipientAccountId // .userIdentity.accountId)' "$1" | sort | uniq -c | awk '{print $2, $1}'; }
# expect NAME LOOKUP-OUTPUT JQ-FILTER: the lookup's per-account counts are those of the files' records that pass the filter.
expect() {
  local got want
  got=$(counts "$2")
  want=$(jq -r "select($3) | (.recipientAccountId // .userIdentity.accountId)" handed.ndjson | sort | uniq -c | awk '{print $2, $1}')
  [ -n "$want" ] || fail "$1: no record of the data answers it; the check tests nothing"
  [ "$got" = "$want" ] || fail "$1: per account got [$got] want [$want]"
  ok "$1: $(echo "$want" | wc -l) accounts, $(echo "$want" | awk '{n += $2} END {print n}') records, as the files say"
}
E=$endpoint
# --- the README's recipe (README.md, "Hunt in CloudTrail logs"), with E for the endpoint ---
hunt() { aws cloudtrail lookup-events --endpoint-url $E --output json \
  --lookup-attributes AttributeKey=AwsRegion,AttributeValue='*' "$@"; }
hunt AttributeKey=ReadOnly,AttributeValue=false >writes.json
hunt AttributeKey=AccessKeyId,AttributeValue=AKIATFQR7NSC8Q4X20BJ >key.json
aws cloudtrail lookup-events --endpoint-url $E --output json \
  --lookup-attributes AttributeKey=EventSource,AttributeValue=iam.amazonaws.com AttributeKey=ReadOnly,AttributeValue=false >iam.json
hunt AttributeKey=EventName,AttributeValue=ConsoleLogin |
  jq '{Events: [.Events[] | select(.CloudTrailEvent | fromjson | .additionalEventData.MFAUsed == "No")]}' >nomfa.json
for e in StopLogging DeleteTrail PutEventSelectors; do
  hunt AttributeKey=EventName,AttributeValue=$e >tamper-$e.json
done
hunt AttributeKey=ResourceName,AttributeValue=arn:aws:kms:us-east-1:123837392027:key/0e5d0ab6-097e-49d8-99ef-747ce3e5f8f4 >resource.json
hunt AttributeKey=AccountId,AttributeValue=347283850106 >account.json
aws cloudtrail lookup-events --endpoint-url $E --output json \
  --lookup-attributes AttributeKey=AwsRegion,AttributeValue=eu-west-1 >region.json
# --- end of the recipe ---
expect "write calls (ReadOnly=false), every account and region" writes.json '.readOnly == false'
expect "what one access key did" key.json '.userIdentity.accessKeyId == "AKIATFQR7NSC8Q4X20BJ"'
expect "IAM changes in us-east-1, every account" iam.json '.eventSource == "iam.amazonaws.com" and .readOnly == false and .awsRegion == "us-east-1"'
expect "console logins without MFA" nomfa.json '.eventName == "ConsoleLogin" and .additionalEventData.MFAUsed == "No"'
for e in StopLogging DeleteTrail PutEventSelectors; do
  expect "logging tampering: $e" tamper-$e.json ".eventName == \"$e\""
done
expect "one resource's history" resource.json '[.resources[]?.ARN] | index("arn:aws:kms:us-east-1:123837392027:key/0e5d0ab6-097e-49d8-99ef-747ce3e5f8f4")'
expect "one account (AccountId), every region" account.json '(.recipientAccountId // .userIdentity.accountId) == "347283850106"'
expect "one region (AwsRegion=eu-west-1) from a lookup signed in us-east-1" region.json '.awsRegion == "eu-west-1"'
# Every account of the data, narrowed with AccountId: all its records, in every region.
for a in $(jq -r '.recipientAccountId // .userIdentity.accountId' handed.ndjson | sort -u); do
  hunt AttributeKey=AccountId,AttributeValue=$a >acct.json
  got=$(counts acct.json); want=$(jq -r --arg a "$a" 'select((.recipientAccountId // .userIdentity.accountId) == $a) | .eventID' handed.ndjson | wc -l)
  [ "$got" = "$a $want" ] || fail "AccountId=$a: [$got]; want $want records"
done
ok "AccountId narrows to each of the $(jq -r '.recipientAccountId // .userIdentity.accountId' handed.ndjson | sort -u | wc -l) accounts: all of its records"

aws cloudtrail lookup-events --endpoint-url "$endpoint" --lookup-attributes AttributeKey=AwsRegion,AttributeValue='*' \
  AttributeKey=EventName,AttributeValue=StopLogging AttributeKey=AccountId,AttributeValue=123837392027 >stop.json
expected=$(jq -c 'select(.eventName=="StopLogging" and .recipientAccountId=="123837392027")' handed.ndjson | sort)
got=$(jq -r '.Events[].CloudTrailEvent' stop.json | jq -c . | sort)
[ -n "$expected" ] && [ "$expected" = "$got" ] || fail "CloudTrailEvent is not the original record"
ok "lookup returns the original records byte for byte"

# boto3's paginator over a hunt, with three attributes ANDed (beyond CloudTrail).
python3 - "$endpoint" <<'PY' || fail "boto3 paginator"
import sys, json, boto3
endpoint = sys.argv[1]
ct = boto3.client("cloudtrail", endpoint_url=endpoint, region_name="us-east-1")
want = [r for r in map(json.loads, open("handed.ndjson"))
        if r.get("readOnly") is False and r["eventSource"] == "s3.amazonaws.com" and r["recipientAccountId"] == "123837392027"]
got = []
for page in ct.get_paginator("lookup_events").paginate(
        LookupAttributes=[{"AttributeKey": "ReadOnly", "AttributeValue": "false"},
                          {"AttributeKey": "EventSource", "AttributeValue": "s3.amazonaws.com"},
                          {"AttributeKey": "AccountId", "AttributeValue": "123837392027"}],
        PaginationConfig={"PageSize": 7}):
    got += [json.loads(e["CloudTrailEvent"]) for e in page["Events"]]
assert want and sorted(r["eventID"] for r in got) == sorted(r["eventID"] for r in want), (len(got), len(want))
assert all(r in want for r in got)
print(len(got))
PY
ok "boto3 paginator, ReadOnly=false AND EventSource=s3 AND AccountId"

aws cloudtrail lookup-events --endpoint-url "$endpoint" --max-results 3 --output table >table.txt
grep -q "LookupEvents" table.txt || fail "--output table"
ok "--output table"

# 5. Durability: restart and the events are still there.
stop
start
aws cloudtrail lookup-events --endpoint-url "$endpoint" --output json \
  --lookup-attributes AttributeKey=AwsRegion,AttributeValue='*' AttributeKey=ReadOnly,AttributeValue=false >writes2.json
[ "$(counts writes2.json)" = "$(counts writes.json)" ] || fail "after restart the write calls differ"
ok "events survive a restart"

# To a file first: grep -q stops reading at its match, and with pipefail
# curl's broken pipe would fail the check once /metrics is long enough.
curl -fs "$endpoint/metrics" >metrics.txt || fail "/metrics: curl"
grep -q cairn_api_requests_total metrics.txt || fail "/metrics"
ok "/metrics"
stop
unset AWS_SHARED_CREDENTIALS_FILE
# 6. Retro Insights on an incident's logs: 5 CreateBucket calls a minute, 60 a minute for 12 minutes.
cat >insights.yaml <<'YAML'
event_history:
  retention_days: 0
accounts:
  - id: "444455556666"
    users:
      - name: responder
        access_keys:
          - {id: AKIARESPONDER0000001, secret: responder-secret}
insights:
  warm_up: 1h
YAML
python3 - <<'PY'
import json, datetime
t0 = datetime.datetime(2026, 3, 2, tzinfo=datetime.timezone.utc)
recs = []
for m in range(240):
    for i in range(60 if 180 <= m < 192 else 5):
        t = t0 + datetime.timedelta(minutes=m, seconds=i)
        recs.append({"eventVersion": "1.08", "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::444455556666:user/ci",
            "accountId": "444455556666", "userName": "ci"}, "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "s3.amazonaws.com", "eventName": "CreateBucket", "awsRegion": "eu-west-1", "userAgent": "aws-cli/2",
            "eventID": "e-%d-%d" % (m, i), "readOnly": False, "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": "444455556666", "eventCategory": "Management"})
json.dump({"Records": recs}, open("incident.json", "w"))
PY
"$work/cairn" import --data-dir data3 --config insights.yaml --no-progress incident.json >/dev/null || fail "import of the incident"
"$work/cairn" insights --data-dir data3 --config insights.yaml --no-progress --output json >insights.json || fail "cairn insights"
[ "$(jq '.Insights | length' insights.json)" -eq 1 ] && [ "$(jq -r '.Insights[0].StartTime' insights.json)" = 2026-03-02T03:00:00Z ] &&
  [ "$(jq '.Stored' insights.json)" -eq 2 ] || fail "cairn insights found: $(cat insights.json)"
ok "cairn insights finds the burst in imported logs"
start --config insights.yaml --data-dir data3
AWS_ACCESS_KEY_ID=AKIARESPONDER0000001 AWS_SECRET_ACCESS_KEY=responder-secret AWS_SHARED_CREDENTIALS_FILE=/dev/null \
  aws cloudtrail lookup-events --endpoint-url "$endpoint" --region eu-west-1 --event-category insight \
  --start-time 2026-03-01T00:00:00Z --output json >insight-events.json || fail "lookup-events --event-category insight"
[ "$(jq '.Events | length' insight-events.json)" -eq 2 ] &&
  [ "$(jq -r '[.Events[].CloudTrailEvent | fromjson | .insightDetails.state] | sort | join(",")' insight-events.json)" = End,Start ] ||
  fail "insight events: $(cat insight-events.json)"
ok "aws cloudtrail lookup-events --event-category insight returns the Start and End"
stop
# 7. The recording gateway in front of moto_server: the AWS CLI and boto3 through it, their calls in
# Event History within a second, a call's record durable by the time the client has its response
# (journaled; kill -9 right after it, and the restart stores it), and a 1 GiB upload streaming
# through with cairn's memory flat.
if command -v moto_server >/dev/null; then
motoport=$(freeport)
gwport=$(freeport)
moto_server -H 127.0.0.1 -p "$motoport" >moto.log 2>&1 &
motopid=$!
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; kill $motopid 2>/dev/null || true; wait $motopid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$motoport/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
cat >gw.yaml <<YAML
accounts:
  - id: "777788889999"
    users:
      - name: dev
        access_keys:
          - {id: AKIADEV0000000000001, secret: dev-secret}
gateway:
  listen: 127.0.0.1:$gwport
  upstreams:
    default: http://127.0.0.1:$motoport
YAML
start --config gw.yaml --data-dir data4
export AWS_ACCESS_KEY_ID=AKIADEV0000000000001 AWS_SECRET_ACCESS_KEY=dev-secret AWS_SHARED_CREDENTIALS_FILE=/dev/null
gw=http://127.0.0.1:$gwport
aws --endpoint-url "$gw" s3 mb s3://e2e-gateway >/dev/null || fail "aws s3 mb through the gateway"
aws --endpoint-url "$gw" iam create-user --user-name carol >/dev/null || fail "aws iam create-user through the gateway"
python3 - "$gw" <<'PY' || fail "boto3 through the gateway"
import sys, boto3
ddb = boto3.client("dynamodb", endpoint_url=sys.argv[1], region_name="eu-west-1")
ddb.create_table(TableName="e2e", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
ddb.put_item(TableName="e2e", Item={"id": {"S": "1"}})
PY
# The response of a call through the gateway completes once its record is durable: kill -9 at once.
aws --endpoint-url "$gw" iam create-user --user-name dave >/dev/null || fail "aws iam create-user dave through the gateway"
kill -KILL $pid; wait $pid 2>/dev/null || true
start --config gw.yaml --data-dir data4
aws cloudtrail lookup-events --endpoint-url "$endpoint" --output json >gw-events.json || fail "lookup-events after the gateway"
jq -e '[.Events[] | select(.EventName == "CreateBucket")] | length == 1' gw-events.json >/dev/null || fail "no CreateBucket from the gateway: $(jq -c '[.Events[].EventName]' gw-events.json)"
for u in carol dave; do
  jq -e --arg u "$u" '[.Events[] | select(.EventName == "CreateUser" and (.CloudTrailEvent | fromjson | .requestParameters.userName) == $u)] | length == 1' gw-events.json >/dev/null ||
    fail "no CreateUser $u from the gateway: $(jq -c '[.Events[].EventName]' gw-events.json)"
done
ok "a call's record survives kill -9 of cairn right after the client got its response"
aws cloudtrail lookup-events --endpoint-url "$endpoint" --region eu-west-1 --output json >gw-events-eu.json || fail "lookup-events eu-west-1"
jq -e '[.Events[] | select(.EventName == "CreateTable" and (.CloudTrailEvent | fromjson | .userIdentity.userName) == "dev")] | length == 1' gw-events-eu.json >/dev/null ||
  fail "no CreateTable from boto3: $(jq -c '[.Events[].EventName]' gw-events-eu.json)"
jq -e '[.Events[] | select(.EventName == "PutItem")] | length == 0' gw-events-eu.json >/dev/null || fail "a data event (PutItem) in Event History"
ok "AWS CLI and boto3 through the gateway: management events in Event History within 1 s, data events not"
mb=${CAIRN_E2E_UPLOAD_MB:-1024}
truncate -s "${mb}M" big.bin
hwm() { awk '/VmHWM/ {print $2}' /proc/$pid/status; }
before=$(hwm); t0=$(date +%s)
# moto_server assembles the object in CompleteMultipartUpload, which can outlast the CLI's 60 s
# read timeout on a loaded machine (the CLI then retries a completed upload and moto answers 500).
aws --endpoint-url "$gw" --cli-read-timeout 600 s3 cp big.bin s3://e2e-gateway/big.bin --only-show-errors || fail "aws s3 cp of ${mb} MiB through the gateway"
after=$(hwm); t1=$(date +%s)
size=$(aws --endpoint-url "$gw" s3api head-object --bucket e2e-gateway --key big.bin --query ContentLength --output text)
[ "$size" -eq $((mb * 1048576)) ] || fail "uploaded size $size"
grow=$(( (after - before) / 1024 ))
echo "e2e: gateway upload of ${mb} MiB in $((t1 - t0)) s: cairn peak RSS ${before} kB -> ${after} kB (+${grow} MiB)"
[ "$grow" -lt 64 ] || fail "cairn's peak memory grew by ${grow} MiB during a ${mb} MiB upload"
ok "a ${mb} MiB multipart upload streams through the gateway (peak RSS +${grow} MiB)"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
stop
# moto_server holds the object in memory: free it for the sections after.
kill $motopid 2>/dev/null || true; wait $motopid 2>/dev/null || true
else
  [ "${CAIRN_REQUIRE_MOTO:-0}" = 1 ] && fail "moto_server is not installed and CAIRN_REQUIRE_MOTO=1 (gateway checks)"
  echo "e2e: skip: moto_server not installed (gateway checks)"
fi
# 8. CloudTrail Lake with real clients: an ActivityAuditLog event data store and a channel made with the
# AWS CLI, custom events sent with `aws cloudtrail-data put-audit-events` and boto3's cloudtrail-data
# client (SigV4 for the cloudtrail-data service), then found by `aws cloudtrail start-query`.
cat >lake.yaml <<'YAML'
accounts:
  - id: "333344445555"
    users:
      - name: app
        access_keys:
          - {id: AKIALAKEAPP000000001, secret: lake-secret}
YAML
start --config lake.yaml --data-dir data5
export AWS_ACCESS_KEY_ID=AKIALAKEAPP000000001 AWS_SECRET_ACCESS_KEY=lake-secret AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_DEFAULT_REGION=us-east-1
aws cloudtrail create-event-data-store --endpoint-url "$endpoint" --name e2e-custom --no-termination-protection-enabled \
  --advanced-event-selectors '[{"Name":"custom","FieldSelectors":[{"Field":"eventCategory","Equals":["ActivityAuditLog"]}]}]' \
  --output json >eds.json || fail "create-event-data-store"
eds_arn=$(jq -r .EventDataStoreArn eds.json)
eds_id=${eds_arn##*/}
aws cloudtrail create-channel --endpoint-url "$endpoint" --name e2e-channel --source Custom \
  --destinations "Type=EVENT_DATA_STORE,Location=$eds_arn" --output json >channel.json || fail "create-channel"
channel=$(jq -r .ChannelArn channel.json)
ed() { # eventName UID
  printf '{"version":"1.0","userIdentity":{"type":"CustomUser","principalId":"alice"},"eventSource":"e2e.example.com","eventName":"%s","eventTime":"2026-01-02T03:04:05Z","UID":"%s","recipientAccountId":"333344445555","sourceIPAddress":"10.1.2.3"}' "$1" "$2"
}
jq -n --arg a "$(ed CliOpen u-cli-1)" --arg b "$(ed CliBad u-cli-2 | sed 's/333344445555/999999999999/')" \
  '[{id: "cli-1", eventData: $a}, {id: "cli-2", eventData: $b}]' >audit-events.json
aws cloudtrail-data put-audit-events --endpoint-url "$endpoint" --channel-arn "$channel" \
  --audit-events file://audit-events.json --output json >put.json || fail "aws cloudtrail-data put-audit-events"
jq -e '(.successful | length) == 1 and .successful[0].id == "cli-1" and (.failed | length) == 1 and .failed[0].errorCode == "InvalidRecipient"' put.json >/dev/null ||
  fail "put-audit-events answered: $(cat put.json)"
python3 - "$endpoint" "$channel" "$(ed BotoOpen u-boto-1)" "$(ed BotoClose u-boto-2)" <<'PY' || fail "boto3 cloudtrail-data put_audit_events"
import base64, hashlib, sys, boto3
url, channel, a, b = sys.argv[1:]
c = boto3.client("cloudtrail-data", endpoint_url=url, region_name="us-east-1")
out = c.put_audit_events(channelArn=channel, auditEvents=[
    {"id": "boto-1", "eventData": a, "eventDataChecksum": base64.b64encode(hashlib.sha256(a.encode()).digest()).decode()},
    {"id": "boto-2", "eventData": b}])
assert [e["id"] for e in out["successful"]] == ["boto-1", "boto-2"] and not out["failed"], out
try:
    c.put_audit_events(channelArn=channel.replace("channel/", "channel/0"), auditEvents=[{"id": "x", "eventData": a}])
    raise SystemExit("unknown channel accepted")
except c.exceptions.ChannelNotFound:
    pass
PY
ok "aws cloudtrail-data put-audit-events and boto3's cloudtrail-data client: per-event success and failure"
aws cloudtrail start-query --endpoint-url "$endpoint" --output json \
  --query-statement "SELECT eventData.eventName AS name, eventData.UID AS uid, eventCategory FROM $eds_id ORDER BY name" >query.json || fail "start-query"
qid=$(jq -r .QueryId query.json)
for _ in $(seq 300); do
  aws cloudtrail get-query-results --endpoint-url "$endpoint" --query-id "$qid" --output json >results.json || fail "get-query-results"
  case $(jq -r .QueryStatus results.json) in QUEUED|RUNNING) sleep 0.2 ;; *) break ;; esac
done
[ "$(jq -r .QueryStatus results.json)" = FINISHED ] || fail "query: $(cat results.json)"
got=$(jq -r '[.QueryResultRows[] | (map(to_entries[0]) | from_entries) | "\(.name)/\(.uid)/\(.eventCategory)"] | join(",")' results.json)
[ "$got" = "BotoClose/u-boto-2/ActivityAuditLog,BotoOpen/u-boto-1/ActivityAuditLog,CliOpen/u-cli-1/ActivityAuditLog" ] || fail "query rows: $got"
ok "aws cloudtrail start-query / get-query-results return the custom events at once"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
stop
# 9. Trails with log file validation on moto_server's S3, checked by the real `aws cloudtrail validate-logs`
# (keys from cairn with --endpoint-url, files through AWS_ENDPOINT_URL_S3): every log and digest file valid;
# after a log file is added, modified or deleted and a digest is removed it reports exactly that, with the
# same lines and exit status as `cairn validate-logs`. Waits on conditions (files, digests), not on time.
if command -v moto_server >/dev/null; then
vport=$(freeport)
moto_server -H 127.0.0.1 -p "$vport" >moto-trails.log 2>&1 &
vmotopid=$!
trap '[ -n "$pid" ] && kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; kill ${motopid:-} ${vmotopid:-} 2>/dev/null || true; rm -rf "$work"' EXIT
vmoto=http://127.0.0.1:$vport
for _ in $(seq 100); do curl -fs "$vmoto/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done
export AWS_ACCESS_KEY_ID=AKIAAUDITOR000000001 AWS_SECRET_ACCESS_KEY=auditor-secret AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_DEFAULT_REGION=us-east-1
aws --endpoint-url "$vmoto" s3api create-bucket --bucket e2e-validated >/dev/null || fail "create the moto bucket"
cat >trails.yaml <<YAML
accounts:
  - id: "135792468024"
    users:
      - name: auditor
        access_keys:
          - {id: AKIAAUDITOR000000001, secret: auditor-secret}
buckets:
  - name: e2e-validated
    s3: {endpoint: "$vmoto", region: us-east-1, access_key_id: x, secret_access_key: y, path_style: true}
delivery:
  interval: 1s
  digest_interval: 2s
YAML
start --config trails.yaml --data-dir data6
# trailwait.py count FOLDER | more FOLDER N | complete CHAINS-FILE: the bucket's state, waited for up to 2 minutes.
cat >trailwait.py <<'PY'
import sys, time, gzip, json, boto3
moto, cairn, what = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
ct = boto3.client("cloudtrail", endpoint_url=cairn, region_name="us-east-1")
base = "AWSLogs/135792468024/"
def keys(folder):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="e2e-validated", Prefix=base + folder + "/"):
        out += [o["Key"] for o in page.get("Contents", [])]
    return sorted(out)
def body(key):
    return gzip.decompress(s3.get_object(Bucket="e2e-validated", Key=key)["Body"].read())
def complete(chains):
    # The chain ended (final digest after the stop) with nothing waiting for a digest.
    try:
        c = json.load(open(chains))
    except (OSError, ValueError):
        return False
    if len(c) != 1 or not c[0].get("ended") or c[0].get("pending"):
        return False
    named = {f["s3Object"] for d in keys("CloudTrail-Digest") for f in json.loads(body(d))["logFiles"]}
    logs = keys("CloudTrail")
    return all(l in named for l in logs) and any(b'"eventName":"StopLogging"' in body(l) for l in logs)
deadline = time.time() + 120
while True:
    if what == "more" and len(keys(sys.argv[4])) > int(sys.argv[5]): break
    if what == "complete" and complete(sys.argv[4]): break
    if what == "count": print(len(keys(sys.argv[4]))); break
    if time.time() > deadline: sys.exit("trailwait: waited 2 minutes for " + " ".join(sys.argv[3:]))
    time.sleep(0.3)
if what == "complete":
    open("logs.txt", "w").write("\n".join(keys("CloudTrail")) + "\n")
    open("digests.txt", "w").write("\n".join(keys("CloudTrail-Digest")) + "\n")
PY
tw() { python3 trailwait.py "$vmoto" "$endpoint" "$@"; }
vstart=$(date -u -d '-1 min' +%Y-%m-%dT%H:%M:%SZ)
arn=$(aws cloudtrail create-trail --endpoint-url "$endpoint" --name e2e-validated --s3-bucket-name e2e-validated \
  --enable-log-file-validation --query TrailARN --output text) || fail "create-trail --enable-log-file-validation"
aws cloudtrail start-logging --endpoint-url "$endpoint" --name e2e-validated || fail "start-logging"
for _ in 1 2 3; do
  n=$(tw count CloudTrail)
  aws cloudtrail list-trails --endpoint-url "$endpoint" >/dev/null
  tw more CloudTrail "$n" || fail "no log file delivered to moto's S3"
done
tw more CloudTrail-Digest 1 || fail "no second digest"
aws cloudtrail stop-logging --endpoint-url "$endpoint" --name e2e-validated || fail "stop-logging"
stopped=$(date +%s.%N)
# No call in StopLogging's second: records of later calls are not delivered, so the bucket is complete
# once StopLogging is delivered, every log file is in a digest and the digest chain has ended with
# nothing pending (the data dir's digest-chains.json).
sleep "$(python3 -c "import math; t=$stopped; print(math.floor(t) + 1 - t + 0.05)")"
tw complete data6/digest-chains.json || fail "the bucket did not settle after stop-logging"
nl=$(wc -l <logs.txt); nd=$(wc -l <digests.txt)
[ "$nl" -ge 3 ] && [ "$nd" -ge 3 ] || fail "delivered $nl log files and $nd digests"
vend=$(date -u -d '+1 sec' +%Y-%m-%dT%H:%M:%SZ)
vargs=(--trail-arn "$arn" --start-time "$vstart" --end-time "$vend" --verbose --endpoint-url "$endpoint")
# validate CASE WANT-EXIT: both validators, same exit status and output; their output in CASE.aws / CASE.cairn.
validate() {
  local code=0 ccode=0
  AWS_ENDPOINT_URL_S3=$vmoto aws cloudtrail validate-logs "${vargs[@]}" >"$1.aws" 2>&1 || code=$?
  AWS_ENDPOINT_URL_S3=$vmoto "$work/cairn" validate-logs "${vargs[@]}" >"$1.cairn" 2>&1 || ccode=$?
  [ "$code" -eq "$2" ] || fail "$1: aws cloudtrail validate-logs exited $code, want $2: $(cat "$1.aws")"
  [ "$ccode" -eq "$2" ] || fail "$1: cairn validate-logs exited $ccode, want $2: $(cat "$1.cairn")"
  cmp -s "$1.aws" "$1.cairn" || fail "$1: the outputs differ: $(diff "$1.aws" "$1.cairn")"
}
validate intact 0
grep -q "^$nd/$nd digest files valid$" intact.aws && grep -q "^$nl/$nl log files valid$" intact.aws ||
  fail "intact: $(cat intact.aws)"
ok "aws cloudtrail validate-logs: $nd/$nd digest files and $nl/$nl log files valid (cairn validate-logs: the same output)"
s3obj() { aws --endpoint-url "$vmoto" s3api "$@" >/dev/null; }
echo '{"Records":[]}' | gzip >fake.json.gz
last=$(tail -1 logs.txt)
added=${last%_*}_AddedByAnAttackr.json.gz
s3obj put-object --bucket e2e-validated --key "$added" --body fake.json.gz || fail "put the added file"
validate added 0
cmp -s added.aws intact.aws || fail "added log file: the report changed: $(diff intact.aws added.aws)"
code=0; AWS_ENDPOINT_URL_S3=$vmoto "$work/cairn" validate-logs "${vargs[@]}" --report-unlisted >unlisted.out 2>unlisted.err || code=$?
[ "$code" -eq 1 ] && [ "$(grep -c 'INVALID' unlisted.err)" -eq 1 ] &&
  grep -qF "$(printf 'Log file\ts3://e2e-validated/%s\tINVALID: not named by any digest' "$added")" unlisted.err ||
  fail "cairn validate-logs --report-unlisted = $code: $(cat unlisted.out unlisted.err)"
ok "an added log file: not reported (validate-logs checks the files digests name), exit 0 as AWS's CLI; cairn validate-logs --report-unlisted reports it"
first=$(sed -n 1p logs.txt)
s3obj put-object --bucket e2e-validated --key "$first" --body fake.json.gz || fail "modify a log file"
validate modified 1
grep -qF "$(printf 'Log file\ts3://e2e-validated/%s\tINVALID: hash value doesn'"'"'t match' "$first")" modified.aws || fail "modified: $(cat modified.aws)"
grep -q "^$((nl-1))/$nl log files valid, 1/$nl log files INVALID$" modified.aws || fail "modified summary: $(cat modified.aws)"
ok "a modified log file: INVALID: hash value doesn't match, exit 1"
second=$(sed -n 2p logs.txt)
s3obj delete-object --bucket e2e-validated --key "$second" || fail "delete a log file"
validate deleted-log 1
grep -qF "$(printf 'Log file\ts3://e2e-validated/%s\tINVALID: not found' "$second")" deleted-log.aws || fail "deleted log: $(cat deleted-log.aws)"
grep -q "^$((nl-2))/$nl log files valid, 2/$nl log files INVALID$" deleted-log.aws || fail "deleted log summary: $(cat deleted-log.aws)"
ok "a deleted log file: INVALID: not found, exit 1"
dig=$(sed -n 2p digests.txt)
s3obj delete-object --bucket e2e-validated --key "$dig" || fail "delete a digest"
validate deleted-digest 1
grep -qF "$(printf 'Digest file\ts3://e2e-validated/%s\tINVALID: not found' "$dig")" deleted-digest.aws || fail "deleted digest: $(cat deleted-digest.aws)"
grep -q "^$((nd-1))/$nd digest files valid, 1/$nd digest files INVALID$" deleted-digest.aws || fail "deleted digest summary: $(cat deleted-digest.aws)"
ok "a removed digest: Digest file INVALID: not found, exit 1; cairn validate-logs said the same every time"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
stop
else
  [ "${CAIRN_REQUIRE_MOTO:-0}" = 1 ] && fail "moto_server is not installed and CAIRN_REQUIRE_MOTO=1 (trails and validate-logs checks)"
  echo "e2e: skip: moto_server not installed (trails and validate-logs checks)"
fi
echo "e2e: $pass passed, 0 failed"
