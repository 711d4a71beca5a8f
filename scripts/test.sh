#!/usr/bin/env bash
# Runs every test of berth on a fresh machine, as root: installs what the tests need,
# builds the workspace once, builds and pushes the fixture images to a local registry,
# runs unit and root integration tests, then the OCI conformance suite against berth.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never

cargo build --workspace --all-targets --locked

work=$(mktemp -d /tmp/berth-test.XXXXXX)
cleanup() {
  [ -f "$work/registry.env" ] && bash scripts/registry.sh stop "$work/registry" || true
  rm -rf "$work"
}
trap cleanup EXIT

cargo nextest run --workspace --no-fail-fast --locked

echo "== OCI runtime conformance suite against berth"
target/debug/berth-conformance oci --runtime "$PWD/target/debug/berth"
echo "test.sh: done in $(( $(date +%s) - t0 )) s"
