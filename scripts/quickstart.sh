#!/usr/bin/env bash
# The quickstart: on a fresh machine, runs Tributary's main job end to end
# against local emulators, then stops everything it started.
#
#   1. installs (when missing) and starts kinesis-local and moto (scripts/emulators.sh),
#   2. builds tributary and the sample producer,
#   3. starts `tributary serve` on loopback,
#   4. creates a stream and puts 3,000 sample orders (1% malformed, 2% refunds),
#   5. commits examples/quickstart.yaml through the API (validated statically and
#      live: the role is assumed through moto's STS, the stream probed on kinesis-local),
#   6. waits until every record is ingested into the dataset's Iceberg table, then
#      shows the table (`tributary tables`) and rows read back from its current
#      snapshot, the rejected rows (`tributary errors`) and `tributary status`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*"; }
RECORDS=3000

step "starting the local AWS emulators"
scripts/emulators.sh install
eval "$(scripts/emulators.sh up)"
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" && wait "$server_pid" || true
  fi
  scripts/emulators.sh down
  rm -rf "$work"
}
trap cleanup EXIT

step "building"
cargo build --quiet --bin tributary --example producer
tributary=target/debug/tributary

step "starting tributary serve on loopback"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TRIBUTARY_SERVER="http://127.0.0.1:$port"
$tributary serve --data-dir "$work/data" --listen "127.0.0.1:$port" --flush-seconds 2 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$TRIBUTARY_SERVER/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$TRIBUTARY_SERVER/healthz" >/dev/null || { cat "$work/serve.log"; exit 1; }
echo "serving $TRIBUTARY_SERVER (pid $server_pid, data in $work/data); the console is at $TRIBUTARY_SERVER/"

step "creating a stream and producing $RECORDS sample orders"
stream=quickstart-orders-$$
stream_arn=$(target/debug/examples/producer --stream "$stream" --create --shards 2 --records $RECORDS --malformed-every 100)
account=$(echo "$stream_arn" | cut -d: -f5)
role_arn="arn:aws:iam::$account:role/tributary-reader"
echo "stream: $stream_arn"
sed -e "s|\${STREAM_ARN}|$stream_arn|" -e "s|\${ROLE_ARN}|$role_arn|" examples/quickstart.yaml >"$work/quickstart.yaml"

step "tributary commit quickstart.yaml"
$tributary commit "$work/quickstart.yaml" -m "quickstart"

step "a commit that cannot work is refused with coded errors (nothing is stored)"
sed -e "s|stream/$stream|stream/no-such-stream|" "$work/quickstart.yaml" >"$work/missing.yaml"
$tributary commit --dry-run "$work/missing.yaml" || echo "(exit $? as expected)"

step "waiting until all $RECORDS records are ingested"
for _ in $(seq 1 120); do
  done_count=$($tributary status quickstart_orders --json | python3 -c 'import json, sys; s = json.load(sys.stdin); print(s["rows"] + s["rejected"] + s["filtered"])')
  [ "$done_count" -ge "$RECORDS" ] && break
  sleep 0.5
done
echo "$done_count of $RECORDS records ingested"

step "the Iceberg tables (the dataset's, and its rejected records')"
$tributary tables

step "the dataset, read back from the Iceberg table's current snapshot"
$tributary tables orders --rows 5

step "tributary errors quickstart_orders"
$tributary errors quickstart_orders --limit 4

step "tributary status quickstart_orders"
$tributary status quickstart_orders

step "tributary replay quickstart_orders --dry-run (what a replay of the rejected rows would land now)"
$tributary replay quickstart_orders --dry-run

step "done: stopping tributary (it commits what it holds) and the emulators"
