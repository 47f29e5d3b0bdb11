#!/usr/bin/env bash
# Install the locked Python environment (requirements.lock, every package pinned
# and hash-checked) into a virtual environment, then the project itself, editable
# and without dependencies, and check that torch and torchaudio load together.
#
#   scripts/install_python_packages.sh VENV [uv|pip]
#
# uv (its version and hashes taken from the lock, installed with pip) installs in
# seconds from its cache; pip alone works too, slower. Where uv cannot be
# installed, pip is used.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=$1
installer=${2:-uv}
lock=requirements.lock
python=$venv/bin/python

if [ "$installer" = uv ]; then
    # uv's own entry of the lock: its pin line and the hash lines under it
    awk '/^[^ #]/ { keep = /^uv==/ } keep' "$lock" > "$venv/uv-requirement.txt"
    if "$python" -m pip install --quiet --require-hashes --no-deps -r "$venv/uv-requirement.txt"; then
        # sync: also removes what an earlier lock installed and this one does not hold
        "$venv/bin/uv" pip sync --quiet --python "$python" --require-hashes "$lock"
        "$venv/bin/uv" pip install --quiet --python "$python" --no-deps --no-build-isolation -e .
    else
        echo "warning: could not install uv from the lock; installing with pip" >&2
        installer=pip
    fi
fi
if [ "$installer" = pip ]; then
    "$python" -m pip install --quiet --require-hashes --no-deps -r "$lock"
    "$python" -m pip install --quiet --no-deps --no-build-isolation -e .
fi
"$python" scripts/check_install.py
