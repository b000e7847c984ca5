#!/usr/bin/env bash
# What the demo page's browser test (tests/demo_browser.rs) needs: headless Chromium and its
# WebDriver server (/usr/bin/chromium, /usr/bin/chromedriver), with a text font and an emoji
# font for the screenshot, from Debian's packages (chromium, chromium-driver, fonts-dejavu-core,
# fonts-noto-color-emoji), installed only when missing.
set -euo pipefail
emoji=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver && -e $emoji ]]; then
  exit 0
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  sudo="sudo"
fi
packages=(chromium chromium-driver fonts-dejavu-core fonts-noto-color-emoji)
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null \
  || { $sudo apt-get update -q >/dev/null \
       && $sudo apt-get install -y -q --no-install-recommends "${packages[@]}" >/dev/null; }
