#!/bin/sh
# Builds the image examples/docker.toml runs, `distarch-example/worker:1`, on the
# Docker engine DOCKER_HOST points at (default: the local socket), without any
# registry: the SDK example worker, the libraries `ldd` lists, `docker import`.
#
# Usage: examples/build-docker-image.sh [WORKER_BINARY]
#        (default: target/debug/distarch-example-worker; build it first with
#        `cargo build --workspace --bins`)
set -eu
cd "$(dirname "$0")/.."
WORKER=${1:-target/debug/distarch-example-worker}
TAG=${TAG:-distarch-example/worker:1}
[ -x "$WORKER" ] || { echo "$0: $WORKER is missing: run cargo build --workspace --bins" >&2; exit 1; }

ROOT=$(mktemp -d)
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT/tmp"
cp "$WORKER" "$ROOT/worker"
for lib in $(ldd "$WORKER" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$ROOT$(dirname "$lib")"
    cp -L "$lib" "$ROOT$lib"
done
tar -C "$ROOT" -c . | docker import -c 'CMD ["/worker"]' - "$TAG" >/dev/null
echo "built $TAG"
