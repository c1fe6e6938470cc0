#!/usr/bin/env bash
# Fuzzes every target on *stable* Rust, without cargo-fuzz: the same coverage
# instrumentation cargo-fuzz adds, minus AddressSanitizer (which needs nightly; the
# core is `#![forbid(unsafe_code)]`, so ASan has little to add). Usage:
#   fuzz/run-stable.sh [seconds-per-target, default 30] [target ...]
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(kv_open kv_decode unwrap_root proto_json text_inputs answers)
host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS away from build scripts, as cargo-fuzz does.
cargo build --release --bins --target "$host"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t (${secs}s)"
  "./target/$host/release/$t" -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "corpus/$t" 2>&1 | grep -E '^(#[0-9]+ +DONE|Done|stat::number_of_executed_units|==|.*(panicked|ERROR|SUMMARY))' || true
done
