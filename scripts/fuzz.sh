#!/usr/bin/env bash
# Coverage-guided fuzzing of the codec (cargo-fuzz / libFuzzer), bounded in time.
#
#   ./scripts/fuzz.sh            # each target for 60 s
#   ./scripts/fuzz.sh 300        # each target for 300 s
#
# Installs cargo-fuzz when missing. Runs on the stable toolchain without a
# sanitizer (`--sanitizer none`; RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# coverage flags to stable rustc). A crash leaves its input under
# fuzz/artifacts/<target>/ and fails the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install --locked cargo-fuzz >&2
fi

for target in json_decode avro_decode debezium_decode protobuf_decode glue_decode; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz.sh: $target for ${seconds}s" >&2
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 -print_final_stats=1
done
