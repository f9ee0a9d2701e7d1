#!/usr/bin/env bash
# Assemble the Containerfile's base image from Debian packages when no image registry is
# reachable (CI, air-gapped hosts), and import it locally under the name the Containerfile's
# `FROM` uses, so that the Containerfile itself keeps its normal `FROM` for everyone else.
#
#   scripts/image_base.sh <image name> <cache dir>
#
# The root file system comes from `mmdebstrap` (Debian's archive, like the official
# python:*-slim-bookworm image: Debian bookworm and its Python 3.11). It is cached as
# <cache dir>/base-<hash>.tar, keyed by the suite and the package list, so a cached CI run
# skips mmdebstrap entirely.
set -euo pipefail
name=$1
cache=$2
suite=bookworm
# The official image's Python, and what the Containerfile's stages run: `python` (build
# stage), `python3 -m venv` and pip (final stage).
packages="ca-certificates,python3,python3-venv,python3-pip,python-is-python3"

mkdir -p "$cache"
key=$(printf '%s\n%s\n' "$suite" "$packages" | sha256sum | cut -c1-16)
tarball="$cache/base-$key.tar"
if [ ! -s "$tarball" ]; then
  echo "image-base: mmdebstrap $suite ($packages) -> $tarball"
  # Documentation, man pages and apt lists stay out, as in the slim images.
  mmdebstrap --variant=minbase --format=tar --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$suite" "$tarball.part" http://deb.debian.org/debian
  mv "$tarball.part" "$tarball"
else
  echo "image-base: cached $tarball"
fi

if buildah inspect --type image "$name" >/dev/null 2>&1 \
  && [ "$(buildah inspect --type image --format "{{index .Docker.Config.Labels \"base-key\"}}" "$name")" = "$key" ]; then
  echo "image-base: $name is already imported"
  exit 0
fi
ctr=$(buildah from scratch)
trap 'buildah rm "$ctr" >/dev/null' EXIT
buildah add --quiet "$ctr" "$tarball" /
buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 --cmd python3 --label base-key="$key" "$ctr"
buildah commit --quiet --format docker "$ctr" "$name" >/dev/null
echo "image-base: imported $name"
