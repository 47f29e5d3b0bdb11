#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for the GPU check (benchmarks/README.md), at the
# versions of requirements.lock, for its Python 3.12 on x86_64. Run here, with a network:
#
#   bash benchmarks/gpu_wheels.sh [DIR]        # default DIR: .whl (add /.whl/ to .git/info/exclude)
#
# then carry DIR in the device call and install it there before the check:
#
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
#
# The machine's image (2026-12-04) has torch, torchaudio, numpy, scipy, numba, pyyaml,
# safetensors, tensorboard, matplotlib, tqdm, pytest and hypothesis, but not these.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$root/.whl}"
python="${PYTHON:-$root/.venv/bin/python}"
lock="$root/requirements.lock"
wheels=(soundfile cffi pycparser soxr jiwer rapidfuzz num2words librosa audioread decorator pooch platformdirs)
mkdir -p "$dir"
pinned() {  # NAME -> NAME==VERSION as the lock pins it
    local line
    line="$(grep -m1 -i "^$1==" "$lock")" || { echo "gpu_wheels.sh: $1 is not pinned in $lock" >&2; exit 1; }
    echo "${line%% *}"
}
for name in "${wheels[@]}"; do
    "$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$dir" "$(pinned "$name")"
done
# docopt (num2words' one dependency) is published as a source archive only: build its wheel.
"$python" -m pip wheel -q --no-deps -w "$dir" "$(pinned docopt)"
ls "$dir"
