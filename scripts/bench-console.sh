#!/usr/bin/env bash
# The web console and replay, measured (a benchmark, not a test):
#
# 1. page weight (bytes transferred: page, script, style and every API answer)
#    and time to first render (navigation to the page's data on screen) of each
#    console page in headless Chromium, for a source with 64 shards and 100,000
#    rejected rows in its error log;
# 2. replay throughput (rows/s landed in an Iceberg table, exactly once) against
#    `tributary decode` of the same rows with the same fixed definition.
#
#   ./scripts/bench-console.sh                                   # 100k events over 64 shards
#   TRIBUTARY_BENCH_STREAM_ARN=arn:... ./scripts/bench-console.sh   # reuse a filled stream (emulators already up)
#
# Every record is rejected by the first definition (`referrer` declared a
# required string, null in every event); the second declares it optional (a
# change the table's schema takes), so all of them replay.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
records=${TRIBUTARY_BENCH_RECORDS:-100000}
shards=${TRIBUTARY_BENCH_SHARDS:-64}
work=$(mktemp -d)
server_pid=""
driver_pid=""
started_emulators=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  if [ -n "$driver_pid" ] && kill -0 "$driver_pid" 2>/dev/null; then kill -TERM "$driver_pid"; wait "$driver_pid" || true; fi
  if [ -n "$started_emulators" ]; then scripts/emulators.sh down; fi
  rm -rf "$work"
}
trap cleanup EXIT

command -v chromium >/dev/null && command -v chromedriver >/dev/null \
  || { echo "bench-console.sh: needs chromium and chromedriver (apt-get install chromium chromium-driver)" >&2; exit 1; }
if [ -z "${TRIBUTARY_BENCH_STREAM_ARN:-}" ]; then
  scripts/emulators.sh install
  eval "$(scripts/emulators.sh up)"
  started_emulators=1
fi
python=${TRIBUTARY_TEST_MOTO_PYTHON:?moto venv python}
cargo build --release --quiet --bin tributary --example producer --example console_bench
stream_arn=${TRIBUTARY_BENCH_STREAM_ARN:-}
if [ -z "$stream_arn" ]; then
  echo "filling a stream with $records events over $shards shards (kinesis-local is slow to fill)" >&2
  stream_arn=$(target/release/examples/producer --stream "bench-console-$$" --create --shards "$shards" --records "$records" --kind events)
fi
echo "stream: $stream_arn" >&2

# v1 rejects every record (user: int64); v2 is the fix. Both land in an Iceberg table.
sed -e "s|\${STREAM_ARN}|$stream_arn|" -e "s|^    dataset:\$|    dataset:\n      format: iceberg|" examples/events.yaml >"$work/fixed.yaml"
sed -e 's|{name: referrer, type: "optional<string>"}|{name: referrer, type: string}|' "$work/fixed.yaml" >"$work/broken.yaml"
grep -q 'referrer, type: string' "$work/broken.yaml" || { echo "bench-console.sh: could not make the broken definition" >&2; exit 1; }

port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TRIBUTARY_SERVER="http://127.0.0.1:$port"
export TRIBUTARY_TOKEN="bench-console-token"
target/release/tributary serve --data-dir "$work/data" --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 100); do curl -fsS "$TRIBUTARY_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
target/release/tributary commit "$work/broken.yaml" -m broken >&2
give_up=$((SECONDS + 900))
while :; do
  rejected=$(curl -fsS -H "Authorization: Bearer $TRIBUTARY_TOKEN" "$TRIBUTARY_SERVER/api/v1/sources/events/status" \
    | "$python" -c 'import json, sys; print(json.load(sys.stdin)["error_log_rows"])')
  [ "$rejected" -ge "$records" ] && break
  [ "$SECONDS" -lt "$give_up" ] || { echo "bench-console.sh: $rejected of $records rejected after 15 min" >&2; exit 1; }
  sleep 2
done
echo "error log: $rejected rejected rows" >&2

# 1. The console's pages, each a fresh load, three loads each (median render time).
driver_port=$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
chromedriver --port="$driver_port" >/dev/null 2>&1 &
driver_pid=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$driver_port/status" >/dev/null 2>&1 && break; sleep 0.1; done
echo "== console pages (64 shards, $rejected rejected rows)"
target/release/examples/console_bench --server "$TRIBUTARY_SERVER" --chromedriver "http://127.0.0.1:$driver_port" \
  --page '#/' --page '#/source/events' --page '#/source/events/errors' --page '#/source/events/errors?reason=TYPE_MISMATCH' \
  --page '#/tables' --page '#/table/events__rejected'

# 2. The same rows, exported as they are in the log, decoded by `tributary decode` with the fix...
curl -fsS -H "Authorization: Bearer $TRIBUTARY_TOKEN" "$TRIBUTARY_SERVER/api/v1/sources/events/errors/export" >"$work/rejected.ndjson"
"$python" -c '
import json, sys
with open(sys.argv[1]) as rows, open(sys.argv[2], "w") as out:
    for line in rows:
        out.write(json.loads(line)["payload"] + "\n")
' "$work/rejected.ndjson" "$work/payloads.jsonl"
echo "== replay vs tributary decode ($(wc -l <"$work/payloads.jsonl") rows)"
decode_start=$(date +%s.%N)
target/release/tributary decode --definition "$work/fixed.yaml" --source events --input "$work/payloads.jsonl" --output "$work/decoded.parquet" >"$work/decode.out"
decode_end=$(date +%s.%N)
tail -1 "$work/decode.out"

# ... and replayed into the table once the fix is committed.
target/release/tributary commit "$work/fixed.yaml" -m fixed >&2
sleep 2
replay_start=$(date +%s.%N)
curl -fsS -m 600 -H "Authorization: Bearer $TRIBUTARY_TOKEN" -H 'Content-Type: application/json' \
  -d '{"dry_run": false}' "$TRIBUTARY_SERVER/api/v1/sources/events/replay" >"$work/replay.json"
replay_end=$(date +%s.%N)
cat "$work/replay.json"; echo
"$python" - "$work/replay.json" "$decode_start" "$decode_end" "$replay_start" "$replay_end" <<'EOF'
import json, sys
answer = json.load(open(sys.argv[1]))
decode = float(sys.argv[3]) - float(sys.argv[2])
replay = float(sys.argv[5]) - float(sys.argv[4])
landed = answer["landed"]
print(f"tributary decode: {landed / decode:,.0f} rows/s ({decode:.2f} s)")
print(f"replay:           {landed / replay:,.0f} rows/s ({replay:.2f} s, {answer['chunks']} chunks, each an Iceberg commit)")
print(f"replay / decode:  {decode / replay:.2f}")
EOF
