#!/usr/bin/env bash
# Installs what the oidc-provider interop tests need: Node.js (>= 20.19) with npm, then the
# locked npm packages of tests/interop (npm ci: exactly package-lock.json, no changes).
# Called by .ci/run; safe to run again. The Rust tests also run `npm ci` on first use when
# node_modules is missing, but not apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup-node: installing nodejs and npm with apt-get" >&2
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

node_version="$(node --version)"   # e.g. v20.20.2
major="${node_version#v}"; major="${major%%.*}"
if [ "$major" -lt 20 ]; then
    echo "setup-node: Node.js $node_version is too old; oidc-provider needs >= 20.19" >&2
    exit 1
fi

npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
echo "setup-node: node $node_version, npm $(npm --version), $(node -p "'oidc-provider ' + require('./tests/interop/node_modules/oidc-provider/package.json').version")"
