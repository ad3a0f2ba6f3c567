#!/usr/bin/env bash
# Type-checks authdeck for macOS from Linux (docs/vault-format.md, the keychain backend):
#
#   scripts/check-macos.sh            # needs rustup; adds the x86_64-apple-darwin target
#
# `cargo check` links nothing, but ring's build script still compiles its C and assembly with
# the target's C compiler, which a Linux machine lacks (no macOS SDK headers). A stand-in
# compiler that writes empty objects lets the build script finish; the Rust code, including
# every `cfg(target_os = "macos")` path, is checked for real. Exits non-zero on any error or
# warning in authdeck itself.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add x86_64-apple-darwin >/dev/null
stub_dir=$(mktemp -d)
trap 'rm -rf "$stub_dir"' EXIT
cat > "$stub_dir/cc" <<'STUB'
#!/bin/sh
# Writes an empty object wherever the real compiler would (-o PATH, -oPATH or MSVC's -FoPATH).
out="" prev=""
for a in "$@"; do
  [ "$prev" = "-o" ] && out="$a"
  case "$a" in -o?*) out="${a#-o}" ;; -Fo*) out="${a#-Fo}" ;; esac
  prev="$a"
done
[ -n "$out" ] && : > "$out"
exit 0
STUB
chmod +x "$stub_dir/cc"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/check-macos}
CC_x86_64_apple_darwin="$stub_dir/cc" RUSTFLAGS="-D warnings" \
  cargo check --target x86_64-apple-darwin --all-features
