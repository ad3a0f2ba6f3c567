#!/usr/bin/env bash
# Builds the coverage-guided fuzz targets in fuzz/ (libFuzzer via libfuzzer-sys, stable
# toolchain) and runs each for SECONDS, one after the other. See docs/fuzzing.md.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      default: 20 seconds, every target
#   scripts/fuzz.sh --list                     names the targets
#   scripts/fuzz.sh --build [TARGET...]        builds only
#
# Environment: FUZZ_PROFILE=ci builds with the fuzz crate's quicker `ci` profile (default
# release); FUZZ_NICE=19 runs the fuzzers under `nice -n 19` (default 0); FUZZ_BIN_DIR=DIR
# runs the targets already built in DIR instead of building (long runs from a fixed build);
# FUZZ_LOG=FILE appends one summary line per target; CARGO_TARGET_DIR as usual (default
# fuzz/target). Each target's working corpus is fuzz/corpus/TARGET (new inputs go there; the
# committed seeds in fuzz/seeds/TARGET are read, never written); crashes go to
# fuzz/artifacts/TARGET/. Exits non-zero when a target crashed, leaked memory past the limit or
# timed out on an input.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fuzz_dir=$root/fuzz

targets() {
  sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz_dir/Cargo.toml" | grep -v '^authdeck-fuzz$'
}

if [[ "${1:-}" == "--list" ]]; then
  targets
  exit 0
fi

build_only=false
if [[ "${1:-}" == "--build" ]]; then
  build_only=true
  shift
fi
seconds=20
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
for t in "$@"; do
  if ! targets | grep -qx -- "$t"; then
    echo "usage: $0 [--list | --build] [SECONDS] [TARGET...]; unknown target '$t'" >&2
    exit 2
  fi
done
if (($#)); then
  wanted=("$@")
else
  mapfile -t wanted < <(targets)
fi

host=$(rustc -vV | sed -n 's/^host: //p')
# libFuzzer's coverage instrumentation, as cargo-fuzz sets it, minus the sanitizer (which would
# need nightly). --target keeps these flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$fuzz_dir/target}
profile=${FUZZ_PROFILE:-release}
bin_dir=${FUZZ_BIN_DIR:-$CARGO_TARGET_DIR/$host/$profile}
if [[ -z "${FUZZ_BIN_DIR:-}" ]]; then
  build_start=$SECONDS
  # The library's dependencies at exactly the versions of the main build: start from its lock
  # file (cargo then adds the few fuzz-only crates, pinned in fuzz/Cargo.toml).
  cp "$root/Cargo.lock" "$fuzz_dir/Cargo.lock"
  cargo build --profile "$profile" --manifest-path "$fuzz_dir/Cargo.toml" \
    --target "$host" $(printf -- '--bin %s ' "${wanted[@]}")
  echo "fuzz: built ${#wanted[@]} target(s) in $((SECONDS - build_start)) s"
fi
$build_only && exit 0

nice_cmd=()
[[ "${FUZZ_NICE:-0}" != 0 ]] && nice_cmd=(nice -n "$FUZZ_NICE")
failed=()
for t in "${wanted[@]}"; do
  corpus=$fuzz_dir/corpus/$t
  seeds=$fuzz_dir/seeds/$t
  artifacts=$fuzz_dir/artifacts/$t
  mkdir -p "$corpus" "$artifacts" "$seeds"
  log=$(mktemp)
  start=$SECONDS
  status=0
  "${nice_cmd[@]}" "$bin_dir/$t" "$corpus" "$seeds" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  took=$((SECONDS - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  corp=$(find "$corpus" -type f | wc -l)
  line="fuzz: $t: ${runs:-?} runs in ${took} s (${rate:-?}/s), ${cov:-cov: ?}, corpus $corp, exit $status"
  echo "$line"
  [[ -n "${FUZZ_LOG:-}" ]] && echo "$(date -u +%FT%TZ) $line" >>"$FUZZ_LOG"
  if ((status != 0)); then
    failed+=("$t")
    echo "---- $t: last lines of the fuzzer's output ----"
    tail -40 "$log"
    ls -1 "$artifacts"
  fi
  rm -f "$log"
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#wanted[@]} target(s) ran ${seconds} s each without a finding"
