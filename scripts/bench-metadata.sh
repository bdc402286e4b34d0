#!/usr/bin/env bash
# `tributary metadata ingest` side by side with a sequential boto3 loop doing what
# OpenMetadata's Kinesis connector does (benches/openmetadata_boto3.py), on 200 streams
# of 1-4 shards (half with a few records) plus 4 wide ones of 120 shards (half with
# 50 records), generateSampleData on. Measured twice:
# raw against kinesis-local, and through benches/delay_proxy.py, which holds every
# call 30 ms as a real region's round trip does. Prints wall and CPU seconds of each
# and the ratios. Starts (and stops) emulators of its own, with room for the shards.
#
#   ./scripts/bench-metadata.sh
#   TRIBUTARY_BENCH_STREAMS=50 TRIBUTARY_BENCH_WIDE=2 TRIBUTARY_BENCH_DELAY_MS=30 ./scripts/bench-metadata.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
streams=${TRIBUTARY_BENCH_STREAMS:-200}
wide=${TRIBUTARY_BENCH_WIDE:-4}
delay_ms=${TRIBUTARY_BENCH_DELAY_MS:-30}
work=$(mktemp -d)

scripts/emulators.sh install
export TRIBUTARY_EMULATORS_STATE="$PWD/.emulators/bench-metadata.pids"
eval "$(TRIBUTARY_KINESIS_SHARD_LIMIT=$((streams * 4 + wide * 120 + 100)) scripts/emulators.sh up)"
proxy_pid=""
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  scripts/emulators.sh down
  rm -rf "$work"
}
trap cleanup EXIT

cargo build --release --bin tributary >&2
python=$TRIBUTARY_TEST_MOTO_PYTHON
prefix=omb
echo "filling $streams streams and $wide wide ones" >&2
"$python" benches/openmetadata_boto3.py fill "$AWS_ENDPOINT_URL_KINESIS" "$prefix" "$streams" "$wide"

kinesis_port=${AWS_ENDPOINT_URL_KINESIS##*:}
proxy_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$python" benches/delay_proxy.py "$proxy_port" 127.0.0.1 "$kinesis_port" "$delay_ms" &
proxy_pid=$!
sleep 1

workflow() { # workflow ENDPOINT FILE
  cat >"$2" <<YAML
source:
  type: kinesis
  serviceName: bench
  serviceConnection:
    config:
      type: Kinesis
      awsConfig:
        awsAccessKeyId: bench
        awsSecretAccessKey: bench
        awsRegion: us-east-1
        endPointURL: $1
  sourceConfig:
    config:
      type: MessagingMetadata
      generateSampleData: true
      topicFilterPattern:
        includes: ["$prefix-"]
sink:
  type: file
  config:
    filename: $work/requests.jsonl
workflowConfig:
  openMetadataServerConfig:
    hostPort: http://127.0.0.1:9/api
YAML
}

for mode in raw proxied; do
  if [ "$mode" = raw ]; then endpoint=$AWS_ENDPOINT_URL_KINESIS; else endpoint=http://127.0.0.1:$proxy_port; fi
  workflow "$endpoint" "$work/$mode.yaml"
  read -r ours_wall ours_cpu < <("$python" benches/measure.py target/release/tributary metadata ingest -c "$work/$mode.yaml")
  read -r peer_wall peer_cpu < <("$python" benches/measure.py "$python" benches/openmetadata_boto3.py run "$endpoint" "$prefix-")
  python3 - "$mode" "$ours_wall" "$ours_cpu" "$peer_wall" "$peer_cpu" <<'PY'
import sys
mode, ours_wall, ours_cpu, peer_wall, peer_cpu = sys.argv[1], *map(float, sys.argv[2:])
print(f"{mode:8} tributary: wall {ours_wall:6.2f} s, cpu {ours_cpu:5.2f} s | boto3: wall {peer_wall:6.2f} s, cpu {peer_cpu:5.2f} s"
      f" | wall x{peer_wall / ours_wall:.1f} faster, cpu 1/{peer_cpu / max(ours_cpu, 0.005):.1f}")
PY
done
