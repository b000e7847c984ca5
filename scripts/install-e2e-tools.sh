#!/usr/bin/env bash
# What the end-to-end check of the arm64 bootstrap needs: qemu-user (to run an aarch64 binary on
# an x86_64 machine) and libc6-arm64-cross (the arm64 glibc and loader it links against, in
# /usr/aarch64-linux-gnu), from Debian's packages, installed only when missing.
set -euo pipefail
if [[ -x /usr/bin/qemu-aarch64 && -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]]; then
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends qemu-user libc6-arm64-cross >/dev/null \
  || { $sudo apt-get update -q >/dev/null \
       && $sudo apt-get install -y -q --no-install-recommends qemu-user libc6-arm64-cross >/dev/null; }
