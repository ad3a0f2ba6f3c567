#!/usr/bin/env bash
# Longer run of the HAProxy + 3 replicas test (tests/integration/proxy_lb.rs): fixed-rate
# exchanges through HAProxy while replica 2 is stopped with SIGTERM and started again.
# Usage: scripts/proxy-lb-soak.sh [SECONDS] [RATE_PER_SECOND]   (default 120 s at 200/s)
# (debug build of the test binary and of authdeck: a fixed low rate does not need release)
# Prints the line "lb load: N requests …, K failed; … haproxy retries=R redispatches=D".
set -euo pipefail
cd "$(dirname "$0")/.."
export AUTHDECK_LB_SECS="${1:-120}" AUTHDECK_LB_RATE="${2:-200}"
exec nice -n 19 cargo test --test integration -- \
    proxy_lb::haproxy_three_replicas --nocapture
