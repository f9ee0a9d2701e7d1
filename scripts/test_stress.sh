#!/usr/bin/env bash
# `make test-stress`: the whole suite three times in a row while two processes burn both
# cores, then once more on a clean clone. A test that fails here depends on timing: fix it by
# waiting on an event or condition, never by a longer sleep or deadline.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
runs=${STRESS_RUNS:-3}
burners=()
for _ in 1 2; do
  "$py" -c "while True: pass" &
  burners+=($!)
done
trap 'kill "${burners[@]}" 2>/dev/null || true' EXIT
for run in $(seq 1 "$runs"); do
  start=$(date +%s)
  "$py" -m pytest -n "${PYTEST_WORKERS:-3}" -q -p no:cacheprovider ${PYTEST_ARGS:-}
  echo "test-stress: run $run of $runs passed under load in $(( $(date +%s) - start ))s"
done
kill "${burners[@]}" 2>/dev/null || true
clone=$(mktemp -d)
trap 'kill "${burners[@]}" 2>/dev/null || true; rm -rf "$clone"' EXIT
git clone -q . "$clone/main"
[ -d ../shared ] && ln -s "$(cd ../shared && pwd)" "$clone/shared"
start=$(date +%s)
make -C "$clone/main" test PYTEST_ARGS="-q -p no:cacheprovider"
echo "test-stress: a clean clone passed in $(( $(date +%s) - start ))s"
