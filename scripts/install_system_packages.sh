#!/usr/bin/env bash
# Install the Debian packages the project needs, only those that are missing:
# python3-venv where Python lacks venv; the text-to-speech engines and the free
# texts that the synthetic corpus (demo and tests) is made from: English, and German, Spanish
# and Chinese fortunes for the corpora in other languages; chromium and its WebDriver, for the
# test that opens asr serve's page in a real (headless) browser.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

python=${PYTHON:-python3}
packages=(
    espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festlex-cmu sox
    bible-kjv wordnet-base fortunes fortunes-de fortunes-es fortunes-zh chromium chromium-driver
)
missing=()
"$python" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if command -v dpkg-query >/dev/null; then
    for package in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
else
    echo "warning: not a Debian-like system; install these yourself: ${packages[*]}" >&2
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
