#!/usr/bin/env bash
# Build etcd, kube-apiserver, kube-controller-manager, kubectl (and helm) from the Go module proxy
# into a cache outside the repo, keyed by version. A second run with the same versions builds nothing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache_root="${APPCONFIG_SYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/appconfig-sync}"
# One directory per component and version, so bumping one pin rebuilds only that component.
etcd_dir="$cache_root/bin/etcd-$ETCD_VERSION"
k8s_dir="$cache_root/bin/kubernetes-$KUBERNETES_VERSION"
helm_dir="$cache_root/bin/helm-$HELM_VERSION"
logdir="$cache_root/logs"
mkdir -p "$etcd_dir" "$k8s_dir" "$helm_dir" "$logdir"

fail() { echo "build-control-plane: $*" >&2; exit 1; }
command -v go >/dev/null 2>&1 || fail "the Go toolchain ('go') is not on PATH; install Go 1.24 or newer to build the local control plane"

build() {  # build <component> <log> <command...>: run in a temp wrapper module, fail with the log path
  local component="$1" log="$2"; shift 2
  if ! "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2 || true
    fail "building $component failed; full log: $log"
  fi
}

if [[ ! -x "$etcd_dir/etcd" ]]; then
  echo "building etcd $ETCD_VERSION (cached in $etcd_dir)" >&2
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  (cd "$work" && cat >go.mod <<MOD
module example.invalid/etcdbin
go 1.24.0
MOD
   build etcd "$logdir/etcd-build.log" bash -c "go get go.etcd.io/etcd/server/v3@$ETCD_VERSION && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o '$etcd_dir/etcd.tmp' go.etcd.io/etcd/server/v3")
  mv "$etcd_dir/etcd.tmp" "$etcd_dir/etcd"
fi

if [[ ! -x "$k8s_dir/kube-apiserver" || ! -x "$k8s_dir/kube-controller-manager" || ! -x "$k8s_dir/kubectl" ]]; then
  echo "building kube-apiserver, kube-controller-manager, kubectl $KUBERNETES_VERSION (tens of minutes when cold; cached in $k8s_dir)" >&2
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  staging_version="v0.${KUBERNETES_VERSION#v1.}"
  minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  (
    cd "$work"
    cat >go.mod <<MOD
module example.invalid/k8sbins
go 1.24.0
godebug default=go1.24
require k8s.io/kubernetes $KUBERNETES_VERSION
MOD
    # Main packages cannot be imported, but a build-tagged file keeps them required through `go mod tidy`.
    cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
    [[ -f "$gomod" ]] || fail "could not download k8s.io/kubernetes@$KUBERNETES_VERSION from the Go module proxy"
    # k8s.io/kubernetes replaces its staging modules with ./staging paths, ignored for a dependency: pin the published ones.
    for mod in $(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod"); do
      go mod edit -replace "$mod=$mod@$staging_version"
    done
    build "kubernetes modules" "$logdir/k8s-modules.log" go mod tidy
    build "kube-apiserver, kube-controller-manager, kubectl" "$logdir/k8s-build.log" \
      env CGO_ENABLED=0 go build -trimpath -tags selinux,notest \
        -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
        -o "$k8s_dir/.build/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
    mv "$k8s_dir/.build/"* "$k8s_dir/" && rmdir "$k8s_dir/.build"
  )
fi

if [[ "${BUILD_HELM:-0}" == 1 && ! -x "$helm_dir/helm" ]]; then
  echo "building helm $HELM_VERSION (cached in $helm_dir)" >&2
  work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
  (cd "$work" && cat >go.mod <<MOD
module example.invalid/helmbin
go 1.25.0
MOD
   # `go get` of the main package (not just the module) records the go.sum entries of everything it imports.
   build helm "$logdir/helm-build.log" bash -c "go get helm.sh/helm/v4/cmd/helm@$HELM_VERSION && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION' -o '$helm_dir/helm.tmp' helm.sh/helm/v4/cmd/helm")
  mv "$helm_dir/helm.tmp" "$helm_dir/helm"
fi

