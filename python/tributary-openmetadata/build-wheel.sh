#!/usr/bin/env bash
# Builds the connector's wheel with a Tributary binary inside it.
#
#   python/tributary-openmetadata/build-wheel.sh [BINARY] [OUT_DIR]
#
# BINARY defaults to target/release/tributary (build it with `cargo build --release`),
# OUT_DIR to python/tributary-openmetadata/dist. Needs python3 with pip (hatchling is
# fetched from PyPI into pip's isolated build environment unless $PYTHON has it).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=${1:-"$here/../../target/release/tributary"}
out=${2:-"$here/dist"}
[ -x "$binary" ] || { echo "build-wheel.sh: $binary is not an executable (cargo build --release first)" >&2; exit 1; }
python=${PYTHON:-python3}
mkdir -p "$here/src/tributary_openmetadata/bin" "$out"
install -m 0755 "$binary" "$here/src/tributary_openmetadata/bin/tributary"
trap 'rm -f "$here/src/tributary_openmetadata/bin/tributary"; rm -rf "$here/build"' EXIT
# With hatchling already installed (the test venv has it), no build environment is fetched.
isolation=()
if "$python" -c 'import hatchling' 2>/dev/null; then isolation=(--no-build-isolation); fi
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps "${isolation[@]}" --wheel-dir "$out" "$here" >&2
ls "$out"/tributary_openmetadata-*.whl
