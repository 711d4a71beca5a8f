#!/usr/bin/env bash
# Runs every test of berth on a fresh machine, as root: installs what the tests need,
# builds the workspace once, builds the fixture images and pushes them to local
# registries (Debian's docker-registry on 127.0.0.1, stopped at the end), runs unit and
# root integration tests with cargo-nextest, then the OCI conformance suite against berth
# (the debug build, then the release build after checking its code layout file,
# runtime/berth.order), then a short cargo-fuzz run of every parser of outside data (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
target=${CARGO_TARGET_DIR:-$PWD/target}
export BERTH_CONFORMANCE=$target/debug/berth-conformance

check_dev_null() {
  [ -c /dev/null ] || { echo "test.sh: /dev/null is no longer a character device ($1)" >&2; exit 1; }
}
check_dev_null "before the tests"

echo "== build"
cargo build --workspace --all-targets --locked

work=$(mktemp -d /tmp/berth-test.XXXXXX)
cleanup() {
  if [ -n "${BERTH_TEST_REGISTRY_DIR:-}" ]; then
    bash scripts/registry.sh stop "$BERTH_TEST_REGISTRY_DIR" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== fixture images and local registries"
eval "$(bash scripts/registry.sh start)"
"$BERTH_CONFORMANCE" images build "$work/fixtures"
"$BERTH_CONFORMANCE" images push "$work/fixtures" --registry "$BERTH_TEST_REGISTRY"
"$BERTH_CONFORMANCE" images push "$work/fixtures" --registry "$BERTH_TEST_AUTH_REGISTRY" --creds "$BERTH_TEST_AUTH_CREDS"

echo "== unit and root integration tests"
cargo nextest run --workspace --no-fail-fast --locked
check_dev_null "after the integration tests"

echo "== OCI runtime conformance suite against berth ($(( $(date +%s) - t0 )) s so far)"
"$BERTH_CONFORMANCE" oci --runtime "$target/debug/berth"

echo "== the release berth: its code layout, and the OCI suite again ($(( $(date +%s) - t0 )) s so far)"
cargo build --release -p berth-runtime --locked
"$BERTH_CONFORMANCE" orderfile --berth "$target/release/berth" --check runtime/berth.order
"$BERTH_CONFORMANCE" oci --runtime "$target/release/berth"

echo "== fuzz: every parser of outside data, 20 s each ($(( $(date +%s) - t0 )) s so far)"
BERTH_FUZZ_TARGET_DIR="$target/fuzz" bash scripts/fuzz.sh 20
echo "== all tests passed in $(( $(date +%s) - t0 )) s"
