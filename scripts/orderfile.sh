#!/usr/bin/env bash
# Regenerates runtime/berth.order, the symbol ordering file that packs the functions
# berth's container lifecycle runs at the front of its code (see
# conformance/src/orderfile/mod.rs for why). Run it after a toolchain or dependency
# update, a berth-runtime version change, or large changes to the runtime's hot paths;
# CI's check (scripts/test.sh) says when it is stale. Needs root (it runs containers).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release -p berth-runtime --locked
cargo build -p berth-conformance --locked
"$target/debug/berth-conformance" orderfile --berth "$target/release/berth" --out runtime/berth.order
# Relink with the new order, then check that its names are this build's.
cargo build --release -p berth-runtime --locked
"$target/debug/berth-conformance" orderfile --berth "$target/release/berth" --check runtime/berth.order
