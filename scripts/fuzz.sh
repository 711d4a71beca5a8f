#!/usr/bin/env bash
# Fuzzes every parser of outside data (fuzz/fuzz_targets: layer_apply, manifest,
# hosts_toml, reference, config_json) with cargo-fuzz, each for SECONDS_PER_TARGET
# (default 20), and fails on the first crash, panic or escape. As root (layer_apply
# enters a private mount namespace). Runs on stable Rust: RUSTC_BOOTSTRAP=1 lets
# cargo-fuzz pass the nightly-only flags it needs.
#
#   bash scripts/fuzz.sh          # the short CI run
#   bash scripts/fuzz.sh 3600     # an hour per target, by hand
#
# Measured on the 2-core dev VM, fresh target dir, cargo-fuzz already installed: build
# 7 min, whole script with the default 20 s per target 9 min. BERTH_FUZZ_TARGET_DIR
# picks the target dir (default fuzz/target).
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written; what libFuzzer
# finds goes to $CARGO_TARGET_DIR/fuzz-corpus/<target>/ and is reused by the next run
# (copy an interesting input into fuzz/corpus/ to keep it). A crashing input is written to fuzz/artifacts/<target>/ and named in the output:
# reproduce it with `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -O -s none
# <target> <file>`.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
case $seconds in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "fuzz.sh: run as root (layer_apply needs a mount namespace)" >&2; exit 1; }
export CARGO_TERM_COLOR=never
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1
# Its own target dir: the fuzz build uses different flags than the workspace's.
export CARGO_TARGET_DIR=${BERTH_FUZZ_TARGET_DIR:-$PWD/fuzz/target}

# Optimized, no sanitizer: berth's code is safe Rust outside its syscalls (debug
# assertions and overflow checks stay on); AddressSanitizer would mostly watch the C
# libraries (zstd, libseccomp) and, measured, costs ~25% more build CPU and runs the
# targets 4-6 times slower (-s address to try it by hand).
flags=(--fuzz-dir fuzz -O --debug-assertions --sanitizer none)
targets=(layer_apply manifest hosts_toml reference config_json)
t0=$(date +%s)
echo "== building fuzz targets"
cargo fuzz build "${flags[@]}"
echo "== built in $(( $(date +%s) - t0 )) s; fuzzing each target for ${seconds} s"
for t in "${targets[@]}"; do
  found=$CARGO_TARGET_DIR/fuzz-corpus/$t
  mkdir -p "$found" "fuzz/artifacts/$t"
  dict=()
  [ -f "fuzz/dicts/$t.dict" ] && dict=(-dict="fuzz/dicts/$t.dict")
  echo "== $t"
  cargo fuzz run "${flags[@]}" "$t" "$found" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -timeout=60 -print_final_stats=1 "${dict[@]}"
done
echo "== fuzz: all targets clean ($(( $(date +%s) - t0 )) s)"
