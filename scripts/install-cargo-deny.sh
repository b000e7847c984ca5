#!/usr/bin/env bash
# cargo-deny (supply-chain checks: licences, bans, sources, advisories) from crates.io into
# .tools/cargo-deny (project-local), only when missing or of another version.
#
# Build time, on a fresh machine (CI always is one: .tools/ is not in git):
# - cargo-deny 0.20 has no cargo features left to turn off: 0.19.1 dropped gix and reqwest (it
#   runs `git` to fetch the advisory database), so `--no-default-features` saves nothing.
# - An optimised build costs far more than it gives back. Measured on this 2-core machine:
#   the crate's own release profile (fat LTO, one codegen unit) 263 s of CPU; without LTO and
#   with 16 codegen units 243 s; with opt-level 1 too 220 s; a debug build 114 s, and 88 s
#   without debuginfo (2 min 18 s of wall time on a busy machine). The debug binary checks our
#   graph in about 3.5 s of CPU instead of 0.9 s, with identical output.
# - So: `--debug`, and no debuginfo (nobody steps through cargo-deny; debuginfo only slows the
#   build and makes the binary 110 MB instead of 26 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
root=.tools/cargo-deny
version=0.20.2
if ! "$root/bin/cargo-deny" --version 2>/dev/null | grep -qx "cargo-deny $version"; then
  CARGO_PROFILE_DEV_DEBUG=0 cargo install --locked --quiet --debug --root "$root" "cargo-deny@$version"
fi
