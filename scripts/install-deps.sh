#!/usr/bin/env bash
# Installs what berth's tests need on a fresh Debian machine (as root). Idempotent: it
# only calls apt-get when a package is missing.
set -euo pipefail

pkgs=(
  busybox-static               # image and bundle contents
  runc crun                    # peer runtimes for the conformance suite and benchmarks
  containerd                   # drop-in and interop checks
  docker-registry              # a real registry on 127.0.0.1
  skopeo umoci                 # independent checks of our OCI image layouts
  containernetworking-plugins  # CNI
  iptables
  libseccomp-dev pkg-config    # the libseccomp crate links libseccomp
  libc6-dev gcc                # static archives: berth is linked as a static PIE (runtime/build.rs)
  protobuf-compiler libprotobuf-dev  # protoc and the well-known types, for the gRPC APIs
  g++                          # libfuzzer-sys builds libFuzzer (scripts/fuzz.sh)
  jq procps psmisc openssl
  python3 python3-pip
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Kubernetes Python client drives the streaming server as a third-party client.
python3 -c 'import kubernetes.stream' 2>/dev/null || python3 -m pip install -q kubernetes
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
