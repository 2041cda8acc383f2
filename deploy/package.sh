#!/usr/bin/env bash
# Build what a cluster needs from this checkout into dist/ (docs/deploy.md, "Shipping the package"):
#
#   dist/presage-<version>-py3-none-any.whl   the package; schemas, GX suites and spark_conf/ inside
#   dist/presage-env.tar.gz                   a virtualenv holding the wheel and its pinned
#                                             dependencies, packed by venv-pack, for --archives
#   dist/feature_repo.tar.gz                  the Feast repository, for a driver in a YARN container
#
#   deploy/package.sh [--python python3.11] [--wheel-only]
#
# venv-pack keeps the interpreter as a link to the base Python, so the nodes need the same Python
# (3.11) at the same path as the machine that packs; Spark's Python packaging guide says the same.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="$ROOT/dist"
VENV_PACK=venv-pack==0.2.0
python=python3
wheel_only=false

while [ $# -gt 0 ]; do
  case "$1" in
    --python) python="${2:?--python needs a value}"; shift 2 ;;
    --wheel-only) wheel_only=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "deploy/package.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

version="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$version" = 3.11 ] || { echo "deploy/package.sh: presage needs Python 3.11; $python is $version" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$DIST" "$work/source"
rm -f "$DIST"/presage-*.whl
# Built from a copy, so that setuptools' build/ and egg-info never land in the checkout.
cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/src" "$work/source/"
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$DIST" "$work/source"
wheel=("$DIST"/presage-*.whl)
echo "wheel:           ${wheel[0]}"

tar -czf "$DIST/feature_repo.tar.gz" -C "$ROOT/feature_repo" --exclude=__pycache__ .
echo "feast repo:      $DIST/feature_repo.tar.gz"
$wheel_only && exit 0

"$python" -m venv "$work/presage-env"
"$work/presage-env/bin/pip" install --quiet --upgrade pip
"$work/presage-env/bin/pip" install --quiet "${wheel[0]}" "$VENV_PACK"
"$work/presage-env/bin/venv-pack" --prefix "$work/presage-env" --output "$DIST/presage-env.tar.gz" --force
echo "packed env:      $DIST/presage-env.tar.gz"
