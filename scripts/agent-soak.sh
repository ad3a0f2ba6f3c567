#!/usr/bin/env bash
# The agent's long run (benches/agent.rs, "soak"): an agent with 50 accounts whose tokens live
# 30 s refreshes at the in-process devserver for 10 minutes while its VmRSS/VmHWM are sampled
# every 5 s; beside it an agent with 50 accounts and nothing due, whose CPU time is read over
# 60 s. Figures go in docs/benchmarks.md ("Agent").
# Usage: scripts/agent-soak.sh [--short]     (--short: 90 s of refreshes, 20 s idle)
# Environment: AUTHDECK_BENCH_BIN=PATH measures another authdeck binary (e.g. a plain
# `cargo build --release` one); MALLOC_ARENA_MAX is passed on to the agents.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--short" ]; then
    export AGENT_SOAK_SECS="${AGENT_SOAK_SECS:-90}" AGENT_IDLE_SECS="${AGENT_IDLE_SECS:-20}"
else
    export AGENT_SOAK_SECS="${AGENT_SOAK_SECS:-600}" AGENT_IDLE_SECS="${AGENT_IDLE_SECS:-60}"
fi
exec nice -n 5 cargo bench --bench agent -- soak
