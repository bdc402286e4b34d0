#!/usr/bin/env bash
# Checks Cargo.lock against the RustSec advisory database with cargo-audit.
#
#   scripts/audit.sh                 # audit Cargo.lock (installs cargo-audit when missing)
#   scripts/audit.sh snapshot DIR    # refresh scripts/audit/advisories.txt from an advisory-db checkout
#
# The live database is on GitHub. When it cannot be fetched (this project's
# test machines reach only package registries), the audit runs against
# scripts/audit/advisories.txt: the facts of every advisory (id, crate, date,
# affected and patched versions; CC0-1.0, from github.com/rustsec/advisory-db)
# without their prose, expanded into a database cargo-audit reads. Before
# trusting a verdict, the audit proves it flags a lock file holding a
# known-vulnerable crate (scripts/audit/vulnerable.lock).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
facts=scripts/audit/advisories.txt

if [ "${1:-}" = snapshot ]; then
  source_dir=${2:?usage: scripts/audit.sh snapshot PATH-TO-advisory-db}
  commit=$(git -C "$source_dir" log -1 --format='%H %cs')
  python3 - "$source_dir" "$commit" >"$facts" <<'PY'
import pathlib, re, sys
root, commit = pathlib.Path(sys.argv[1]), sys.argv[2]
print(f"# RustSec advisory facts (no prose) from github.com/rustsec/advisory-db {commit}; CC0-1.0.")
print("# Regenerate with: scripts/audit.sh snapshot PATH-TO-advisory-db")
for path in sorted(list(root.glob("crates/*/*.md")) + list(root.glob("rust/*/*.md"))):
    front = re.match(r"```toml\n(.*?)\n```", path.read_text(), re.S)
    if front:
        print(f"=== {path.relative_to(root)}")
        print(front.group(1))
PY
  echo "audit: $(grep -c '^=== ' "$facts") advisories written to $facts" >&2
  exit 0
fi

if ! cargo audit --version >/dev/null 2>&1; then
  echo "audit: installing cargo-audit" >&2
  cargo install --locked cargo-audit >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/advisory-db"
# The live database, if GitHub answers within a bound.
if timeout 60 git clone --quiet --depth 1 https://github.com/rustsec/advisory-db.git "$db" 2>/dev/null; then
  echo "audit: live advisory database ($(git -C "$db" log -1 --format=%cs))" >&2
else
  rm -rf "$db"
  python3 - "$facts" "$db" <<'PY'
import pathlib, sys
facts, db = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
path, lines = None, []
def flush():
    if path is not None:
        target = db / path
        target.parent.mkdir(parents=True, exist_ok=True)
        ident = next(l.split('"')[1] for l in lines if l.startswith("id = "))
        # cargo-audit reads a TOML front matter and a title; the title is the id.
        target.write_text("```toml\n" + "\n".join(lines) + "\n```\n\n# " + ident + "\n")
for line in facts.read_text().splitlines():
    if line.startswith("#") and path is None:
        continue
    if line.startswith("=== "):
        flush()
        path, lines = line[4:], []
    else:
        lines.append(line)
flush()
PY
  git -C "$db" init --quiet
  git -C "$db" add -A
  git -C "$db" -c user.name=tributary -c user.email=audit@localhost commit --quiet -m snapshot
  echo "audit: GitHub unreachable; using the snapshot in $facts (advisories up to $(sed -n 1p "$facts" | grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}'))" >&2
fi

audit() { cargo audit --no-fetch --stale --db "$db" --file "$1" "${@:2}"; }
# The check itself must catch a known-vulnerable dependency, or its silence means nothing.
if audit scripts/audit/vulnerable.lock >"$work/canary.log" 2>&1; then
  cat "$work/canary.log" >&2
  echo "audit: cargo-audit did not flag scripts/audit/vulnerable.lock; the advisory database is not being read" >&2
  exit 1
fi
grep -q RUSTSEC-2021-0003 "$work/canary.log" || { cat "$work/canary.log" >&2; echo "audit: the canary failed for another reason than its advisory" >&2; exit 1; }
echo "audit: the canary lock file is flagged (RUSTSEC-2021-0003); auditing Cargo.lock" >&2
audit Cargo.lock
