#!/bin/sh
# sigmahq-load.sh FOLDER: loads a folder of SigmaHQ CloudTrail rules (for
# example a checkout's rules/cloud/aws/cloudtrail; fetch it yourself, the
# rules are DRL-licensed and not part of cairn), prints how many loaded, why
# each other one was refused (file:line: reason), and how often each loaded
# rule fires on the real records of ../shared/testdata/real.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 FOLDER" >&2; exit 2; }
dir=$(cd "$1" && pwd)
cd "$(dirname "$0")/.."
CAIRN_SIGMAHQ_RULES="$dir" go test -count=1 -run '^TestSigmaHQFolder$' -v ./internal/sigma/ |
	sed -n 's/^ *real_test.go:[0-9]*: //p'
