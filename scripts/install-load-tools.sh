#!/usr/bin/env bash
# What `make load` and `make soak` need: wrk (the HTTP load generator, with its LuaJIT scripting
# that scripts/load.lua uses), from Debian's packages, installed only when missing.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends wrk >/dev/null \
  || { $sudo apt-get update -q >/dev/null \
       && $sudo apt-get install -y -q --no-install-recommends wrk >/dev/null; }
