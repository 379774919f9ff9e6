#!/usr/bin/env bash
# Builds the sketchd image from a binary built here, without pulling any
# image: the static binary (CGO_ENABLED=0, -trimpath), the host's CA
# bundle and an empty /data go into a FROM scratch image
# (scripts/Containerfile.local, the final stage of the Dockerfile).
#
#   scripts/image-local.sh [tag]        # default tag: sketchd:local
#
# Needs Go and buildah (Debian: apt-get install -y buildah), or podman
# (IMAGE_BUILDER=podman). docs/container.md says what was verified.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-sketchd:local}
builder=${IMAGE_BUILDER:-buildah}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
version=$(git describe --always --dirty 2>/dev/null || echo dev)
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$ctx/sketchd" ./cmd/sketchd
cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
mkdir "$ctx/data"
cp scripts/Containerfile.local "$ctx/Containerfile"
case $builder in
  buildah) buildah bud --format docker -f "$ctx/Containerfile" -t "$tag" "$ctx" ;;
  podman)  podman build --format docker -f "$ctx/Containerfile" -t "$tag" "$ctx" ;;
  *) echo "IMAGE_BUILDER must be buildah or podman" >&2; exit 2 ;;
esac
echo "built $tag"
