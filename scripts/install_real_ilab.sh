#!/usr/bin/env bash
# Installs the real `instructlab` into its own venv from the committed lock (exact pins + hashes),
# so `make test-real-ilab` runs the release as resolved in its era (REAL-ON-CPU: today's newest
# transitive releases break it). Usage: install_real_ilab.sh VERSION VENV_DIR
set -euo pipefail
version=$1 venv=$2
lock="$(dirname "$0")/../requirements/ilab-${version}.lock"
stamp="$venv/.lock-sha256"
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
py=${ILAB_PYTHON:-python3.11}
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$py" -m venv "$venv"
# uv installs the ~230 pinned packages in parallel; it is pinned and only used here.
"$venv/bin/pip" install --quiet --disable-pip-version-check 'uv==0.13.9'
start=$(date +%s)
"$venv/bin/uv" pip install --python "$venv/bin/python" --require-hashes --no-deps \
  --index-url https://pypi.org/simple -r "$lock"
echo "real ilab $version: installed in $(( $(date +%s) - start ))s, $(du -sh "$venv" | cut -f1)"
echo "$want" > "$stamp"
