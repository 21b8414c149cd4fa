#!/usr/bin/env bash
# Builds what the declared minimum Rust version (the workspace's
# `rust-version`) and macOS need: the workspace checked with that toolchain,
# and, with the same toolchain, the library and binary checked for
# aarch64-apple-darwin (without the bundled SQLite, whose C needs a macOS
# compiler; the Rust, with its Linux-only calls behind cfg, is what this
# checks). Its own target directory, so the main build is left alone. Without rustup, or without the toolchain
# or the target installed, it says so and skips, unless
# FAILGROUP_REQUIRE_TOOLCHAINS=1 (CI, whose .ci/run installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
MSRV="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$MSRV" ] || { echo "toolchains: no rust-version in Cargo.toml" >&2; exit 1; }
skip() {
  if [ "${FAILGROUP_REQUIRE_TOOLCHAINS:-0}" = 1 ]; then
    echo "toolchains: $1" >&2
    exit 1
  fi
  echo "note: $1: skipped"
}
if ! command -v rustup >/dev/null 2>&1; then
  skip "no rustup: cannot build with Rust $MSRV or for macOS"
  exit 0
fi
if ! rustup run "$MSRV" rustc --version >/dev/null 2>&1; then
  skip "Rust $MSRV is not installed (rustup toolchain install $MSRV --profile minimal)"
  exit 0
fi
echo "Rust $MSRV (the declared rust-version): cargo check --workspace"
CARGO_TARGET_DIR=target/msrv cargo "+$MSRV" check --workspace --locked
# The macOS check with the same toolchain and target directory: the build
# scripts and procedural macros it needs are the ones just built.
if rustup target list --installed --toolchain "$MSRV" | grep -qx aarch64-apple-darwin; then
  echo "macOS (aarch64-apple-darwin), Rust $MSRV: cargo check -p failgroup --no-default-features"
  CARGO_TARGET_DIR=target/msrv cargo "+$MSRV" check -p failgroup --lib --bins --locked \
    --target aarch64-apple-darwin --no-default-features
else
  skip "the aarch64-apple-darwin target is not installed for Rust $MSRV (rustup target add --toolchain $MSRV aarch64-apple-darwin)"
fi
