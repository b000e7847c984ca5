#!/usr/bin/env bash
# cargo-lambda (with zig, from PyPI) into .tools/lambda, and the aarch64 Rust target:
# everything `make build` needs, installed project-locally and only when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/lambda
version=1.9.2
if ! "$venv/bin/cargo-lambda" lambda --version 2>/dev/null | grep -q "cargo-lambda $version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$version"
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
  || rustup target add aarch64-unknown-linux-gnu
