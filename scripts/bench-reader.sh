#!/usr/bin/env bash
# Reader benchmark: tributary-reader vs a plain boto3 GetRecords loop, both
# reading the same freshly filled kinesis-local stream; prints CPU seconds per
# 1M records for each. Starts the emulators and stops them again.
#
#   ./scripts/bench-reader.sh
#   TRIBUTARY_BENCH_RECORDS=200000 TRIBUTARY_BENCH_SHARDS=32 ./scripts/bench-reader.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/emulators.sh install
eval "$(scripts/emulators.sh up)"
trap 'scripts/emulators.sh down' EXIT
cargo bench -p tributary-reader --bench read_vs_boto3
