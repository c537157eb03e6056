#!/usr/bin/env bash
# Builds the real Kubernetes components (tests/k8s-cluster: one binary, the pinned
# Kubernetes version of go.mod) into target/k8s-cluster/k8s-cluster, once: a stamp of
# the sources and the Go version skips the build when nothing changed, and Go's own
# build cache (GOCACHE, ~/.cache/go-build by default) keeps a rebuild incremental.
# Prints the build's wall time and peak memory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/target/k8s-cluster
bin=$out/k8s-cluster
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
[ -x "$go" ] || { echo "k8s-cluster: Go is not installed (expected at /usr/local/go/bin/go)" >&2; exit 1; }
version=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\)$/\1/p' "$here/go.mod")
stamp=$(cd "$here" && cat go.mod go.sum ./*.go build.sh | sha256sum | cut -c1-16)-$("$go" env GOVERSION)
if [ -x "$bin" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "k8s-cluster: Kubernetes $version components up to date ($bin)"
    exit 0
fi
mkdir -p "$out"
echo "k8s-cluster: building Kubernetes $version components (a first build takes long on 2 cores)..."
minor=$(echo "$version" | cut -d. -f2)
# The version the components report (the module build has no git stamp).
ldflags="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
start=$(date +%s)
if [ -x /usr/bin/time ]; then
    (cd "$here" && /usr/bin/time -f 'k8s-cluster: peak memory of its largest process %M KiB' "$go" build -ldflags "$ldflags" -o "$bin.tmp" .)
else
    (cd "$here" && "$go" build -ldflags "$ldflags" -o "$bin.tmp" .)
fi
mv "$bin.tmp" "$bin"
echo "$stamp" > "$out/stamp"
echo "k8s-cluster: built in $(( $(date +%s) - start )) s ($(du -h "$bin" | cut -f1)) -> $bin"
