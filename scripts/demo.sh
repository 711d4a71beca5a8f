#!/usr/bin/env bash
# Runs a busybox container with berth: builds berth, makes an OCI bundle from Debian's
# busybox-static, and runs it in the foreground. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p berth-runtime
berth=$PWD/target/release/berth
bundle=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
bash scripts/busybox-rootfs.sh "$bundle/rootfs"
"$berth" spec --bundle "$bundle"
jq '.process.terminal = false
    | .process.args = ["sh", "-c", "echo hello from berth; hostname; id; cat /proc/self/cgroup | head -3; ps"]
    | .hostname = "berth-demo"' "$bundle/config.json" > "$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"
exec "$berth" run --bundle "$bundle" "demo-$$"
