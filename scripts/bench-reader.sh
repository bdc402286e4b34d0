#!/usr/bin/env bash
# Reader benchmark: tributary-reader vs a plain boto3 GetRecords loop, both
# reading the same freshly filled kinesis-local stream; prints CPU seconds per
# 1M records for each. Starts the emulators and stops them again.
#
#   ./scripts/bench-reader.sh
#   TRIBUTARY_BENCH_RECORDS=200000 TRIBUTARY_BENCH_SHARDS=32 ./scripts/bench-reader.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export TRIBUTARY_BENCH_RECORDS=${TRIBUTARY_BENCH_RECORDS:-100000}
export TRIBUTARY_BENCH_SHARDS=${TRIBUTARY_BENCH_SHARDS:-16}
scripts/emulators.sh install
eval "$(scripts/emulators.sh up)"
trap 'scripts/emulators.sh down' EXIT
cargo build --release --quiet --example producer
echo "filling a stream with $TRIBUTARY_BENCH_RECORDS events over $TRIBUTARY_BENCH_SHARDS shards (kinesis-local is slow to fill)" >&2
TRIBUTARY_BENCH_STREAM_ARN=$(target/release/examples/producer --stream "bench-reader-$$" --create \
  --shards "$TRIBUTARY_BENCH_SHARDS" --records "$TRIBUTARY_BENCH_RECORDS" --kind events)
export TRIBUTARY_BENCH_STREAM_ARN
cargo bench -p tributary-reader --bench read_vs_boto3
