#!/usr/bin/env bash
# The shared vault's soak (docs/etcd.md, "Soak"): two machines and a CI runner share one
# rotating account through a real 3-member etcd cluster, one member down for the middle third.
#
#   scripts/etcd-soak.sh [SECONDS] [TOKEN_TTL_SECONDS]     default: 3600 s with 30 s tokens
#
# A day: scripts/etcd-soak.sh 86400 30. Needs /usr/bin/etcd (Debian etcd-server). Prints one
# summary line (calls, failures, refreshes, latency) and exits non-zero on any failed call, a
# duplicate refresh or a broken refresh-token chain. CI runs the same test for 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
export AUTHDECK_SOAK_SECS=${1:-3600} AUTHDECK_SOAK_TTL_SECS=${2:-30}
nice -n "${SOAK_NICE:-0}" cargo test --test integration etcd_soak:: -- --nocapture
