#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (deny.toml): licences, bans and sources, with a
# project-local, pinned cargo-deny. Offline, so cargo-deny fetches nothing; `advisories` is left
# out because it needs the RustSec database from GitHub (scripts/deny.md.txt says how to run it
# where GitHub is reachable). --locked: fail rather than update Cargo.lock, so the lock file
# that ships is the one checked. Extra arguments go to `cargo deny check`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-cargo-deny.sh
# cargo-deny reads the graph from `cargo metadata`, which needs every locked crate's manifest:
# on a fresh machine, download them first (crates.io only; a no-op when they are cached).
cargo fetch --locked --quiet
deny=(.tools/cargo-deny/bin/cargo-deny --offline --locked check)
# The duplicate-version warnings' dependency trees run to hundreds of lines: print each warning
# with its lock entries only, and the per-check counts...
if "${deny[@]}" --show-stats --hide-inclusion-graph "$@" licenses bans sources; then
  exit 0
fi
# ...and on a failure, the errors again with the inclusion graph (which dependency pulls a
# banned crate or licence in), duplicates silenced so the errors are all there is to read.
echo "cargo-deny failed; the errors with their dependency paths:" >&2
"${deny[@]}" --allow duplicate "$@" licenses bans sources || true
exit 1
