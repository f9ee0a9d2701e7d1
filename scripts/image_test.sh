#!/usr/bin/env bash
# `make image-test`: build the Containerfile without a daemon and run the built image.
#
# buildah with chroot isolation (no daemon, no user namespaces needed), Docker format (keeps
# HEALTHCHECK and SHELL). When no registry is reachable the base image the Containerfile's
# `FROM` names is assembled from Debian packages first (scripts/image_base.sh, cached under
# .cache/image). Package traffic may pass a TLS proxy with its own CA: the host's CA
# certificates and pip configuration are mounted read-only into the build's RUN steps.
# Then tests/test_image.py runs the image's server and a worker as uid 1001. Times and the
# image size are printed at the end (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/.ci/containers.conf"
image=${IMAGE:-localhost/instruct-lab-bot:ci}
cache=${CACHE:-.cache}/image
py=${PY:-.venv/bin/python}

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "image-test: installing ${need[*]} with apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" uidmap >/dev/null
fi

mkdir -p "$cache"
start=$(date +%s)
# No registry is reachable from CI: the base is built from Debian packages (never pulled).
base=$(sed -n 's/^ARG PYTHON_IMAGE=//p' Containerfile)
scripts/image_base.sh "$base" "$cache"
based=$(date +%s)

# What the host trusts and how its pip is configured (`pip config debug` lists the files).
mounts=()
for path in /etc/ssl/certs /etc/pip.conf /etc/xdg/pip; do
  [ -e "$path" ] && mounts+=(-v "$path:$path:ro")
done
# No REVISION build argument: its LABEL comes before the package layers, so a new commit
# would rebuild them all; the CI image is thrown away anyway.
# What the wheel is built from: buildah 1.28 keeps a cached COPY of a changed folder, so the
# Containerfile's wheel steps key on this digest (a build argument) instead.
digest=$(find pyproject.toml README.md LICENSE instruct_lab_bot -type f ! -name '*.pyc' -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
build() {
  buildah bud --build-arg "SOURCE_DIGEST=$digest" --quiet --isolation=chroot --format docker \
    --pull=never --layers --force-rm \
    "${mounts[@]}" "$@" -t "$image" . >/dev/null
}
# Buildah 1.28 (Debian 12) cannot bind-mount a stage it took from its layer cache
# (`RUN --mount=...,from=build` then finds no /wheels): when a step after an unchanged build
# stage must run again, build once more without the cache.
if ! build 2>"$cache/build.err"; then
  cat "$cache/build.err" >&2
  grep -q "on host to bind mount into container" "$cache/build.err" || exit 1
  echo "image-test: a cached stage could not be mounted (buildah 1.28); building without cache"
  build --no-cache
fi
built=$(date +%s)

report="$cache/report.json"
rm -f "$report"
ILAB_BOT_TEST_IMAGE="$image" ILAB_BOT_IMAGE_REPORT="$report" \
  "$py" -m pytest tests/test_image.py -m image -q -p no:cacheprovider
done_at=$(date +%s)

printf 'image-test: base %ss, build %ss, run tests %ss; %s is %s; %s\n' \
  "$((based - start))" "$((built - based))" "$((done_at - built))" \
  "$image" "$(buildah images --format '{{.Size}}' "$image")" \
  "$(cat "$report" 2>/dev/null || echo 'no start-up time')"
