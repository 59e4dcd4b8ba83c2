#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). It checks formatting
# and vet, runs every Go test with the race detector, runs every benchmark
# once, then the end-to-end script that drives a real cairn with the AWS CLI.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 30m ./...

echo "== benchmarks, once"
go test -run '^$' -bench . -benchtime 1x -timeout 20m ./... > /tmp/cairn-bench-once.txt || { cat /tmp/cairn-bench-once.txt; exit 1; }
grep -E '^(Benchmark|ok|FAIL)' /tmp/cairn-bench-once.txt || true

echo "== end to end (AWS CLI)"
bash scripts/e2e.sh
