#!/usr/bin/env bash
# Crash campaign (VAULT-4): SIGKILLs the release authdeck binary KILLS times at random moments
# while `login`, `refresh`, `vault passwd` and `logout` write the vault, and checks the vault
# after every kill. The driver is the test `crash_campaign` in tests/integration (which
# `cargo test` runs with 20 kills against the debug binary). See docs/crash-campaign.md.
#
#   scripts/crash-campaign.sh [KILLS]        default 1000
#
# Environment: CRASH_SEED replays a run; CRASH_REPORT=FILE keeps the summary line;
# CRASH_NICE (default 19) is the nice level of the whole run.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-1000}
if [[ ! "$kills" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [KILLS]" >&2
  exit 2
fi
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
nice -n "${CRASH_NICE:-19}" cargo build --release --bin authdeck
nice -n "${CRASH_NICE:-19}" cargo test --test integration --no-run
start=$SECONDS
CRASH_KILLS=$kills AUTHDECK_BIN=$target_dir/release/authdeck \
  nice -n "${CRASH_NICE:-19}" cargo test --test integration crash_campaign -- --nocapture
echo "crash-campaign: $kills kills took $((SECONDS - start)) s"
