#!/usr/bin/env bash
# Installs what the tests need, starts the local AWS emulators, runs every test
# (unit, property, CLI and emulator-backed), and stops the emulators again.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -E 'test(live)'   # extra arguments go to cargo nextest
#
# Needs: a Rust toolchain (rustup, 1.94+), gcc, python3 (with venv), node + npm, curl, chromium + chromedriver
# (installed with apt-get when missing and run as root).
# Installs: cargo-nextest, cargo-audit and cargo-fuzz when missing (crates.io), kinesis-local (npm) and
# moto + pyarrow + pyiceberg and openmetadata-ingestion (PyPI) under ${TRIBUTARY_TOOLS_DIR:-$HOME/.cache/tributary}. TRIBUTARY_FUZZ_SECONDS
# (default 15, 0 to skip) bounds the fuzzing of each codec target.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=""
for tool in cargo python3 node npm curl; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing$missing with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq python3 python3-venv nodejs npm curl >/dev/null
  fi
  for tool in $missing; do command -v "$tool" >/dev/null || { echo "test.sh: $tool is required" >&2; exit 1; }; done
fi
# The console's browser tests drive Debian's chromium through chromedriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "test.sh: installing chromium and chromium-driver with apt-get" >&2
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
      || { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
  fi
  for tool in chromium chromedriver; do command -v "$tool" >/dev/null || { echo "test.sh: $tool is required (apt-get install chromium chromium-driver)" >&2; exit 1; }; done
fi
export TRIBUTARY_TEST_CHROMIUM="$(command -v chromium)" TRIBUTARY_TEST_CHROMEDRIVER="$(command -v chromedriver)"
python3 -c 'import venv' 2>/dev/null || { echo "test.sh: python3 needs the venv module (apt-get install python3-venv)" >&2; exit 1; }

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest >&2
fi

# Known-vulnerable dependencies fail the run (RustSec advisories; see the script for offline use).
scripts/audit.sh

# A short coverage-guided fuzz of every decoder (JSON, Avro, Debezium, Protobuf, Glue framing) (longer: ./scripts/fuzz.sh 600).
fuzz_seconds=${TRIBUTARY_FUZZ_SECONDS:-15}
if [ "$fuzz_seconds" -gt 0 ]; then
  ./scripts/fuzz.sh "$fuzz_seconds"
fi

scripts/emulators.sh install
eval "$(scripts/emulators.sh up)"
trap 'scripts/emulators.sh down' EXIT

# pyarrow (into moto's venv) reads the ingested datasets back as a user's notebook would.
if ! "$TRIBUTARY_TEST_MOTO_PYTHON" -c 'import pyarrow' 2>/dev/null; then
  echo "test.sh: installing pyarrow" >&2
  "$TRIBUTARY_TEST_MOTO_PYTHON" -m pip install --quiet 'pyarrow==21.0.0' >&2
fi
export TRIBUTARY_TEST_PYARROW_PYTHON="$TRIBUTARY_TEST_MOTO_PYTHON"
# pyiceberg (same venv) reads the Iceberg tables back as a path-based reader would.
if ! "$TRIBUTARY_TEST_MOTO_PYTHON" -c 'import pyiceberg' 2>/dev/null; then
  echo "test.sh: installing pyiceberg" >&2
  "$TRIBUTARY_TEST_MOTO_PYTHON" -m pip install --quiet 'pyiceberg==0.12.0' >&2
fi
export TRIBUTARY_TEST_PYICEBERG_PYTHON="$TRIBUTARY_TEST_MOTO_PYTHON"
# OpenMetadata's own ingestion workflow (2.0.7, what its workflow imports, --no-deps) runs the
# Custom Messaging connector's wheel; hatchling builds that wheel without fetching a build env.
om_requirements=python/tributary-openmetadata/tests/openmetadata-ingestion.txt
om_venv="${TRIBUTARY_TOOLS_DIR:-$HOME/.cache/tributary}/openmetadata-ingestion-$(sha256sum "$om_requirements" | cut -c1-12)"
if [ ! -x "$om_venv/bin/metadata" ] || ! "$om_venv/bin/python" -c 'import hatchling' 2>/dev/null; then
  echo "test.sh: installing openmetadata-ingestion 2.0.7 into $om_venv" >&2
  rm -rf "$om_venv" && python3 -m venv "$om_venv"
  "$om_venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$om_requirements" >&2
  "$om_venv/bin/pip" install --quiet --disable-pip-version-check 'hatchling==1.27.0' >&2
fi
export TRIBUTARY_TEST_OPENMETADATA_PYTHON="$om_venv/bin/python"

# The emulator-backed tests must fail, not skip, if the emulators are missing.
unset TRIBUTARY_SKIP_EMULATOR_TESTS
# Benches are built and run by `cargo bench` (release), not here.
cargo nextest run --workspace --lib --bins --tests --examples --no-fail-fast "$@"
# nextest does not run doctests; they are examples in the docs and must stay true.
cargo test --workspace --doc
