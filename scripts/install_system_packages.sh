#!/usr/bin/env bash
# Install the Debian packages the project needs, only where they are missing.
# Needs root (or sudo) only when something is missing.
set -euo pipefail

python=${PYTHON:-python3}
missing=()
command -v "$python" >/dev/null || missing+=(python3)
"$python" -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "installing Debian packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
