#!/usr/bin/env bash
# The quickstart: on a fresh machine, shows what Tributary does today against
# local emulators, then stops everything it started.
#
#   1. installs and starts kinesis-local and moto (scripts/emulators.sh),
#   2. builds tributary and the sample producer,
#   3. creates a stream and puts sample events into it,
#   4. validates examples/quickstart.yaml statically and live (assumes the role
#      through moto's STS, then DescribeStreamSummary, ListShards,
#      GetShardIterator and GetRecords against kinesis-local),
#   5. shows the coded errors of definitions that cannot work.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }

step "starting the local AWS emulators"
eval "$(scripts/emulators.sh up)"
trap 'scripts/emulators.sh down' EXIT

step "building"
cargo build --quiet --bin tributary --example producer
tributary=target/debug/tributary

step "creating a stream and producing sample events"
stream=quickstart-orders-$$
stream_arn=$(target/debug/examples/producer --stream "$stream" --create --shards 2 --records 1000 --malformed-every 100)
account=$(echo "$stream_arn" | cut -d: -f5)
role_arn="arn:aws:iam::$account:role/tributary-reader"
echo "stream: $stream_arn"

work=$(mktemp -d)
trap 'rm -rf "$work"; scripts/emulators.sh down' EXIT
sed -e "s|\${STREAM_ARN}|$stream_arn|" -e "s|\${ROLE_ARN}|$role_arn|" examples/quickstart.yaml >"$work/quickstart.yaml"

step "tributary validate quickstart.yaml (static)"
$tributary validate "$work/quickstart.yaml"

step "tributary validate --live quickstart.yaml"
$tributary validate --live "$work/quickstart.yaml"

step "a definition that cannot work: a stream that does not exist"
sed -e "s|stream/$stream|stream/no-such-stream|" "$work/quickstart.yaml" >"$work/missing.yaml"
$tributary validate --live "$work/missing.yaml" || echo "(exit $? as expected)"

step "definitions with mistakes: one coded error per line"
$tributary validate tests/fixtures/invalid.yaml | sort -u -k1,1 || true

step "done"
echo "Continuous ingest, the HTTP API and the error log arrive with the next issues; see README.md."
